//! vcmi-load: client-side load generator for a vcmi-proxy deployment (or any VCMI lobby proxy).
//!
//! Modes: `relay` (bulk pipe throughput with byte-exact verification), `pingpong` (pipe round-trip
//! latency), `lobby` (logins, rooms and chat delivery latency/loss), `idle` (many held lobby
//! connections), and for the VCMI 1.5+ JSON lobby `json-lobby`, `json-relay`, `json-pingpong`
//! (json_cli.rs and the json_* files). Every mode prints exactly one JSON line on stdout (also on
//! failure, with `"ok":false`), writes progress to stderr, is bounded by `--timeout`, and only
//! ever connects to the address given on the command line.

mod chat;
mod gen;
mod idle;
mod json;
mod json_checks;
mod json_cli;
mod json_lobby;
mod json_proto;
mod json_relay;
mod json_setup;
#[cfg(test)]
mod json_testlobby;
mod mioconn;
mod net;
mod proto;
mod relay;
mod setup;
mod stats;
mod storm;

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use json::Obj;

const HELP: &str = "\
vcmi-load - load generator for the VCMI lobby/relay proxy

USAGE:
  vcmi-load MODE [OPTIONS]

MODES:
  relay     N pairs of game pipes stream B bytes in both directions at once, every byte verified
              --proxy HOST:PORT | --direct | --forward HOST:PORT --listen 127.0.0.1:PORT
              --pairs N (1)  --bytes B (64M; K/M/G suffixes)  --chunk C (64K)  --seed S (1)
              --parallel P   pair setups running at once through the proxy (8)
              --stall SECS   fail when a stream makes no progress for this long (10)
  pingpong  one pair; the client side sends SIZE bytes, the server side echoes them back
              --proxy HOST:PORT | --direct | --forward HOST:PORT --listen 127.0.0.1:PORT
              --count N (10000)  --size BYTES (64)  --warmup W (100)  --seed S (1)
              --stall SECS   fail when one round trip takes longer than this (10)
  lobby     U users log in, fill R rooms, then chat at M messages/s (aggregate) for D seconds
              --proxy HOST:PORT  --users U (100)  --rooms R (10)  --rate M (100)  --duration D (10)
              --window W   logins in flight at once (256)   --drain SECS wait for late messages (10)
              --sources LIST   source addresses, as for idle
  json-lobby     VCMI 1.5+ JSON lobby: U accounts register, log in, then chat at M messages/s
                 (aggregate) on one global channel for D seconds; login rate, latency, loss
              --proxy HOST:PORT  --users U (100)  --rate M (50)  --duration D (10)
              --channel LANG (english)  --window W logins in flight (64)  --drain SECS (10)
              --sources LIST
  json-relay     N games through the JSON lobby's proxy mode (host, match server, guest), then
                 game frames both ways, every byte and every frame boundary verified
              --proxy HOST:PORT | --direct   --games N (1)  --bytes B per direction (64M)
              --frame-size F (64K, at most 64M)  --seed S (1)  --parallel P (8)  --stall SECS (10)
              --channel LANG (english)
  json-pingpong  one game set up as for json-relay; the guest sends one SIZE-byte frame, the
                 match server echoes it; round-trip latency
              --proxy HOST:PORT | --direct   --count N (10000)  --size BYTES (64)  --warmup W (100)
              --seed S (1)  --stall SECS (10)  --channel LANG (english)
  idle      open N lobby connections, log each in, hold them
              --proxy HOST:PORT  --conns N (1000)  --hold SECONDS (10)  --window W (256)
              --sources LIST   bind each connection to one of these source addresses before
                           connecting, round-robin: 127.0.0.1,127.0.0.2 or 127.0.0.1-127.0.0.4
                           (or 127.0.0.1-4); needed beyond ~28k connections to one port
  storm     N users log in (a login storm) and wait until each saw the final USERS list; reports
            the server's CPU seconds per login (from /proc/PID/stat) and bytes / (N x final list)
              --proxy HOST:PORT  --server-pid PID (required)  --users N (2000)  --window W (256)
              --sources LIST   as for idle

