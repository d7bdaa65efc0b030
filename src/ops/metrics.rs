//! The `/metrics` body: every figure of a [`StatusSnapshot`] and the relay
//! session duration histogram, encoded by `prometheus-client`'s text
//! encoder. Names are prefixed `vcmiproxy_`.
//!
//! The encoder writes OpenMetrics, where a counter's HELP and TYPE lines
//! name the family (`x`) and its sample is `x_total`. The classic
//! Prometheus text format (0.0.4), which `promtool check metrics` and many
//! other scrapers read, wants `x_total` on all three, and reports "no help
//! text" otherwise (prometheus/client_rust#194: by design upstream). So
//! [`to_prometheus_text`] renames those two comment lines and drops the
//! OpenMetrics-only `# UNIT` and `# EOF` lines; the samples are untouched.
//!
//! The server keeps its own plain `u64` counters (one thread, no atomics
//! needed); a scrape copies them into a fresh registry. Only the histogram
//! lives here between scrapes, because it is not a single number.

use super::status::{JsonStatus, StatusSnapshot};
use crate::json::timed_store::LatencyHistogram;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// The `Content-Type` of [`encode_metrics`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the relay session duration buckets: from a
/// game that failed to load to an evening-long one.
pub const SESSION_BUCKETS: [f64; 12] = [
    10.0, 30.0, 60.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];

/// How long relay sessions lasted (first pipe paired to last pipe closed,
/// or however the glue defines a session's end).
#[derive(Debug, Clone)]
pub struct SessionDurations {
    histogram: Histogram,
}

impl Default for SessionDurations {
    fn default() -> Self {
        SessionDurations {
            histogram: Histogram::new(SESSION_BUCKETS),
        }
    }
}

impl SessionDurations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one ended session.
    pub fn observe(&self, duration: Duration) {
        self.histogram.observe(duration.as_secs_f64());
    }
}

