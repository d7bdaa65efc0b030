//! What a connection's first frames go through: the lobby header parser
//! (PROTOCOL.md §4) and the pipe handshake (§10.3). Input: frames separated by
//! the byte 0xFF (which never occurs in UTF-8 text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcmi_proxy::legacy::handshake::{
    is_pipe_frame, parse_lobby_header, PipeHandshake, PipeStep, MAX_PIPE_FRAMES, MAX_PIPE_HANDSHAKE,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = parse_lobby_header(data) {
        assert!((1..=5).contains(&h.protocol));
        assert!(data.len() >= 2 + data[1] as usize);
    }
    let mut h = PipeHandshake::default();
    let mut replay_len = 0;
    for (i, frame) in data.split(|b| *b == 0xFF).enumerate() {
        let _ = is_pipe_frame(frame);
        match h.push_frame(frame) {
            PipeStep::Reject(_) => return,
            PipeStep::NeedEndianByte => {
                assert!(h.uuid.is_some());
                h.push_endian_byte(1);
                let _ = h.role();
                return;
            }
            PipeStep::More => {
                replay_len += 4 + frame.len();
                assert!(i < MAX_PIPE_FRAMES);
                assert_eq!(h.replay.len(), replay_len);
                assert!(h.replay.len() <= MAX_PIPE_HANDSHAKE);
            }
        }
    }
});