COMMON OPTIONS:
  --timeout SECONDS       hard bound for the whole run; on expiry the run fails (120)
  --proto V               lobby protocol version byte sent at login, 1..=5 (5, i.e. VCMI 1.4)
  --vcmi-version TEXT     version string for <VER> and pipe names (\"VCMI 1.4.5\")
  -h, --help              this text

TARGETS:
  --proxy     full VCMI procedure: lobby login, NEW/JOIN/READY, HOST/START, pipe handshake,
              handshake echo check, then raw data
  --direct    baseline without any proxy: the tool listens on 127.0.0.1 (ephemeral port) and
              connects each pair to itself
  --forward   baseline through a plain TCP forwarder: each pair's client end connects to
              HOST:PORT, which must forward to the tool's own --listen address, e.g.
              socat TCP-LISTEN:7000,fork,reuseaddr TCP:127.0.0.1:7001 with
              --forward 127.0.0.1:7000 --listen 127.0.0.1:7001  (--target is an alias)

OUTPUT:
  one JSON line on stdout; progress and errors on stderr.
  exit status: 0 success, 1 run failed (verification, loss, errors), 2 usage error, 3 timeout.

NOTES:
  idle/lobby with many users need file descriptors: the tool raises its soft open-file limit
  to the hard limit at start (reported as \"nofile\"); beyond the hard limit (ulimit -Hn, set
  by root) it reports EMFILE as the resource limit it hit.
  One source address can open at most ~28k connections to one server port (ephemeral ports):
  use --sources with several loopback addresses (all of 127.0.0.0/8 is local on Linux).
  Usernames (vl<run>...) and room names are unique per run, so runs can repeat on one server.
";

/// Settings shared by all modes.
pub struct Ctx {
    pub deadline: Instant,
    pub started: Instant,
    /// Unique per run; part of every user and room name and of every chat probe.
    pub run_id: String,
    pub proto: u8,
    pub vcmi_version: String,
}

#[derive(Clone, Debug)]
pub enum Target {
    Proxy(SocketAddr),
    Direct,
    Forward {
        target: SocketAddr,
        listen: SocketAddr,
    },
}

/// What a mode hands back: its JSON fields and whether the run succeeded.
pub struct Report {
    pub json: Obj,
    pub ok: bool,
}

static PRINTED: Mutex<bool> = Mutex::new(false);
static PHASE: Mutex<&str> = Mutex::new("starting");

/// Records the current phase (reported if the run times out) and logs it.
pub fn set_phase(p: &'static str) {
    *PHASE.lock().unwrap_or_else(|e| e.into_inner()) = p;
    eprintln!("vcmi-load: {p}");
}

fn phase() -> &'static str {
    *PHASE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Prints the single result line (only the first caller prints; the watchdog and the main
/// thread may race at the deadline) and exits.
fn emit_and_exit(line: &str, code: i32) -> ! {
    let mut printed = PRINTED.lock().unwrap_or_else(|e| e.into_inner());
    if !*printed {
        *printed = true;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    std::process::exit(code)
}

/// Short stable name for an I/O error, used as a key in the `errors` JSON object.
pub fn io_error_name(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(24) => "EMFILE",
        Some(23) => "ENFILE",
        Some(99) => "EADDRNOTAVAIL",
        Some(98) => "EADDRINUSE",
        Some(111) => "ECONNREFUSED",
        Some(104) => "ECONNRESET",
        Some(110) => "ETIMEDOUT",
        Some(32) => "EPIPE",
        Some(105) => "ENOBUFS",
        Some(12) => "ENOMEM",
        Some(113) => "EHOSTUNREACH",
        Some(101) => "ENETUNREACH",
        _ => match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timeout",
            std::io::ErrorKind::UnexpectedEof => "eof",
            _ => "io_error",
        },
    }
}

/// Whether the error means this machine ran out of something (descriptors, ports, memory), so
/// further connection attempts are pointless.
pub fn is_local_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(24 | 23 | 99 | 105 | 12))
}

