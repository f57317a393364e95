//! One accepted connection: handshake, then either a command session or an agent session.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::core::{ConnId, Event};
use super::HANDSHAKE_TIMEOUT;
use crate::auth::{Nonce, Proof, Secret};
use crate::protocol::frame::{self, FrameError};
use crate::protocol::{
    AgentMessage, ClientHandshake, CoordinatorMessage, Request, Response, Role, ServerHandshake,
};

/// Serves one connection until it closes or the coordinator stops.
pub(super) async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    secret: Secret,
    events: mpsc::UnboundedSender<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let role = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream, &secret)).await
    {
        Ok(Ok(role)) => role,
        Ok(Err(reason)) => {
            let _ = events.send(Event::Refused { peer, reason });
            return;
        }
        Err(_) => {
            reject(&mut stream, "handshake timed out").await;
            let _ = events.send(Event::Refused {
                peer,
                reason: "handshake timed out".into(),
            });
            return;
        }
    };
    match role {
        Role::Command => command_session(stream, events, &mut shutdown).await,
        Role::Agent => {
            enable_keepalive(&stream);
            agent_session(stream, peer, events, &mut shutdown).await
        }
    }
}

/// TCP keepalive on agent connections, so an agent whose host vanished (no FIN, no RST) is
/// noticed within about a minute (30 s idle + 3 probes 10 s apart) and its checkpoint fails
/// instead of waiting forever. Best effort: failures leave the defaults.
fn enable_keepalive(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let options = [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 30),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
    ];
    for (level, name, value) in options {
        let value: libc::c_int = value;
        // SAFETY: `fd` is a valid socket owned by `stream` for the duration of the call, and
        // the option value points to a live c_int whose exact size is passed.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                std::ptr::from_ref(&value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Challenge-response; the refusal's reason when the peer failed (it was told why).
async fn handshake(stream: &mut TcpStream, secret: &Secret) -> Result<Role, String> {
    let server_nonce = Nonce::generate();
    let challenge = ServerHandshake::Challenge {
        nonce: server_nonce.to_hex(),
    };
    frame::write_async(stream, &challenge)
        .await
        .map_err(|e| format!("sending the challenge: {e}"))?;
    let answer = match frame::read_async::<ClientHandshake>(stream).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err("closed before authenticating".into()),
        Err(e) => {
            let reason = format!("authentication required: {e}");
            reject(stream, &reason).await;
            return Err(reason);
        }
    };
    let ClientHandshake::Auth { role, nonce, proof } = answer;
    let (Some(client_nonce), Some(proof)) = (Nonce::from_hex(&nonce), Proof::from_hex(&proof))
    else {
        reject(stream, "authentication failed").await;
        return Err("authentication failed (malformed nonce or proof)".into());
    };
    if client_nonce == server_nonce || proof != secret.client_proof(&server_nonce, &client_nonce) {
        reject(stream, "authentication failed").await;
        return Err("authentication failed (wrong secret)".into());
    }
    let accepted = ServerHandshake::Accepted {
        proof: secret.server_proof(&server_nonce, &client_nonce).to_hex(),
    };
    frame::write_async(stream, &accepted)
        .await
        .map_err(|e| format!("sending the acceptance: {e}"))?;
    Ok(role)
}

async fn reject(stream: &mut TcpStream, reason: &str) {
    let msg = ServerHandshake::Rejected {
        reason: reason.to_string(),
    };
    let _ = frame::write_async(stream, &msg).await;
}

/// Reads the next frame, or `None` when the session must end (closed, fatal error, shutdown).
/// Malformed but complete frames are answered through `on_malformed` and skipped.
async fn next_frame<T, R>(
    reader: &mut R,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Result<T, FrameError>>
where
    T: serde::de::DeserializeOwned,
    R: AsyncRead + Unpin,
{
    if *shutdown.borrow() {
        return None;
    }
    tokio::select! {
        r = frame::read_async::<T>(reader) => match r {
            Ok(Some(msg)) => Some(Ok(msg)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        },
        _ = shutdown.changed() => None,
    }
}

async fn command_session(
    mut stream: TcpStream,
    events: mpsc::UnboundedSender<Event>,
    shutdown: &mut watch::Receiver<bool>,
) {
    while let Some(next) = next_frame::<Request, _>(&mut stream, shutdown).await {
        let response = match next {
            Ok(req) => {
                let (reply, rx) = oneshot::channel();
                if events.send(Event::Request { req, reply }).is_err() {
                    break;
                }
                rx.await.unwrap_or_else(|_| Response::Error {
                    message: "the coordinator is shutting down".to_string(),
                })
            }
            Err(e) => {
                let fatal = !e.is_recoverable();
                let resp = Response::Error {
                    message: e.to_string(),
                };
                if fatal {
                    let _ = frame::write_async(&mut stream, &resp).await;
                    return;
                }
                resp
            }
        };
        if frame::write_async(&mut stream, &response).await.is_err() {
            return;
        }
    }
}

async fn agent_session(
    stream: TcpStream,
    peer: SocketAddr,
    events: mpsc::UnboundedSender<Event>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let (mut reader, mut writer) = stream.into_split();
    // Registration comes first, within the handshake time limit.
    let registration = loop {
        let first = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            next_frame::<AgentMessage, _>(&mut reader, shutdown),
        )
        .await;
        match first {
            Ok(Some(Ok(AgentMessage::Register(reg)))) => break reg,
            Ok(Some(Ok(_))) => {
                send_error(&mut writer, "register first").await;
                return;
            }
            Ok(Some(Err(e))) if e.is_recoverable() => send_error(&mut writer, &e.to_string()).await,
            Ok(Some(Err(e))) => {
                send_error(&mut writer, &e.to_string()).await;
                return;
            }
            Ok(None) => return,
            Err(_) => {
                send_error(&mut writer, "registration timed out").await;
                return;
            }
        }
    };

    let conn = ConnId::next();
    let (outbox, mut outbox_rx) = mpsc::unbounded_channel::<CoordinatorMessage>();
    let (reply, accepted) = oneshot::channel();
    let register = Event::Register {
        conn,
        peer,
        registration,
        outbox,
        reply,
    };
    if events.send(register).is_err() {
        return;
    }
    match accepted.await {
        Ok(Ok(())) => {}
        Ok(Err(message)) => {
            send_error(&mut writer, &message).await;
            return;
        }
        Err(_) => return,
    }

    // Writer: everything the core queues for this agent, in order, until the core drops
    // the queue (agent removed or coordinator stopping).
    let writer_task = tokio::spawn(async move {
        while let Some(msg) = outbox_rx.recv().await {
            if frame::write_async(&mut writer, &msg).await.is_err() {
                break;
            }
        }
    });

    while let Some(next) = next_frame::<AgentMessage, _>(&mut reader, shutdown).await {
        match next {
            Ok(msg) => {
                if events.send(Event::FromAgent { conn, msg }).is_err() {
                    break;
                }
            }
            Err(e) => {
                // Answered in every case; after an unrecoverable one the stream is out of
                // sync, so the agent is dropped (its checkpoint, if any, fails).
                let fatal = !e.is_recoverable();
                let _ = events.send(Event::AgentProtocolError {
                    conn,
                    message: e.to_string(),
                });
                if fatal {
                    break;
                }
            }
        }
    }
    let _ = events.send(Event::AgentGone { conn });
    let _ = writer_task.await;
}

async fn send_error<W: AsyncWrite + Unpin>(writer: &mut W, message: &str) {
    let msg = CoordinatorMessage::Error {
        message: message.to_string(),
    };
    let _ = frame::write_async(writer, &msg).await;
}
