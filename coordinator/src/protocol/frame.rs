//! Length-prefixed frames: the byte layer of the wire protocol.
//!
//! A frame is an 8-byte header followed by a JSON payload:
//!
//! ```text
//! offset 0  2 bytes  magic "CR"
//! offset 2  2 bytes  protocol version, big-endian
//! offset 4  4 bytes  payload length, big-endian, at most MAX_PAYLOAD
//! offset 8  payload  one serde_json message
//! ```
//!
//! The decoder is a pure function over a byte slice so it can be property-tested; the
//! blocking and async readers below only move bytes and call it.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The protocol version spoken by this build. A peer with another version gets an error.
pub const VERSION: u16 = 2;
/// The two magic bytes that open every frame.
pub const MAGIC: [u8; 2] = *b"CR";
/// Size of the frame header in bytes.
pub const HEADER_LEN: usize = 8;
/// Largest payload accepted (1 MiB). Messages carry references and statistics, never data.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Why a frame could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The header does not start with the magic bytes: the peer does not speak this protocol.
    #[error("not a cairn protocol frame (bad magic)")]
    BadMagic,
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {got} (this coordinator speaks {VERSION})")]
    Version {
        /// The version found in the header.
        got: u16,
    },
    /// The announced payload is larger than [`MAX_PAYLOAD`].
    #[error("frame of {len} bytes exceeds the limit of {MAX_PAYLOAD} bytes")]
    TooLarge {
        /// The announced payload length.
        len: usize,
    },
    /// The payload is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// Reading or writing the connection failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// True when the stream is still in sync after this error (the bad frame was consumed
    /// whole), so the connection may continue.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, FrameError::Malformed(_))
    }
}

/// Result of looking at a buffer that may hold a frame.
#[derive(Debug)]
pub enum Decoded<T> {
    /// More bytes are needed; the value is the total the frame needs, when known.
    NeedMore(usize),
    /// A whole frame: the message and how many bytes of the buffer it used.
    Frame(T, usize),
}

/// Checks a frame header and returns the payload length it announces.
pub fn parse_header(header: &[u8; HEADER_LEN]) -> Result<usize, FrameError> {
    if header[0..2] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let version = u16::from_be_bytes([header[2], header[3]]);
    if version != VERSION {
        return Err(FrameError::Version { got: version });
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge { len });
    }
    Ok(len)
}

/// Parses a payload into a message.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(payload).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Decodes the first frame of `buf`, if it is complete.
///
/// A malformed payload is reported only once the whole frame is present, so a caller can
/// skip exactly that frame ([`frame_len`]) and stay in sync.
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<Decoded<T>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(Decoded::NeedMore(HEADER_LEN));
    };
    let total = HEADER_LEN + parse_header(header)?;
    let Some(frame) = buf.get(HEADER_LEN..total) else {
        return Ok(Decoded::NeedMore(total));
    };
    Ok(Decoded::Frame(decode_payload(frame)?, total))
}

/// Length of the complete frame at the start of `buf`, header included, if the header is valid.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let header = buf.first_chunk::<HEADER_LEN>()?;
    parse_header(header).ok().map(|n| n + HEADER_LEN)
}

/// Encodes a message as one frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let payload = serde_json::to_vec(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    encode_raw(VERSION, &payload)
}

/// Builds a frame around arbitrary payload bytes with the given version (tests use this to
/// send wrong versions and garbage).
pub fn encode_raw(version: u16, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::TooLarge { len: payload.len() });
    }
    let len =
        u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge { len: payload.len() })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Reads one frame from a blocking reader. `Ok(None)` means a clean end of stream before
/// any byte of a new frame.
pub fn read_blocking<T: DeserializeOwned>(
    r: &mut impl std::io::Read,
) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    if !read_full_blocking(r, &mut header)? {
        return Ok(None);
    }
    let len = parse_header(&header)?;
    let mut payload = vec![0u8; len];
    if !read_full_blocking(r, &mut payload)? && len > 0 {
        return Err(FrameError::Truncated);
    }
    decode_payload(&payload).map(Some)
}

/// Writes one frame to a blocking writer and flushes it.
pub fn write_blocking<T: Serialize>(
    w: &mut impl std::io::Write,
    msg: &T,
) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Fills `buf`; false on end of stream before the first byte, `Truncated` after it.
fn read_full_blocking(r: &mut impl std::io::Read, buf: &mut [u8]) -> Result<bool, FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Reads one frame from an async reader. `Ok(None)` means a clean end of stream.
pub async fn read_async<T: DeserializeOwned>(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<Option<T>, FrameError> {
    use tokio::io::AsyncReadExt;
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match r.read(&mut header[filled..]).await? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(FrameError::Truncated),
            n => filled += n,
        }
    }
    let len = parse_header(&header)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    })?;
    decode_payload(&payload).map(Some)
}

/// Writes one frame to an async writer and flushes it.
pub async fn write_async<T: Serialize>(
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
    msg: &T,
) -> Result<(), FrameError> {
    use tokio::io::AsyncWriteExt;
    w.write_all(&encode(msg)?).await?;
    w.flush().await?;
    Ok(())
}
