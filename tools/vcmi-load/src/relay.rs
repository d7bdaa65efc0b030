//! `relay` (bulk throughput, both directions at once) and `pingpong` (round-trip latency).
//!
//! Both use plain blocking sockets and OS threads: the number of sockets is small (two per pair),
//! and a thread per direction keeps each stream's writer and verifier trivially correct.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::errors::io_error_text;
use crate::gen::DataGen;
use crate::json::Obj;
use crate::setup::{self, PairSockets};
use crate::stats::{self, mib_per_s};
use crate::{set_phase, Ctx, Report, Target};

pub struct RelayOpts {
    pub pairs: usize,
    pub bytes: u64,
    pub chunk: usize,
    pub seed: u64,
    pub parallel: usize,
    pub stall: Duration,
}

/// Direction 0: server side → client side, direction 1: client side → server side.
pub(crate) const DIR_NAMES: [&str; 2] = ["server_to_client", "client_to_server"];

pub(crate) fn spawn<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<thread::JoinHandle<T>, String> {
    // Small stacks: buffers live on the heap, and hundreds of pairs mean hundreds of threads.
    thread::Builder::new()
        .name(name)
        .stack_size(256 << 10)
        .spawn(f)
        .map_err(|e| format!("cannot start thread: {e}"))
}