/// Error text with an operator hint for the resource errors load tests typically hit.
pub fn io_error_text(e: &std::io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(24) => " - the per-process open-file limit (EMFILE) is reached: vcmi-load already raised its soft limit to the hard limit; raise the hard limit (`ulimit -Hn`, as root) or split the load over several processes",
        Some(23) => " - the system-wide file table is full (ENFILE): raise fs.file-max",
        Some(99) => " - no free local port (EADDRNOTAVAIL): one source address can only hold ~28k connections to one server port; add source addresses with --sources (e.g. 127.0.0.1-127.0.0.4) or widen net.ipv4.ip_local_port_range",
        _ => "",
    };
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut if hint.is_empty() => {
            format!("{e} (timed out; the global --timeout bounds every wait)")
        }
        _ => format!("{e}{hint}"),
    }
}

/// Soft and hard RLIMIT_NOFILE from `/proc/self/limits` (Linux).
/// `None` when unknown; a hard limit of `None` means unlimited.
pub fn nofile_limits() -> Option<(u64, Option<u64>)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_nofile(&text)
}

fn parse_nofile(limits: &str) -> Option<(u64, Option<u64>)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_whitespace();
    let soft = it.next()?;
    let hard = it.next()?;
    let num = |v: &str| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    };
    let soft = num(soft)?;
    let hard = num(hard)?;
    Some((soft, (hard != u64::MAX).then_some(hard)))
}

/// Warns up front when `sockets` will not fit under the open-file limit, so an operator learns
/// about `ulimit -n` before waiting for the run; returns the soft limit for the report.
pub fn check_nofile(sockets: usize) -> Option<u64> {
    let (soft, hard) = nofile_limits()?;
    let need = sockets as u64 + 32; // stdio, poll fd, listener, slack
    if need > soft {
        let hard = hard.map_or("unlimited".to_string(), |h| h.to_string());
        eprintln!(
            "vcmi-load: warning: {sockets} sockets need about {need} file descriptors but the limit is {soft} \
             (hard {hard}, already raised to it); raise the hard limit (`ulimit -Hn {need}` as root) - expect EMFILE"
        );
    }
    Some(soft)
}

fn resolve(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

fn parse_target(args: &mut pico_args::Arguments, proxy_only: bool) -> Result<Target, String> {
    let e = |e: pico_args::Error| e.to_string();
    let direct = args.contains("--direct");
    let proxy: Option<String> = args.opt_value_from_str("--proxy").map_err(e)?;
    let mut forward: Option<String> = args.opt_value_from_str("--forward").map_err(e)?;
    if forward.is_none() {
        forward = args.opt_value_from_str("--target").map_err(e)?;
    }
    let listen: Option<String> = args.opt_value_from_str("--listen").map_err(e)?;
    let chosen = proxy.is_some() as u8 + direct as u8 + forward.is_some() as u8;
    if chosen != 1 {
        return Err(if proxy_only {
            "--proxy HOST:PORT is required".to_string()
        } else {
            "give exactly one of --proxy HOST:PORT, --direct, --forward HOST:PORT".to_string()
        });
    }
    if proxy_only && proxy.is_none() {
        return Err("this mode only works against a proxy: use --proxy HOST:PORT".to_string());
    }
    if let Some(p) = proxy {
        if listen.is_some() {
            return Err("--listen is only used with --forward".to_string());
        }
        return Ok(Target::Proxy(resolve(&p)?));
    }
    if direct {
        if listen.is_some() {
            return Err(
                "--listen is only used with --forward (--direct picks its own port)".to_string(),
            );
        }
        return Ok(Target::Direct);
    }
    let target = resolve(&forward.unwrap_or_default())?;
    let listen = resolve(
        &listen.ok_or("--forward needs --listen ADDR:PORT (where the forwarder connects to)")?,
    )?;
    Ok(Target::Forward { target, listen })
}

fn opt<T: std::str::FromStr>(
    args: &mut pico_args::Arguments,
    key: &'static str,
    default: T,
) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    Ok(args
        .opt_value_from_str::<_, T>(key)
        .map_err(|e| e.to_string())?
        .unwrap_or(default))
}

fn size_opt(
    args: &mut pico_args::Arguments,
    key: &'static str,
    default: u64,
) -> Result<u64, String> {
    Ok(args
        .opt_value_from_fn(key, stats::parse_size)
        .map_err(|e| e.to_string())?
        .unwrap_or(default))
}

fn sources_opt(args: &mut pico_args::Arguments) -> Result<Vec<std::net::IpAddr>, String> {
    let text: Option<String> = args
        .opt_value_from_str("--sources")
        .map_err(|e| e.to_string())?;
    text.map_or(Ok(Vec::new()), |t| net::parse_sources(&t))
}

