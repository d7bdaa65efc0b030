//! clientRegister, clientLogin, one session per account, dispatch of the
//! unauthenticated role (§1.3, §1.5 items 1–2, §1.9).

use super::*;
use crate::json::lobby::memstore::MemAccount;

#[test]
fn register_creates_an_account_without_login() {
    let mut l = Lobby::new();
    let (id, cookie) = l.register(1, "Alice1");
    assert_eq!((id.len(), cookie.len()), (36, 36));
    assert_ne!(id, cookie);
    let d = l.store.data.borrow();
    assert_eq!(
        d.accounts,
        vec![MemAccount {
            account_id: id.clone(),
            display_name: "Alice1".into(),
            cookies: vec![cookie],
            online: false
        }]
    );
    drop(d);
    assert_eq!(l.lobby.accounts_online().count(), 0);
    // Still unauthenticated: a chat line closes the connection.
    assert_eq!(
        l.req(1, chat("hi", ChannelType::Global, "english")),
        vec![Out::Close(1, CloseReason::Unauthenticated)]
    );
}

#[test]
fn register_refusals() {
    let mut l = Lobby::new();
    for bad in [
        "abc",
        "a23456789012345678901",
        "ab cd",
        "ab_cd",
        "Ünter",
        "",
    ] {
        assert_eq!(
            l.req(1, register(bad)),
            failed(1, "Illegal account name"),
            "{bad:?}"
        );
    }
    l.register(1, "Alice");
    assert_eq!(
        l.req(2, register("aLICE")),
        failed(2, "Account name already in use")
    );
    assert_eq!(l.store.data.borrow().accounts.len(), 1);
}

#[test]
fn login_reply_sequence() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let (b, cookie) = l.register(2, "Bob1");
    let out = l.req(2, login(&b, &cookie, "german", "1.7.5", None));
    let empty_history = |lang: &str| json!({"type": "chatHistory", "channelType": "global", "channelName": lang, "messages": []});
    let accounts = active_accounts(&[(&a, "Alice"), (&b, "Bob1")]);
    assert_eq!(
        out,
        vec![
            msg(
                2,
                json!({"type": "clientLoginSuccess", "accountCookie": cookie, "displayName": "Bob1"})
            ),
            msg(2, empty_history("english")),
            msg(2, empty_history("german")),
            msg(1, accounts.clone()),
            msg(2, accounts),
            msg(2, active_rooms(vec![])),
            msg(2, json!({"type": "matchesHistory", "matchesHistory": []})),
        ]
    );
    assert!(l.store.data.borrow().accounts.iter().all(|a| a.online));
    assert_eq!(
        l.lobby.accounts_online().collect::<Vec<_>>(),
        vec![(a.as_str(), "Alice"), (b.as_str(), "Bob1")]
    );
}

#[test]
fn login_histories_follow_language_rooms() {
    let mut l = Lobby::new();
    let (id, cookie) = l.register(1, "Alice");
    // English language alone: one history.
    let out = l.req(1, login(&id, &cookie, "english", "1.6.0", None));
    assert_eq!(
        types(&out)[1..3],
        [(1, "chatHistory".into()), (1, "activeAccounts".into())]
    );
    l.disconnect(1);
    // languageRooms: in the order given, names not validated, even
    // duplicates; an empty list falls back to english + language.
    let out = l.req(
        2,
        login(
            &id,
            &cookie,
            "french",
            "1.7.5",
            Some(&["polish", "klingon", "polish"]),
        ),
    );
    let names: Vec<Value> = to(&out, 2)
        .into_iter()
        .filter(|v| v["type"] == "chatHistory")
        .map(|v| v["channelName"].clone())
        .collect();
    assert_eq!(
        names,
        vec![json!("polish"), json!("klingon"), json!("polish")]
    );
    l.disconnect(2);
    let out = l.req(3, login(&id, &cookie, "french", "1.7.5", Some(&[])));
    let names: Vec<Value> = to(&out, 3)
        .into_iter()
        .filter(|v| v["type"] == "chatHistory")
        .map(|v| v["channelName"].clone())
        .collect();
    assert_eq!(names, vec![json!("english"), json!("french")]);
}

