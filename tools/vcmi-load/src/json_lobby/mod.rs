//! `json-lobby` mode: U accounts register and log in to a VCMI 1.5+ JSON lobby, then chat at M
//! messages/s (aggregate) on one global channel; reports registration and login rates, delivery
//! latency, loss and duplicates. One mio thread drives every connection.
//!
//! LIFECYCLE of a user: Idle → Registering (connect, clientRegister, wait accountCreated, close)
//! → Registered → LoggingIn (new connection, clientLogin, wait clientLoginSuccess … matchesHistory,
//! LOBBY-JSON.md §1.5 item 2) → LoggedIn (chats, receives every global message of the channel,
//! its own included) ; any error or close → Failed. Registration and login are separate phases so
//! the login rate is not mixed with registration.
//!
//! Flood control: the reference has none (§1.7); vcmi-proxy drops (silently) a client's chat
//! beyond `--flood-rate` per second (default 5, burst `--flood-burst` 10), which shows up here as
//! loss. Keep M/U under the limit or start the server with `--flood-rate 0`.

mod driver;
mod replies;
mod report;

use crate::json_proto as jp;
use crate::{set_phase, Ctx, Report};
use driver::Driver;

pub struct JsonLobbyOpts {
    pub users: usize,
    pub rate: f64,
    pub duration: f64,
    pub window: usize,
    pub drain: f64,
    pub channel: String,
    pub sources: Vec<std::net::IpAddr>,
}

pub fn run_json_lobby(
    addr: std::net::SocketAddr,
    opts: &JsonLobbyOpts,
    ctx: &Ctx,
) -> Result<Report, String> {
    let longest = jp::account_name(&ctx.run_id, 'u', opts.users.saturating_sub(1));
    if !jp::valid_account_name(&longest) {
        return Err(format!(
            "generated account name {longest:?} breaks the lobby's name rules"
        ));
    }
    crate::limits::check_nofile(opts.users);
    let per_user = opts.rate / opts.users as f64;
    if per_user > 5.0 {
        eprintln!(
            "vcmi-load: note: {per_user:.1} messages/s per account; vcmi-proxy drops JSON chat beyond \
             --flood-rate (default 5/s) per client - use more --users or start it with --flood-rate 0"
        );
    }
    let mut d = Driver::new(addr, opts, ctx)?;
    set_phase("json-lobby: registering");
    d.run()?;
    Ok(d.report())
}
