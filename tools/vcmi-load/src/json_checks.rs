//! What the `json-lobby` mode verifies, without sockets: the order of the login replies
//! (LOBBY-JSON.md §1.5 item 2) and the delivery of every chat message to every account.

use crate::json_proto::Msg;
use crate::proto;

/// Where a login stands in the reply sequence the reference sends to the requester:
/// clientLoginSuccess, one chatHistory per `languageRooms` entry (the tool sends one), then
/// activeAccounts (to everyone, so it lists the new account), activeGameRooms, matchesHistory.
/// A single-threaded server sends the five in one go, but broadcasts caused by other logins may
/// come between the later ones, so further activeAccounts/activeGameRooms are tolerated once the
/// own activeAccounts has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LoginSeq {
    #[default]
    WantSuccess,
    WantHistory,
    WantAccounts,
    WantRooms,
    WantMatches,
    Done,
}

impl LoginSeq {
    /// The state after a reply of type `kind`; an error text when it is out of order.
    pub fn next(self, kind: &str) -> Result<LoginSeq, String> {
        use LoginSeq::*;
        let next = match (self, kind) {
            (WantSuccess, "clientLoginSuccess") => WantHistory,
            (WantHistory, "chatHistory") => WantAccounts,
            (WantAccounts, "activeAccounts") => WantRooms,
            (WantRooms, "activeGameRooms") => WantMatches,
            (WantRooms | WantMatches, "activeAccounts") => self,
            (WantMatches, "activeGameRooms") => self,
            (WantMatches, "matchesHistory") => Done,
            _ => {
                return Err(format!(
                    "login reply {kind} out of order (expected {self:?})"
                ))
            }
        };
        Ok(next)
    }
}

/// Whether an activeAccounts message lists `account_id` (the new login must see itself).
pub fn lists_account(m: &Msg, account_id: &str) -> bool {
    m.body
        .get("accounts")
        .and_then(|a| a.as_array())
        .is_some_and(|a| {
            a.iter()
                .any(|e| e.get("accountID").and_then(|v| v.as_str()) == Some(account_id))
        })
}

/// Delivery accounting: which user got which message, so loss and duplicates are exact per
/// (message, recipient) pair. Pure; tested below.
pub struct Tally {
    /// One bitset of `messages` bits per receiver.
    seen: Vec<Vec<u64>>,
    pub received: u64,
    pub duplicates: u64,
    /// Probes of this run with a sequence number never sent.
    pub unknown: u64,
}

impl Tally {
    pub fn new(receivers: usize, messages: usize) -> Tally {
        Tally {
            seen: vec![vec![0; messages.div_ceil(64)]; receivers],
            received: 0,
            duplicates: 0,
            unknown: 0,
        }
    }

    /// Records that `receiver` got message `seq`, of `sent` messages sent so far.
    pub fn record(&mut self, receiver: usize, seq: u64, sent: u64) {
        let Some(bits) = self.seen.get_mut(receiver) else {
            return;
        };
        if seq >= sent || (seq / 64) as usize >= bits.len() {
            self.unknown += 1;
            return;
        }
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if bits[w] & (1 << b) != 0 {
            self.duplicates += 1;
        } else {
            bits[w] |= 1 << b;
            self.received += 1;
        }
    }

    /// Deliveries missing out of `sent` messages to every receiver.
    pub fn lost(&self, sent: u64) -> u64 {
        (sent * self.seen.len() as u64).saturating_sub(self.received)
    }

    /// Receivers that miss at least one message.
    pub fn receivers_short(&self, sent: u64) -> u64 {
        let full =
            |bits: &Vec<u64>| (0..sent).all(|s| bits[(s / 64) as usize] & (1 << (s % 64)) != 0);
        self.seen.iter().filter(|b| !full(b)).count() as u64
    }
}

