//! PROXY protocol on the game port (`--proxy-protocol-from`): a connection
//! from a trusted balancer starts with a v1 or v2 header naming the real
//! client. Until it is complete (within the first-frame deadline) the
//! connection's bytes go to `ops::proxy_protocol::parse`, nowhere else;
//! then the client's address replaces the balancer's for the per-IP limit,
//! bans, logs and statistics, and what followed the header is the ordinary
//! protocol. Connections from elsewhere never get here: for them a PROXY
//! header is just (invalid) protocol input.

use super::*;
use crate::ops::cidr::canonical;
use crate::ops::proxy_protocol::{parse, Parsed};

impl Server {
    /// Bytes of a connection whose PROXY header is not complete yet.
    pub(super) fn proxy_header_bytes(&mut self, key: usize, data: &[u8]) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Some(header) = c.proxy_header.as_mut() else {
            return;
        };
        // bounded: parse says Invalid before a header outgrows its maximum,
        // and one read adds at most READ_CHUNK
        header.extend_from_slice(data);
        match parse(header) {
            Parsed::NeedMore => {}
            Parsed::Invalid(why) => {
                self.ops.drop_proxy_header += 1;
                log::warn!("[!] {} refused: bad PROXY header: {why}", c.addr);
                self.close(key, format!("bad PROXY header: {why}"));
            }
            Parsed::Done { consumed, source } => {
                let rest = header.split_off(consumed.min(header.len()));
                c.proxy_header = None;
                let balancer = c.addr;
                if let Some(src) = source {
                    c.addr = SocketAddr::new(canonical(src.ip()), src.port());
                }
                let addr = c.addr;
                log::info!("[+] {balancer} is {addr} (PROXY header)");
                if !self.admit_client_address(key, addr) {
                    return;
                }
                if !rest.is_empty() {
                    self.on_bytes(key, &rest);
                }
            }
        }
    }

    /// The client's own address is known: bans, the per-IP limit and the
    /// unique-address count apply to it. False when it was refused.
    fn admit_client_address(&mut self, key: usize, addr: SocketAddr) -> bool {
        if self.is_banned(addr) {
            self.close(key, "banned address".into());
            return false;
        }
        let ip = addr.ip();
        if self.cfg.max_per_ip > 0 {
            let n = self.per_ip.entry(ip).or_insert(0);
            if *n as usize >= self.cfg.max_per_ip {
                self.stats.drop_per_ip += 1;
                let why = format!("{} connections from {ip}", *n);
                self.close(key, why);
                return false;
            }
            *n += 1;
            if let Some(c) = self.conns.get_mut(key) {
                c.ip_slot = true;
            }
        }
        if self.seen_ips.len() < MAX_TRACKED_IPS && self.seen_ips.insert(ip) {
            self.counters.uniques += 1;
        }
        true
    }
}
