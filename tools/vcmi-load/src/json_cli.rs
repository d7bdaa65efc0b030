//! Command line of the JSON-lobby modes (`json-lobby`, `json-relay`, `json-pingpong`), next to
//! cli.rs (the other modes, and the option helpers used here).

use crate::cli::{
    check, opt, positive_secs, resolve, same_family, size_opt, sources_opt, stall_opt,
};
use crate::json_lobby::{self, JsonLobbyOpts};
use crate::json_relay::{self, JsonPingOpts, JsonRelayOpts, JsonTarget};
use crate::{Ctx, Report};

pub const MODES: [&str; 3] = ["json-lobby", "json-relay", "json-pingpong"];

pub enum JsonJob {
    Lobby(std::net::SocketAddr, JsonLobbyOpts),
    Relay(JsonTarget, JsonRelayOpts),
    Ping(JsonTarget, JsonPingOpts),
}

impl JsonJob {
    pub fn sources(&self) -> usize {
        match self {
            JsonJob::Lobby(_, o) => o.sources.len(),
            _ => 0,
        }
    }

    pub fn run(&self, ctx: &Ctx) -> Result<Report, String> {
        match self {
            JsonJob::Lobby(a, o) => json_lobby::run_json_lobby(*a, o, ctx),
            JsonJob::Relay(t, o) => json_relay::run_json_relay(*t, o, ctx),
            JsonJob::Ping(t, o) => json_relay::run_json_pingpong(*t, o, ctx),
        }
    }
}

fn target(args: &mut pico_args::Arguments, direct_ok: bool) -> Result<JsonTarget, String> {
    let direct = args.contains("--direct");
    let proxy: Option<String> = args
        .opt_value_from_str("--proxy")
        .map_err(|e| e.to_string())?;
    match (proxy, direct) {
        (Some(p), false) => Ok(JsonTarget::Proxy(resolve(&p)?)),
        (None, true) if direct_ok => Ok(JsonTarget::Direct),
        _ if direct_ok => Err("give exactly one of --proxy HOST:PORT, --direct".into()),
        _ => Err("this mode only works against a lobby: use --proxy HOST:PORT".into()),
    }
}

fn channel(args: &mut pico_args::Arguments) -> Result<String, String> {
    let c: String = opt(args, "--channel", "english".to_string())?;
    check(
        !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase()),
        "--channel must be a language identifier such as english",
    )?;
    Ok(c)
}

pub fn parse(mode: &str, args: &mut pico_args::Arguments, timeout: f64) -> Result<JsonJob, String> {
    Ok(match mode {
        "json-lobby" => {
            let JsonTarget::Proxy(addr) = target(args, false)? else {
                unreachable!("target(direct_ok = false) returns proxies only")
            };
            let o = JsonLobbyOpts {
                users: opt(args, "--users", 100usize)?,
                rate: opt(args, "--rate", 50.0f64)?,
                duration: opt(args, "--duration", 10.0f64)?,
                window: opt(args, "--window", 64usize)?,
                drain: opt(args, "--drain", 10.0f64)?,
                channel: channel(args)?,
                sources: sources_opt(args)?,
            };
            check(
                (1..=100_000).contains(&o.users),
                "--users must be 1..=100000",
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
            let msgs = o.rate * o.duration;
            check(
                msgs <= 10_000_000.0,
                "--rate x --duration must be at most 10M messages",
            )?;
            // one bit per (message, account) for exact loss/duplicate accounting
            check(
                msgs * o.users as f64 <= 8e9,
                "--rate x --duration x --users must be at most 8e9 (1 GB of delivery bitmaps)",
            )?;
            check(
                o.duration < timeout,
                "--duration must be shorter than --timeout (which bounds the whole run); raise --timeout",
            )?;
            JsonJob::Lobby(addr, o)
        }
        "json-relay" => {
            let t = target(args, true)?;
            let o = JsonRelayOpts {
                games: opt(args, "--games", 1usize)?,
                bytes: size_opt(args, "--bytes", 64 << 20)?,
                frame_size: size_opt(args, "--frame-size", 64 << 10)? as usize,
                seed: opt(args, "--seed", 1u64)?,
                parallel: opt(args, "--parallel", 8usize)?,
                stall: stall_opt(args)?,
                channel: channel(args)?,
            };
            check((1..=1000).contains(&o.games), "--games must be 1..=1000")?;
            check(o.bytes >= 1, "--bytes must be at least 1")?;
            check(
                (1..=crate::json_proto::MAX_FRAME).contains(&o.frame_size),
                "--frame-size must be 1..=64M (the lobby's frame limit)",
            )?;
            check(
                (1..=256).contains(&o.parallel),
                "--parallel must be 1..=256",
            )?;
            JsonJob::Relay(t, o)
        }
        "json-pingpong" => {
            let t = target(args, true)?;
            let o = JsonPingOpts {
                count: opt(args, "--count", 10_000usize)?,
                size: size_opt(args, "--size", 64)? as usize,
                warmup: opt(args, "--warmup", 100usize)?,
                seed: opt(args, "--seed", 1u64)?,
                stall: stall_opt(args)?,
                channel: channel(args)?,
            };
            check(
                (1..=100_000_000).contains(&o.count),
                "--count must be 1..=100000000",
            )?;
            check((1..=(16 << 20)).contains(&o.size), "--size must be 1..=16M")?;
            JsonJob::Ping(t, o)
        }
        other => return Err(format!("not a JSON mode: {other}")),
    })
}