fn same_family(sources: &[std::net::IpAddr], addr: SocketAddr) -> Result<(), String> {
    match sources.iter().find(|s| s.is_ipv4() != addr.is_ipv4()) {
        Some(s) => Err(format!(
            "--sources: {s} is not of the same address family as the server address {addr}"
        )),
        None => Ok(()),
    }
}

fn stall_opt(args: &mut pico_args::Arguments) -> Result<Duration, String> {
    let v: f64 = opt(args, "--stall", 10.0)?;
    positive_secs(v, "--stall")?;
    Ok(Duration::from_secs_f64(v.min(7.0 * 86400.0)))
}

fn check(cond: bool, msg: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg.to_string())
    }
}

fn positive_secs(v: f64, what: &str) -> Result<(), String> {
    check(
        v.is_finite() && v > 0.0,
        &format!("{what} must be a positive number of seconds"),
    )
}

/// A mode parsed from the command line, ready to run.
enum Job {
    Relay(Target, relay::RelayOpts),
    Ping(Target, relay::PingOpts),
    Lobby(SocketAddr, chat::LobbyOpts),
    Idle(SocketAddr, idle::IdleOpts),
    Storm(SocketAddr, storm::StormOpts),
    /// The VCMI 1.5+ JSON lobby modes (json_cli.rs).
    Json(json_cli::JsonJob),
}

fn parse(mode: &str, args: &mut pico_args::Arguments, timeout: f64) -> Result<Job, String> {
    let proxy_addr = |t: Target| match t {
        Target::Proxy(a) => a,
        _ => unreachable!("parse_target(proxy_only) returns proxies only"),
    };
    Ok(match mode {
        "relay" => {
            let target = parse_target(args, false)?;
            let o = relay::RelayOpts {
                pairs: opt(args, "--pairs", 1usize)?,
                bytes: size_opt(args, "--bytes", 64 << 20)?,
                chunk: size_opt(args, "--chunk", 64 << 10)? as usize,
                seed: opt(args, "--seed", 1u64)?,
                parallel: opt(args, "--parallel", 8usize)?,
                stall: stall_opt(args)?,
            };
            check((1..=10_000).contains(&o.pairs), "--pairs must be 1..=10000")?;
            check(o.bytes >= 1, "--bytes must be at least 1")?;
            check(
                (1..=(16 << 20)).contains(&o.chunk),
                "--chunk must be 1..=16M",
            )?;
            check(
                (1..=256).contains(&o.parallel),
                "--parallel must be 1..=256",
            )?;
            Job::Relay(target, o)
        }
        "pingpong" => {
            let target = parse_target(args, false)?;
            let o = relay::PingOpts {
                count: opt(args, "--count", 10_000usize)?,
                size: size_opt(args, "--size", 64)? as usize,
                warmup: opt(args, "--warmup", 100usize)?,
                seed: opt(args, "--seed", 1u64)?,
                stall: stall_opt(args)?,
            };
            check(
                (1..=100_000_000).contains(&o.count),
                "--count must be 1..=100000000",
            )?;
            check((1..=(16 << 20)).contains(&o.size), "--size must be 1..=16M")?;
            Job::Ping(target, o)
        }
        "lobby" => {
            let addr = proxy_addr(parse_target(args, true)?);
            let o = chat::LobbyOpts {
                users: opt(args, "--users", 100usize)?,
                rooms: opt(args, "--rooms", 10usize)?,
                rate: opt(args, "--rate", 100.0f64)?,
                duration: opt(args, "--duration", 10.0f64)?,
                window: opt(args, "--window", 256usize)?,
                drain: opt(args, "--drain", 10.0f64)?,
                sources: sources_opt(args)?,
            };
            check(
                (1..=1_000_000).contains(&o.users),
                "--users must be 1..=1000000",
            )?;
            check(
                o.rooms >= 1 && o.rooms <= o.users,
                "--rooms must be 1..=users",
            )?;
            check(
                o.rate.is_finite() && o.rate > 0.0 && o.rate <= 1e6,
                "--rate must be in (0, 1000000]",
            )?;
            positive_secs(o.duration, "--duration")?;
            check(
                o.drain.is_finite() && o.drain >= 0.0,
                "--drain must be >= 0",
            )?;
            check(o.window >= 1, "--window must be at least 1")?;
            same_family(&o.sources, addr)?;
            check(
                (o.rate * o.duration) <= 50_000_000.0,
                "--rate x --duration must be at most 50M messages",
            )?;
            check(
                o.duration < timeout,
                "--duration must be shorter than --timeout (which bounds the whole run); raise --timeout",
            )?;
            Job::Lobby(addr, o)
        }
        "idle" => {
            let addr = proxy_addr(parse_target(args, true)?);
            let o = idle::IdleOpts {
                conns: opt(args, "--conns", 1000usize)?,
                hold: opt(args, "--hold", 10.0f64)?,
                window: opt(args, "--window", 256usize)?,
                sources: sources_opt(args)?,
                until_full_list: false,
            };
            check(
                (1..=1_000_000).contains(&o.conns),
                "--conns must be 1..=1000000",
            )?;
            check(
                o.hold.is_finite() && o.hold >= 0.0,
                "--hold must be >= 0 seconds",
            )?;
            check(o.window >= 1, "--window must be at least 1")?;
            same_family(&o.sources, addr)?;
            check(o.hold < timeout, "--hold must be shorter than --timeout (which bounds the whole run); raise --timeout")?;
            Job::Idle(addr, o)
        }
        "storm" => {
            let addr = proxy_addr(parse_target(args, true)?);
            let o = storm::StormOpts {
                users: opt(args, "--users", 2000usize)?,
                window: opt(args, "--window", 256usize)?,
                server_pid: args.value_from_str("--server-pid").map_err(|e| {
                    format!("--server-pid (the server's process id) is required: {e}")
                })?,
                sources: sources_opt(args)?,
            };
            check(
                (1..=1_000_000).contains(&o.users),
                "--users must be 1..=1000000",
            )?;
            check(o.window >= 1, "--window must be at least 1")?;
            same_family(&o.sources, addr)?;
            Job::Storm(addr, o)
        }
        m if json_cli::MODES.contains(&m) => Job::Json(json_cli::parse(m, args, timeout)?),
        other => {
            return Err(format!(
                "unknown mode {other:?}: use relay, pingpong, lobby, idle, storm, json-lobby, json-relay or json-pingpong (see --help)"
            ))
        }
    })
}

