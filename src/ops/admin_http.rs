//! The admin listener's HTTP side (`--admin-listen`), socket-free: parse
//! the bytes received so far, route, and build a complete response.
//!
//! LIFECYCLE of an admin connection (the glue's state machine): accepted →
//! reading (each read: [`parse_request`]; `NeedMore` keeps reading, up to
//! [`MAX_REQUEST`] bytes and [`REQUEST_TIMEOUT`]) → one response written
//! ([`respond`], or [`bad_request`] on `Bad` or on timeout) → closed. One
//! request per connection (`Connection: close`), no keep-alive, no body
//! read: what follows the headers is ignored.
//!
//! Routing: `GET /metrics`, `GET /healthz`, `GET /api/v1/status` (a query
//! string is ignored). Any other path is 404 whatever the method; a known
//! path with another method (HEAD and POST included) is 405 with
//! `Allow: GET`; a request that is not HTTP/1.x is 400.

use super::metrics::{encode_metrics, SessionDurations, CONTENT_TYPE as METRICS_TYPE};
use super::status::StatusSnapshot;
use std::time::Duration;

/// Largest request head accepted; a longer one gets 400.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time a client has to send its request before it gets 400 and is closed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Headers parsed; more is a bad request (scrapers send a handful).
const MAX_HEADERS: usize = 32;

/// An admin connection's state in the server's slab: the request bytes
/// received so far (at most [`MAX_REQUEST`]).
#[derive(Debug, Default)]
pub struct AdminConn {
    pub request: Vec<u8>,
}

/// A parsed request line; headers are not kept (none changes the answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// What follows the `?`, as sent (not percent-decoded), if any.
    pub query: Option<String>,
}

/// What the bytes received so far amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestParse {
    NeedMore,
    Request(Request),
    /// Answer [`bad_request`] and close.
    Bad(&'static str),
}

/// Parses a request head from the bytes received so far.
pub fn parse_request(buf: &[u8]) -> RequestParse {
    let window = &buf[..buf.len().min(MAX_REQUEST)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(window) {
        Ok(httparse::Status::Partial) => {
            if window.len() >= MAX_REQUEST {
                RequestParse::Bad("request head too large")
            } else {
                RequestParse::NeedMore
            }
        }
        Ok(httparse::Status::Complete(_)) => {
            let (Some(method), Some(target)) = (req.method, req.path) else {
                return RequestParse::Bad("incomplete request line");
            };
            if !target.starts_with('/') {
                return RequestParse::Bad("request target is not a path");
            }
            let target = target.split('#').next().unwrap_or(target);
            let (path, query) = match target.split_once('?') {
                Some((path, query)) => (path, Some(query.to_string())),
                None => (target, None),
            };
            RequestParse::Request(Request {
                method: method.to_string(),
                path: path.to_string(),
                query,
            })
        }
        Err(httparse::Error::TooManyHeaders) => RequestParse::Bad("too many headers"),
        Err(_) => RequestParse::Bad("malformed request"),
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Healthz,
    Status,
    NotFound,
    MethodNotAllowed,
}

impl Route {
    /// Whether answering needs a full [`StatusSnapshot`] (the glue may skip
    /// building rooms and counters otherwise; `/healthz` reads only
    /// `accepting`).
    pub fn needs_snapshot(self) -> bool {
        matches!(self, Route::Metrics | Route::Status)
    }
}

pub fn route(req: &Request) -> Route {
    let known = match req.path.as_str() {
        "/metrics" => Route::Metrics,
        "/healthz" => Route::Healthz,
        "/api/v1/status" => Route::Status,
        _ => return Route::NotFound,
    };
    if req.method == "GET" {
        known
    } else {
        Route::MethodNotAllowed
    }
}

/// The complete response for `route`.
pub fn respond(route: Route, snapshot: &StatusSnapshot, durations: &SessionDurations) -> Vec<u8> {
    const TEXT: &str = "text/plain; charset=utf-8";
    match route {
        Route::Metrics => response(
            200,
            METRICS_TYPE,
            encode_metrics(snapshot, durations).as_bytes(),
        ),
        Route::Healthz if snapshot.accepting => response(200, TEXT, b"ok\n"),
        Route::Healthz => response(503, TEXT, b"shutting down\n"),
        Route::Status => response(200, "application/json", snapshot.to_json().as_bytes()),
        Route::NotFound => response(404, TEXT, b"not found\n"),
        Route::MethodNotAllowed => response(405, TEXT, b"only GET\n"),
    }
}

/// The answer to a malformed, oversized or timed-out request.
pub fn bad_request() -> Vec<u8> {
    response(400, "text/plain; charset=utf-8", b"bad request\n")
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A complete HTTP/1.1 response: status line, headers, body.
pub fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let allow = if status == 405 { "Allow: GET\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\n{allow}Connection: close\r\n\r\n",
        reason(status),
        body.len(),
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
#[path = "admin_http_tests.rs"]
mod tests;
