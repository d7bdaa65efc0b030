//! vcmi-load: client-side load generator for a vcmi-proxy deployment (or any VCMI lobby proxy).
//!
//! Modes: `relay` (bulk pipe throughput with byte-exact verification), `pingpong` (pipe round-trip
//! latency), `lobby` (logins, rooms and chat delivery latency/loss), `idle` (many held lobby
//! connections), and for the VCMI 1.5+ JSON lobby `json-lobby`, `json-relay`, `json-pingpong`
//! (json_cli.rs and the json_* files). Every mode prints exactly one JSON line on stdout (also on
//! failure, with `"ok":false`), writes progress to stderr, is bounded by `--timeout`, and only
//! ever connects to the address given on the command line.
//!
//! Layout: this file holds what every mode shares (`Ctx`, `Target`, `Report`, the phase shown on
//! timeout, the one result line) and `main`; cli.rs parses the command line into a `Job`;
//! errors.rs names I/O errors, limits.rs handles the open-file limit; chat/ is the `lobby` mode,
//! relay.rs/setup.rs the pipe modes, idle.rs, storm.rs, and json_* the JSON-lobby modes.

mod chat;
mod cli;
mod errors;
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
mod limits;
mod mioconn;
mod net;
mod proto;
mod relay;
mod setup;
mod stats;
mod storm;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cli::{Common, Job, HELP};
use json::Obj;

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

    let Common {
        timeout,
        proto,
        vcmi_version,
    } = cli::parse_common(&mut args).unwrap_or_else(|e| usage_fail(&base, e));
    let job = cli::parse(&mode, &mut args, timeout).unwrap_or_else(|e| usage_fail(&base, e));
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
    match limits::raise_nofile() {
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
    fn run_ids_are_valid_names() {
        let id = run_id();
        assert!(!id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()));
        // user and room names built from it satisfy the lobby rules (§8.1, §8.2)
        let user = format!("vl{id}u0");
        assert!(user.len() >= 3 && user.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(!format!("vl-{id}-r0").contains(':'));
    }
}
