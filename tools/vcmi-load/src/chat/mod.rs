//! `lobby` mode: many logged-in users, rooms, and timed chat traffic with end-to-end delivery
//! accounting, all on one mio thread so thousands of users cost only sockets.
//!
//! Every user stays in the default `global` chat channel (no `<CHANNEL>` is sent), so by §6.3
//! every logged-in user must receive every message, including its own. That makes the zero-loss
//! check exact: deliveries expected = messages sent × users logged in at the start of the chat.

mod driver;
mod report;
mod world;

use crate::{set_phase, Ctx, Report};
use driver::Driver;
use world::Sim;

pub use report::{HINT_DROPPED, HINT_LOGIN};

pub struct LobbyOpts {
    pub users: usize,
    pub rooms: usize,
    pub rate: f64,
    pub duration: f64,
    pub window: usize,
    pub drain: f64,
    /// Source addresses used round-robin; empty: the kernel's choice.
    pub sources: Vec<std::net::IpAddr>,
}

pub fn run_lobby(
    addr: std::net::SocketAddr,
    opts: &LobbyOpts,
    ctx: &Ctx,
) -> Result<Report, String> {
    let sim = Sim::new(opts.users, ctx);
    let nofile = crate::limits::check_nofile(opts.users);
    let per_user = opts.rate / opts.users as f64;
    if per_user > 5.0 {
        eprintln!(
            "vcmi-load: note: {per_user:.1} messages/s per user; servers with a chat flood limit \
             (vcmi-proxy --flood-rate, default 5/s) will refuse some of them - use more --users"
        );
    }
    let mut d = Driver::new(addr, opts, ctx, sim)?;
    set_phase("lobby: logging in");
    d.run()?;
    Ok(d.report(nofile))
}