fn run_id() -> String {
    // pid + low clock bits: distinct between concurrent runs and between consecutive runs with a
    // recycled pid; only [0-9a-f], so it is valid in user and room names.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    format!("{:x}{:04x}", std::process::id(), nanos & 0xffff)
}

fn main() {
    let started = Instant::now();
    let mut args = pico_args::Arguments::from_env();
    if args.contains(["-h", "--help"]) {
        print!("{HELP}");
        return;
    }
    let mode = match args.subcommand() {
        Ok(Some(m)) => m,
        _ => {
            eprint!("{HELP}");
            let mut o = Obj::new();
            o.str("tool", "vcmi-load")
                .bool("ok", false)
                .str("error", "missing MODE");
            emit_and_exit(&o.render(), 2);
        }
    };
    let mut base = Obj::new();
    base.str("tool", "vcmi-load")
        .str("version", env!("CARGO_PKG_VERSION"))
        .str("mode", &mode);

    let usage_fail = |base: &Obj, msg: String| -> ! {
        eprintln!("vcmi-load: {msg} (see --help)");
        let mut o = base.clone();
        o.bool("ok", false).str("error", &msg);
        emit_and_exit(&o.render(), 2)
    };

    let common = (|| -> Result<(f64, u8, String), String> {
        let timeout: f64 = opt(&mut args, "--timeout", 120.0)?;
        positive_secs(timeout, "--timeout")?;
        check(timeout <= 7.0 * 86400.0, "--timeout must be at most a week")?;
        let proto: u8 = opt(&mut args, "--proto", 5u8)?;
        check((1..=5).contains(&proto), "--proto must be 1..=5")?;
        let ver: String = opt(&mut args, "--vcmi-version", "VCMI 1.4.5".to_string())?;
        check(
            !ver.contains('<') && !ver.is_empty(),
            "--vcmi-version must be non-empty without '<'",
        )?;
        Ok((timeout, proto, ver))
    })();
    let (timeout, proto, vcmi_version) = common.unwrap_or_else(|e| usage_fail(&base, e));
    let job = parse(&mode, &mut args, timeout).unwrap_or_else(|e| usage_fail(&base, e));
    let rest = args.finish();
    if !rest.is_empty() {
        usage_fail(&base, format!("unexpected arguments: {rest:?}"));
    }

    let ctx = Ctx {
        deadline: started + Duration::from_secs_f64(timeout),
        started,
        run_id: run_id(),
        proto,
        vcmi_version,
    };
    base.str("run", &ctx.run_id).float("timeout", timeout, 1);
    let sources = match &job {
        Job::Lobby(_, o) => o.sources.len(),
        Job::Idle(_, o) => o.sources.len(),
        Job::Storm(_, o) => o.sources.len(),
        Job::Json(j) => j.sources(),
        _ => 0,
    };
    if sources > 0 {
        base.uint("sources", sources as u64);
    }
    // Every mode may need many descriptors (idle/lobby: one per user): take all we may have.
    match net::raise_nofile() {
        Ok(n) => {
            let mut o = Obj::new();
            o.uint("soft_before", n.soft_before).uint("soft", n.soft);
            match n.hard {
                Some(h) => o.uint("hard", h),
                None => o.null("hard"),
            };
            base.obj("nofile", &o);
        }
        Err(e) => {
            eprintln!("vcmi-load: warning: cannot raise the open-file limit: {e}");
            base.null("nofile");
        }
    }

    // Backstop: modes bound their own waits by the deadline and report partial results, but a
    // wedged thread must not keep the process alive (the grace lets the mode report first).
    {
        let base = base.clone();
        let deadline = ctx.deadline + Duration::from_secs(3);
        std::thread::spawn(move || {
            while Instant::now() < deadline {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            }
            let mut o = base;
            o.bool("ok", false).str(
                "error",
                &format!("global --timeout expired during phase: {}", phase()),
            );
            eprintln!("vcmi-load: timeout during phase: {}", phase());
            emit_and_exit(&o.render(), 3);
        });
    }

    let result = match &job {
        Job::Relay(t, o) => relay::run_relay(t, o, &ctx),
        Job::Ping(t, o) => relay::run_pingpong(t, o, &ctx),
        Job::Lobby(a, o) => chat::run_lobby(*a, o, &ctx),
        Job::Idle(a, o) => idle::run_idle(*a, o, &ctx),
        Job::Storm(a, o) => storm::run_storm(*a, o, &ctx),
        Job::Json(j) => j.run(&ctx),
    };
    let timed_out = Instant::now() >= ctx.deadline;
    let mut out = base;
    let code = match result {
        Ok(r) => {
            out.merge(r.json);
            if r.ok {
                0
            } else if timed_out {
                3
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("vcmi-load: {e}");
            out.str("error", &e);
            if timed_out {
                3
            } else {
                1
            }
        }
    };
    if timed_out {
        out.bool("timed_out", true);
    }
    out.bool("ok", code == 0);
    eprintln!(
        "vcmi-load: done in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    emit_and_exit(&out.render(), code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_nofile(text), Some((1024, Some(524288))));
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile(text), Some((u64::MAX, None)));
        assert_eq!(parse_nofile("nothing"), None);
    }

    #[test]
    fn error_names_and_hints() {
        let e = std::io::Error::from_raw_os_error(24);
        assert_eq!(io_error_name(&e), "EMFILE");
        assert!(is_local_exhaustion(&e));
        assert!(io_error_text(&e).contains("ulimit -Hn"));
        let e = std::io::Error::from_raw_os_error(99);
        assert!(io_error_text(&e).contains("--sources"));
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(io_error_name(&e), "ECONNREFUSED");
        assert!(!is_local_exhaustion(&e));
    }

    #[test]
    fn run_ids_are_valid_names() {
        let id = run_id();
        assert!(!id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()));
        // user and room names built from it satisfy the lobby rules (§8.1, §8.2)
        let user = format!("vl{id}u0");
        assert!(user.len() >= 3 && user.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(!format!("vl-{id}-r0").contains(':'));
    }
}
