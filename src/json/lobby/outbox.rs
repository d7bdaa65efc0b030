//! What the JSON lobby rules want done after an event: payloads to send,
//! connections to close, proxy halves to pair. The server glue frames each
//! payload (4-byte LE size + payload, §1.1) and applies the actions in order.

use super::ConnId;
use crate::json::writer;
use bytes::Bytes;
use serde::Serialize;

/// Why the rules close a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// An unauthenticated connection sent an invalid frame or a type it may
    /// not send before login (§1.2, §1.3).
    Unauthenticated,
    /// The account logged in on another connection (§1.9).
    Evicted,
    /// clientProxyLogin without a matching serverProxyLogin (§1.5 item 7).
    ProxyLoginFailed,
    /// The other half of a proxy pair is gone (§1.10 teardown).
    ProxyPeerGone,
    /// The account's name is banned (`--ban-file`, `name:` entries).
    Banned,
}

/// One effect, in emission order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// One JSON payload for one connection. A broadcast pushes one `Send`
    /// per recipient, all sharing the same `Bytes`.
    Send { to: ConnId, payload: Bytes },
    /// Flush what is queued for `conn` (best effort), then close it. The
    /// glue still calls `on_disconnect` for it afterwards, as for any close.
    Close { conn: ConnId, reason: CloseReason },
    /// Proxy mode (§1.10): from now on the glue forwards every non-empty
    /// frame between `server` (the match server's serverProxyLogin
    /// connection) and `client` (the guest's clientProxyLogin connection)
    /// and never gives their frames to the rules again. Frames the guest
    /// sent right after clientProxyLogin belong to the pair already.
    Pair { server: ConnId, client: ConnId },
}

/// Ordered actions produced by one call into the rules.
#[derive(Debug, Default)]
pub struct JsonOutbox {
    actions: Vec<Action>,
}

impl JsonOutbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// One message to one connection.
    pub fn send<T: Serialize + ?Sized>(&mut self, to: ConnId, msg: &T) {
        let payload = writer::to_payload(msg);
        self.actions.push(Action::Send { to, payload });
    }

    /// One message to many connections, serialized once. Nothing is
    /// serialized when there is no recipient.
    pub fn broadcast<T: Serialize + ?Sized>(
        &mut self,
        to: impl IntoIterator<Item = ConnId>,
        msg: &T,
    ) {
        let mut to = to.into_iter().peekable();
        if to.peek().is_none() {
            return;
        }
        let payload = writer::to_payload(msg);
        self.send_shared(to, &payload);
    }

    /// An already written payload to many connections.
    pub fn send_shared(&mut self, to: impl IntoIterator<Item = ConnId>, payload: &Bytes) {
        self.actions.extend(to.into_iter().map(|to| Action::Send {
            to,
            payload: payload.clone(),
        }));
    }

    pub fn close(&mut self, conn: ConnId, reason: CloseReason) {
        self.actions.push(Action::Close { conn, reason });
    }

    pub fn pair(&mut self, server: ConnId, client: ConnId) {
        self.actions.push(Action::Pair { server, client });
    }

    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Takes the actions out, leaving the outbox empty for reuse.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.actions.drain(..)
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    pub fn clear(&mut self) {
        self.actions.clear();
    }
}
