//! `json-relay` (game frames both ways through the JSON lobby's proxy mode, every byte
//! verified) and `json-pingpong` (one small frame round trip at a time).
//!
//! Setup is in `json_setup`. Streaming mirrors the legacy `relay` mode: plain blocking sockets,
//! one writer and one reader thread per direction, a barrier so all streams start together.
//! Unlike the legacy pipe, the relay works per frame (§1.10), so the reader also checks that
//! every frame arrives with exactly the size it was sent with.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use crate::errors::io_error_text;
use crate::gen::DataGen;
use crate::json::Obj;
use crate::json_proto::{self as jp, FrameScanner, Scan};
use crate::json_setup::{self, Game, LobbyKeeper};
use crate::relay::{is_timeout, record_end, set_stall, spawn, DIR_NAMES};
use crate::stats::{self, mib_per_s};
use crate::{set_phase, Ctx, Report};

/// Where the game connections go: through a JSON lobby, or a direct loopback baseline.
#[derive(Clone, Copy, Debug)]
pub enum JsonTarget {
    Proxy(std::net::SocketAddr),
    Direct,
}

impl JsonTarget {
    fn addr(self) -> Option<std::net::SocketAddr> {
        match self {
            JsonTarget::Proxy(a) => Some(a),
            JsonTarget::Direct => None,
        }
    }

    fn fields(self, o: &mut Obj) {
        match self {
            JsonTarget::Proxy(a) => o.str("target", "proxy").str("proxy", &a.to_string()),
            JsonTarget::Direct => o.str("target", "direct"),
        };
    }
}

pub struct JsonRelayOpts {
    pub games: usize,
    pub bytes: u64,
    pub frame_size: usize,
    pub seed: u64,
    pub parallel: usize,
    pub stall: Duration,
    pub channel: String,
}

pub struct JsonPingOpts {
    pub count: usize,
    pub size: usize,
    pub warmup: usize,
    pub seed: u64,
    pub stall: Duration,
    pub channel: String,
}

// Directions as in `relay`: 0 is match server → guest, 1 guest → match server.

/// Sends `total` payload bytes as frames of `frame_size`, with a heartbeat between frames every
/// 10 s like a real peer (the relay must consume it, not forward it).
fn writer(
    mut s: TcpStream,
    mut g: DataGen,
    total: u64,
    frame_size: usize,
    go: Arc<Barrier>,
) -> Result<(), String> {
    let mut buf = vec![0u8; 4 + frame_size];
    go.wait();
    let mut next_beat = Instant::now() + jp::HEARTBEAT_EVERY;
    let mut sent = 0u64;
    while sent < total {
        if Instant::now() >= next_beat {
            next_beat += jp::HEARTBEAT_EVERY;
            s.write_all(&jp::HEARTBEAT)
                .map_err(|e| format!("heartbeat: {}", io_error_text(&e)))?;
        }
        let n = jp::frame_len(total, frame_size, sent);
        buf[..4].copy_from_slice(&(n as u32).to_le_bytes());
        g.fill(&mut buf[4..4 + n]);
        s.write_all(&buf[..4 + n]).map_err(|e| {
            if is_timeout(&e) {
                format!("stalled: could not write for --stall seconds after {sent} bytes")
            } else {
                format!("write after {sent} bytes: {}", io_error_text(&e))
            }
        })?;
        sent += n as u64;
    }
    Ok(())
}

/// Verifies one direction's frames: sizes in order, payload bytes against the generator.
/// Pure: fed by `reader`, tested without sockets.
pub struct StreamCheck {
    gen: DataGen,
    scratch: Vec<u8>,
    scanner: FrameScanner,
    total: u64,
    frame_size: usize,
    /// Payload bytes verified so far.
    pub got: u64,
    /// Payload bytes announced by frame headers so far.
    announced: u64,
    pub frames: u64,
    pub heartbeats: u64,
}

impl StreamCheck {
    pub fn new(gen: DataGen, total: u64, frame_size: usize) -> Self {
        StreamCheck {
            gen,
            scratch: Vec::new(),
            scanner: FrameScanner::default(),
            total,
            frame_size,
            got: 0,
            announced: 0,
            frames: 0,
            heartbeats: 0,
        }
    }

    pub fn complete(&self) -> bool {
        self.got == self.total && self.scanner.at_boundary()
    }

