use std::time::Instant;
use vcmi_proxy::lobby::{Lobby, Outbox};
#[test]
fn repro() {
    let mut l = Lobby::default();
    let mut out = Outbox::new();
    let now = Instant::now();
    l.register(1, 5);
    l.handle_frame(1, "<GREETINGS>alice", now, &mut out);
    l.register(2, 5);
    l.handle_frame(2, "<GREETINGS>bruno", now, &mut out);
    l.handle_frame(1, "<NEW>Den<PSWD>pw<COUNT>3", now, &mut out);
    l.handle_frame(2, "<JOIN>Den<PSWD>pw", now, &mut out);
    l.handle_frame(2, "<PSWD>wrong", now, &mut out);
    eprintln!("{:?}", out.received_by(2));
    l.disconnect(2, &mut out);
    l.handle_frame(1, "<READY>Den", now, &mut out);
}