#[test]
fn language_rooms_are_capped() {
    let cfg = JsonLobbyConfig {
        max_language_rooms: 3,
        ..Default::default()
    };
    let mut l = Lobby::with(cfg, MemStore::new());
    let (id, cookie) = l.register(1, "Alice");
    let many: Vec<&str> = std::iter::repeat_n("english", 1000).collect();
    let out = l.req(1, login(&id, &cookie, "english", "1.7.5", Some(&many)));
    let histories = to(&out, 1)
        .iter()
        .filter(|v| v["type"] == "chatHistory")
        .count();
    assert_eq!(histories, 3);
}

#[test]
fn login_refusals() {
    let mut l = Lobby::new();
    let (id, _) = l.register(1, "Alice");
    assert_eq!(
        l.req(1, login("nobody", "x", "english", "1.7.5", None)),
        failed(1, "Account not found")
    );
    assert_eq!(
        l.req(1, login(&id, "wrong", "english", "1.7.5", None)),
        failed(1, "Authentication failure")
    );
    // A failed login leaves the connection unauthenticated, not closed.
    assert_eq!(l.lobby.accounts_online().count(), 0);
    assert_eq!(
        l.invalid(1),
        vec![Out::Close(1, CloseReason::Unauthenticated)]
    );
}

#[test]
fn a_banned_name_is_refused_and_closed() {
    let mut l = Lobby::new();
    let (id, cookie) = l.register(1, "Griefer");
    let (ok_id, ok_cookie) = l.register(2, "Player");
    l.lobby.bans = crate::ops::bans::BanList::parse("name:GRIEFER\n").expect("ban list");
    let mut want = failed(3, crate::json::lobby::BANNED);
    want.push(Out::Close(3, CloseReason::Banned));
    assert_eq!(
        l.req(3, login(&id, &cookie, "english", "1.7.5", None)),
        want
    );
    assert_eq!(l.lobby.accounts_online().count(), 0);
    // other names log in as before
    l.req(4, login(&ok_id, &ok_cookie, "english", "1.7.5", None));
    assert_eq!(l.lobby.accounts_online().count(), 1);
}

#[test]
fn unauthenticated_dispatch_closes_on_anything_but_logins() {
    let mut l = Lobby::new();
    let not_allowed = [
        chat("x", ChannelType::Global, "english"),
        history(ChannelType::Global, "english"),
        activate("a", RoomType::Public, None),
        join("r"),
        invite("a"),
        Request::ChangeRoomDescription {
            description: "d".into(),
        },
        Request::GameStarted,
        Request::LeaveGameRoom {
            account_id: "a".into(),
        },
        Request::Unknown {
            type_name: "fooBar".into(),
        },
    ];
    for (i, r) in not_allowed.into_iter().enumerate() {
        assert_eq!(
            l.req(i, r),
            vec![Out::Close(i, CloseReason::Unauthenticated)]
        );
    }
    assert_eq!(
        l.invalid(99),
        vec![Out::Close(99, CloseReason::Unauthenticated)]
    );
}

#[test]
fn logged_in_ignores_invalid_unknown_and_second_login() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let cookie = l.cookie(&a);
    assert_eq!(l.invalid(1), vec![]);
    assert_eq!(
        l.req(
            1,
            Request::Unknown {
                type_name: "fooBar".into()
            }
        ),
        vec![]
    );
    assert_eq!(
        l.req(1, login(&a, &cookie, "english", "1.7.5", None)),
        vec![]
    );
    assert_eq!(l.req(1, register("Other1")), vec![]);
    assert_eq!(l.req(1, Request::GameStarted), vec![]);
    assert_eq!(l.req(1, server_login("r", &a, &cookie, None)), vec![]);
    assert_eq!(l.lobby.rooms().count(), 0);
}

