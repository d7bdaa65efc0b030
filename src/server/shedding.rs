//! The memory budget's glue (`crate::budget` holds the account and the
//! policy): what each connection holds, re-charging it, and dropping the
//! largest holders when the total passes `--memory-budget`.
//!
//! Charges are refreshed for every connection flushed at the end of a loop
//! turn (every connection whose buffers changed is marked dirty) and right
//! after each read of a framed connection, so a flood of partial frames is
//! caught read by read, not one loop turn (up to 1024 events) later.

use super::*;
use crate::budget::{victims, Holder, HolderKind};

/// Bytes a peer makes this connection hold. A new kind adds its buffers
/// here (the match is exhaustive on purpose).
pub(super) fn held(c: &Conn) -> usize {
    let common = c.decoder.allocated() + c.out.len() + c.relay_out.allocated();
    let own = match &c.state {
        State::Pipe(p) => p.pending.allocated() + p.echo.capacity(),
        State::Admin(a) => a.request.capacity(),
        // a JSON peer's buffers (decoder, output, relay) are the common ones
        State::New
        | State::Lobby(_)
        | State::PipeHandshake(_)
        | State::Json(_)
        | State::Closing => 0,
    };
    common + own
}

/// Where the connection stands in the shedding order.
pub(super) fn holder_kind(c: &Conn) -> HolderKind {
    match &c.state {
        State::Pipe(p) if p.peer.is_some() => HolderKind::PairedRelay,
        State::Json(j) if j.relay.is_some() => HolderKind::PairedRelay,
        _ => HolderKind::Plain,
    }
}

impl Server {
    /// Brings the budget's record of `key` up to date.
    pub(super) fn recharge(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            let now = held(c);
            self.budget.set(&mut c.charged, now);
        }
    }

    /// Drops the largest holders while the budget is exceeded, down to its
    /// low-water mark. Each drop is logged and counted.
    pub(super) fn shed_over_budget(&mut self) {
        let excess = self.budget.excess();
        if excess == 0 {
            return;
        }
        let holders: Vec<Holder> = self
            .conns
            .iter()
            .map(|(key, c)| Holder {
                key,
                held: c.charged.bytes(),
                kind: holder_kind(c),
            })
            .collect();
        let (total, limit) = (self.budget.total(), self.budget.limit());
        for v in victims(holders, excess) {
            let Some(c) = self.conns.get(v.key) else {
                continue;
            };
            self.budget.sheds += 1;
            log::warn!(
                "[!] {} shed: memory budget exceeded ({total} of {limit} bytes held by peers), \
                 it held {} bytes",
                c.addr,
                v.held
            );
            self.close(
                v.key,
                format!("memory budget exceeded: held {} bytes", v.held),
            );
        }
    }
}
