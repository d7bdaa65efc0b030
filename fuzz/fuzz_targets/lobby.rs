//! The lobby rules (PROTOCOL.md §6–§8) driven by arbitrary operations on six
//! connections: no panic, and the counters stay consistent.
//!
//! Input: a sequence of records `op, arg, text... 0xFF`. `op % 8` picks the
//! operation (register, frame (most), disconnect, wait), `arg` the connection
//! and protocol, the text up to the next 0xFF is the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use vcmi_proxy::legacy::lobby::{Lobby, LobbyConfig, Outbox, ServerCounters};

const IDS: usize = 6;

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, mut rest)) = data.split_first() else {
        return;
    };
    let mut lobby = Lobby::new(LobbyConfig {
        capacity: if cfg & 1 == 0 {
            50
        } else {
            (cfg as usize >> 1) % IDS + 1
        },
        flood_rate: if cfg & 0x80 == 0 { 0 } else { 5 },
        flood_burst: 10,
    });
    let mut out = Outbox::new();
    let mut now = Instant::now();
    while let [op, arg, tail @ ..] = rest {
        let end = tail.iter().position(|b| *b == 0xFF).unwrap_or(tail.len());
        let text = String::from_utf8_lossy(&tail[..end]);
        rest = tail.get(end + 1..).unwrap_or(&[]);
        let id = *arg as usize % IDS;
        out.clear();
        match op % 8 {
            0 => {
                if !lobby.is_registered(id) {
                    lobby.register(id, arg / 8 % 6);
                }
            }
            1 => lobby.disconnect(id, &mut out),
            2 => now += Duration::from_millis(u64::from(*arg) * 20),
            _ => {
                if lobby.is_registered(id) {
                    lobby.handle_frame(id, &text, now, &ServerCounters::ZERO, &mut out);
                }
            }
        }
        for (to, _) in out.deliveries() {
            assert!(
                lobby.is_registered(*to) || out.closes().iter().any(|(c, _)| c == to),
                "message to a non-client"
            );
        }
        for (c, _) in out.closes() {
            assert!(!lobby.is_registered(*c));
        }
        assert!(lobby.users() <= lobby.connections());
        assert!(
            lobby.rooms() <= lobby.users(),
            "room without a logged-in host"
        );
    }
    for id in 0..IDS {
        lobby.disconnect(id, &mut out);
    }
    assert_eq!(
        (lobby.users(), lobby.connections(), lobby.rooms()),
        (0, 0, 0)
    );
});
