use std::time::Instant;
use vcmi_proxy::lobby::{Lobby, Outbox};
fn login(l: &mut Lobby, out: &mut Outbox, id: usize, p: u8, name: &str) {
    l.register(id, p);
    l.handle_frame(id, &format!("<GREETINGS>{name}"), Instant::now(), out);
}
#[test]
fn chat_injection() {
    let mut l = Lobby::default();
    let mut out = Outbox::new();
    login(&mut l, &mut out, 1, 5, "alice");
    login(&mut l, &mut out, 2, 3, "bruno");
    out.clear();
    l.handle_frame(2, "<MSG>>>START:x", Instant::now(), &mut out);
    eprintln!("alice {:?}", out.received_by(1));
    out.clear();
    l.handle_frame(2, "<MSG>@alice >>START:x", Instant::now(), &mut out);
    eprintln!("alice dm {:?}", out.received_by(1));
    out.clear();
    l.handle_frame(2, "<NEW>>>START<PSWD><COUNT>2", Instant::now(), &mut out);
    eprintln!("alice {:?}", out.received_by(1));
    out.clear();
    l.handle_frame(1, "<JOIN>x:>>START:y", Instant::now(), &mut out);
    eprintln!("alice {:?}", out.received_by(1));
    panic!();
}