fn gauge(v: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

type Labelled = Family<[(&'static str, String); 1], Gauge>;

/// A gauge per label value, e.g. connections by `kind`.
fn labelled(label: &'static str, values: &[(String, u64)]) -> Labelled {
    let family = Labelled::default();
    for (value, n) in values {
        family
            .get_or_create(&[(label, value.clone())])
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    family
}

/// A counter per label value, e.g. drops by `reason`.
fn labelled_counter(
    label: &'static str,
    values: &[(String, u64)],
) -> Family<[(&'static str, String); 1], Counter> {
    let family = Family::<_, Counter>::default();
    for (value, n) in values {
        family.get_or_create(&[(label, value.clone())]).inc_by(*n);
    }
    family
}

/// The complete `/metrics` body for `s` and `durations`.
pub fn encode_metrics(s: &StatusSnapshot, durations: &SessionDurations) -> String {
    let c = &s.counters;
    let mut root = Registry::with_prefix("vcmiproxy");
    let r = &mut root;

    let info = Labelled::default();
    info.get_or_create(&[("version", s.version.clone())]).set(1);
    r.register(
        "build_info",
        "Version of the running server (always 1)",
        info,
    );
    r.register_with_unit(
        "uptime",
        "Time since the server started",
        Unit::Seconds,
        ConstGauge::new(s.uptime.as_secs_f64()),
    );
    r.register(
        "accepting",
        "1 while the server accepts connections, 0 while shutting down",
        gauge(u64::from(s.accepting)),
    );
    r.register(
        "connections",
        "Open connections by kind",
        labelled("kind", &c.connections_by_kind),
    );
    r.register(
        "users",
        "Logged-in users by protocol version",
        labelled("protocol", &s.users_by_protocol),
    );
    let open = s.rooms.iter().filter(|room| !room.started).count() as u64;
    let started = s.rooms.len() as u64 - open;
    r.register(
        "rooms",
        "Rooms by state",
        labelled(
            "state",
            &[("open".to_string(), open), ("started".to_string(), started)],
        ),
    );
    r.register(
        "relay_sessions",
        "Started games whose relay session is alive",
        gauge(s.sessions_in_play),
    );
    r.register_with_unit(
        "resident_memory",
        "Resident memory of the process",
        Unit::Bytes,
        gauge(c.rss_bytes),
    );

    let counters: [(&str, &str, u64); 10] = [
        ("connections_accepted", "Connections accepted", c.accepted),
        (
            "unique_addresses",
            "Distinct client addresses seen",
            c.unique_addresses,
        ),
        (
            "logins",
            "Logins as ROOT counts them (one per connection, as the reference)",
            c.logins,
        ),
        (
            "distinct_users",
            "Distinct user names that logged in",
            c.distinct_users,
        ),
        ("rooms_created", "Rooms created", c.rooms_created),
        ("starts", "Games started", c.starts),
        (
            "relay_sessions_created",
            "Relay sessions created",
            c.relay_sessions_created,
        ),
        (
            "relay_sessions_expired",
            "Relay sessions forgotten unused",
            c.relay_sessions_expired,
        ),
        ("pipes_paired", "Game pipes paired", c.pipes_paired),
        (
            "accept_pauses",
            "Times accepting paused (connection or descriptor limit)",
            c.accept_pauses,
        ),
    ];
    for (name, help, value) in counters {
        r.register(name, help, ConstCounter::new(value));
    }
    r.register_with_unit(
        "relayed",
        "Bytes moved between paired game pipes",
        Unit::Bytes,
        ConstCounter::new(c.relayed_bytes),
    );
    r.register_with_unit(
        "lobby_sent",
        "Bytes of lobby messages written",
        Unit::Bytes,
        ConstCounter::new(c.lobby_sent_bytes),
    );
    r.register(
        "drops",
        "Connections dropped or refused, by reason",
        labelled_counter("reason", &c.drops_by_reason),
    );
    r.register_with_unit(
        "relay_session_duration",
        "Duration of ended relay sessions",
        Unit::Seconds,
        durations.histogram.clone(),
    );
    register_json(r.sub_registry_with_prefix("json"), &s.json);

    let mut body = String::new();
    // writing into a String cannot fail
    let _ = encode(&mut body, &root);
    to_prometheus_text(&body)
}

/// The JSON lobby's figures, as `vcmiproxy_json_*`.
fn register_json(r: &mut Registry, j: &JsonStatus) {
    r.register(
        "connections",
        "Open JSON lobby connections: in the lobby, or relayed (proxy halves)",
        labelled(
            "kind",
            &[
                ("lobby".to_string(), j.lobby_connections),
                ("relayed".to_string(), j.relayed_connections),
            ],
        ),
    );
    r.register(
        "accounts_online",
        "Accounts logged in (also vcmiproxy_users{protocol=\"json\"})",
        gauge(j.accounts_online),
    );
    // every state, so a state that empties reads 0 rather than vanishing
    let by_state: Vec<(String, u64)> = ["idle", "public", "private", "busy"]
        .into_iter()
        .map(|state| {
            let n = j.rooms.iter().filter(|room| room.state == state).count();
            (state.to_string(), n as u64)
        })
        .collect();
    r.register("rooms", "Live rooms by state", labelled("state", &by_state));
    r.register(
        "proxy_pairs",
        "Proxy pairs relaying a game now",
        gauge(j.proxy_pairs),
    );
    let c = &j.counters;
    let counters: [(&str, &str, u64); 10] = [
        (
            "registrations",
            "Accounts registered",
            c.lobby.registrations,
        ),
        ("logins", "Account logins (clientLogin)", c.lobby.logins),
        (
            "login_failures",
            "Refused account logins",
            c.lobby.login_failures,
        ),
        (
            "evictions",
            "Sessions closed by a newer login of their account",
            c.lobby.evictions,
        ),
        (
            "chat_messages",
            "Chat messages accepted",
            c.lobby.chat_messages,
        ),
        (
            "flood_drops",
            "Requests dropped by flood control",
            c.lobby.flood_drops,
        ),
        (
            "rooms_created",
            "Rooms created (serverLogin)",
            c.lobby.rooms_created,
        ),
        (
            "proxy_pairs_created",
            "Proxy pairs made",
            c.lobby.proxy_pairs,
        ),
        (
            "relayed_frames",
            "Game frames passed through proxy pairs",
            c.relayed_frames,
        ),
        (
            "relayed_heartbeats",
            "Heartbeats proxy pairs consumed",
            c.relayed_heartbeats,
        ),
    ];
    for (name, help, value) in counters {
        r.register(name, help, ConstCounter::new(value));
    }
    r.register_with_unit(
        "store_request",
        "Store (database) time per JSON request",
        Unit::Seconds,
        StoreTimes::from(&j.store_request),
    );
    r.register_with_unit(
        "store_chat_message",
        "Store (database) time per chat message",
        Unit::Seconds,
        StoreTimes::from(&j.store_chat),
    );
}

/// A [`LatencyHistogram`] as a Prometheus histogram: its power-of-two
/// microsecond buckets from 8 µs to about 8 s (the ones below fold into
/// the first, the ones above into `+Inf`).
#[derive(Debug)]
struct StoreTimes {
    sum_seconds: f64,
    count: u64,
    /// (upper bound in seconds, values in the bucket), not cumulative.
    buckets: Vec<(f64, u64)>,
}

impl StoreTimes {
    /// Reported bounds: 2^FIRST .. 2^LAST µs.
    const FIRST: usize = 3;
    const LAST: usize = 23;
}

impl From<&LatencyHistogram> for StoreTimes {
    fn from(h: &LatencyHistogram) -> Self {
        let raw = h.buckets();
        let mut buckets: Vec<(f64, u64)> = (Self::FIRST..=Self::LAST)
            .map(|i| ((1u64 << i) as f64 / 1e6, raw[i]))
            .collect();
        buckets[0].1 += raw[..Self::FIRST].iter().sum::<u64>();
        buckets.push((f64::MAX, raw[Self::LAST + 1..].iter().sum()));
        StoreTimes {
            sum_seconds: h.sum().as_secs_f64(),
            count: h.count(),
            buckets,
        }
    }
}

impl EncodeMetric for StoreTimes {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum_seconds, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// OpenMetrics text (as `prometheus-client` writes it) to the classic
/// Prometheus text format: counter HELP/TYPE lines get the `_total` of
/// their samples, `# UNIT` and `# EOF` go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "]
            .into_iter()
            .find(|p| line.starts_with(p));
        if let Some(prefix) = comment {
            let rest = &line[prefix.len()..];
            let name = rest.split(' ').next().unwrap_or("");
            if counters.contains(name) {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total");
                out.push_str(&rest[name.len()..]);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::status::tests::sample;

    /// A sample body, for `promtool check metrics` by hand:
    /// `VCMI_METRICS_SAMPLE=/tmp/m.txt cargo test --lib ops::metrics`.
    #[test]
    fn sample_body() {
        let durations = SessionDurations::new();
        for secs in [5, 45, 2000, 5000] {
            durations.observe(Duration::from_secs(secs));
        }
        let body = encode_metrics(&sample(), &durations);
        if let Some(path) = std::env::var_os("VCMI_METRICS_SAMPLE") {
            std::fs::write(path, &body).unwrap();
        }
        for line in [
            "# TYPE vcmiproxy_connections gauge",
            "vcmiproxy_connections{kind=\"pipe\"} 2",
            "vcmiproxy_users{protocol=\"1.4\"} 2",
            "vcmiproxy_rooms{state=\"open\"} 1",
            "vcmiproxy_rooms{state=\"started\"} 1",
            "vcmiproxy_relay_sessions 1",
            "vcmiproxy_resident_memory_bytes 5242880",
            "# HELP vcmiproxy_connections_accepted_total Connections accepted.",
            "# TYPE vcmiproxy_connections_accepted_total counter",
            "vcmiproxy_connections_accepted_total 40",
            "vcmiproxy_relayed_bytes_total 123456",
            "vcmiproxy_lobby_sent_bytes_total 9876",
            "vcmiproxy_drops_total{reason=\"timeout\"} 2",
            "vcmiproxy_drops_total{reason=\"per-ip\"} 0",
            "vcmiproxy_accept_pauses_total 1",
            "vcmiproxy_accepting 1",
            "vcmiproxy_build_info{version=\"0.1.0\"} 1",
            "# TYPE vcmiproxy_relay_session_duration_seconds histogram",
            "vcmiproxy_relay_session_duration_seconds_count 4",
            "vcmiproxy_relay_session_duration_seconds_bucket{le=\"60.0\"} 2",
            "vcmiproxy_relay_session_duration_seconds_bucket{le=\"+Inf\"} 4",
            "vcmiproxy_json_connections{kind=\"lobby\"} 4",
            "vcmiproxy_json_connections{kind=\"relayed\"} 2",
            "vcmiproxy_json_accounts_online 3",
            "vcmiproxy_json_rooms{state=\"public\"} 1",
            "vcmiproxy_json_rooms{state=\"idle\"} 1",
            "vcmiproxy_json_rooms{state=\"busy\"} 0",
            "vcmiproxy_json_proxy_pairs 1",
            "# TYPE vcmiproxy_json_logins_total counter",
            "vcmiproxy_json_logins_total 6",
            "vcmiproxy_json_chat_messages_total 7",
            "vcmiproxy_json_proxy_pairs_created_total 2",
            "vcmiproxy_json_relayed_frames_total 11",
            "# TYPE vcmiproxy_json_store_request_seconds histogram",
            "vcmiproxy_json_store_request_seconds_count 4",
            "vcmiproxy_json_store_request_seconds_sum 0.04096",
            // 30 µs twice (< 32 µs), 900 µs (< 1024 µs), 40 ms (< 65.536 ms)
            "vcmiproxy_json_store_request_seconds_bucket{le=\"0.000008\"} 0",
            "vcmiproxy_json_store_request_seconds_bucket{le=\"0.000032\"} 2",
            "vcmiproxy_json_store_request_seconds_bucket{le=\"0.001024\"} 3",
            "vcmiproxy_json_store_request_seconds_bucket{le=\"0.065536\"} 4",
            "vcmiproxy_json_store_request_seconds_bucket{le=\"+Inf\"} 4",
            "vcmiproxy_json_store_chat_message_seconds_count 1",
        ] {
            assert!(
                body.lines().any(|l| l == line),
                "missing {line:?} in\n{body}"
            );
        }
        // every sample's family has HELP and TYPE lines under its own name
        for l in body.lines().filter(|l| !l.starts_with('#')) {
            assert!(l.starts_with("vcmiproxy_"), "{l}");
            let name = l.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| body.contains(&format!("# TYPE {f} histogram")))
                .unwrap_or(name);
            assert!(body.contains(&format!("# HELP {family} ")), "{l}");
            assert!(body.contains(&format!("# TYPE {family} ")), "{l}");
        }
        assert!(!body.contains("# EOF") && !body.contains("# UNIT"));
    }

    #[test]
    fn prometheus_text_renames_counter_comments_only() {
        let om = "# HELP a_bytes Gauge.\n# TYPE a_bytes gauge\n# UNIT a_bytes bytes\na_bytes 1\n\
                  # HELP b Counter b.\n# TYPE b counter\nb_total 2\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_bytes Gauge.\n# TYPE a_bytes gauge\na_bytes 1\n\
             # HELP b_total Counter b.\n# TYPE b_total counter\nb_total 2\n"
        );
    }
}
