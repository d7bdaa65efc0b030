//! The one JSON result of a `lobby` run: delivery accounting (lost, duplicates), timings per
//! phase, errors, and hints for the server limits a load test usually runs into.

use super::driver::{Driver, End};
use crate::json::Obj;
use crate::Report;

/// Operator hints for the usual server-side limits a load test runs into (vcmi-proxy names).
pub const HINT_LOGIN: &str = "connections were refused or closed before login: check the server's \
     per-IP, total-connection and lobby-capacity limits (vcmi-proxy --max-per-ip, --max-connections, \
     --capacity)";
pub const HINT_DROPPED: &str = "logged-in users were disconnected by the server: every login/logout \
     sends the full USERS list to every protocol>=4 user and every room change sends SESSIONS to all, so \
     output grows quadratically; the server may drop them as slow consumers (vcmi-proxy --max-output); \
     try a smaller --window, --proto 3 (no USERS lists) or fewer users";
pub const HINT_FLOOD: &str = "messages were lost: the server may rate-limit chat per user \
     (vcmi-proxy --flood-rate/--flood-burst); use more --users or a lower --rate";

impl Driver<'_> {
    pub(super) fn report(&self, nofile: Option<u64>) -> Report {
        let (w, opts) = (&self.sim.w, self.opts);
        let receivers = self.receivers as u64;
        let expected = self.sent as u64 * receivers;
        // Per message: at most `receivers` deliveries count, the rest are duplicates.
        let mut unique = 0u64;
        let mut duplicates = 0u64;
        let mut incomplete_msgs = 0u64;
        for &c in &w.seq_counts {
            let c = u64::from(c);
            unique += c.min(receivers);
            duplicates += c.saturating_sub(receivers);
            if c != receivers {
                incomplete_msgs += 1;
            }
        }
        let lost = expected - unique.min(expected);
        let short_users = self
            .senders
            .iter()
            .filter(|&&u| self.sim.users[u].info.recv != self.sent as u64)
            .count() as u64;

        let mut o = Obj::new();
        o.str("target", "proxy")
            .str("proxy", &self.addr.to_string());
        o.uint("users", opts.users as u64)
            .uint("rooms", opts.rooms as u64)
            .uint("room_size", self.room_size as u64)
            .float("rate", opts.rate, 1)
            .float("duration", opts.duration, 1)
            .uint("proto", u64::from(self.ctx.proto));
        let mut logins = Obj::new();
        logins
            .uint("connected", w.connected as u64)
            .uint("ok", w.login_ok as u64)
            .uint("failed", w.login_failed as u64)
            .uint("not_attempted", (opts.users - self.next_open) as u64)
            .float("seconds", self.login_secs, 3)
            .float("per_s", w.login_ok as f64 / self.login_secs, 1);
        o.obj("logins", &logins);
        match nofile {
            Some(n) => o.uint("nofile_soft_limit", n),
            None => o.null("nofile_soft_limit"),
        };
        let mut rooms = Obj::new();
        rooms
            .uint("used", w.rooms.len() as u64)
            .uint("created", w.rooms_created as u64)
            .uint("joins", w.joins_ok as u64)
            .uint("errors", w.room_errors as u64)
            .float("seconds", self.rooms_secs, 3);
        o.obj("room_setup", &rooms);
        let achieved = if self.chat_send_secs > 0.0 {
            self.sent as f64 / self.chat_send_secs
        } else {
            f64::NAN
        };
        o.uint("messages_sent", self.sent as u64)
            .float("send_seconds", self.chat_send_secs, 3)
            .float("send_rate_achieved", achieved, 1)
            .uint("receivers", receivers)
            .uint("deliveries_expected", expected)
            .uint("deliveries_received", w.received)
            .uint("lost", lost)
            .uint("duplicates", duplicates)
            .uint("messages_incomplete", incomplete_msgs)
            .uint("users_incomplete", short_users)
            .uint("users_dropped", w.dropped as u64)
            .uint("users_dropped_in_chat", w.dropped_in_chat as u64);
        let zero_loss = self.end == Some(End::Done)
            && lost == 0
            && duplicates == 0
            && self.sent == self.total_msgs;
        o.bool("zero_loss", zero_loss);
        o.obj("latency_us", &w.hist.summary());
        if !w.errors.is_empty() {
            let mut e = Obj::new();
            for (k, v) in &w.errors {
                e.uint(k, *v);
            }
            o.obj("errors", &e);
        }
        let err = match self.end {
            Some(End::TimedOut) => Some(format!(
                "global --timeout expired during the {} phase",
                w.phase.name()
            )),
            Some(End::NoLogins) => Some(
                w.first_error
                    .clone()
                    .unwrap_or_else(|| "no user could log in".to_string()),
            ),
            Some(End::NoChat) => Some(format!(
                "every logged-in user was disconnected before the chat phase (first cause: {})",
                w.first_error.as_deref().unwrap_or("unknown")
            )),
            _ => w.first_error.clone(),
        };
        if let Some(e) = &err {
            o.str("error", e);
        }
        let mut hints = Vec::new();
        if w.login_failed > 0 {
            hints.push(HINT_LOGIN);
        }
        if w.dropped > 0 {
            hints.push(HINT_DROPPED);
        }
        if lost > 0 && opts.rate / opts.users as f64 > 1.0 {
            hints.push(HINT_FLOOD);
        }
        if !hints.is_empty() {
            o.str("hint", &hints.join("; "));
        }
        let ok = zero_loss
            && w.login_failed == 0
            && self.next_open == opts.users
            && w.room_errors == 0
            && w.errors.is_empty();
        Report { json: o, ok }
    }
}
