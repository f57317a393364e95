//! The per-coordinator secret and the challenge-response that proves a peer holds it.
//!
//! The secret is 32 random bytes, written as 64 hex digits to a file of mode 0600 (or passed
//! in `CAIRN_COORD_SECRET`). It never crosses the wire: the server sends a random nonce, the
//! client answers with a BLAKE3 keyed hash of both nonces, and the server proves itself back
//! with a differently labelled hash, so neither side can be impersonated by a peer that does
//! not hold the secret.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::Rng;

/// Environment variable that may carry the secret itself (64 hex digits).
pub const SECRET_ENV: &str = "CAIRN_COORD_SECRET";
/// Environment variable naming a file that holds the secret.
pub const SECRET_FILE_ENV: &str = "CAIRN_COORD_SECRET_FILE";
/// Environment variable overriding the directory of per-port secret files.
pub const SECRET_DIR_ENV: &str = "CAIRN_SECRET_DIR";

const CLIENT_LABEL: &[u8] = b"cairn-coordinator-auth-v1 client";
const SERVER_LABEL: &[u8] = b"cairn-coordinator-auth-v1 server";

/// Length in bytes of secrets, nonces and proofs.
pub const KEY_LEN: usize = 32;

/// Errors about secrets and their files.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The secret text is not 64 hex digits.
    #[error("malformed coordinator secret (expected {} hex digits)", KEY_LEN * 2)]
    Malformed,
    /// A secret file could not be read or written.
    #[error("secret file {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A secret file is readable by other users, so it cannot be trusted to be secret.
    #[error("secret file {0} is accessible to other users (mode must be 0600)")]
    TooOpen(PathBuf),
    /// No secret was given and none was found for this coordinator.
    #[error("no secret for coordinator {0}: set {SECRET_ENV} or {SECRET_FILE_ENV}, or run as the user who started it")]
    NotFound(String),
}

/// The shared secret of one coordinator and its clients.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; KEY_LEN]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A fresh random secret from the operating system's CSPRNG.
    pub fn generate() -> Secret {
        Secret(random_bytes())
    }

    /// Parses 64 hex digits (surrounding whitespace allowed).
    pub fn from_hex(text: &str) -> Result<Secret, AuthError> {
        parse_hex32(text.trim())
            .map(Secret)
            .ok_or(AuthError::Malformed)
    }

    /// The secret as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Reads a secret file, refusing files that group or others can access.
    pub fn read_file(path: &Path) -> Result<Secret, AuthError> {
        let io = |source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = fs::metadata(path).map_err(io)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(AuthError::TooOpen(path.to_path_buf()));
        }
        let text = fs::read_to_string(path).map_err(io)?;
        Secret::from_hex(&text)
    }

    /// Writes the secret to `path` with mode 0600, atomically (temporary file + rename).
    /// The parent directory is created with mode 0700 if missing.
    pub fn write_file(&self, path: &Path) -> Result<(), AuthError> {
        let io = |source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        // The mode given to open() is filtered by the umask; make sure it is exactly 0600.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        file.write_all(format!("{}\n", self.to_hex()).as_bytes())
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&tmp, path).map_err(io)
    }

    /// The proof a client sends: keyed hash of both nonces.
    pub fn client_proof(&self, server_nonce: &Nonce, client_nonce: &Nonce) -> Proof {
        self.proof(CLIENT_LABEL, server_nonce, client_nonce)
    }

    /// The proof the server sends back once the client is accepted.
    pub fn server_proof(&self, server_nonce: &Nonce, client_nonce: &Nonce) -> Proof {
        self.proof(SERVER_LABEL, server_nonce, client_nonce)
    }

    fn proof(&self, label: &[u8], server_nonce: &Nonce, client_nonce: &Nonce) -> Proof {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(label);
        h.update(&server_nonce.0);
        h.update(&client_nonce.0);
        Proof(h.finalize())
    }
}

/// A random challenge, sent in the clear; fresh for every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nonce(pub [u8; KEY_LEN]);

