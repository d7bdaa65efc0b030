use super::*;
use crate::ops::status::tests::sample;

fn req(method: &str, path: &str) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        query: None,
    }
}

/// Status code, headers (lower-cased names) and body of a response, read
/// back with httparse; checks Content-Length against the body.
fn parsed(bytes: &[u8]) -> (u16, Vec<(String, String)>, String) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = resp.parse(bytes).unwrap() else {
        panic!("incomplete response");
    };
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8(h.value.to_vec()).unwrap(),
            )
        })
        .collect();
    let body = String::from_utf8(bytes[head..].to_vec()).unwrap();
    let length = headers.iter().find(|(n, _)| n == "content-length").unwrap();
    assert_eq!(length.1, body.len().to_string());
    assert!(headers.contains(&("connection".into(), "close".into())));
    assert!(headers.iter().any(|(n, _)| n == "content-type"));
    assert_eq!(resp.version, Some(1));
    (resp.code.unwrap(), headers, body)
}

#[test]
fn parses_a_scrape() {
    let raw = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:5003\r\nUser-Agent: Prometheus/2.42.0\r\n\
                Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\
                X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
    assert_eq!(
        parse_request(raw),
        RequestParse::Request(req("GET", "/metrics"))
    );
}

#[test]
fn a_request_split_byte_by_byte() {
    let raw = b"GET /api/v1/status?pretty=1 HTTP/1.0\r\nHost: x\r\n\r\n";
    for k in 0..raw.len() {
        assert_eq!(
            parse_request(&raw[..k]),
            RequestParse::NeedMore,
            "{k} bytes"
        );
    }
    assert_eq!(
        parse_request(raw),
        RequestParse::Request(Request {
            query: Some("pretty=1".into()),
            ..req("GET", "/api/v1/status")
        })
    );
    // a body or a pipelined request after the head is ignored
    let mut more = raw.to_vec();
    more.extend_from_slice(b"GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(
        parse_request(&more),
        RequestParse::Request(Request {
            query: Some("pretty=1".into()),
            ..req("GET", "/api/v1/status")
        })
    );
}

#[test]
fn malformed_requests_are_bad() {
    for raw in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..], // a TLS hello
        b"GET /metrics\r\n\r\n",                              // HTTP/0.9
        b"GET /metrics HTTP/2.0\r\n\r\n",
        b"GET  /metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET http://host/metrics HTTP/1.1\r\n\r\n",
        b"GET * HTTP/1.1\r\n\r\n",
        b"\x1a\x00\x00\x00<PROTOCOL>1",
    ] {
        assert!(
            matches!(parse_request(raw), RequestParse::Bad(_)),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    let many = format!(
        "GET / HTTP/1.1\r\n{}\r\n",
        "A: b\r\n".repeat(MAX_HEADERS + 1)
    );
    assert_eq!(
        parse_request(many.as_bytes()),
        RequestParse::Bad("too many headers")
    );
}

#[test]
fn oversize_requests_are_bad_without_reading_past_the_bound() {
    let mut raw = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    raw.resize(MAX_REQUEST - 1, b'a');
    assert_eq!(parse_request(&raw), RequestParse::NeedMore);
    raw.push(b'a');
    assert_eq!(
        parse_request(&raw),
        RequestParse::Bad("request head too large")
    );
    raw.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        parse_request(&raw),
        RequestParse::Bad("request head too large")
    );
    // a head that fits is fine even if its body makes the buffer large
    let mut fits = b"GET /healthz HTTP/1.1\r\n\r\n".to_vec();
    fits.resize(MAX_REQUEST * 4, b'x');
    assert_eq!(
        parse_request(&fits),
        RequestParse::Request(req("GET", "/healthz"))
    );
}

#[test]
fn routing() {
    assert_eq!(route(&req("GET", "/metrics")), Route::Metrics);
    assert_eq!(route(&req("GET", "/healthz")), Route::Healthz);
    assert_eq!(route(&req("GET", "/api/v1/status")), Route::Status);
    for path in [
        "/",
        "/metrics/",
        "/Metrics",
        "/api/v1/status/x",
        "/api/v2/status",
        "//metrics",
    ] {
        assert_eq!(route(&req("GET", path)), Route::NotFound, "{path}");
    }
    for method in ["HEAD", "POST", "PUT", "DELETE", "get"] {
        assert_eq!(
            route(&req(method, "/metrics")),
            Route::MethodNotAllowed,
            "{method}"
        );
    }
    assert_eq!(route(&req("POST", "/nope")), Route::NotFound);
    assert!(Route::Metrics.needs_snapshot() && Route::Status.needs_snapshot());
    assert!(!Route::Healthz.needs_snapshot() && !Route::NotFound.needs_snapshot());
}

#[test]
fn responses() {
    let durations = SessionDurations::new();
    let mut snap = sample();

    let (code, headers, body) = parsed(&respond(Route::Metrics, &snap, &durations));
    assert_eq!(code, 200);
    assert!(headers.contains(&("content-type".into(), METRICS_TYPE.into())));
    assert!(body.contains("vcmiproxy_connections_accepted_total 40\n"));

    let (code, headers, body) = parsed(&respond(Route::Status, &snap, &durations));
    assert_eq!(code, 200);
    assert!(headers.contains(&("content-type".into(), "application/json".into())));
    assert_eq!(body, snap.to_json());

    assert_eq!(
        parsed(&respond(Route::Healthz, &snap, &durations)).2,
        "ok\n"
    );
    snap.accepting = false;
    let (code, _, body) = parsed(&respond(Route::Healthz, &snap, &durations));
    assert_eq!((code, body.as_str()), (503, "shutting down\n"));

    assert_eq!(parsed(&respond(Route::NotFound, &snap, &durations)).0, 404);
    let (code, headers, _) = parsed(&respond(Route::MethodNotAllowed, &snap, &durations));
    assert_eq!(code, 405);
    assert!(headers.contains(&("allow".into(), "GET".into())));
    assert_eq!(parsed(&bad_request()).0, 400);
}