#[test]
fn relogin_evicts_the_old_connection_and_stays_online() {
    let mut l = Lobby::new();
    let a = l.user(1, "Alice");
    let b = l.user(2, "Bob1");
    let cookie = l.cookie(&a);
    let out = l.req(3, login(&a, &cookie, "english", "1.7.5", None));
    assert_eq!(out[0], Out::Close(1, CloseReason::Evicted));
    assert_eq!(types(&out)[0], (3, "clientLoginSuccess".to_string()));
    // activeAccounts goes to the two live sessions, not the evicted one.
    let accounts = active_accounts(&[(&a, "Alice"), (&b, "Bob1")]);
    assert!(out.contains(&msg(2, accounts.clone())) && out.contains(&msg(3, accounts)));
    assert!(!to(&out, 1).iter().any(|v| v["type"] == "activeAccounts"));
    // §1.9 decided: the evicted connection's disconnect changes nothing.
    assert_eq!(l.disconnect(1), vec![]);
    assert!(l.store.data.borrow().accounts.iter().all(|x| x.online));
    assert_eq!(l.lobby.accounts_online().count(), 2);
    assert_eq!(l.lobby.stats().evictions, 1);
    // And the new session works.
    let out = l.req(3, chat("still here", ChannelType::Global, "english"));
    assert_eq!(
        types(&out),
        vec![(2, "chatMessage".into()), (3, "chatMessage".into())]
    );
}

#[test]
fn start_clears_stale_state_and_loads_accounts() {
    let store = MemStore::new();
    let (a, cookie) = {
        let mut l = Lobby::with(JsonLobbyConfig::default(), store.clone());
        let a = l.user(1, "Alice");
        let c = l.cookie(&a);
        l.server(10, &a, "room1");
        (a, c)
    };
    assert!(store.data.borrow().accounts[0].online);
    let mut l = Lobby::with(JsonLobbyConfig::default(), store.clone());
    assert!(!store.data.borrow().accounts[0].online);
    assert_eq!(
        store.data.borrow().rooms[0].status,
        crate::json::store::RoomStatus::Cancelled
    );
    // The account survives the restart; its name is still taken.
    assert_eq!(
        l.req(2, register("ALICE")),
        failed(2, "Account name already in use")
    );
    let out = l.req(2, login(&a, &cookie, "english", "1.7.5", None));
    assert_eq!(types(&out)[0], (2, "clientLoginSuccess".to_string()));
}

#[test]
fn session_keeps_the_client_version() {
    let mut l = Lobby::new();
    let a = l.user_version(1, "Alice", "1.6.8");
    assert_eq!(l.lobby.session_of(1), Some((a.as_str(), "1.6.8")));
    assert_eq!(l.lobby.session_of(2), None);
}

#[test]
fn requests_after_a_close_are_ignored() {
    let mut l = Lobby::new();
    let (id, cookie) = l.register(1, "Alice");
    // An invalid frame and a login read in the same batch: the login is void.
    assert_eq!(
        l.invalid(1),
        vec![Out::Close(1, CloseReason::Unauthenticated)]
    );
    assert_eq!(
        l.req(1, login(&id, &cookie, "english", "1.7.5", None)),
        vec![]
    );
    assert_eq!(l.invalid(1), vec![]);
    assert_eq!(l.disconnect(1), vec![]);
    assert_eq!(l.lobby.accounts_online().count(), 0);
    // The evicted connection's late chat line goes nowhere.
    l.req(2, login(&id, &cookie, "english", "1.7.5", None));
    l.req(3, login(&id, &cookie, "english", "1.7.5", None));
    assert_eq!(
        l.req(2, chat("late", ChannelType::Global, "english")),
        vec![]
    );
    assert!(l.store.data.borrow().chat.is_empty());
}
