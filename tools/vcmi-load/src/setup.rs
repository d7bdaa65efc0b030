//! Blocking helpers used by the relay and pingpong modes: a tiny lobby client that drives the
//! create/join/ready/start procedure (PROTOCOL.md §6, §8.3), the pipe handshake (§10), and the
//! baseline (direct / forwarder) pair setups.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::errors::io_error_text;
use crate::proto::{self, Splitter};
use crate::{Ctx, Target};

/// Time left until `deadline`, or an error once it has passed (so every blocking call is bounded).
pub fn remaining(deadline: Instant) -> Result<Duration, String> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if d > Duration::from_millis(1) => Ok(d),
        _ => Err("global --timeout expired".to_string()),
    }
}

/// Connects with TCP_NODELAY (every socket of the tool uses it, so latency numbers are not
/// distorted by Nagle) and read/write timeouts bounded by the global deadline.
pub fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, remaining(deadline)?)
        .map_err(|e| format!("connect to {addr}: {}", io_error_text(&e)))?;
    prepare(&s, deadline)?;
    Ok(s)
}

pub fn prepare(s: &TcpStream, deadline: Instant) -> Result<(), String> {
    let rem = remaining(deadline)?;
    s.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    s.set_read_timeout(Some(rem))
        .map_err(|e| format!("set timeout: {e}"))?;
    s.set_write_timeout(Some(rem))
        .map_err(|e| format!("set timeout: {e}"))?;
    Ok(())
}

/// One logged-in lobby user.
pub struct LobbyClient {
    stream: TcpStream,
    split: Splitter,
    pub name: String,
    deadline: Instant,
}

fn welcome(m: &[u8]) -> bool {
    // Last reply of a successful login (§6.1 step 7); any ERROR before it means failure.
    m.starts_with(b"MSG:System:Here available ")
}

impl LobbyClient {
    pub fn login(addr: SocketAddr, name: &str, ctx: &Ctx) -> Result<Self, String> {
        let mut stream = connect(addr, ctx.deadline)?;
        stream
            .write_all(&proto::login_frame(ctx.proto, name, &ctx.vcmi_version))
            .map_err(|e| format!("{name}: sending login: {}", io_error_text(&e)))?;
        let mut c = LobbyClient {
            stream,
            split: Splitter::new(),
            name: name.to_string(),
            deadline: ctx.deadline,
        };
        c.wait("login welcome", |m| welcome(m).then_some(()), welcome)?;
        Ok(c)
    }

    pub fn send(&mut self, text: &str) -> Result<(), String> {
        self.stream
            .write_all(&proto::frame(text.as_bytes()))
            .map_err(|e| format!("{}: send {text:?}: {}", self.name, io_error_text(&e)))
    }

    /// Reads replies until `f` accepts one. `tail_ready` says whether a reply that ends the buffer
    /// is already complete (replies are unframed, §2.2); at end of stream the tail is complete.
    /// Any `ERROR` reply fails the wait, since none of the flows here can legitimately produce one.
    pub fn wait<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&[u8]) -> Option<T>,
        tail_ready: impl Fn(&[u8]) -> bool,
    ) -> Result<T, String> {
        let mut buf = vec![0u8; 16 << 10];
        let err = |name: &str, m: &[u8]| {
            format!(
                "{name}: server replied {:?} while waiting for {what}",
                String::from_utf8_lossy(m)
            )
        };
        loop {
            loop {
                match self.split.next_complete() {
                    Ok(Some(m)) => {
                        if m.starts_with(b"ERROR:") {
                            return Err(err(&self.name, m));
                        }
                        if let Some(v) = f(m) {
                            return Ok(v);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Err(format!("{}: {e}", self.name)),
                }
            }
            if let Some(t) = self.split.tail() {
                if t.starts_with(b"ERROR:") {
                    return Err(err(&self.name, t));
                }
                if tail_ready(t) {
                    let v = f(t);
                    self.split.consume_tail();
                    if let Some(v) = v {
                        return Ok(v);
                    }
                }
            }
            let rem = remaining(self.deadline)
                .map_err(|e| format!("{}: waiting for {what}: {e}", self.name))?;
            self.stream
                .set_read_timeout(Some(rem))
                .map_err(|e| e.to_string())?;
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    if let Some(t) = self.split.tail() {
                        if let Some(v) = f(t) {
                            self.split.consume_tail();
                            return Ok(v);
                        }
                    }
                    return Err(format!(
                        "{}: lobby connection closed while waiting for {what}",
                        self.name
                    ));
                }
                Ok(n) => self.split.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!(
                        "{}: waiting for {what}: {}",
                        self.name,
                        io_error_text(&e)
                    ));
                }
            }
        }
    }
}

