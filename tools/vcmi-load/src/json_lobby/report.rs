//! The one JSON result of a `json-lobby` run: registration and login rates and latencies,
//! delivery accounting (lost, duplicates, unknown probes, refusals), errors and the flood hint.

use super::driver::Driver;
use crate::json::Obj;
use crate::stats;
use crate::Report;

impl Driver<'_> {
    pub(super) fn report(&mut self) -> Report {
        let users = self.users.len() as u64;
        let mut o = Obj::new();
        o.str("target", "proxy")
            .str("proxy", &self.addr.to_string())
            .uint("users", users)
            .str("channel", &self.opts.channel)
            .float("rate", self.opts.rate, 1)
            .float("duration", self.opts.duration, 1);
        let mut reg = Obj::new();
        reg.uint("ok", self.reg_ok as u64)
            .float("seconds", self.reg_secs, 3)
            .float("per_s", self.reg_ok as f64 / self.reg_secs, 1)
            .obj("latency_us", &stats::summarize_exact(&mut self.reg_lat));
        o.obj("registrations", &reg);
        let mut logins = Obj::new();
        logins
            .uint("ok", self.login_ok as u64)
            .float("seconds", self.login_secs, 3)
            .float("per_s", self.login_ok as f64 / self.login_secs, 1)
            .obj("latency_us", &stats::summarize_exact(&mut self.login_lat));
        o.obj("logins", &logins);
        let sent = self.sent as u64;
        let lost = self.tally.lost(sent);
        o.uint("users_failed", self.failed as u64)
            .uint("messages_sent", sent)
            .float("send_seconds", self.chat_send_secs, 3)
            .float("send_rate_achieved", sent as f64 / self.chat_send_secs, 1)
            .uint("receivers", self.receivers.len() as u64)
            .uint("deliveries_expected", sent * self.receivers.len() as u64)
            .uint("deliveries_received", self.tally.received)
            .uint("lost", lost)
            .uint("duplicates", self.tally.duplicates)
            .uint("unknown_probes", self.tally.unknown)
            .uint("refused", self.refused)
            .uint("receivers_incomplete", self.tally.receivers_short(sent))
            .uint("users_dropped_in_chat", self.dropped_in_chat as u64)
            .uint("heartbeats_received", self.heartbeats)
            .obj("latency_us", &self.hist.summary());
        let zero_loss = !self.timed_out
            && sent == self.total_msgs as u64
            && lost == 0
            && self.tally.duplicates == 0
            && self.tally.unknown == 0;
        o.bool("zero_loss", zero_loss);
        if !self.errors.is_empty() {
            let mut e = Obj::new();
            for (k, v) in &self.errors {
                e.uint(k, *v);
            }
            o.obj("errors", &e);
        }
        let err = if self.timed_out {
            Some(format!(
                "global --timeout expired during the {:?} phase",
                self.phase
            ))
        } else {
            self.first_error.clone()
        };
        if let Some(e) = &err {
            o.str("error", e);
        }
        if lost > 0 && self.opts.rate / users as f64 > 5.0 {
            o.str(
                "hint",
                "messages were lost: vcmi-proxy rate-limits JSON chat per client \
                (--flood-rate, default 5/s, burst --flood-burst 10) and drops the excess silently; \
                use more --users, a lower --rate, or start the server with --flood-rate 0",
            );
        }
        let ok = zero_loss
            && self.failed == 0
            && self.errors.is_empty()
            && self.login_ok == self.users.len();
        Report { json: o, ok }
    }
}