/// What a received chatMessage carries for the tally, if it is one of this run's probes on the
/// measured channel.
pub fn probe_of(m: &Msg, run: &str, channel: &str) -> Option<(u64, u64)> {
    if m.kind != "chatMessage"
        || m.str("channelType") != Some("global")
        || m.str("channelName") != Some(channel)
    {
        return None;
    }
    proto::parse_probe(m.str("messageText")?.as_bytes(), run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_proto::Msg;

    #[test]
    fn login_sequence_is_checked() {
        let run = |kinds: &[&str]| {
            kinds
                .iter()
                .try_fold(LoginSeq::default(), |st, k| st.next(k))
        };
        let reference = [
            "clientLoginSuccess",
            "chatHistory",
            "activeAccounts",
            "activeGameRooms",
            "matchesHistory",
        ];
        assert_eq!(run(&reference), Ok(LoginSeq::Done));
        // broadcasts of other logins between the later replies
        let interleaved = [
            "clientLoginSuccess",
            "chatHistory",
            "activeAccounts",
            "activeAccounts",
            "activeGameRooms",
            "activeAccounts",
            "activeGameRooms",
            "matchesHistory",
        ];
        assert_eq!(run(&interleaved), Ok(LoginSeq::Done));
        for bad in [
            &["chatHistory"][..],
            &["clientLoginSuccess", "activeAccounts"],
            &["clientLoginSuccess", "chatHistory", "matchesHistory"],
            &[
                "clientLoginSuccess",
                "chatHistory",
                "activeAccounts",
                "matchesHistory",
            ],
            &["clientLoginSuccess", "clientLoginSuccess"],
        ] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
        assert!(LoginSeq::Done.next("activeAccounts").is_err());
    }

    #[test]
    fn presence_lists_are_searched() {
        let m = Msg::parse(
            br#"{"type":"activeAccounts","accounts":[{"accountID":"a","displayName":"x","status":"In Lobby"},{"accountID":"b","displayName":"y","status":"In Lobby"}]}"#,
        )
        .unwrap();
        assert!(lists_account(&m, "b"));
        assert!(!lists_account(&m, "c"));
        let empty = Msg::parse(br#"{"type":"activeAccounts","accounts":[]}"#).unwrap();
        assert!(!lists_account(&empty, "a"));
    }

    #[test]
    fn tally_counts_loss_duplicates_and_strays() {
        let mut t = Tally::new(3, 100);
        for r in 0..3 {
            for s in 0..10 {
                if !(r == 1 && s == 4) {
                    t.record(r, s, 10);
                }
            }
        }
        t.record(2, 7, 10); // duplicate
        t.record(0, 10, 10); // never sent
        t.record(9, 1, 10); // not a receiver: ignored
        assert_eq!(t.received, 29);
        assert_eq!(t.lost(10), 1);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.unknown, 1);
        assert_eq!(t.receivers_short(10), 1);
        // a loss is not hidden by another receiver's duplicate
        let mut t = Tally::new(2, 2);
        t.record(0, 0, 1);
        t.record(0, 0, 1);
        assert_eq!((t.lost(1), t.duplicates), (1, 1));
    }

    #[test]
    fn recognises_own_probes_on_the_channel() {
        let text = proto::probe_text("ab1", 42, 123456);
        let msg = |ch: &str, ty: &str| {
            Msg::parse(
                serde_json::json!({"type": ty, "channelType": "global", "channelName": ch,
                    "messageText": text, "accountID": "x", "displayName": "y"})
                .to_string()
                .as_bytes(),
            )
            .unwrap()
        };
        assert_eq!(
            probe_of(&msg("english", "chatMessage"), "ab1", "english"),
            Some((42, 123456))
        );
        assert_eq!(
            probe_of(&msg("german", "chatMessage"), "ab1", "english"),
            None
        );
        assert_eq!(
            probe_of(&msg("english", "chatMessage"), "ab2", "english"),
            None
        );
        assert_eq!(
            probe_of(&msg("english", "chatHistory"), "ab1", "english"),
            None
        );
    }
}
