//! What the event loop keeps per legacy lobby connection, beside the lobby
//! rules' own record of the client: its encoding, the healthcheck and the
//! coalesced list refreshes of a large lobby.
//!
//! LIFECYCLE (the connection's side; the client's own states, unauthenticated
//! → logged in → in room → started, are the lobby rules')
//! ```text
//!   first frame is a valid header ──▶ LobbyConn ──START / refusal / error / EOF──▶ Closing
//!        not logged in `--login-timeout` after the header: closed (the
//!        healthcheck only starts once it is logged in)
//!        every frame: last_seen = now, health_sent = false
//!        silent for the period: health_sent = true (`:>>HEALTH:` queued)
//!        silent for twice the period with health_sent: closed
//! ```

use crate::legacy::charset::Charset;
use std::time::Instant;

#[derive(Debug)]
pub struct LobbyConn {
    pub charset: Charset,
    /// Last inbound frame, for the healthcheck.
    pub last_seen: Instant,
    /// `:>>HEALTH:` sent and not answered yet.
    pub health_sent: bool,
    /// Large-lobby list refreshes owed to this client (coalesced).
    pub owe_users: bool,
    pub owe_sessions: bool,
    /// A refresh timer is pending for this client (its output was busy).
    pub refresh_timer: bool,
}

impl LobbyConn {
    pub fn new(charset: Charset, now: Instant) -> Self {
        LobbyConn {
            charset,
            last_seen: now,
            health_sent: false,
            owe_users: false,
            owe_sessions: false,
            refresh_timer: false,
        }
    }
}
