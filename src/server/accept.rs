//! Accepting connections: the accept gate (paused at the connection cap or
//! on accept errors) and the per-IP limit.

use super::*;

impl Server {
    // ---- accepting ----------------------------------------------------------

    pub(super) fn accept_all(&mut self, i: usize) {
        loop {
            if self.conns.len() >= self.max_connections {
                self.pause_accept("max-connections reached");
                return;
            }
            let Some(listener) = self.listeners.get(i) else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => self.add_conn(stream, addr),
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // EMFILE/ENFILE and friends: spinning on accept would
                    // burn a core; wait for a close or a retry timer
                    log::error!("[!] accept failed: {e}");
                    self.pause_accept("accept failed");
                    self.timers
                        .schedule(Instant::now() + Duration::from_secs(1), Timer::AcceptRetry);
                    return;
                }
            }
        }
    }

    /// The accept gate: the listener is taken out of the poll set, so
    /// pending connections wait in the kernel's backlog.
    pub(super) fn pause_accept(&mut self, why: &str) {
        if self.accept_paused || self.shutting_down {
            return;
        }
        self.accept_paused = true;
        self.stats.accept_pauses += 1;
        for l in &mut self.listeners {
            let _ = self.poll.registry().deregister(l);
        }
        log::warn!(
            "[!] accepting paused ({why}): {} connections open",
            self.conns.len()
        );
    }

    pub(super) fn resume_accept(&mut self) {
        if !self.accept_paused || self.shutting_down || self.conns.len() >= self.max_connections {
            return;
        }
        let registry = self.poll.registry();
        let registered = self
            .listeners
            .iter_mut()
            .enumerate()
            .try_for_each(|(i, l)| {
                registry.register(l, super::operators::game_token(i), Interest::READABLE)
            });
        match registered {
            Ok(()) => {
                self.accept_paused = false;
                log::info!(
                    "[!] accepting resumed: {} connections open",
                    self.conns.len()
                );
            }
            Err(e) => log::error!("[!] cannot resume accepting: {e}"),
        }
    }

    pub(super) fn add_conn(&mut self, mut stream: TcpStream, addr: SocketAddr) {
        // `::` listens dual-stack: an IPv4 client is shown, limited and
        // banned as its IPv4 address
        let addr = SocketAddr::new(crate::ops::cidr::canonical(addr.ip()), addr.port());
        let ip = addr.ip();
        if self.is_banned(addr) {
            return; // dropping the stream closes it
        }
        // a trusted balancer's connections are counted under the client's
        // address, once its PROXY header names it (`proxy_header`)
        let trusted = self.cfg.proxy_protocol_from.contains(ip);
        if self.cfg.max_per_ip > 0 && !trusted {
            let n = self.per_ip.entry(ip).or_insert(0);
            if *n as usize >= self.cfg.max_per_ip {
                self.stats.drop_per_ip += 1;
                log::debug!("[!] {addr} refused: {} connections from {ip}", *n);
                return; // dropping the stream closes it
            }
            *n += 1;
        }
        let _ = stream.set_nodelay(true);
        let _ =
            crate::sys::set_keepalive(&stream, Duration::from_secs(30), Duration::from_secs(10));
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            log::error!("[!] cannot register {addr}: {e}");
            if self.cfg.max_per_ip > 0 && !trusted {
                self.release_ip(ip);
            }
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut conn = Conn::new(stream, addr, serial, self.cfg.max_frame);
        conn.interest = Some(Interest::READABLE);
        conn.writable = true; // a fresh socket has room; epoll says otherwise
        conn.ip_slot = self.cfg.max_per_ip > 0 && !trusted;
        if trusted {
            conn.proxy_header = Some(Box::default());
        }
        let at = Instant::now() + self.cfg.first_frame_timeout;
        conn.deadline = Some(at);
        entry.insert(conn);
        self.timers.schedule(at, Timer::Conn { key, serial });
        self.stats.accepted += 1;
        self.counters.logins += 1;
        if !trusted && self.seen_ips.len() < MAX_TRACKED_IPS && self.seen_ips.insert(ip) {
            self.counters.uniques += 1;
        }
        log::info!("[+] {addr} connected.");
    }

    pub(super) fn release_ip(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}
