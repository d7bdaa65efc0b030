//! `storm` mode: a login storm against a running server, priced in the server's own CPU time.
//! N users log in (`--window` at a time) and each is held until it has seen the final `USERS`
//! list naming all N; the server's user+system CPU time is read from `/proc/PID/stat` before and
//! after (`--server-pid`), so the report says what one login cost the server, and how the bytes
//! it sent compare with the protocol's own minimum (every user receives the full list once).

use std::net::SocketAddr;
use std::time::Instant;

use crate::idle::{run_idle, IdleOpts};
use crate::{set_phase, Ctx, Report};

pub struct StormOpts {
    pub users: usize,
    pub window: usize,
    pub server_pid: u32,
    pub sources: Vec<std::net::IpAddr>,
}

/// Linux reports `/proc/PID/stat` times in USER_HZ ticks, 100 per second on every architecture
/// the kernel exposes to user space (`sysconf(_SC_CLK_TCK)`).
const TICKS_PER_SECOND: f64 = 100.0;

/// The process's user + system CPU seconds so far.
fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // the command name (field 2) may hold spaces: fields are counted after its `)`
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{path}: no command field"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the command name
    let tick = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| t as f64)
            .ok_or_else(|| format!("{path}: field {} unreadable", i + 3))
    };
    Ok((tick(11)? + tick(12)?) / TICKS_PER_SECOND)
}

/// The bytes of the final `:>>USERS:N:name…` list as the tool names its users (`vl{run}i{i}`).
fn final_list_bytes(users: usize, run_id: &str) -> u64 {
    let names: u64 = (0..users)
        .map(|i| format!(":vl{run_id}i{i}").len() as u64)
        .sum();
    format!(":>>USERS:{users}").len() as u64 + names
}

pub fn run_storm(addr: SocketAddr, opts: &StormOpts, ctx: &Ctx) -> Result<Report, String> {
    let cpu0 = cpu_seconds(opts.server_pid)?;
    set_phase("storm: logging in");
    let t0 = Instant::now();
    let idle = IdleOpts {
        conns: opts.users,
        hold: 0.0,
        window: opts.window,
        sources: opts.sources.clone(),
        until_full_list: true,
    };
    let mut report = run_idle(addr, &idle, ctx)?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(opts.server_pid)? - cpu0;
    let list = final_list_bytes(opts.users, &ctx.run_id);
    let bytes = serde_json::from_str::<serde_json::Value>(&report.json.render())
        .ok()
        .and_then(|v| v.get("bytes_received").and_then(|b| b.as_u64()))
        .unwrap_or(0);
    report
        .json
        .uint("server_pid", opts.server_pid as u64)
        .float("server_cpu_seconds", cpu, 2)
        .float("server_cpu_us_per_login", cpu * 1e6 / opts.users as f64, 1)
        .float("storm_wall_seconds", wall, 3)
        .uint("final_list_bytes", list)
        .float(
            "bytes_per_n_final_list",
            bytes as f64 / (opts.users as f64 * list as f64),
            3,
        );
    Ok(report)
}
