//! The command line: the `--help` text, the options every mode takes, and the parsing and range
//! checks of each mode's options into a ready-to-run `Job` (the JSON-lobby modes in json_cli.rs,
//! with the helpers here: `opt`, `size_opt`, `sources_opt`, `stall_opt`, `check`...).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::{chat, idle, json_cli, net, relay, stats, storm, Target};

pub(crate) const HELP: &str = "\
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

/// The options every mode takes.
pub(crate) struct Common {
    pub(crate) timeout: f64,
    pub(crate) proto: u8,
    pub(crate) vcmi_version: String,
}

pub(crate) fn parse_common(args: &mut pico_args::Arguments) -> Result<Common, String> {
    let timeout: f64 = opt(args, "--timeout", 120.0)?;
    positive_secs(timeout, "--timeout")?;
    check(timeout <= 7.0 * 86400.0, "--timeout must be at most a week")?;
    let proto: u8 = opt(args, "--proto", 5u8)?;
    check((1..=5).contains(&proto), "--proto must be 1..=5")?;
    let ver: String = opt(args, "--vcmi-version", "VCMI 1.4.5".to_string())?;
    check(
        !ver.contains('<') && !ver.is_empty(),
        "--vcmi-version must be non-empty without '<'",
    )?;
    Ok(Common {
        timeout,
        proto,
        vcmi_version: ver,
    })
}

pub(crate) fn resolve(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

pub(crate) fn parse_target(
    args: &mut pico_args::Arguments,
    proxy_only: bool,
) -> Result<Target, String> {
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

pub(crate) fn opt<T: std::str::FromStr>(
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

pub(crate) fn size_opt(
    args: &mut pico_args::Arguments,
    key: &'static str,
    default: u64,
) -> Result<u64, String> {
    Ok(args
        .opt_value_from_fn(key, stats::parse_size)
        .map_err(|e| e.to_string())?
        .unwrap_or(default))
}

pub(crate) fn sources_opt(
    args: &mut pico_args::Arguments,
) -> Result<Vec<std::net::IpAddr>, String> {
    let text: Option<String> = args
        .opt_value_from_str("--sources")
        .map_err(|e| e.to_string())?;
    text.map_or(Ok(Vec::new()), |t| net::parse_sources(&t))
}

pub(crate) fn same_family(sources: &[std::net::IpAddr], addr: SocketAddr) -> Result<(), String> {
    match sources.iter().find(|s| s.is_ipv4() != addr.is_ipv4()) {
        Some(s) => Err(format!(
            "--sources: {s} is not of the same address family as the server address {addr}"
        )),
        None => Ok(()),
    }
}

pub(crate) fn stall_opt(args: &mut pico_args::Arguments) -> Result<Duration, String> {
    let v: f64 = opt(args, "--stall", 10.0)?;
    positive_secs(v, "--stall")?;
    Ok(Duration::from_secs_f64(v.min(7.0 * 86400.0)))
}

pub(crate) fn check(cond: bool, msg: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg.to_string())
    }
}

pub(crate) fn positive_secs(v: f64, what: &str) -> Result<(), String> {
    check(
        v.is_finite() && v > 0.0,
        &format!("{what} must be a positive number of seconds"),
    )
}

/// A mode parsed from the command line, ready to run.
pub(crate) enum Job {
    Relay(Target, relay::RelayOpts),
    Ping(Target, relay::PingOpts),
    Lobby(SocketAddr, chat::LobbyOpts),
    Idle(SocketAddr, idle::IdleOpts),
    Storm(SocketAddr, storm::StormOpts),
    /// The VCMI 1.5+ JSON lobby modes (json_cli.rs).
    Json(json_cli::JsonJob),
}

pub(crate) fn parse(
    mode: &str,
    args: &mut pico_args::Arguments,
    timeout: f64,
) -> Result<Job, String> {
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
