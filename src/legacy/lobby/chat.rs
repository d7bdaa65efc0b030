//! Talking: MSG (§6.3), `@name` direct messages, CHANNEL (§6.10), HERE
//! (§6.15) and the operators' ROOT (§6.16).

use super::clients::Channel;
use super::{ClientId, Flow, Lobby, Outbox, ServerCounters};
use std::time::Instant;

impl Lobby {
    pub(super) fn chat(&mut self, id: ClientId, text: &str, out: &mut Outbox) -> Flow {
        if let Some(rest) = text.strip_prefix('@') {
            let (target, body) = rest.split_once(' ').unwrap_or((rest, ""));
            if !target.is_empty() {
                return self.direct_message(id, target, body, out);
            }
        }
        let Some(ch) = self.clients.get(id).map(|c| c.channel) else {
            return Flow::Gone;
        };
        let to: Vec<ClientId> = match (ch, self.member_room(id)) {
            (Channel::Global, _) => self.clients.authed().map(|(i, _)| i).collect(),
            (Channel::Room, Some(key)) => self
                .rooms
                .get(key)
                .map_or_else(Vec::new, |room| room.players().collect()),
            // D22, replicated: outside a room the room channel reaches every
            // client in the room channel, whatever room they are in.
            (Channel::Room, None) => self
                .clients
                .authed()
                .filter(|(_, c)| c.channel == Channel::Room)
                .map(|(i, _)| i)
                .collect(),
        };
        self.send_chat(id, &to, |_| ch, text, out);
        Flow::Continue
    }

    /// Delivers a chat line in each recipient's own format (D3 fix):
    /// `MSGCH:user:channel:text` to clients with channels, `MSG:user:text`
    /// to older ones.
    fn send_chat(
        &self,
        from: ClientId,
        to: &[ClientId],
        channel_for: impl Fn(ClientId) -> Channel,
        text: &str,
        out: &mut Outbox,
    ) {
        let user = self.clients.name(from);
        let (new, old): (Vec<ClientId>, Vec<ClientId>) = to
            .iter()
            .partition(|i| self.clients.protocol(**i).is_some_and(|p| p.has_channels()));
        out.broadcast(old, format!(":>>MSG:{user}:{text}"));
        // group channel-aware recipients by channel so each line is built once
        for ch in [Channel::Global, Channel::Room] {
            let group: Vec<ClientId> = new
                .iter()
                .copied()
                .filter(|i| channel_for(*i) == ch)
                .collect();
            out.broadcast(group, format!(":>>MSGCH:{user}:{}:{text}", ch.as_str()));
        }
    }

    /// `@name text` (the 0.3.4–0.5.8 feature the seed README documents):
    /// only `name` and the sender see it; `@all` reaches everybody. Unlike the
    /// reference (D23) a message to oneself arrives once and an unknown name
    /// is an error to the sender rather than a public broadcast. Recipients
    /// with channels get it in the channel they are looking at, so it shows
    /// up in the 1.4 launcher's visible pane.
    fn direct_message(&mut self, id: ClientId, target: &str, body: &str, out: &mut Outbox) -> Flow {
        if target == "all" {
            let to: Vec<_> = self.clients.authed().map(|(i, _)| i).collect();
            self.send_chat(id, &to, |_| Channel::Global, body, out);
            return Flow::Continue;
        }
        let Some(peer) = self.clients.by_name(target) else {
            out.send(
                id,
                format!(":>>ERROR:User {target} is not in the lobby, message not sent"),
            );
            return Flow::Continue;
        };
        let to: Vec<ClientId> = if peer == id { vec![id] } else { vec![peer, id] };
        let own = |i: ClientId| self.clients.get(i).map_or(Channel::Global, |c| c.channel);
        self.send_chat(id, &to, own, body, out);
        Flow::Continue
    }

    pub(super) fn channel(&mut self, id: ClientId, value: &str, out: &mut Outbox) -> Flow {
        let ch = match value {
            "global" => Channel::Global,
            "room" => Channel::Room,
            _ => {
                // D4: the reference answers with NEW's text; replicated.
                out.send(
                    id,
                    format!(
                        ":>>ERROR:Cannot create session with name {}, session with this name already exists",
                        value
                    ),
                );
                return Flow::Abort;
            }
        };
        let Some(c) = self.clients.get_mut(id) else {
            return Flow::Gone;
        };
        if c.channel == ch {
            return Flow::Abort;
        }
        c.channel = ch;
        out.send(id, format!(":>>CHANNEL:{value}"));
        Flow::Continue
    }

    /// Who is here: USERS to a client that understands it, else a chat
    /// message listing the logged-in users in the asker's channel.
    pub(super) fn here(&mut self, id: ClientId, out: &mut Outbox) -> Flow {
        let Some(c) = self.clients.get(id) else {
            return Flow::Gone;
        };
        if c.protocol().gets_user_list() {
            // coalesced in a large lobby: HERE in a loop must not build and
            // queue the whole list each time
            self.send_list(vec![id], super::List::Users, out);
            return Flow::Continue;
        }
        let ch = c.channel;
        let mut m = String::from(":>>MSG:System:People in lobby");
        for (_, o) in self.clients.authed() {
            if o.channel != ch {
                continue;
            }
            m.push('\n');
            m.push_str(o.name());
            if o.joined {
                m.push_str("[room ");
                m.push_str(&o.room);
                m.push(']');
            }
        }
        out.send(id, m);
        Flow::Continue
    }

    /// One statistic as a chat line. Connection counts are the server's,
    /// handed in as `counters`; the rest the lobby keeps.
    pub(super) fn root(
        &mut self,
        id: ClientId,
        key: &str,
        now: Instant,
        counters: &ServerCounters,
        out: &mut Outbox,
    ) -> Flow {
        let s = &self.stats;
        let value = match key {
            "uniques" => counters.uniques,
            "users" => s.users.len() as u64,
            "logins" => counters.logins,
            // D5: never counted since the reference's rework; replicated.
            "clients" | "connections" => 0,
            "rooms" => s.rooms,
            "sessions" => s.sessions,
            _ => return Flow::Continue,
        };
        if self.may_log(id, now) {
            log::warn!("[!] ROOT {key} asked by {}", self.clients.name(id));
        }
        out.send(id, format!(":>>MSG:System:{value}"));
        Flow::Continue
    }
}