impl Nonce {
    /// A fresh random nonce.
    pub fn generate() -> Nonce {
        Nonce(random_bytes())
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Nonce> {
        parse_hex32(text).map(Nonce)
    }

    /// The nonce as hex.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
}

/// A keyed-hash proof of holding the secret. Comparison is constant-time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proof(blake3::Hash);

impl Proof {
    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Proof> {
        parse_hex32(text).map(|b| Proof(blake3::Hash::from_bytes(b)))
    }

    /// The proof as hex.
    pub fn to_hex(&self) -> String {
        self.0.to_hex().to_string()
    }
}

/// The directory holding per-port secret files: `$CAIRN_SECRET_DIR`, else `$HOME/.cairn/coordinators`.
pub fn secret_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(SECRET_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cairn").join("coordinators")
}

/// Where the coordinator reachable at `host:port` keeps its secret.
///
/// Loopback names are replaced by this machine's host name so that `localhost`,
/// `127.0.0.1` and the real name all find the same file.
pub fn default_secret_path(host: &str, port: u16) -> PathBuf {
    secret_dir().join(format!("{}-{port}.secret", canonical_host(host)))
}

/// The path of the secret file written next to a port file: `<port-file>.secret`.
pub fn secret_path_for_port_file(port_file: &Path) -> PathBuf {
    let mut s = port_file.as_os_str().to_owned();
    s.push(".secret");
    PathBuf::from(s)
}

/// Finds the secret a client should use for `host:port`: `$CAIRN_COORD_SECRET`, then the
/// file named by `$CAIRN_COORD_SECRET_FILE`, then the default per-port file.
pub fn find_secret(host: &str, port: u16) -> Result<Secret, AuthError> {
    if let Ok(text) = std::env::var(SECRET_ENV) {
        if !text.is_empty() {
            return Secret::from_hex(&text);
        }
    }
    if let Some(path) = std::env::var_os(SECRET_FILE_ENV).filter(|p| !p.is_empty()) {
        return Secret::read_file(Path::new(&path));
    }
    let path = default_secret_path(host, port);
    match Secret::read_file(&path) {
        Err(AuthError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(AuthError::NotFound(format!("{host}:{port}")))
        }
        other => other,
    }
}

/// This machine's host name, or `localhost` when it cannot be read.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn canonical_host(host: &str) -> String {
    let loopback = host.is_empty()
        || host == "localhost"
        || host == "0.0.0.0"
        || host == "::"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    let name = if loopback {
        hostname()
    } else {
        host.to_string()
    };
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn random_bytes() -> [u8; KEY_LEN] {
    let mut b = [0u8; KEY_LEN];
    rand::rng().fill_bytes(&mut b);
    b
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn parse_hex32(text: &str) -> Option<[u8; KEY_LEN]> {
    let bytes = text.as_bytes();
    if bytes.len() != KEY_LEN * 2 {
        return None;
    }
    let mut out = [0u8; KEY_LEN];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_garbage() {
        let s = Secret::generate();
        assert_eq!(Secret::from_hex(&s.to_hex()).unwrap(), s);
        assert!(Secret::from_hex("abc").is_err());
        assert!(Secret::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn proofs_depend_on_secret_nonces_and_direction() {
        let (a, b) = (Secret::generate(), Secret::generate());
        let (n1, n2) = (Nonce::generate(), Nonce::generate());
        assert_eq!(a.client_proof(&n1, &n2), a.client_proof(&n1, &n2));
        assert_ne!(a.client_proof(&n1, &n2), b.client_proof(&n1, &n2));
        assert_ne!(a.client_proof(&n1, &n2), a.client_proof(&n2, &n1));
        assert_ne!(a.client_proof(&n1, &n2), a.server_proof(&n1, &n2));
        let p = a.client_proof(&n1, &n2);
        assert_eq!(Proof::from_hex(&p.to_hex()), Some(p));
    }

    #[test]
    fn secret_file_is_0600_and_open_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("c.secret");
        let s = Secret::generate();
        s.write_file(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Secret::read_file(&path).unwrap(), s);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Secret::read_file(&path),
            Err(AuthError::TooOpen(_))
        ));
    }
}
