//! Admin HTTP connections (`--admin-listen`): accepted from the admin
//! listeners into the same slab as every connection, as `State::Admin`.
//!
//! LIFECYCLE: accepted (deadline: `--admin-timeout`) → reading (bytes kept
//! up to `admin_http::MAX_REQUEST`, parsed after each read) → one response
//! queued (`respond`, the lobby API, or 400 on a bad, oversized or timed-out
//! request) → `Closing` (flushed, then closed; `Connection: close`).
//! Requests and answers are small and the lobby API's queries are cached,
//! so an admin client never holds the loop for long.

use super::close::Cleanup;
use super::*;
use crate::json::sqlite::SqliteStore;
use crate::ops::admin_http::{
    self, bad_request, parse_request, respond, AdminConn, Request, RequestParse, Route, MAX_REQUEST,
};
use crate::ops::lobby_api;
use crate::ops::status::StatusSnapshot;

/// Read size for admin sockets (a request head is a few hundred bytes).
const ADMIN_READ: usize = 2048;
/// Every admin connection's close reason starts with it: the close is
/// logged at debug level (a scraper every 15 s must not fill the log).
pub(super) const ADMIN_CLOSE: &str = "admin ";

impl Server {
    pub(super) fn admin_accept(&mut self, i: usize) {
        loop {
            let Some(listener) = self.ops.admin.get(i) else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => self.add_admin_conn(stream, addr),
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // descriptors exhausted: the game port's accept gate
                    // handles that; the admin port just waits for the next
                    // connection attempt
                    log::warn!("[!] admin accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn add_admin_conn(&mut self, mut stream: TcpStream, addr: SocketAddr) {
        if self.conns.len() >= self.max_connections {
            return; // dropping the stream closes it
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            log::error!("[!] cannot register admin client {addr}: {e}");
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut conn = Conn::new(stream, addr, serial, self.cfg.max_frame);
        conn.state = State::Admin(Box::default());
        conn.interest = Some(Interest::READABLE);
        conn.writable = true;
        let at = Instant::now() + self.cfg.admin_timeout;
        conn.deadline = Some(at);
        entry.insert(conn);
        self.timers.schedule(at, Timer::Conn { key, serial });
        log::debug!("[+] admin client {addr} connected.");
    }

    /// Readiness on an admin connection: read until the request is complete.
    pub(super) fn admin_service(&mut self, key: usize) {
        let mut chunk = [0u8; ADMIN_READ];
        for _ in 0..READ_BUDGET {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            let State::Admin(admin) = &mut c.state else {
                return;
            };
            if !c.readable {
                return;
            }
            let n = match c.stream.read(&mut chunk) {
                Ok(0) => return self.close(key, format!("{ADMIN_CLOSE}client left")),
                Ok(n) => n,
                Err(e) if would_block(&e) => {
                    c.readable = false;
                    return;
                }
                Err(e) if interrupted(&e) => continue,
                Err(e) => return self.close(key, format!("{ADMIN_CLOSE}{}", eof_reason(Some(&e)))),
            };
            let AdminConn { request } = admin.as_mut();
            let room = MAX_REQUEST.saturating_sub(request.len());
            request.extend_from_slice(&chunk[..n.min(room)]);
            match parse_request(request) {
                RequestParse::NeedMore => {}
                RequestParse::Request(req) => return self.admin_answer(key, &req),
                RequestParse::Bad(why) => {
                    return self.admin_reply(
                        key,
                        bad_request(),
                        format!("{ADMIN_CLOSE}request refused: {why}"),
                    )
                }
            }
        }
        self.again.push(key);
    }

    /// The admin client's deadline passed before a complete request.
    pub(super) fn admin_timed_out(&mut self, key: usize) {
        self.admin_reply(
            key,
            bad_request(),
            format!("{ADMIN_CLOSE}request timed out"),
        );
    }

    fn admin_reply(&mut self, key: usize, response: Vec<u8>, why: String) {
        if let Some(c) = self.conns.get_mut(key) {
            c.out.push(Bytes::from(response));
            c.deadline = None;
        }
        self.begin_closing(key, why, Cleanup::AlreadyDone);
    }

    fn admin_answer(&mut self, key: usize, req: &Request) {
        let response = match lobby_api::route(&req.path, req.query.as_deref()) {
            Some(Err((status, body))) => json_response(status, &body),
            Some(Ok(_)) if req.method != "GET" => respond(
                Route::MethodNotAllowed,
                &StatusSnapshot::default(),
                &self.ops.durations,
            ),
            Some(Ok(api)) => self.lobby_api_answer(&api),
            None => {
                let route = admin_http::route(req);
                let snapshot = if route.needs_snapshot() {
                    self.status_snapshot()
                } else {
                    StatusSnapshot {
                        accepting: !self.shutting_down,
                        ..StatusSnapshot::default()
                    }
                };
                respond(route, &snapshot, &self.ops.durations)
            }
        };
        let why = format!("{ADMIN_CLOSE}{} {} answered", req.method, req.path);
        self.admin_reply(key, response, why);
    }

    /// `/api/v1/stats`, `/chats`, `/rooms`: from the cache or the database,
    /// opened on first use.
    fn lobby_api_answer(&mut self, api: &lobby_api::ApiRequest) -> Vec<u8> {
        if self.ops.api_store.is_none() {
            match SqliteStore::open(&self.cfg.db) {
                Ok(store) => self.ops.api_store = Some(store),
                Err(e) => log::error!("[!] lobby API: database {}: {e}", self.cfg.db.display()),
            }
        }
        let ops = &mut self.ops;
        let Some(store) = ops.api_store.as_mut() else {
            return json_response(500, &serde_json::json!({"error": "Internal Server Error"}));
        };
        let start = ops
            .api_start_time
            .get_or_insert_with(|| store.local_timestamp(ops.started_unix))
            .clone();
        let body = ops.api_cache.answer(api, store, &start, Instant::now());
        json_response(200, &body)
    }
}

fn json_response(status: u16, body: &serde_json::Value) -> Vec<u8> {
    admin_http::response(status, "application/json", body.to_string().as_bytes())
}
