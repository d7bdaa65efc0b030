//! What the lobby rules want done after a command: messages to clients, in
//! order, and connections to close. The rules never touch sockets; the event
//! loop turns an [`Outbox`] into queued bytes.

use super::ClientId;

/// Why the lobby asks for a connection to be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The room started; the launcher goes on with a game pipe (D8 fix:
    /// every member's lobby socket is closed, not only the actor's).
    Started,
    /// The reference dropped the connection here (e.g. a non-integer COUNT,
    /// D12); the lobby already did the disconnect cleanup.
    Dropped(String),
    /// Refused with an `:>>ERROR:` (full server); not registered any more.
    Refused(String),
}

/// A full list a client is owed in a large lobby (see [`super::LARGE_LOBBY`]):
/// the event loop sends the latest one, coalesced and rate-limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Users = 0,
    Sessions = 1,
}

/// A room that started: the relay needs its uuids to pair game pipes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedSession {
    pub name: String,
    pub host_uuid: String,
    pub client_uuids: Vec<String>,
}

/// Ordered effects of lobby commands. A message meant for many recipients is
/// stored once and referenced by each delivery, so a broadcast costs one
/// string (and, in the event loop, one encoded buffer) however many receive it.
#[derive(Debug, Default)]
pub struct Outbox {
    texts: Vec<String>,
    deliveries: Vec<(ClientId, u32)>,
    closes: Vec<(ClientId, CloseReason)>,
    started: Vec<StartedSession>,
    owed: Vec<(ClientId, List)>,
    /// Lists owed to every recipient of their kind (large lobbies): one flag
    /// per list instead of one entry per client, so a login costs O(1).
    owed_to_all: [bool; 2],
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, text: String) -> u32 {
        // D42 fix, in one place for every message: user text (chat, room
        // names, versions, mods, echoed values) may not form `:>>` anywhere
        // after the message's own prefix, including with the `:` that
        // precedes a field (`<MSG>>>START:x`).
        debug_assert!(text.starts_with(":>>"), "{text}");
        let text = match text.get(3..).and_then(super::messages::neutralise) {
            Some(body) => format!(":>>{body}"),
            None => text,
        };
        self.texts.push(text);
        (self.texts.len() - 1) as u32
    }

    /// One message to one client.
    pub fn send(&mut self, to: ClientId, text: String) {
        let i = self.intern(text);
        self.deliveries.push((to, i));
    }

    /// One message to many clients; stored once.
    pub fn broadcast(&mut self, to: impl IntoIterator<Item = ClientId>, text: String) {
        let mut to = to.into_iter().peekable();
        if to.peek().is_none() {
            return;
        }
        let i = self.intern(text);
        self.deliveries.extend(to.map(|c| (c, i)));
    }

    /// The latest `list` is owed to these clients (large lobbies only).
    pub fn owe(&mut self, to: impl IntoIterator<Item = ClientId>, list: List) {
        self.owed.extend(to.into_iter().map(|c| (c, list)));
    }

    pub fn owed(&self) -> &[(ClientId, List)] {
        &self.owed
    }

    /// The latest `list` is owed to every client that receives that list
    /// ([`super::Lobby::list_recipients`]); large lobbies only.
    pub fn owe_everyone(&mut self, list: List) {
        self.owed_to_all[list as usize] = true;
    }

    /// The lists owed to everyone by this call.
    pub fn owed_to_everyone(&self) -> impl Iterator<Item = List> + '_ {
        [List::Users, List::Sessions]
            .into_iter()
            .filter(|l| self.owed_to_all[*l as usize])
    }

    pub fn close(&mut self, id: ClientId, reason: CloseReason) {
        self.closes.push((id, reason));
    }

    pub fn started(&mut self, s: StartedSession) {
        self.started.push(s);
    }

    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
            && self.closes.is_empty()
            && self.started.is_empty()
            && self.owed.is_empty()
            && self.owed_to_all == [false; 2]
    }

    /// The message texts; deliveries index into this.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// `(recipient, text index)` in emission order.
    pub fn deliveries(&self) -> &[(ClientId, u32)] {
        &self.deliveries
    }

    pub fn closes(&self) -> &[(ClientId, CloseReason)] {
        &self.closes
    }

    pub fn take_started(&mut self) -> Vec<StartedSession> {
        std::mem::take(&mut self.started)
    }

    /// Everything one client received, in order (for tests).
    pub fn received_by(&self, id: ClientId) -> Vec<&str> {
        self.deliveries
            .iter()
            .filter(|(to, _)| *to == id)
            .map(|(_, i)| self.texts[*i as usize].as_str())
            .collect()
    }

    pub fn clear(&mut self) {
        self.texts.clear();
        self.deliveries.clear();
        self.closes.clear();
        self.started.clear();
        self.owed.clear();
        self.owed_to_all = [false; 2];
    }
}