/// The two ends of one relayed game connection: `server` plays the host's vcmiserver, `client`
/// the remote player's vcmiclient.
pub struct PairSockets {
    pub server: TcpStream,
    pub client: TcpStream,
}

/// Runs the whole lobby procedure for one pair through the proxy and completes both pipe
/// handshakes, verifying the handshake echo (each side gets its own bytes back, §10.5 / D26).
pub fn proxy_pair(addr: SocketAddr, ctx: &Ctx, idx: usize) -> Result<PairSockets, String> {
    let host_name = format!("vl{}p{idx}h", ctx.run_id);
    let guest_name = format!("vl{}p{idx}g", ctx.run_id);
    let room = format!("vl-{}-p{idx}", ctx.run_id);

    let mut host = LobbyClient::login(addr, &host_name, ctx)?;
    let mut guest = LobbyClient::login(addr, &guest_name, ctx)?;

    host.send(&format!("<NEW>{room}<PSWD><COUNT>2<MODS>"))?;
    let created = format!("CREATED:{room}");
    // CREATED is always followed by JOIN (§6.6), so it never needs the tail rule.
    host.wait(
        "CREATED",
        |m| (m == created.as_bytes()).then_some(()),
        |_| false,
    )?;

    guest.send(&format!("<JOIN>{room}<PSWD><MODS>"))?;
    let joined = format!("JOIN:{room}:{guest_name}");
    guest.wait(
        "JOIN",
        |m| (m == joined.as_bytes()).then_some(()),
        |_| false,
    )?;

    host.send(&format!("<READY>{room}"))?;
    guest.send(&format!("<READY>{room}"))?;
    // HOST is always followed by the host's own START (§8.3), so it is complete when seen.
    let (host_uuid, n) = host.wait("HOST", proto::parse_host, |_| false)?;
    if n != 1 {
        return Err(format!(
            "HOST announced {n} connections, expected 1 for a 2-player room"
        ));
    }
    // START is the guest's last reply: recognise it by its fixed-length uuid.
    let guest_uuid = guest.wait("START", proto::parse_start, |t| {
        proto::parse_start(t).is_some()
    })?;
    // The proxy closes the lobby sockets after START; nothing more to read from them.
    drop(host);
    drop(guest);

    // Real order (§8.4): remote clients connect first and wait for the vcmiserver.
    let client_hs = proto::pipe_handshake(&format!("{} (client)", ctx.vcmi_version), &guest_uuid);
    let server_hs = proto::pipe_handshake(&format!("{} (server)", ctx.vcmi_version), &host_uuid);
    let mut client = connect(addr, ctx.deadline)?;
    client
        .write_all(&client_hs)
        .map_err(|e| format!("client pipe handshake: {}", io_error_text(&e)))?;
    let mut server = connect(addr, ctx.deadline)?;
    server
        .write_all(&server_hs)
        .map_err(|e| format!("server pipe handshake: {}", io_error_text(&e)))?;
    read_echo(&mut client, &client_hs, &server_hs, "client")?;
    read_echo(&mut server, &server_hs, &client_hs, "server")?;
    prepare(&client, ctx.deadline)?;
    prepare(&server, ctx.deadline)?;
    Ok(PairSockets { server, client })
}

