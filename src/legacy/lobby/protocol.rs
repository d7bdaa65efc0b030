//! The launcher's lobby protocol version (header byte 0, PROTOCOL.md §5,
//! §6.19, §14.1) and what each version understands.
//!
//! | version | launchers                 | adds                                   |
//! |---------|---------------------------|----------------------------------------|
//! | 1       | dev builds 2022-10/11     | lobby basics                           |
//! | 2       | dev builds 2022-11        | MODS                                   |
//! | 3       | VCMI 1.1                  | READY toggle, KICK, MODSOTHER          |
//! | 4       | VCMI 1.2 – 1.3            | USERS, HEALTH/ALIVE, GAMEMODE/HOSTMODE |
//! | 5       | VCMI 1.4                  | chat channels: CHANNEL, MSGCH          |
//!
//! The rules ask a [`Protocol`] what its client understands by name, never
//! by comparing numbers. Any byte is kept as it came: the header parser only
//! lets 1..=5 through, and a version outside that range simply answers like
//! the nearest one (0 like 1, 6+ like 5), as the reference's comparisons did.

/// One lobby client's protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Protocol(u8);

impl Protocol {
    pub const fn new(version: u8) -> Self {
        Protocol(version)
    }

    /// The version byte as the client sent it.
    pub const fn version(self) -> u8 {
        self.0
    }

    /// Knows MODSOTHER: a host of version 3+ is told which mods each joiner
    /// has (VCMI 1.1 parses it, later launchers show it).
    pub const fn gets_modsother(self) -> bool {
        self.0 >= 3
    }

    /// READY toggles a player's flag and the room starts when all are
    /// ready; before version 3 the host's READY started the room at once.
    pub const fn has_ready_toggle(self) -> bool {
        self.0 >= 3
    }

    /// Knows `:>>USERS:` (VCMI 1.2+): receives the user list on every login
    /// and logout and as the answer to HERE. Older launchers instead get the
    /// "X is here" chat line, a welcome that points at `<HERE>`, and a HERE
    /// answer written as a chat message.
    pub const fn gets_user_list(self) -> bool {
        self.0 >= 4
    }

    /// Knows `:>>GAMEMODE:` (VCMI 1.2+): told the room's game mode on join.
    pub const fn gets_gamemode(self) -> bool {
        self.0 >= 4
    }

    /// Answers `:>>HEALTH:` with `<ALIVE>` (VCMI 1.2+; §11), so the server
    /// may drop it when it stops answering. 1.1 launchers do not know HEALTH.
    pub const fn has_healthcheck(self) -> bool {
        self.0 >= 4
    }

    /// Has chat channels (VCMI 1.4): chat arrives as
    /// `MSGCH:user:channel:text` instead of `MSG:user:text`, and entering a
    /// room needs no "You are in the room chat." notice (the launcher shows
    /// the room channel itself).
    pub const fn has_channels(self) -> bool {
        self.0 >= 5
    }
}

impl From<u8> for Protocol {
    fn from(version: u8) -> Self {
        Protocol(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of PROTOCOL.md §6.19, one row per capability.
    #[test]
    fn capabilities_follow_section_6_19() {
        let row =
            |f: fn(Protocol) -> bool| -> Vec<bool> { (1..=5).map(|v| f(Protocol(v))).collect() };
        assert_eq!(
            row(Protocol::gets_modsother),
            [false, false, true, true, true]
        );
        assert_eq!(
            row(Protocol::has_ready_toggle),
            [false, false, true, true, true]
        );
        assert_eq!(
            row(Protocol::gets_user_list),
            [false, false, false, true, true]
        );
        assert_eq!(
            row(Protocol::gets_gamemode),
            [false, false, false, true, true]
        );
        assert_eq!(
            row(Protocol::has_healthcheck),
            [false, false, false, true, true]
        );
        assert_eq!(
            row(Protocol::has_channels),
            [false, false, false, false, true]
        );
    }

    #[test]
    fn out_of_range_versions_answer_like_the_nearest() {
        assert!(!Protocol(0).has_ready_toggle() && !Protocol(0).gets_user_list());
        assert!(Protocol(200).has_channels() && Protocol(200).has_healthcheck());
        assert_eq!(Protocol::from(7).version(), 7);
    }
}
