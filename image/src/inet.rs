//! TCP and UDP sockets of the job (IPv4 and IPv6): addresses, connection state, socket
//! options and the data in flight, so that a restore recreates them exactly over their
//! original addresses (the job shares the host's network namespace).

use serde::{Deserialize, Serialize};

/// Every TCP and UDP socket open in a process of the job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InetImage {
    /// The sockets, in the order their first descriptor was found.
    #[serde(default)]
    pub sockets: Vec<InetSocket>,
}

/// The transport protocol of an [`InetSocket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// SOCK_STREAM / IPPROTO_TCP.
    Tcp,
    /// SOCK_DGRAM / IPPROTO_UDP.
    Udp,
}

/// Where a socket stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InetState {
    /// Not connected and not listening (bound if `local` has a port).
    Unconnected,
    /// A listening TCP socket.
    Listening {
        /// listen(2) backlog.
        backlog: u32,
    },
    /// A TCP connection whose other end is socket `peer` of the job.
    Connected {
        /// [`InetSocket::id`] of the other end.
        peer: u64,
    },
    /// A TCP connection not yet accepted: its other end waits in the accept queue of the
    /// job's listening socket `listener`.
    Pending {
        /// [`InetSocket::id`] of the listener.
        listener: u64,
    },
    /// A TCP connection whose other end was closed (it sent everything it will send): the
    /// program reads the unread data, then end of file.
    PeerClosed,
    /// A TCP connection that is over in both directions (the program may still read its
    /// unread data, then end of file; writes fail with EPIPE).
    Finished,
    /// A TCP connection to a peer outside the job, restored as reset by the peer
    /// (`--external-tcp close`): the next read gets ECONNRESET, the next write EPIPE.
    Reset,
    /// A UDP socket connected to `peer` (its default destination).
    UdpConnected,
    /// A TCP connection whose other end belongs to another agent of the same coordinated
    /// job (another node): captured in one global cut, made again between the restored
    /// agents (docs/coordinator.md, "Connections between agents").
    Remote,
    /// An established TCP connection to a peer outside the job, captured with the kernel's
    /// TCP repair mode (`--external-tcp repair`, as root): restored in place when
    /// [`TcpRepair::held`], as [`InetState::Reset`] otherwise.
    Repaired(Box<TcpRepair>),
}

/// The kernel state of a TCP connection, read in TCP_REPAIR mode, that makes it again in
/// place without a handshake (docs/capture-restore.md, "TCP and UDP sockets"). The unread
/// data of the receive queue is [`InetSocket::data`] as for any connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpRepair {
    /// The connection was left in repair mode from the checkpoint until the job was
    /// stopped (the final checkpoint of `cairn run`), so its peer saw nothing of the stop
    /// and the state is still the peer's: only then is it restored in place.
    pub held: bool,
    /// Sequence number of the first byte of the send queue (the oldest unacknowledged).
    pub snd_seq: u32,
    /// Sequence number of the first unread byte of the receive queue.
    pub rcv_seq: u32,
    /// The whole send queue: sent and not acknowledged, then not sent yet.
    pub send_queue: Vec<u8>,
    /// How many bytes at the end of `send_queue` were never sent.
    pub unsent: u32,
    /// TCP_MAXSEG.
    pub mss: u32,
    /// Window scale options (send, receive), when negotiated.
    pub wscale: Option<(u8, u8)>,
    /// SACK permitted.
    pub sack: bool,
    /// Timestamps on, with the connection's current timestamp value (TCP_TIMESTAMP).
    pub timestamp: Option<u32>,
    /// TCP_REPAIR_WINDOW: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup.
    pub window: [u32; 5],
}

/// One integer socket option, as getsockopt(2) reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntOption {
    /// Name, as in the kernel headers (`TCP_NODELAY`, `SO_KEEPALIVE`, ...).
    pub name: String,
    /// The value.
    pub value: i32,
}

/// One queued datagram of a UDP socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Datagram {
    /// Its length in bytes.
    pub len: u64,
    /// The address it came from (`ip:port`, IPv6 in brackets).
    pub from: String,
}

/// A TCP or UDP socket of the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InetSocket {
    /// Inode number at the checkpoint ([`crate::FdKind::Inet::id`]).
    pub id: u64,
    /// AF_INET or AF_INET6.
    pub family: i32,
    /// TCP or UDP.
    pub transport: Transport,
    /// O_NONBLOCK of its open file description.
    pub nonblock: bool,
    /// getsockname (`ip:port`), `None` when the socket is not bound.
    pub local: Option<String>,
    /// getpeername (`ip:port`) of a connected socket.
    pub peer: Option<String>,
    /// Connection state.
    pub state: InetState,
    /// The program shut down sending (SHUT_WR: its peer reads end of file after the data).
    pub shut_wr: bool,
    /// The program shut down receiving (SHUT_RD).
    pub shut_rd: bool,
    /// Integer options (SOL_SOCKET, IPPROTO_TCP, IPPROTO_IP, IPPROTO_IPV6).
    pub options: Vec<IntOption>,
    /// SO_LINGER: `Some(seconds)` when on.
    pub linger: Option<i32>,
    /// SO_RCVTIMEO and SO_SNDTIMEO in microseconds.
    pub timeouts: (i64, i64),
    /// Unread bytes of a TCP socket (what its peer sent, in order, not yet read), or the
    /// queued datagrams' bytes concatenated; the stream is [`InetSocket::data`].
    pub unread: u64,
    /// The queued datagrams of a UDP socket, oldest first.
    pub datagrams: Vec<Datagram>,
    /// `(pid, fd)` under which the unread bytes went to [`crate::MemorySink::put_file`].
    pub data: Option<(i32, i32)>,
}
