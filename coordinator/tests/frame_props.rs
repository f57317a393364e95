//! Property tests of the frame decoder: no input makes it panic, misread or over-read.

use cairn_coordinator::protocol::frame::{
    self, decode, encode, encode_raw, Decoded, FrameError, HEADER_LEN, MAX_PAYLOAD, VERSION,
};
use cairn_coordinator::protocol::{AgentMessage, Request, Response};
use proptest::prelude::*;

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Status),
        Just(Request::List),
        Just(Request::Kill),
        Just(Request::Quit),
        any::<bool>().prop_map(|wait| Request::Checkpoint { wait }),
        any::<u64>().prop_map(|secs| Request::SetInterval { secs }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_or_overread(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode::<Request>(&bytes);
        let _ = decode::<AgentMessage>(&bytes);
        let _ = decode::<Response>(&bytes);
        if let Ok(Decoded::Frame(_, used)) = decode::<serde_json::Value>(&bytes) {
            prop_assert!(used <= bytes.len());
        }
        let mut cursor = std::io::Cursor::new(&bytes);
        let _ = frame::read_blocking::<Request>(&mut cursor);
    }

    #[test]
    fn arbitrary_payloads_in_valid_frames_are_errors_not_panics(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        let f = encode_raw(VERSION, &payload).unwrap();
        match decode::<Request>(&f) {
            Ok(Decoded::Frame(_, used)) => prop_assert_eq!(used, f.len()),
            Ok(Decoded::NeedMore(_)) => prop_assert!(false, "complete frame reported incomplete"),
            Err(e) => prop_assert!(e.is_recoverable(), "{}", e),
        }
    }

    #[test]
    fn encode_then_decode_round_trips(reqs in proptest::collection::vec(request(), 1..8)) {
        let mut stream = Vec::new();
        for r in &reqs {
            stream.extend(encode(r).unwrap());
        }
        let mut rest = &stream[..];
        for r in &reqs {
            match decode::<Request>(rest).unwrap() {
                Decoded::Frame(got, used) => {
                    prop_assert_eq!(&got, r);
                    rest = &rest[used..];
                }
                Decoded::NeedMore(_) => prop_assert!(false, "frame reported incomplete"),
            }
        }
        prop_assert!(rest.is_empty());
        let mut cursor = std::io::Cursor::new(&stream);
        for r in &reqs {
            prop_assert_eq!(&frame::read_blocking::<Request>(&mut cursor).unwrap().unwrap(), r);
        }
        prop_assert!(frame::read_blocking::<Request>(&mut cursor).unwrap().is_none());
    }

    #[test]
    fn every_strict_prefix_is_incomplete_and_truncation_is_reported(r in request(), cut in any::<prop::sample::Index>()) {
        let f = encode(&r).unwrap();
        let cut = cut.index(f.len());
        let prefix = &f[..cut];
        match decode::<Request>(prefix).unwrap() {
            Decoded::NeedMore(n) => prop_assert!(n > cut && n <= f.len()),
            Decoded::Frame(..) => prop_assert!(false, "prefix decoded"),
        }
        let mut cursor = std::io::Cursor::new(prefix);
        match frame::read_blocking::<Request>(&mut cursor) {
            Ok(None) => prop_assert_eq!(cut, 0),
            Err(FrameError::Truncated) => prop_assert!(cut > 0),
            other => prop_assert!(false, "unexpected {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn bad_headers_are_rejected_before_reading_the_payload(
        magic in any::<[u8; 2]>(), version in any::<u16>(), len in any::<u32>()
    ) {
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.extend_from_slice(&magic);
        h.extend_from_slice(&version.to_be_bytes());
        h.extend_from_slice(&len.to_be_bytes());
        let result = decode::<Request>(&h);
        let expected = if magic != *b"CR" {
            matches!(result, Err(FrameError::BadMagic))
        } else if version != VERSION {
            matches!(result, Err(FrameError::Version { got }) if got == version)
        } else if len as usize > MAX_PAYLOAD {
            matches!(result, Err(FrameError::TooLarge { .. }))
        } else if len > 0 {
            matches!(result, Ok(Decoded::NeedMore(n)) if n == HEADER_LEN + len as usize)
        } else {
            // An empty payload is complete and is not a valid message.
            matches!(result, Err(FrameError::Malformed(_)))
        };
        prop_assert!(expected, "unexpected result {:?}", result.map(|_| ()));
    }
}

#[test]
fn oversized_messages_are_refused_when_encoding() {
    let big = vec![b'x'; MAX_PAYLOAD + 1];
    assert!(matches!(
        encode_raw(VERSION, &big),
        Err(FrameError::TooLarge { .. })
    ));
}
