//! The server's replies in the `json-lobby` mode: the login reply sequence (LOBBY-JSON.md §1.5
//! item 2) checked step by step, registrations, refusals, and chat deliveries counted against
//! the probes that were sent.

use std::time::Instant;

use super::driver::{Driver, St};
use crate::json_checks::{lists_account, probe_of, LoginSeq};
use crate::json_proto::{self as jp, Msg};

impl Driver<'_> {
    /// One reply to a pending clientLogin: checked against the sequence of §1.5 item 2. An
    /// out-of-order reply is reported (`login_order` error) but does not fail the login.
    fn login_reply(&mut self, i: usize, m: &Msg) {
        let step = self.users[i].login;
        if step == LoginSeq::WantHistory && m.str("channelName") != Some(&self.opts.channel) {
            let text = format!(
                "{}: chatHistory for {:?}, not the requested channel",
                self.name(i),
                m.str("channelName")
            );
            self.note_error("login_order", text);
        }
        if step == LoginSeq::WantAccounts && m.kind == "activeAccounts" {
            let me = self.users[i].account.as_ref().map_or("", |a| a.id.as_str());
            if !lists_account(m, me) {
                let text = format!(
                    "{}: the activeAccounts of its own login does not list it",
                    self.name(i)
                );
                self.note_error("presence", text);
            }
        }
        let next = match step.next(&m.kind) {
            Ok(n) => n,
            Err(e) => {
                self.note_error("login_order", format!("{}: {e}", self.name(i)));
                // resynchronise on the last reply so the run goes on
                if m.kind != "matchesHistory" {
                    return;
                }
                LoginSeq::Done
            }
        };
        self.users[i].login = next;
        if next == LoginSeq::Done {
            self.users[i].st = St::LoggedIn;
            self.login_lat
                .push(self.users[i].asked.elapsed().as_micros() as u64);
            self.login_ok += 1;
            self.in_flight -= 1;
            self.last_done = Some(Instant::now());
        }
    }

    pub(super) fn handle(&mut self, i: usize, payload: &[u8]) {
        let st = self.users[i].st;
        // Broadcasts this mode does not need are recognised without a full parse (§1.5 item 2:
        // every login sends the whole activeAccounts list to everyone). During its own login a
        // user checks them, to verify the reply sequence.
        if st != St::LoggingIn {
            if let Some("activeAccounts" | "activeGameRooms" | "chatHistory") =
                jp::sniff_type(payload)
            {
                return;
            }
        }
        let m = match Msg::parse(payload) {
            Ok(m) => m,
            Err(e) => return self.fail(i, "protocol_error", e),
        };
        if let Some(f) = m.failure() {
            if st == St::LoggedIn {
                // a refused chat message: counted as loss, the user stays
                self.refused += 1;
                return self.note_error("operation_failed", format!("{}: {f}", self.name(i)));
            }
            return self.fail(i, "operation_failed", f);
        }
        if st == St::LoggingIn {
            return self.login_reply(i, &m);
        }
        match (st, m.kind.as_str()) {
            (St::Registering, "accountCreated") => match m.account() {
                Ok(a) => {
                    self.users[i].account = Some(a);
                    self.users[i].st = St::Registered;
                    self.reg_lat
                        .push(self.users[i].asked.elapsed().as_micros() as u64);
                    self.reg_ok += 1;
                    self.in_flight -= 1;
                    self.last_done = Some(Instant::now());
                    if let Some(c) = self.users[i].conn.take() {
                        c.close(self.poll.registry());
                    }
                }
                Err(e) => self.fail(i, "protocol_error", e),
            },
            (St::LoggedIn, "chatMessage") => {
                let Some((seq, ts)) = probe_of(&m, &self.ctx.run_id, &self.opts.channel) else {
                    return;
                };
                if let Some(r) = self.receiver_of[i] {
                    let before = self.tally.received;
                    self.tally.record(r, seq, self.sent as u64);
                    if self.tally.received > before {
                        let now = self.ctx.started.elapsed().as_micros() as u64;
                        self.hist.record(now.saturating_sub(ts));
                    }
                }
            }
            _ => {}
        }
    }
}
