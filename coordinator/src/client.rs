//! Blocking clients of the coordinator: `cairn command` ([`CommandClient`]) and the agent side
//! ([`AgentConnection`]), plus [`connect_or_spawn`], which finds a coordinator or starts one.

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::auth::{self, AuthError, Nonce, Proof, Secret};
use crate::protocol::frame::{self, FrameError};
use crate::protocol::{
    AgentMessage, AgentStats, ClientHandshake, CoordinatorMessage, Registration, Request, Response,
    Role, ServerHandshake, StreamRef,
};

/// Default coordinator host (as DMTCP).
pub const DEFAULT_HOST: &str = "localhost";
/// Default coordinator port (as DMTCP).
pub const DEFAULT_PORT: u16 = 7779;
/// Environment variable naming the coordinator host.
pub const HOST_ENV: &str = "CAIRN_COORD_HOST";
/// Environment variable naming the coordinator port.
pub const PORT_ENV: &str = "CAIRN_COORD_PORT";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const SPAWN_TIMEOUT: Duration = Duration::from_secs(15);

/// Errors of a client connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No coordinator answers at that address.
    #[error("cannot reach coordinator at {addr}: {source}")]
    Connect {
        /// host:port tried.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The secret could not be found or read.
    #[error(transparent)]
    Secret(#[from] AuthError),
    /// The coordinator refused our proof (wrong secret).
    #[error("coordinator refused the connection: {0}")]
    Rejected(String),
    /// The peer does not hold the secret: it is not our coordinator.
    #[error("the peer at {0} could not prove it holds the coordinator's secret")]
    NotAuthentic(String),
    /// A frame could not be read or written.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The coordinator answered something that makes no sense here.
    #[error("unexpected message from the coordinator: {0}")]
    Unexpected(String),
    /// The coordinator closed the connection.
    #[error("the coordinator closed the connection")]
    Closed,
    /// Starting a coordinator failed.
    #[error("cannot start a coordinator: {0}")]
    Spawn(String),
}

/// Where a coordinator is and the secret to talk to it.
#[derive(Debug, Clone)]
pub struct CoordinatorAddress {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Its secret.
    pub secret: Secret,
}

impl CoordinatorAddress {
    /// The address with the secret found by [`auth::find_secret`].
    pub fn discover(host: &str, port: u16) -> Result<CoordinatorAddress, ClientError> {
        Ok(CoordinatorAddress {
            host: host.to_string(),
            port,
            secret: auth::find_secret(host, port)?,
        })
    }

    fn display(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Host and port from `CAIRN_COORD_HOST`/`CAIRN_COORD_PORT`, else localhost:7779.
pub fn default_endpoint() -> (String, u16) {
    let host = std::env::var(HOST_ENV)
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let port = std::env::var(PORT_ENV)
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(DEFAULT_PORT);
    (host, port)
}

fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, ClientError> {
    let addr = format!("{host}:{port}");
    let err = |source| ClientError::Connect {
        addr: addr.clone(),
        source,
    };
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for sa in (host, port).to_socket_addrs().map_err(err)? {
        match TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(err(last))
}

/// Checks that something listens at `host:port` (without talking to it).
pub fn probe(host: &str, port: u16) -> Result<(), ClientError> {
    tcp_connect(host, port).map(drop)
}

/// Connects and runs the handshake; returns an authenticated stream.
pub fn connect_authenticated(
    addr: &CoordinatorAddress,
    role: Role,
) -> Result<TcpStream, ClientError> {
    let mut stream = tcp_connect(&addr.host, addr.port)?;
    stream
        .set_read_timeout(Some(crate::daemon::HANDSHAKE_TIMEOUT))
        .map_err(FrameError::from)?;
    let server_nonce = match frame::read_blocking::<ServerHandshake>(&mut stream)? {
        Some(ServerHandshake::Challenge { nonce }) => {
            Nonce::from_hex(&nonce).ok_or_else(|| ClientError::Unexpected("bad nonce".into()))?
        }
        Some(ServerHandshake::Rejected { reason }) => return Err(ClientError::Rejected(reason)),
        Some(other) => return Err(ClientError::Unexpected(format!("{other:?}"))),
        None => return Err(ClientError::Closed),
    };
    let client_nonce = Nonce::generate();
    let auth = ClientHandshake::Auth {
        role,
        nonce: client_nonce.to_hex(),
        proof: addr
            .secret
            .client_proof(&server_nonce, &client_nonce)
            .to_hex(),
    };
    frame::write_blocking(&mut stream, &auth)?;
    match frame::read_blocking::<ServerHandshake>(&mut stream)? {
        Some(ServerHandshake::Accepted { proof }) => {
            let expected = addr.secret.server_proof(&server_nonce, &client_nonce);
            if Proof::from_hex(&proof) != Some(expected) {
                return Err(ClientError::NotAuthentic(addr.display()));
            }
        }
        Some(ServerHandshake::Rejected { reason }) => return Err(ClientError::Rejected(reason)),
        Some(other) => return Err(ClientError::Unexpected(format!("{other:?}"))),
        None => return Err(ClientError::Closed),
    }
    stream.set_read_timeout(None).map_err(FrameError::from)?;
    Ok(stream)
}

/// A controlling client (`cairn command`).
pub struct CommandClient {
    stream: TcpStream,
}

impl CommandClient {
    /// Connects and authenticates.
    pub fn connect(addr: &CoordinatorAddress) -> Result<CommandClient, ClientError> {
        Ok(CommandClient {
            stream: connect_authenticated(addr, Role::Command)?,
        })
    }

    /// Sends one request and waits for its answer (a waiting checkpoint may take long).
    pub fn request(&mut self, req: &Request) -> Result<Response, ClientError> {
        frame::write_blocking(&mut self.stream, req)?;
        frame::read_blocking::<Response>(&mut self.stream)?.ok_or(ClientError::Closed)
    }
}

/// An agent's registered connection to its coordinator.
///
/// Typical loop: `recv()` a [`CoordinatorMessage`]; on `Checkpoint { generation_token }`
/// freeze, write the image with a store `Writer`, `finish()` it, then call
/// [`checkpoint_stored`](AgentConnection::checkpoint_stored) (or
/// [`checkpoint_failed`](AgentConnection::checkpoint_failed)) and resume the programs; on
/// `Kill`/`Quit` stop the programs and exit. Use [`try_clone`](AgentConnection::try_clone)
/// to receive in one thread and answer from another.
pub struct AgentConnection {
    stream: TcpStream,
    job: String,
}

impl AgentConnection {
    /// Connects, authenticates and registers.
    pub fn connect(
        addr: &CoordinatorAddress,
        registration: Registration,
    ) -> Result<AgentConnection, ClientError> {
        let mut stream = connect_authenticated(addr, Role::Agent)?;
        frame::write_blocking(&mut stream, &AgentMessage::Register(registration))?;
        match frame::read_blocking::<CoordinatorMessage>(&mut stream)? {
            Some(CoordinatorMessage::Registered { job }) => Ok(AgentConnection { stream, job }),
            Some(CoordinatorMessage::Error { message }) => Err(ClientError::Rejected(message)),
            Some(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
            None => Err(ClientError::Closed),
        }
    }

    /// The computation's job name as the coordinator confirmed it.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// Waits for the next message; `Ok(None)` when the coordinator closed the connection.
    pub fn recv(&mut self) -> Result<Option<CoordinatorMessage>, ClientError> {
        Ok(frame::read_blocking(&mut self.stream)?)
    }

    /// Sends any agent message.
    pub fn send(&mut self, msg: &AgentMessage) -> Result<(), ClientError> {
        Ok(frame::write_blocking(&mut self.stream, msg)?)
    }

    /// Reports that the image for `token` is durable in the store under `root`.
    pub fn checkpoint_stored(
        &mut self,
        token: u64,
        root: StreamRef,
        stats: AgentStats,
    ) -> Result<(), ClientError> {
        self.send(&AgentMessage::CheckpointStored { token, root, stats })
    }

    /// Reports that the checkpoint `token` failed here.
    pub fn checkpoint_failed(&mut self, token: u64, reason: &str) -> Result<(), ClientError> {
        self.send(&AgentMessage::CheckpointFailed {
            token,
            reason: reason.to_string(),
        })
    }

    /// A second handle on the same connection (one thread receives, another sends).
    pub fn try_clone(&self) -> Result<AgentConnection, ClientError> {
        Ok(AgentConnection {
            stream: self.stream.try_clone().map_err(FrameError::from)?,
            job: self.job.clone(),
        })
    }

    /// Closes the connection (the coordinator sees the agent leave).
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// The connection's socket, so an agent can wait for coordinator messages in its own poll
/// loop (pidfd, signalfd, timerfd, ...) and call [`AgentConnection::recv`] when it is
/// readable. The coordinator writes each message as one whole frame, so `recv` then returns
/// promptly.
impl std::os::fd::AsFd for AgentConnection {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl std::os::fd::AsRawFd for AgentConnection {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.as_raw_fd()
    }
}

/// Finds the coordinator at `host:port`, or starts `cairn coordinator --daemon` there when
/// none answers and the host is this machine (as DMTCP's launch does). Uses the running
/// executable as `cairn`.
pub fn connect_or_spawn(host: &str, port: u16) -> Result<CoordinatorAddress, ClientError> {
    let exe = std::env::current_exe().map_err(|e| ClientError::Spawn(e.to_string()))?;
    connect_or_spawn_with(host, port, &exe)
}

/// [`connect_or_spawn`] with an explicit path to the `cairn` executable.
pub fn connect_or_spawn_with(
    host: &str,
    port: u16,
    cairn_exe: &Path,
) -> Result<CoordinatorAddress, ClientError> {
    match tcp_connect(host, port) {
        // A coordinator that has just started publishes its secret right after binding.
        Ok(_) => return discover_patiently(host, port, Duration::from_secs(2)),
        Err(ClientError::Connect { source, .. })
            if source.kind() == std::io::ErrorKind::ConnectionRefused && is_local(host) => {}
        Err(e) => return Err(e),
    }
    let mut child = Command::new(cairn_exe)
        .args(["coordinator", "--daemon", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| ClientError::Spawn(format!("{}: {e}", cairn_exe.display())))?;
    // The parent returns once the daemon listens; collect what it said on failure.
    let mut said = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            said.push_str(&line);
            said.push(' ');
        }
    }
    let status = child
        .wait()
        .map_err(|e| ClientError::Spawn(e.to_string()))?;
    if !status.success() {
        // Another process may have started one on this port in the meantime.
        if tcp_connect(host, port).is_err() {
            return Err(ClientError::Spawn(format!(
                "cairn coordinator exited with {status}: {}",
                said.trim()
            )));
        }
    }
    let deadline = Instant::now() + SPAWN_TIMEOUT;
    loop {
        match tcp_connect(host, port) {
            Ok(_) => return discover_patiently(host, port, SPAWN_TIMEOUT),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// [`CoordinatorAddress::discover`], retrying while the secret file does not exist yet.
fn discover_patiently(
    host: &str,
    port: u16,
    patience: Duration,
) -> Result<CoordinatorAddress, ClientError> {
    let deadline = Instant::now() + patience;
    loop {
        match CoordinatorAddress::discover(host, port) {
            Err(ClientError::Secret(AuthError::NotFound(_))) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn is_local(host: &str) -> bool {
    if host == "localhost" || host == auth::hostname() {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback() || ip.is_unspecified())
        .unwrap_or(false)
}
