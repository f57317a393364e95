//! Exit codes of the cairn binary (docs/user-guide.md, "Reports and exit codes") and the one
//! place that prints a fatal error.

use std::fmt;

use cairn_store::StoreError;

/// Exit code for bad usage or bad input.
pub const EXIT_USAGE: i32 = 2;
/// Exit code of `cairn run` after a final checkpoint: "checkpointed, resume me" (EX_TEMPFAIL).
pub const EXIT_RESUME: i32 = 75;
/// Default exit code for internal failures (overridable with `CAIRN_FAIL_RC`).
pub const EXIT_INTERNAL: i32 = 99;

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

/// The internal-failure exit code: `$CAIRN_FAIL_RC` when set to a number, else 99.
pub fn fail_rc() -> i32 {
    std::env::var("CAIRN_FAIL_RC")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(EXIT_INTERNAL)
}

/// The exit code for an error: 2 when any cause is a usage error or a bad-input store
/// error, otherwise the internal-failure code.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return EXIT_USAGE;
        }
        if let Some(se) = cause.downcast_ref::<StoreError>() {
            return if se.is_bad_input() {
                EXIT_USAGE
            } else {
                fail_rc()
            };
        }
    }
    fail_rc()
}

/// Print the error (one line) if any, and exit with the right code.
pub fn finish(result: anyhow::Result<i32>) -> ! {
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("cairn: error: {}", one_line(&e));
            std::process::exit(exit_code(&e))
        }
    }
}

/// The error and its causes on one line, each said once: a cause whose text its context
/// already contains (errors that print their source) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
