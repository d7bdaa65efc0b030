//! A login storm inside the lobby rules alone (no sockets, no event loop):
//! the per-login cost at 1,000, 4,000 and 16,000 logged-in users.
//!
//! Each iteration logs one new protocol-5 user in (header, GREETINGS, VER)
//! and disconnects the oldest one, so the lobby stays at N users while the
//! clock runs. Above `LARGE_LOBBY` a login or a logout only owes USERS to
//! everyone (a flag the event loop turns into one refresh round), so the
//! figure should be flat in N; a per-event walk over the clients would show
//! as a cost growing with N. Run with `cargo bench --bench login_storm`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;
use vcmi_proxy::legacy::lobby::{ClientId, Lobby, LobbyConfig, Outbox, ServerCounters};

const COUNTERS: ServerCounters = ServerCounters::ZERO;

fn log_in(lobby: &mut Lobby, id: ClientId, out: &mut Outbox) {
    lobby.register(id, 5u8);
    lobby.handle_frame(
        id,
        &format!("\u{5}\u{4}utf8<GREETINGS>user{id:06}<VER>VCMI 1.4.5"),
        Instant::now(),
        &COUNTERS,
        out,
    );
}

fn login_storm(c: &mut Criterion) {
    let mut g = c.benchmark_group("login_storm");
    for users in [1_000usize, 4_000, 16_000] {
        let mut lobby = Lobby::new(LobbyConfig {
            capacity: 1_000_000,
            flood_rate: 0,
            ..LobbyConfig::default()
        });
        let mut out = Outbox::new();
        let mut present = VecDeque::with_capacity(users + 1);
        for id in 0..users {
            log_in(&mut lobby, id, &mut out);
            out.clear();
            present.push_back(id);
        }
        assert_eq!(lobby.users(), users);
        let mut next = users;
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("login_and_logout_at_{users}"), |b| {
            b.iter(|| {
                log_in(&mut lobby, next, &mut out);
                present.push_back(next);
                next += 1;
                if let Some(old) = present.pop_front() {
                    lobby.disconnect(old, &mut out);
                }
                black_box(out.owed().len());
                out.clear();
            })
        });
        assert_eq!(lobby.users(), users);
    }
    g.finish();
}

criterion_group!(benches, login_storm);
criterion_main!(benches);
