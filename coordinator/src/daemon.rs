//! The coordinator daemon: accepts authenticated connections, keeps the registry of agents,
//! runs checkpoints one at a time and commits a generation only when every agent stored its
//! image.
//!
//! All state lives in one task (the *core*) that handles events in order, so checkpoints can
//! never interleave; connection tasks only translate frames into events. Agents can vanish at
//! any moment: a vanished agent is an event like any other.

mod connection;
mod core;
mod log;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::auth::Secret;
use crate::protocol::{Request, Response};

pub use self::log::EventLog;

/// How long a peer may take to complete the handshake (and, for agents, to register).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the coordinator waits for connections to flush their last frames when it stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The listening socket could not be created.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Accepting connections failed.
    #[error("listening socket failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Settings of one coordinator.
#[derive(Debug)]
pub struct Config {
    /// Address to listen on (loopback by default).
    pub bind: IpAddr,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// The secret every peer must prove it holds.
    pub secret: Secret,
    /// Store generations are committed into; when `None`, the first agent's store is used.
    pub store: Option<PathBuf>,
    /// Seconds between periodic checkpoints; 0 disables them.
    pub interval_secs: u64,
    /// Abandon a checkpoint whose agents have not all answered after this many seconds;
    /// 0 waits forever.
    pub checkpoint_timeout_secs: u64,
    /// Stop when the last agent disconnects (after at least one registered).
    pub exit_on_last: bool,
    /// Where the structured event log goes.
    pub log: EventLog,
}

/// A coordinator bound to its port, ready to [`run`](Daemon::run).
pub struct Daemon {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: Config,
    events_tx: mpsc::UnboundedSender<core::Event>,
    events_rx: mpsc::UnboundedReceiver<core::Event>,
}

/// A handle to send requests to a running coordinator from the same process (its stdin).
#[derive(Clone)]
pub struct Control {
    events: mpsc::UnboundedSender<core::Event>,
}

impl Control {
    /// Sends a request and waits for the answer (async).
    pub async fn request(&self, req: Request) -> Response {
        match self.submit(req) {
            Ok(rx) => rx.await.unwrap_or_else(|_| stopped()),
            Err(resp) => resp,
        }
    }

    /// Sends a request and waits for the answer from a thread outside the runtime.
    pub fn blocking_request(&self, req: Request) -> Response {
        match self.submit(req) {
            Ok(rx) => rx.blocking_recv().unwrap_or_else(|_| stopped()),
            Err(resp) => resp,
        }
    }

    /// Stops the coordinator without asking the agents to stop their programs (they see the
    /// connection close). A checkpoint in flight is abandoned unless its commit started.
    pub fn stop(&self, reason: &str) {
        let _ = self.events.send(core::Event::Stop {
            reason: reason.to_string(),
        });
    }

    fn submit(&self, req: Request) -> Result<oneshot::Receiver<Response>, Response> {
        let (reply, rx) = oneshot::channel();
        self.events
            .send(core::Event::Request { req, reply })
            .map_err(|_| stopped())?;
        Ok(rx)
    }
}

fn stopped() -> Response {
    Response::Error {
        message: "the coordinator is shutting down".to_string(),
    }
}

impl Daemon {
    /// Binds the listening socket.
    pub async fn bind(config: Config) -> Result<Daemon, DaemonError> {
        let addr = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Bind { addr, source })?;
        let local_addr = listener.local_addr()?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Ok(Daemon {
            listener,
            local_addr,
            config,
            events_tx,
            events_rx,
        })
    }

    /// The address actually listened on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle for in-process requests.
    pub fn control(&self) -> Control {
        Control {
            events: self.events_tx.clone(),
        }
    }

    /// Serves until a quit request, or until the last agent leaves with `exit_on_last`.
    pub async fn run(self) -> Result<(), DaemonError> {
        let Daemon {
            listener,
            local_addr,
            config,
            events_tx,
            events_rx,
        } = self;
        let secret = config.secret.clone();
        config.log.event(
            "listening",
            serde_json::json!({ "address": local_addr.to_string(), "pid": std::process::id() }),
        );
        let core = core::Core::new(config, local_addr.port(), events_tx.clone());
        let mut core_task = tokio::spawn(core.run(events_rx));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        let result = loop {
            tokio::select! {
                _ = &mut core_task => break Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(connection::serve(
                            stream,
                            peer,
                            secret.clone(),
                            events_tx.clone(),
                            shutdown_rx.clone(),
                        ));
                    }
                    // Per-connection failures (ECONNABORTED, EMFILE, ...) must not stop the
                    // service; pause briefly so a persistent one does not spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        };
        drop(listener);
        let _ = shutdown_tx.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        result
    }
}

/// Runs a coordinator on its own runtime in a background thread (tests and embedding).
pub struct Background {
    addr: SocketAddr,
    control: Control,
    thread: Option<std::thread::JoinHandle<Result<(), DaemonError>>>,
}

impl Background {
    /// Binds and starts serving; returns once the port is open.
    pub fn start(config: Config) -> Result<Background, DaemonError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let daemon = runtime.block_on(Daemon::bind(config))?;
        let addr = daemon.local_addr();
        let control = daemon.control();
        let thread = std::thread::spawn(move || runtime.block_on(daemon.run()));
        Ok(Background {
            addr,
            control,
            thread: Some(thread),
        })
    }

    /// The address the coordinator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// In-process request handle.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// True once the coordinator stopped serving.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Asks the coordinator to quit and waits for it.
    pub fn quit(mut self) -> Result<(), DaemonError> {
        let _ = self.control.blocking_request(Request::Quit);
        self.join()
    }

    fn join(&mut self) -> Result<(), DaemonError> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(DaemonError::Io(std::io::Error::other(
                "coordinator thread panicked",
            ))),
            None => Ok(()),
        }
    }

    /// Waits until the coordinator stops by itself.
    pub fn wait(mut self) -> Result<(), DaemonError> {
        self.join()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.control.events.send(core::Event::Request {
                req: Request::Quit,
                reply: oneshot::channel().0,
            });
            let _ = self.join();
        }
    }
}