fn writer(
    mut s: TcpStream,
    mut g: DataGen,
    total: u64,
    chunk: usize,
    go: Arc<Barrier>,
) -> Result<(), String> {
    let mut buf = vec![0u8; chunk];
    go.wait();
    let mut sent = 0u64;
    while sent < total {
        let n = chunk.min((total - sent) as usize);
        g.fill(&mut buf[..n]);
        s.write_all(&buf[..n]).map_err(|e| {
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

fn reader(
    mut s: TcpStream,
    mut g: DataGen,
    total: u64,
    chunk: usize,
    go: Arc<Barrier>,
) -> (u64, Result<Instant, String>) {
    let mut buf = vec![0u8; chunk];
    let mut scratch = Vec::with_capacity(chunk);
    go.wait();
    let mut got = 0u64;
    while got < total {
        // never read past this stream's end, so extra bytes would show up as an error elsewhere
        let want = chunk.min((total - got) as usize);
        let n = match s.read(&mut buf[..want]) {
            Ok(0) => {
                return (
                    got,
                    Err(format!("connection closed after {got} of {total} bytes")),
                )
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                return (
                    got,
                    Err(format!(
                        "stalled: no data for --stall seconds after {got} of {total} bytes"
                    )),
                )
            }
            Err(e) => {
                return (
                    got,
                    Err(format!(
                        "read after {got} of {total} bytes: {}",
                        io_error_text(&e)
                    )),
                )
            }
        };
        if let Some(i) = g.verify(&buf[..n], &mut scratch) {
            return (
                got,
                Err(format!("data mismatch at byte offset {}", got + i as u64)),
            );
        }
        got += n as u64;
    }
    (got, Ok(Instant::now()))
}

/// Blocking sockets report an expired SO_RCVTIMEO/SO_SNDTIMEO as EAGAIN (WouldBlock) on Linux.
pub(crate) fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Per-call socket timeouts for the measurement phase: a stream that makes no progress for
/// `stall` fails at once instead of idling until the global deadline.
pub(crate) fn set_stall(s: &TcpStream, stall: Duration, deadline: Instant) -> Result<(), String> {
    let t = stall.min(setup::remaining(deadline)?);
    s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(t)).map_err(|e| e.to_string())
}

/// One direction of one stream ended: its finish time, or an error. Results
/// arrive in completion order, so the first error is the root cause and
/// later ones are usually consequences of the shutdown it triggers here
/// (every stream, so the other threads stop at once). A failed direction's
/// rate is measured up to the failure.
pub(crate) fn record_end(
    dir: usize,
    r: Result<Instant, String>,
    end: &mut [Instant; 2],
    complete: &mut u64,
    errors: &mut Vec<String>,
    all: &[TcpStream],
) {
    match r {
        Ok(t) => {
            end[dir] = end[dir].max(t);
            *complete += 1;
        }
        Err(e) => {
            end[dir] = end[dir].max(Instant::now());
            if errors.is_empty() {
                for s in all {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
            errors.push(format!("{}: {e}", DIR_NAMES[dir]));
        }
    }
}

fn target_fields(o: &mut Obj, target: &Target) {
    match target {
        Target::Proxy(a) => o.str("target", "proxy").str("proxy", &a.to_string()),
        Target::Direct => o.str("target", "direct"),
        Target::Forward { target, listen } => o
            .str("target", "forward")
            .str("forward", &target.to_string())
            .str("listen", &listen.to_string()),
    };
}

pub fn run_relay(target: &Target, opts: &RelayOpts, ctx: &Ctx) -> Result<Report, String> {
    let mut o = Obj::new();
    target_fields(&mut o, target);
    o.uint("pairs", opts.pairs as u64)
        .uint("bytes_per_direction", opts.bytes)
        .uint("chunk", opts.chunk as u64)
        .uint("seed", opts.seed);

    set_phase("relay: setting up pairs");
    let t_setup = Instant::now();
    let pairs = setup::setup_pairs(target, opts.pairs, opts.parallel, ctx)?;
    o.float("setup_seconds", t_setup.elapsed().as_secs_f64(), 3);

    set_phase("relay: streaming");
    let go = Arc::new(Barrier::new(pairs.len() * 4 + 1));
    // (direction, bytes verified, end time or error); writers only report errors
    let (tx, rx) = mpsc::channel::<(usize, u64, Result<Instant, String>)>();
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    // Clones kept here so the first failure can shut every socket down: otherwise the other
    // threads would sit in blocking calls until the global deadline.
    let mut all = Vec::new();
    for (p, PairSockets { server, client }) in pairs.into_iter().enumerate() {
        let clone = |s: &TcpStream| s.try_clone().map_err(|e| format!("clone socket: {e}"));
        let (srv_r, cli_r) = (clone(&server)?, clone(&client)?);
        for sock in [&server, &client] {
            set_stall(sock, opts.stall, ctx.deadline)?;
            all.push(clone(sock)?);
        }
        for (dir, from, to) in [(0u64, server, cli_r), (1u64, client, srv_r)] {
            let stream = DataGen::stream_id(p, dir);
            let (total, chunk, seed) = (opts.bytes, opts.chunk, opts.seed);
            let g1 = go.clone();
            let g2 = go.clone();
            let wtx = tx.clone();
            writers.push(spawn(format!("w{p}.{dir}"), move || {
                if let Err(e) = writer(from, DataGen::new(seed, stream), total, chunk, g1) {
                    let _ = wtx.send((dir as usize, 0, Err(format!("writer: {e}"))));
                }
            })?);
            let tx = tx.clone();
            readers.push(spawn(format!("r{p}.{dir}"), move || {
                let (got, r) = reader(to, DataGen::new(seed, stream), total, chunk, g2);
                let _ = tx.send((dir as usize, got, r));
            })?);
        }
    }
    drop(tx);
    go.wait();
    let t0 = Instant::now();

    let mut errors = Vec::new();
    let mut end = [t0; 2];
    let mut done = [0u64; 2];
    let mut complete = 0u64;
    for (dir, got, r) in rx.iter() {
        done[dir] += got;
        record_end(dir, r, &mut end, &mut complete, &mut errors, &all);
    }
    for h in readers {
        if h.join().is_err() {
            errors.push("reader thread panicked".to_string());
        }
    }
    for h in writers {
        if h.join().is_err() {
            errors.push("writer thread panicked".to_string());
        }
    }
    let secs = end[0].max(end[1]).duration_since(t0).as_secs_f64();
    let total = done[0] + done[1];
    let verified = errors.is_empty() && complete == 2 * opts.pairs as u64;
    o.uint("total_bytes", total)
        .float("seconds", secs, 3)
        .float("mib_per_s", mib_per_s(total, secs), 2);
    for dir in 0..2 {
        let s = end[dir].duration_since(t0).as_secs_f64();
        let mut d = Obj::new();
        d.uint("bytes", done[dir]).float("seconds", s, 3).float(
            "mib_per_s",
            mib_per_s(done[dir], s),
            2,
        );
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

pub struct PingOpts {
    pub count: usize,
    pub size: usize,
    pub warmup: usize,
    pub seed: u64,
    pub stall: Duration,
}

pub fn run_pingpong(target: &Target, opts: &PingOpts, ctx: &Ctx) -> Result<Report, String> {
    let mut o = Obj::new();
    target_fields(&mut o, target);
    o.uint("count", opts.count as u64)
        .uint("size", opts.size as u64)
        .uint("warmup", opts.warmup as u64);

    set_phase("pingpong: setting up the pair");
    let t_setup = Instant::now();
    let PairSockets {
        mut server,
        mut client,
    } = setup::setup_pairs(target, 1, 1, ctx)?
        .pop()
        .ok_or("no pair was set up")?;
    o.float("setup_seconds", t_setup.elapsed().as_secs_f64(), 3);

    set_stall(&server, opts.stall, ctx.deadline)?;
    set_stall(&client, opts.stall, ctx.deadline)?;

    set_phase("pingpong: measuring");
    let rounds = opts.count + opts.warmup;
    let size = opts.size;
    // The echo side stops after exactly `rounds` messages instead of waiting for EOF: the proxy
    // does not propagate a close to the peer by default (§10.8), so EOF might never come.
    let echo = spawn("echo".to_string(), move || -> Result<(), String> {
        let mut buf = vec![0u8; size];
        for i in 0..rounds {
            server
                .read_exact(&mut buf)
                .map_err(|e| format!("echo read #{i}: {}", io_error_text(&e)))?;
            server
                .write_all(&buf)
                .map_err(|e| format!("echo write #{i}: {}", io_error_text(&e)))?;
        }
        Ok(())
    })?;

    let mut g = DataGen::new(opts.seed, 0);
    let mut out = vec![0u8; size];
    let mut back = vec![0u8; size];
    let mut rtts = Vec::with_capacity(opts.count);
    let mut error = None;
    let t_all = Instant::now();
    for i in 0..rounds {
        g.fill(&mut out);
        let t = Instant::now();
        if let Err(e) = client.write_all(&out) {
            error = Some(format!("ping write #{i}: {}", io_error_text(&e)));
            break;
        }
        if let Err(e) = client.read_exact(&mut back) {
            error = Some(format!("ping read #{i}: {}", io_error_text(&e)));
            break;
        }
        let rtt = t.elapsed().as_micros() as u64;
        if back != out {
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
    }
    o.float("seconds", secs, 3);
    o.float("round_trips_per_s", rtts.len() as f64 / secs, 1);
    o.obj("rtt_us", &stats::summarize_exact(&mut rtts));
    o.bool("verified", error.is_none());
    if let Some(e) = &error {
        o.str("error", e);
    }
    Ok(Report {
        json: o,
        ok: error.is_none(),
    })
}