    pub fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        let StreamCheck {
            gen,
            scratch,
            scanner,
            total,
            frame_size,
            got,
            announced,
            frames,
            heartbeats,
        } = self;
        scanner.feed(data, |ev| {
            match ev {
                Scan::Heartbeat => *heartbeats += 1,
                Scan::Start(n) => {
                    if *announced >= *total {
                        return Err(format!(
                            "an extra frame of {n} bytes after all {total} bytes"
                        ));
                    }
                    let want = jp::frame_len(*total, *frame_size, *announced);
                    if n != want {
                        return Err(format!(
                            "frame #{frames} has {n} bytes, {want} were sent (frame boundaries \
                             not kept)"
                        ));
                    }
                    *announced += n as u64;
                }
                Scan::Bytes(b) => {
                    if let Some(i) = gen.verify(b, scratch) {
                        return Err(format!("data mismatch at byte offset {}", *got + i as u64));
                    }
                    *got += b.len() as u64;
                }
                Scan::End => *frames += 1,
            }
            Ok(())
        })
    }
}

struct ReadResult {
    got: u64,
    frames: u64,
    heartbeats: u64,
    end: Result<Instant, String>,
}

fn reader(mut s: TcpStream, mut check: StreamCheck, go: Arc<Barrier>) -> ReadResult {
    let mut buf = vec![0u8; 256 << 10];
    go.wait();
    let end = loop {
        if check.complete() {
            break Ok(Instant::now());
        }
        match s.read(&mut buf) {
            Ok(0) => {
                break Err(format!(
                    "connection closed after {} of {} bytes",
                    check.got, check.total
                ))
            }
            Ok(n) => {
                if let Err(e) = check.feed(&buf[..n]) {
                    break Err(e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                break Err(format!(
                    "stalled: no data for --stall seconds after {} of {} bytes",
                    check.got, check.total
                ))
            }
            Err(e) => {
                break Err(format!(
                    "read after {} of {} bytes: {}",
                    check.got,
                    check.total,
                    io_error_text(&e)
                ))
            }
        }
    };
    ReadResult {
        got: check.got,
        frames: check.frames,
        heartbeats: check.heartbeats,
        end,
    }
}

fn setup(
    target: JsonTarget,
    games: usize,
    parallel: usize,
    channel: &str,
    ctx: &Ctx,
    o: &mut Obj,
) -> Result<(Vec<Game>, Option<LobbyKeeper>), String> {
    set_phase("json: setting up games");
    let t = Instant::now();
    let mut list = json_setup::setup_games(target.addr(), games, parallel, channel, ctx)?;
    o.float("setup_seconds", t.elapsed().as_secs_f64(), 3);
    let lobby: Vec<TcpStream> = list
        .iter_mut()
        .flat_map(|g| std::mem::take(&mut g.lobby))
        .collect();
    let keeper = if lobby.is_empty() {
        None
    } else {
        Some(LobbyKeeper::start(lobby)?)
    };
    Ok((list, keeper))
}

fn finish_keeper(keeper: Option<LobbyKeeper>, o: &mut Obj) {
    if let Some(k) = keeper {
        o.uint("lobby_conns_closed_by_server", k.finish());
    }
}

pub fn run_json_relay(
    target: JsonTarget,
    opts: &JsonRelayOpts,
    ctx: &Ctx,
) -> Result<Report, String> {
    let mut o = Obj::new();
    target.fields(&mut o);
    o.uint("games", opts.games as u64)
        .uint("bytes_per_direction", opts.bytes)
        .uint("frame_size", opts.frame_size as u64)
        .uint("seed", opts.seed);
    let (games, keeper) = setup(
        target,
        opts.games,
        opts.parallel,
        &opts.channel,
        ctx,
        &mut o,
    )?;

    set_phase("json-relay: streaming");
    let go = Arc::new(Barrier::new(games.len() * 4 + 1));
    let (tx, rx) = mpsc::channel::<(usize, ReadResult)>();
    let mut threads = Vec::new();
    let mut all = Vec::new();
    for (p, Game { server, client, .. }) in games.into_iter().enumerate() {
        let clone = |s: &TcpStream| s.try_clone().map_err(|e| format!("clone socket: {e}"));
        let (srv_r, cli_r) = (clone(&server)?, clone(&client)?);
        for sock in [&server, &client] {
            set_stall(sock, opts.stall, ctx.deadline)?;
            all.push(clone(sock)?);
        }
        for (dir, from, to) in [(0u64, server, cli_r), (1u64, client, srv_r)] {
            let stream = DataGen::stream_id(p, dir);
            let (total, fs, seed) = (opts.bytes, opts.frame_size, opts.seed);
            let (g1, g2) = (go.clone(), go.clone());
            let wtx = tx.clone();
            threads.push(spawn(format!("w{p}.{dir}"), move || {
                if let Err(e) = writer(from, DataGen::new(seed, stream), total, fs, g1) {
                    let r = ReadResult {
                        got: 0,
                        frames: 0,
                        heartbeats: 0,
                        end: Err(format!("writer: {e}")),
                    };
                    let _ = wtx.send((dir as usize, r));
                }
            })?);
            let tx = tx.clone();
            threads.push(spawn(format!("r{p}.{dir}"), move || {
                let check = StreamCheck::new(DataGen::new(seed, stream), total, fs);
                let _ = tx.send((dir as usize, reader(to, check, g2)));
            })?);
        }
    }
    drop(tx);
    go.wait();
    let t0 = Instant::now();

    let mut errors = Vec::new();
    let mut end = [t0; 2];
    let (mut done, mut frames, mut beats) = ([0u64; 2], [0u64; 2], [0u64; 2]);
    let mut complete = 0u64;
    for (dir, r) in rx.iter() {
        done[dir] += r.got;
        frames[dir] += r.frames;
        beats[dir] += r.heartbeats;
        record_end(dir, r.end, &mut end, &mut complete, &mut errors, &all);
    }
    for h in threads {
        if h.join().is_err() {
            errors.push("stream thread panicked".to_string());
        }
    }
    finish_keeper(keeper, &mut o);
    let secs = end[0].max(end[1]).duration_since(t0).as_secs_f64();
    let total = done[0] + done[1];
    let verified = errors.is_empty() && complete == 2 * opts.games as u64;
    o.uint("total_bytes", total)
        .float("seconds", secs, 3)
        .float("mib_per_s", mib_per_s(total, secs), 2);
    for dir in 0..2 {
        let s = end[dir].duration_since(t0).as_secs_f64();
        let mut d = Obj::new();
        d.uint("bytes", done[dir])
            .uint("frames", frames[dir])
            .uint("heartbeats_received", beats[dir])
            .float("seconds", s, 3)
            .float("mib_per_s", mib_per_s(done[dir], s), 2);
        o.obj(DIR_NAMES[dir], &d);
    }
    o.uint("streams_complete", complete)
        .bool("verified", verified);
    if let Some(first) = errors.first() {
        o.str("error", first).uint("errors", errors.len() as u64);
        for e in &errors {
            eprintln!("vcmi-load: {e}");
        }
    }
    Ok(Report {
        json: o,
        ok: verified,
    })
}

pub fn run_json_pingpong(
    target: JsonTarget,
    opts: &JsonPingOpts,
    ctx: &Ctx,
) -> Result<Report, String> {
    let mut o = Obj::new();
    target.fields(&mut o);
    o.uint("count", opts.count as u64)
        .uint("size", opts.size as u64)
        .uint("warmup", opts.warmup as u64);
    let (mut games, keeper) = setup(target, 1, 1, &opts.channel, ctx, &mut o)?;
    let Game {
        mut server,
        mut client,
        ..
    } = games.pop().ok_or("no game was set up")?;
    set_stall(&server, opts.stall, ctx.deadline)?;
    set_stall(&client, opts.stall, ctx.deadline)?;

    set_phase("json-pingpong: measuring");
    let rounds = opts.count + opts.warmup;
    // The match-server side echoes each frame back as one frame, exactly `rounds` times.
    let echo = spawn("echo".to_string(), move || -> Result<(), String> {
        for i in 0..rounds {
            let f = json_setup::read_frame(&mut server)
                .map_err(|e| format!("echo read #{i}: {}", io_error_text(&e)))?;
            json_setup::write_frame(&mut server, &f)
                .map_err(|e| format!("echo write #{i}: {}", io_error_text(&e)))?;
        }
        Ok(())
    })?;
    let mut g = DataGen::new(opts.seed, 0);
    let mut out = vec![0u8; 4 + opts.size];
    out[..4].copy_from_slice(&(opts.size as u32).to_le_bytes());
    let mut rtts = Vec::with_capacity(opts.count);
    let mut error = None;
    let t_all = Instant::now();
    for i in 0..rounds {
        g.fill(&mut out[4..]);
        let t = Instant::now();
        if let Err(e) = client.write_all(&out) {
            error = Some(format!("ping write #{i}: {}", io_error_text(&e)));
            break;
        }
        let back = match json_setup::read_frame(&mut client) {
            Ok(b) => b,
            Err(e) => {
                error = Some(format!("ping read #{i}: {}", io_error_text(&e)));
                break;
            }
        };
        let rtt = t.elapsed().as_micros() as u64;
        if back[..] != out[4..] {
            error = Some(format!("echo #{i} differs from what was sent"));
            break;
        }
        if i >= opts.warmup {
            rtts.push(rtt);
        }
    }
    let secs = t_all.elapsed().as_secs_f64();
    if error.is_none() {
        match echo.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error = Some(e),
            Err(_) => error = Some("echo thread panicked".to_string()),
        }
    } else {
        let _ = client.shutdown(Shutdown::Both);
    }
    finish_keeper(keeper, &mut o);
    o.float("seconds", secs, 3)
        .float("round_trips_per_s", rtts.len() as f64 / secs, 1)
        .obj("rtt_us", &stats::summarize_exact(&mut rtts))
        .bool("verified", error.is_none());
    if let Some(e) = &error {
        o.str("error", e);
    }
    Ok(Report {
        json: o,
        ok: error.is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(seed: u64, total: u64, fs: usize, beat_after: Option<usize>) -> Vec<u8> {
        let mut g = DataGen::new(seed, 7);
        let (mut out, mut sent, mut k) = (Vec::new(), 0u64, 0);
        while sent < total {
            if beat_after == Some(k) {
                out.extend_from_slice(&jp::HEARTBEAT);
            }
            let n = jp::frame_len(total, fs, sent);
            let mut p = vec![0u8; n];
            g.fill(&mut p);
            jp::push_frame(&mut out, &p);
            sent += n as u64;
            k += 1;
        }
        out
    }

    #[test]
    fn verifies_a_stream_in_any_split() {
        let wire = stream(3, 1000, 64, Some(2));
        for split in [1, 3, 64, 67, 1000, wire.len()] {
            let mut c = StreamCheck::new(DataGen::new(3, 7), 1000, 64);
            for part in wire.chunks(split) {
                c.feed(part).unwrap();
            }
            assert!(c.complete(), "split {split}");
            assert_eq!((c.frames, c.heartbeats, c.got), (16, 1, 1000));
        }
    }

    #[test]
    fn catches_corruption_boundaries_and_extra_frames() {
        let wire = stream(3, 200, 64, None);
        // one flipped payload byte
        let mut bad = wire.clone();
        bad[4 + 70] ^= 1;
        let mut c = StreamCheck::new(DataGen::new(3, 7), 200, 64);
        let e = c.feed(&bad).unwrap_err();
        assert!(e.contains("mismatch at byte offset 66"), "{e}");
        // the same bytes re-framed as 32-byte frames
        let mut payload = Vec::new();
        let mut g = DataGen::new(3, 7);
        payload.resize(200, 0);
        g.fill(&mut payload);
        let mut reframed = Vec::new();
        for ch in payload.chunks(32) {
            jp::push_frame(&mut reframed, ch);
        }
        let mut c = StreamCheck::new(DataGen::new(3, 7), 200, 64);
        assert!(c.feed(&reframed).unwrap_err().contains("boundaries"));
        // a wrong seed (another game's stream)
        let mut c = StreamCheck::new(DataGen::new(4, 7), 200, 64);
        assert!(c.feed(&wire).is_err());
        // an extra frame after the end
        let mut extra = wire.clone();
        jp::push_frame(&mut extra, b"x");
        let mut c = StreamCheck::new(DataGen::new(3, 7), 200, 64);
        assert!(c.feed(&extra).unwrap_err().contains("extra frame"));
        // incomplete until the last byte
        let mut c = StreamCheck::new(DataGen::new(3, 7), 200, 64);
        c.feed(&wire[..wire.len() - 1]).unwrap();
        assert!(!c.complete());
    }

    #[test]
    fn direct_relay_and_pingpong_run_end_to_end() {
        let ctx = Ctx {
            deadline: Instant::now() + Duration::from_secs(60),
            started: Instant::now(),
            run_id: "t".into(),
            proto: 5,
            vcmi_version: String::new(),
        };
        let opts = JsonRelayOpts {
            games: 2,
            bytes: 300_000,
            frame_size: 10_000,
            seed: 5,
            parallel: 2,
            stall: Duration::from_secs(10),
            channel: "english".into(),
        };
        let r = run_json_relay(JsonTarget::Direct, &opts, &ctx).unwrap();
        assert!(r.ok, "{}", r.json.render());
        let line = r.json.render();
        assert!(line.contains("\"total_bytes\":1200000"), "{line}");
        assert!(line.contains("\"frames\":60"), "{line}");
        let p = JsonPingOpts {
            count: 50,
            size: 64,
            warmup: 5,
            seed: 1,
            stall: Duration::from_secs(10),
            channel: "english".into(),
        };
        let r = run_json_pingpong(JsonTarget::Direct, &p, &ctx).unwrap();
        assert!(r.ok, "{}", r.json.render());
        assert!(r.json.render().contains("\"samples\":50"));
    }
}
