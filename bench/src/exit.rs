//! Exit codes of `cairn-bench`, the same as the cairn binary's: 2 for bad usage or bad
//! input, 99 for anything else.

use std::fmt;

use cairn_store::StoreError;

/// Exit code for bad usage or bad input.
const EXIT_USAGE: i32 = 2;
/// Exit code for other failures.
const EXIT_INTERNAL: i32 = 99;

/// An error that is the user's fault: exits with code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Build a usage error (exit code 2) as an `anyhow::Error`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The exit code for an error: 2 when any cause is a usage error or a bad-input store
/// error, otherwise 99.
fn exit_code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return EXIT_USAGE;
        }
        if let Some(se) = cause.downcast_ref::<StoreError>() {
            return if se.is_bad_input() {
                EXIT_USAGE
            } else {
                EXIT_INTERNAL
            };
        }
    }
    EXIT_INTERNAL
}

/// Print the error (one line) if any, and exit with the right code.
pub fn finish(result: anyhow::Result<i32>) -> ! {
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("cairn-bench: error: {msg}");
            std::process::exit(exit_code(&e))
        }
    }
}
