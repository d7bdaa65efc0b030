//! The frame decoder (PROTOCOL.md §2.1) fed arbitrary bytes in arbitrary
//! chunks: no panic, no frame over the limit, exact byte accounting, and the
//! frames of an independent whole-stream decoding.
//!
//! Input: byte 0 picks the limit, byte 1 the chunking, the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcmi_proxy::frame::{Check, FrameDecoder, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let [limit, split, stream @ ..] = data else {
        return;
    };
    let max = match limit % 4 {
        0 => (*limit / 4) as usize,  // 0..63: frames end often
        1 => (*limit as usize) * 64, // up to ~16 KiB
        2 => 1 << 20,                // the server's 1 MiB
        _ => usize::MAX,             // no limit at all
    };
    let chunk = (*split as usize % 17) + 1;

    let mut d = FrameDecoder::new(max);
    let mut frames = Vec::new();
    let (mut given, mut returned) = (0usize, 0usize);
    let mut refused = None;
    // the chunk size varies along the stream
    let mut at = 0;
    let mut n = chunk;
    while at < stream.len() {
        let end = (at + n).min(stream.len());
        d.extend(&stream[at..end]);
        given += end - at;
        at = end;
        n = n % 17 + chunk;
        while refused.is_none() {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.len() <= max);
                    returned += HEADER_LEN + f.len();
                    frames.push(f);
                }
                Ok(None) => {
                    assert!(matches!(d.check(), Check::Incomplete { needed } if needed > 0));
                    break;
                }
                Err(len) => {
                    assert!(len > max as u64);
                    assert_eq!(d.check(), Check::TooLarge { len });
                    refused = Some(len);
                }
            }
        }
        assert_eq!(d.buffered(), given - returned);
    }

    // the same stream decoded in one go, by hand
    let mut pos = 0;
    let mut want_refused = None;
    let mut want = Vec::new();
    while let Some(head) = stream.get(pos..pos + 4) {
        let len = u32::from_le_bytes(head.try_into().unwrap()) as u64;
        if len > max as u64 {
            want_refused = Some(len);
            break;
        }
        let Some(p) = stream.get(pos + 4..pos + 4 + len as usize) else {
            break;
        };
        want.push(p);
        pos += 4 + len as usize;
    }
    assert_eq!(refused, want_refused);
    assert_eq!(frames.len(), want.len());
    for (f, w) in frames.iter().zip(want) {
        assert_eq!(&f[..], w);
    }
    assert_eq!(returned, pos);
    assert_eq!(&d.take_rest()[..], &stream[pos..]);
    assert_eq!(d.buffered(), 0);
});
