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
//!
//! - [`lobby_api`]: vcmilobby's HTTP API (`/api/v1/stats`, `/chats`,
//!   `/rooms`): routing, parameters, 400s and the 30 s cache.
//!
//! The glue is in `server::operators`, `server::admin` and
//! `server::proxy_header`. What it does with them (issue 10):
//! - game port, trusted source ([`proxy_protocol::TrustedSources::contains`]
//!   on the canonical peer IP): feed every read to [`proxy_protocol::parse`]
//!   before the first frame; `Done` → drop `consumed` bytes, the client's
//!   address becomes `source` (canonicalised with [`cidr::canonical`]) when
//!   `Some`, then per-IP limit and bans apply to it; `Invalid` → close, log,
//!   count drop reason "proxy-header". Bound it by the first-frame deadline.
//!   Untrusted sources never call `parse`.
//! - accept: [`bans::BanList::is_banned_ip`] → close, count "banned";
//!   GREETINGS: [`bans::BanList::is_banned_name`] → `:>>ERROR:` and close.
//! - after login: each [`motd::Motd::lines`] as a `System` chat `MSG`
//!   through the lobby outbox (it neutralises `:>>` and encodes).
//! - SIGHUP: [`bans::BanList::load`] / [`motd::Motd::load`]; on `Err` log it
//!   and keep the old value.
//! - admin listener: per connection, [`admin_http::parse_request`] on the
//!   bytes so far, [`admin_http::route`], then [`admin_http::respond`] with a
//!   [`status::StatusSnapshot`] (full only if `Route::needs_snapshot`), or
//!   [`admin_http::bad_request`] on `Bad`/timeout; write, close.
//! - a relay session ends: [`metrics::SessionDurations::observe`].

pub mod admin_http;
pub mod bans;
pub mod cidr;
pub mod lobby_api;
pub mod metrics;
pub mod motd;
pub mod proxy_protocol;
pub mod status;
