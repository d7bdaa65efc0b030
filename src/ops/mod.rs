//! Operator features, socket-free: what the server glue calls for the admin
//! endpoint, PROXY protocol headers, bans and the message of the day.
//!
//! - [`proxy_protocol`]: PROXY protocol v1/v2 header parser and the
//!   `--proxy-protocol-from` trusted source list.
//! - [`cidr`]: IP networks (`10.0.0.0/8`, `2001:db8::/32`), shared by the
//!   trusted sources and the ban list.
//! - [`bans`]: the `--ban-file` format and its lookups.
//! - [`motd`]: the `--motd-file` text, bounded and split into chat lines.
//! - [`admin_http`]: the admin listener's request parsing, routing and
//!   complete HTTP/1.1 responses.
//! - [`status`]: the snapshot the server fills for the admin endpoint, and
//!   the `/api/v1/status` JSON built from it.
//! - [`metrics`]: the `/metrics` body (Prometheus/OpenMetrics text via the
//!   `prometheus-client` encoder) and the relay session duration histogram.

pub mod admin_http;
pub mod bans;
pub mod cidr;
pub mod metrics;
pub mod motd;
pub mod proxy_protocol;
pub mod status;