fn read_echo(s: &mut TcpStream, own: &[u8], peer: &[u8], side: &str) -> Result<(), String> {
    let mut got = vec![0u8; own.len()];
    let mut have = 0;
    while have < got.len() {
        match s.read(&mut got[have..]) {
            Ok(0) => {
                return Err(format!(
                    "{side} pipe closed by the proxy after {have} of {} handshake echo bytes (unknown uuid?)",
                    own.len()
                ))
            }
            Ok(n) => have += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{side} pipe: waiting for handshake echo: {}", io_error_text(&e))),
        }
    }
    if got == own {
        return Ok(());
    }
    let k = got.len().min(peer.len());
    let hint = if got[..k] == peer[..k] {
        " (got the PEER's handshake: crosswise replay as in proxy <= 0.4.0, not the D26 echo)"
    } else {
        ""
    };
    Err(format!(
        "{side} pipe: handshake echo mismatch{hint}: expected {:?}, got {:?}",
        String::from_utf8_lossy(own),
        String::from_utf8_lossy(&got)
    ))
}

/// Accepts one connection on a non-blocking listener, bounded by the deadline.
fn accept_one(listener: &TcpListener, deadline: Instant) -> Result<TcpStream, String> {
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).map_err(|e| e.to_string())?;
                prepare(&s, deadline)?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                remaining(deadline)
                    .map_err(|e| format!("waiting for the forwarded connection: {e}"))?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("accept: {}", io_error_text(&e))),
        }
    }
}

/// Sets up `n` pairs for `target`. Proxy pairs are set up with limited parallelism; baseline pairs
/// one after another, because the only way to match an accepted socket to its pair through an
/// arbitrary forwarder is order (connect, then accept before the next connect).
pub fn setup_pairs(
    target: &Target,
    n: usize,
    parallel: usize,
    ctx: &Ctx,
) -> Result<Vec<PairSockets>, String> {
    match target {
        Target::Proxy(addr) => {
            let mut out: Vec<Option<PairSockets>> = (0..n).map(|_| None).collect();
            for (batch_no, batch) in out.chunks_mut(parallel.max(1)).enumerate() {
                let base = batch_no * parallel.max(1);
                let results: Vec<Result<PairSockets, String>> = std::thread::scope(|sc| {
                    let handles: Vec<_> = (0..batch.len())
                        .map(|k| sc.spawn(move || proxy_pair(*addr, ctx, base + k)))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join()
                                .unwrap_or_else(|_| Err("setup thread panicked".to_string()))
                        })
                        .collect()
                });
                for (slot, r) in batch.iter_mut().zip(results) {
                    *slot = Some(r.map_err(|e| {
                        let hint = if e.contains("closed") || e.contains("reset") {
                            " - if the server limits connections per IP (vcmi-proxy --max-per-ip), \
                             note each pair holds 2 pipe connections and briefly 2 lobby ones"
                        } else {
                            ""
                        };
                        format!("pair setup: {e}{hint}")
                    })?);
                }
            }
            Ok(out.into_iter().flatten().collect())
        }
        Target::Direct | Target::Forward { .. } => {
            // --direct: our own listener on an ephemeral loopback port, connected to straight away;
            // --forward: the forwarder is told to reach our listener at --listen.
            let listen = match target {
                Target::Forward { listen, .. } => *listen,
                _ => SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            let listener = TcpListener::bind(listen)
                .map_err(|e| format!("listen on {listen}: {}", io_error_text(&e)))?;
            listener.set_nonblocking(true).map_err(|e| e.to_string())?;
            let connect_to = match target {
                Target::Forward { target, .. } => *target,
                _ => listener.local_addr().map_err(|e| e.to_string())?,
            };
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                let client = connect(connect_to, ctx.deadline)?;
                let server = accept_one(&listener, ctx.deadline)?;
                pairs.push(PairSockets { server, client });
            }
            Ok(pairs)
        }
    }
}
