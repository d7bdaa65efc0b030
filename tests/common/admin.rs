//! The admin endpoint (`--admin-listen`) from a test: a server with an admin listener on an
//! ephemeral port, raw HTTP requests, and sample lines of a `/metrics` scrape.

use super::Server;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

/// A server with an admin listener on an ephemeral loopback port.
pub fn admin_server(args: &[&str]) -> (Server, SocketAddr) {
    let mut all = vec!["--admin-listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let server = Server::start(&all);
    // the admin line follows the game port's on stdout, written together
    let deadline = Instant::now() + WAIT;
    loop {
        let out = server.stdout_text();
        if let Some(addr) = out
            .lines()
            .find_map(|l| l.strip_prefix("admin listening on "))
            .and_then(|a| a.trim().parse().ok())
        {
            return (server, addr);
        }
        assert!(Instant::now() < deadline, "no admin line: {out:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `raw`, reads the answer to EOF: (status, head, body).
pub fn http_raw(addr: SocketAddr, raw: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(raw).unwrap();
    read_response(&mut s)
}

pub fn read_response(s: &mut TcpStream) -> (u16, String, String) {
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("response to EOF");
    let text = String::from_utf8_lossy(&all).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, head.to_string(), body.to_string())
}

pub fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

/// The value of the sample line `name` (with its labels) in a scrape.
pub fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
}
