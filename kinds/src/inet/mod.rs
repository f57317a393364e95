//! TCP and UDP sockets (IPv4 and IPv6) between processes of the job, with their addresses,
//! options and data in flight; connections leaving the job follow the job's
//! [`ExternalTcp`] policy. The image type is [`cairn_image::InetImage`]; the method and its
//! limits are in docs/capture-restore.md ("TCP and UDP sockets").

mod addr;
pub mod capture;
pub mod cut;
mod diag;
mod opts;
pub mod remote;
mod repair;
pub mod restore;
mod table;

pub use addr::set_adopt_addresses;
pub use repair::{close_held, release_held};

use serde::{Deserialize, Serialize};

/// What a checkpoint does with a TCP connection whose peer is not a process of the job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExternalTcp {
    /// The checkpoint fails, naming every such connection (the job runs on).
    #[default]
    Refuse,
    /// The connection is restored as reset by its peer: the program's next read gets
    /// ECONNRESET, its next write EPIPE, and it reconnects.
    Close,
    /// As root: the connection is captured with TCP_REPAIR; one captured by the final
    /// checkpoint of a stopped job (which leaves it in repair mode, so the stop sends
    /// nothing to the peer) is restored in place, any other as with [`ExternalTcp::Close`].
    Repair,
}

impl std::str::FromStr for ExternalTcp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "refuse" => Ok(ExternalTcp::Refuse),
            "close" => Ok(ExternalTcp::Close),
            "repair" => Ok(ExternalTcp::Repair),
            other => Err(format!(
                "unknown policy {other:?} for TCP connections leaving the job (refuse, close \
                 or repair)"
            )),
        }
    }
}

impl std::fmt::Display for ExternalTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExternalTcp::Refuse => "refuse",
            ExternalTcp::Close => "close",
            ExternalTcp::Repair => "repair",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ExternalTcp;

    #[test]
    fn policies_by_name() {
        assert_eq!("refuse".parse(), Ok(ExternalTcp::Refuse));
        assert_eq!("close".parse(), Ok(ExternalTcp::Close));
        assert_eq!("repair".parse(), Ok(ExternalTcp::Repair));
        assert!("keep".parse::<ExternalTcp>().is_err());
        assert_eq!(ExternalTcp::Close.to_string(), "close");
    }
}
