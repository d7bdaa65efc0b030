//! The first frame's verdict over the wire (src/classify.rs): a JSON peer is
//! recognised and served by the JSON lobby (an invalid first message closes it
//! without any legacy `:>>ERROR:` text); legacy greetings beside it are served
//! as before.

mod common;

use common::{frame, Server};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

#[test]
fn a_json_peer_is_closed_without_a_legacy_error_and_others_are_served() {
    let s = Server::start(&[]);
    let mut alice = s.client();
    alice.hello("alice");
    alice.recv_until(|b| b.windows(8).any(|w| w == b":>>USERS"), T);

    let mut json = s.client();
    // a UTF-8 BOM and whitespace before the `{` are allowed (LOBBY-JSON.md §1.2); this
    // clientLogin lacks its required fields: invalid before login, closed with no reply
    json.send_raw(&frame(
        b"\xEF\xBB\xBF \n{\"type\":\"clientLogin\",\"displayName\":\"bob\"}",
    ));
    assert!(json.wait_closed(T), "the JSON peer is closed");
    assert!(
        json.pending().is_empty(),
        "a JSON peer gets no legacy text: {:?}",
        String::from_utf8_lossy(json.pending())
    );
    s.wait_log(T, |l| l.contains("JSON lobby peer"))
        .expect("the log names the verdict");

    // the legacy lobby beside it is unaffected
    alice.send_frame(b"<MSG>still here");
    alice.recv_until(|b| b.windows(10).any(|w| w == b"still here"), T);
}

#[test]
fn a_garbage_first_frame_still_gets_the_legacy_refusal() {
    let s = Server::start(&[]);
    let mut c = s.client();
    c.send_raw(&frame(b"\x09\x04utf8<GREETINGS>x"));
    assert!(c.wait_closed(T));
    let got = String::from_utf8_lossy(c.pending()).into_owned();
    assert!(
        got.starts_with(":>>ERROR:") && got.contains("protocol incompatibility"),
        "{got:?}"
    );
}
