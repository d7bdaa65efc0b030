//! Command line. Two spellings are accepted and may be mixed: the seed's
//! `key=value` tokens (`vcmi-proxy logging=info port=5002 capacity=50
//! healthcheck=30`) and conventional flags (`--port 5002`). Invalid values
//! stop the program with one line naming the argument (exit code 2), never a
//! silent fallback.

use crate::ops::proxy_protocol::TrustedSources;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
vcmi-proxy - lobby and game relay server for VCMI online play: 1.1-1.4
launchers and, on the same port, VCMI 1.5+ (the JSON lobby)

USAGE:
    vcmi-proxy [OPTIONS] [key=value ...]

OPTIONS (each also accepted as key=value, e.g. port=5002):
    --port N            TCP port to listen on (default 5002; 0 picks a free port)
    --bind ADDR         address to listen on (default 0.0.0.0); may be given
                        more than once (all on the same port). `::` listens on
                        IPv4 and IPv6 (dual stack; IPv4 clients are shown and
                        limited as their IPv4 address) unless 0.0.0.0 is
                        bound too
    --capacity N        most logged-in lobby users at once (default 50;
                        1-1000000)
    --healthcheck N     seconds of silence before a lobby client (VCMI 1.2+) is
                        asked :>>HEALTH:, dropped after as long again
                        (default 30; 0 disables; 1-9 are refused; max 86400)
    --logging LEVEL     debug, info, warning, error or critical (default info)
    --log-dir DIR       where proxyServer.log (and proxyServer_debug.log with
                        logging=debug) are written (default: current directory);
                        `-` writes no file and every line, with its level, to
                        stderr (for journald)
    --max-frame BYTES   largest client frame accepted (default 65536;
                        1024-16777216)
    --session-grace S   seconds a started game whose pipes all left is kept
                        for them to come back (default 1800; max 86400)
    --pipe-wait S       seconds a started game is kept until its first pipe
                        joins, and a registered pipe waits for its partner
                        (default 120; max 86400)
    --max-sessions-per-ip N
                        most live started games per source address of the
                        START; more are refused with an :>>ERROR: (default 8;
                        max 100000)
    --max-sessions N    most live started games in all (default 4 x capacity;
                        max 1000000)
    --pipe-timeout S    seconds a game pipe may take for its handshake
                        (default 30; max 3600)
    --first-frame-timeout S
                        seconds a new connection may take to send its first
                        complete frame (default 10; max 3600)
    --login-timeout S   seconds a lobby connection may take to log in
                        (GREETINGS, or a JSON login) after its first frame
                        (default 10; max 3600)
    --frame-timeout S   seconds a frame may take from its first byte to its
                        last (default 30; max 3600)
    --memory-budget BYTES
                        most memory all peers together may make the server
                        hold (partial frames, output queues, relay buffers);
                        beyond it the largest holders are dropped
                        (default 268435456 = 256 MiB; 1048576-68719476736)
    --max-connections N most open connections of any kind; beyond it accepting
                        pauses until some close (default: from the open-file
                        limit, minus headroom; 16-10000000)
    --max-per-ip N      most simultaneous connections from one IP address
                        (default 32; 0 = no limit; max 10000000)
    --max-output BYTES  unsent output a lobby client may accumulate before it
                        is dropped as a slow consumer (default 1048576;
                        4096-1073741824)
    --flood-rate N      chat and room commands per second a client may send
                        on average (default 5; 0 = no limit; max 100000)
    --flood-burst N     ... and in a burst (default 10; 1-100000)
    --shutdown-grace S  on SIGTERM/SIGINT, seconds running games may go on
                        before the server exits (default 30; max 86400)
    --stats-interval S  seconds between statistics lines in the log
                        (default 60; 0 = never; max 86400)
    --db PATH           the JSON lobby's SQLite database, vcmilobby's schema
                        (default vcmiLobby.db in the working directory;
                        created if missing)
    --admin-listen ADDR:PORT
                        serve GET /metrics (Prometheus), /healthz,
                        /api/v1/status and the lobby's /api/v1/stats, /chats,
                        /rooms over HTTP on this address (off by default; may
                        be given more than once). It must not face the
                        internet unprotected: bind it to loopback or a private
                        network, or put it behind a firewall or a proxy
    --admin-timeout S   seconds an admin client has to send its request
                        (default 5)
    --proxy-protocol-from CIDR[,CIDR...]
                        connections to the game port from these networks must
                        start with a PROXY protocol v1 or v2 header (HAProxy
                        send-proxy / send-proxy-v2); the address in it is the
                        client's. Others are never read as PROXY (off by default)
    --ban-file PATH     banned addresses, networks and names, one a line:
                        `203.0.113.7`, `2001:db8::/32`, `name:Griefer`, `#`
                        comments (names: launcher users and VCMI 1.5+
                        accounts); re-read on SIGHUP
    --motd-file PATH    text sent to every user after login as System chat
                        lines; re-read on SIGHUP
    --max-frame-json BYTES
                        largest JSON lobby message accepted (default 1048576);
                        a larger frame header closes the connection
    --max-frame-game BYTES
                        largest game frame relayed between a VCMI 1.5+ match
                        server and a guest (default 67108864, as vcmilobby)
    -h, --help          print this help
    -V, --version       print the version
";

/// Everything the server can be told.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub port: u16,
    pub bind: IpAddr,
    pub capacity: usize,
    /// `None` when disabled.
    pub healthcheck: Option<Duration>,
    pub logging: log::LevelFilter,
    pub log_dir: PathBuf,
    pub max_frame: usize,
    pub session_grace: Duration,
    /// How long a started game waits for its first pipe, and a registered
    /// pipe for its partner.
    pub pipe_wait: Duration,
    pub max_sessions_per_ip: usize,
    /// `None`: 4 x capacity.
    pub max_sessions: Option<usize>,
    pub pipe_timeout: Duration,
    pub first_frame_timeout: Duration,
    pub login_timeout: Duration,
    pub frame_timeout: Duration,
    /// Bytes all peers together may make the server hold.
    pub memory_budget: usize,
    /// `None`: derived from the open-file limit at start.
    pub max_connections: Option<usize>,
    /// 0 = off.
    pub max_per_ip: usize,
    pub max_output: usize,
    /// Commands per second; 0 = off.
    pub flood_rate: u32,
    pub flood_burst: u32,
    pub shutdown_grace: Duration,
    /// `None`: never.
    pub stats_interval: Option<Duration>,
    /// The JSON lobby's SQLite file.
    pub db: PathBuf,
    /// Every `--bind` in order (`bind` is the first); empty: just `bind`.
    pub binds: Vec<IpAddr>,
    /// Admin HTTP listeners (`--admin-listen`); empty: off.
    pub admin_listen: Vec<SocketAddr>,
    /// Time an admin client has to send its request.
    pub admin_timeout: Duration,
    /// `--proxy-protocol-from`; empty: off.
    pub proxy_protocol_from: TrustedSources,
    pub ban_file: Option<PathBuf>,
    pub motd_file: Option<PathBuf>,
    pub max_frame_json: usize,
    pub max_frame_game: usize,
    /// Period of our own empty frame to every JSON connection (§1.1: 10 s;
    /// `json-heartbeat-ms` is a hidden setting for tests).
    pub json_heartbeat: Duration,
}

impl Config {
    /// Live started games allowed in all.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
            .unwrap_or_else(|| self.capacity.saturating_mul(4))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 5002,
            bind: IpAddr::from([0, 0, 0, 0]),
            capacity: 50,
            healthcheck: Some(Duration::from_secs(30)),
            logging: log::LevelFilter::Info,
            log_dir: PathBuf::from("."),
            max_frame: 64 * 1024,
            session_grace: Duration::from_secs(1800),
            pipe_wait: Duration::from_secs(120),
            max_sessions_per_ip: 8,
            max_sessions: None,
            pipe_timeout: Duration::from_secs(30),
            first_frame_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(30),
            memory_budget: 256 * 1024 * 1024,
            max_connections: None,
            max_per_ip: 32,
            max_output: 1024 * 1024,
            flood_rate: 5,
            flood_burst: 10,
            shutdown_grace: Duration::from_secs(30),
            stats_interval: Some(Duration::from_secs(60)),
            db: PathBuf::from("vcmiLobby.db"),
            binds: Vec::new(),
            admin_listen: Vec::new(),
            admin_timeout: crate::ops::admin_http::REQUEST_TIMEOUT,
            proxy_protocol_from: TrustedSources::default(),
            ban_file: None,
            motd_file: None,
            max_frame_json: 1024 * 1024,
            max_frame_game: 64 * 1024 * 1024,
            json_heartbeat: Duration::from_secs(10),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Run(Box<Config>),
    Help,
    Version,
}

/// A command-line error: the message names the argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const KEYS: &[&str] = &[
    "port",
    "bind",
    "capacity",
    "healthcheck",
    "logging",
    "log-dir",
    "max-frame",
    "session-grace",
    "pipe-wait",
    "max-sessions-per-ip",
    "max-sessions",
    "pipe-timeout",
    "first-frame-timeout",
    "login-timeout",
    "frame-timeout",
    "memory-budget",
    "max-connections",
    "max-per-ip",
    "max-output",
    "flood-rate",
    "flood-burst",
    "shutdown-grace",
    "stats-interval",
    "db",
    "admin-listen",
    "admin-timeout",
    "proxy-protocol-from",
    "ban-file",
    "motd-file",
    "max-frame-json",
    "max-frame-game",
    // hidden (tests): the JSON heartbeat period in milliseconds
    "json-heartbeat-ms",
];

/// Parses the arguments (without the program name).
pub fn parse(args: Vec<std::ffi::OsString>) -> Result<Action, ArgError> {
    let mut pargs = pico_args::Arguments::from_vec(args);
    if pargs.contains(["-h", "--help"]) {
        return Ok(Action::Help);
    }
    if pargs.contains(["-V", "--version"]) {
        return Ok(Action::Version);
    }
    // later settings win, as in the seed; flags are applied after key=value
    let mut settings: Vec<(String, String)> = Vec::new();
    let mut flags = Vec::new();
    for key in KEYS {
        let flag: &'static str = Box::leak(format!("--{key}").into_boxed_str());
        while let Some(v) = pargs
            .opt_value_from_str::<_, String>(flag)
            .map_err(|e| ArgError(format!("--{key}: {e}")))?
        {
            flags.push((key.to_string(), v));
        }
    }
    for free in pargs.finish() {
        let token = free
            .into_string()
            .map_err(|t| ArgError(format!("argument is not valid text: {t:?}")))?;
        match token.split_once('=') {
            Some((k, v)) => {
                let k = k.replace('_', "-");
                if !KEYS.contains(&k.as_str()) {
                    return Err(ArgError(format!("unknown argument: {token}")));
                }
                settings.push((k, v.to_string()));
            }
            None => return Err(ArgError(format!("unknown argument: {token}"))),
        }
    }
    settings.extend(flags);
    let mut c = Config::default();
    for (k, v) in settings {
        apply(&mut c, &k, &v)?;
    }
    Ok(Action::Run(Box::new(c)))
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ArgError> {
    v.trim()
        .parse()
        .map_err(|_| ArgError(format!("{key}: '{v}' is not a valid number")))
}

/// Longest duration any option accepts: one day. Larger values are typos,
/// and unbounded ones would overflow `Instant` arithmetic at first use.
const MAX_SECONDS: u64 = 86_400;
/// Longest per-connection timeout (first frame, handshake, login, frame).
const MAX_CONN_SECONDS: u64 = 3_600;

/// A whole number within `min..=max`.
fn bounded<T>(key: &str, v: &str, min: T, max: T) -> Result<T, ArgError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = number(key, v)?;
    if n < min || n > max {
        return Err(ArgError(format!(
            "{key}: must be between {min} and {max}, got {n}"
        )));
    }
    Ok(n)
}

fn seconds(key: &str, v: &str, min: u64, max: u64) -> Result<Duration, ArgError> {
    let s: u64 = number(key, v)?;
    if s < min || s > max {
        return Err(ArgError(format!(
            "{key}: must be between {min} and {max} seconds, got {s}"
        )));
    }
    Ok(Duration::from_secs(s))
}

fn apply(c: &mut Config, key: &str, v: &str) -> Result<(), ArgError> {
    match key {
        "port" => c.port = number(key, v)?,
        "bind" => {
            let ip: IpAddr = v
                .trim()
                .parse()
                .map_err(|_| ArgError(format!("bind: '{v}' is not an IP address")))?;
            if !c.binds.contains(&ip) {
                c.binds.push(ip);
            }
            c.bind = c.binds[0];
        }
        "capacity" => c.capacity = bounded(key, v, 1, 1_000_000)?,
        "healthcheck" => {
            let s: u64 = bounded(key, v, 0, MAX_SECONDS)?;
            c.healthcheck = match s {
                0 => None,
                1..=9 => {
                    return Err(ArgError(format!(
                        "healthcheck: {s} seconds is too frequent; use 0 (off) or at least 10"
                    )))
                }
                s => Some(Duration::from_secs(s)),
            }
        }
        "logging" => {
            c.logging = match v.trim().to_ascii_lowercase().as_str() {
                "debug" => log::LevelFilter::Debug,
                "info" => log::LevelFilter::Info,
                "warning" | "warn" => log::LevelFilter::Warn,
                "error" | "critical" => log::LevelFilter::Error,
                _ => {
                    return Err(ArgError(format!(
                        "logging: '{v}' is not one of debug, info, warning, error, critical"
                    )))
                }
            }
        }
        "log-dir" => c.log_dir = PathBuf::from(v),
        "max-frame" => {
            c.max_frame = number(key, v)?;
            if !(1024..=16 * 1024 * 1024).contains(&c.max_frame) {
                return Err(ArgError(format!(
                    "max-frame: must be between 1024 and 16777216 bytes, got {}",
                    c.max_frame
                )));
            }
        }
        "session-grace" => c.session_grace = seconds(key, v, 1, MAX_SECONDS)?,
        "pipe-wait" => c.pipe_wait = seconds(key, v, 1, MAX_SECONDS)?,
        "max-sessions-per-ip" => c.max_sessions_per_ip = bounded(key, v, 1, 100_000)?,
        "max-sessions" => c.max_sessions = Some(bounded(key, v, 1, 1_000_000)?),
        "pipe-timeout" => c.pipe_timeout = seconds(key, v, 1, MAX_CONN_SECONDS)?,
        "first-frame-timeout" => c.first_frame_timeout = seconds(key, v, 1, MAX_CONN_SECONDS)?,
        "login-timeout" => c.login_timeout = seconds(key, v, 1, MAX_CONN_SECONDS)?,
        "frame-timeout" => c.frame_timeout = seconds(key, v, 1, MAX_CONN_SECONDS)?,
        "memory-budget" => c.memory_budget = bounded(key, v, 1 << 20, 64 << 30)?,
        "max-connections" => c.max_connections = Some(bounded(key, v, 16, 10_000_000)?),
        "max-per-ip" => c.max_per_ip = bounded(key, v, 0, 10_000_000)?,
        "max-output" => c.max_output = bounded(key, v, 4096, 1 << 30)?,
        "flood-rate" => c.flood_rate = bounded(key, v, 0, 100_000)?,
        "flood-burst" => c.flood_burst = bounded(key, v, 1, 100_000)?,
        "shutdown-grace" => c.shutdown_grace = seconds(key, v, 0, MAX_SECONDS)?,
        "stats-interval" => {
            let s: u64 = bounded(key, v, 0, MAX_SECONDS)?;
            c.stats_interval = (s > 0).then(|| Duration::from_secs(s));
        }
        "db" => c.db = PathBuf::from(v),
        "admin-listen" => c.admin_listen.push(v.trim().parse().map_err(|_| {
            ArgError(format!(
                "admin-listen: '{v}' is not ADDR:PORT (e.g. 127.0.0.1:5003 or [::1]:5003)"
            ))
        })?),
        "admin-timeout" => c.admin_timeout = seconds(key, v, 1, MAX_CONN_SECONDS)?,
        "proxy-protocol-from" => {
            // its message names --proxy-protocol-from already
            c.proxy_protocol_from = TrustedSources::parse(v).map_err(ArgError)?
        }
        "ban-file" => c.ban_file = Some(PathBuf::from(v)),
        "motd-file" => c.motd_file = Some(PathBuf::from(v)),
        "max-frame-json" => {
            c.max_frame_json = number(key, v)?;
            if !(1024..=64 * 1024 * 1024).contains(&c.max_frame_json) {
                return Err(ArgError(format!(
                    "max-frame-json: must be between 1024 and 67108864 bytes, got {}",
                    c.max_frame_json
                )));
            }
        }
        "max-frame-game" => {
            c.max_frame_game = number(key, v)?;
            if !(1024..=u32::MAX as usize).contains(&c.max_frame_game) {
                return Err(ArgError(format!(
                    "max-frame-game: must be between 1024 and 4294967295 bytes, got {}",
                    c.max_frame_game
                )));
            }
        }
        "json-heartbeat-ms" => {
            let ms: u64 = number(key, v)?;
            if ms < 10 {
                return Err(ArgError(format!(
                    "json-heartbeat-ms: must be at least 10, got {ms}"
                )));
            }
            c.json_heartbeat = Duration::from_millis(ms);
        }
        _ => return Err(ArgError(format!("unknown argument: {key}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, ArgError> {
        match parse(args.iter().map(Into::into).collect())? {
            Action::Run(c) => Ok(*c),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn seed_form_and_flags() {
        let c = run(&["logging=info", "port=5002", "capacity=50", "healthcheck=30"]).unwrap();
        assert_eq!(c, Config::default());
        let c = run(&["--port", "7000", "capacity=9", "--healthcheck", "0"]).unwrap();
        assert_eq!((c.port, c.capacity, c.healthcheck), (7000, 9, None));
        let c = run(&["port=1", "--port=2"]).unwrap();
        assert_eq!(c.port, 2);
        let c = run(&[
            "logging=debug",
            "--log-dir",
            "/tmp/x",
            "--max-frame",
            "1024",
        ])
        .unwrap();
        assert_eq!(c.logging, log::LevelFilter::Debug);
        assert_eq!(c.log_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.max_frame, 1024);
    }

    #[test]
    fn invalid_values_name_the_argument() {
        for (args, word) in [
            (&["port=abc"][..], "port"),
            (&["--port", "70000"], "port"),
            (&["healthcheck=5"], "healthcheck"),
            (&["logging=loud"], "logging"),
            (&["capacity=0"], "capacity"),
            (&["--bind", "nowhere"], "bind"),
            (&["colour=blue"], "colour"),
            (&["stray"], "stray"),
            (&["--max-frame", "10"], "max-frame"),
            (&["--session-grace", "99999999999"], "session-grace"),
            (&["--memory-budget", "1"], "memory-budget"),
            (&["--max-output", "99999999999999"], "max-output"),
            (&["--login-timeout", "0"], "login-timeout"),
            (&["--frame-timeout", "3601"], "frame-timeout"),
            (&["--pipe-wait", "86401"], "pipe-wait"),
            (&["--max-sessions-per-ip", "0"], "max-sessions-per-ip"),
            (&["--flood-rate", "4294967296"], "flood-rate"),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.0.contains(word), "{args:?}: {e}");
        }
    }

    #[test]
    fn operator_flags() {
        let c = run(&[
            "--bind",
            "127.0.0.1",
            "--bind",
            "::1",
            "--admin-listen",
            "[::1]:5003",
            "--proxy-protocol-from",
            "10.0.0.0/8,fd00::/8",
            "--ban-file",
            "/etc/b",
            "--motd-file",
            "/etc/m",
            "--log-dir",
            "-",
            "--db",
            "/var/lib/x.db",
        ])
        .unwrap();
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!((c.bind, c.binds.clone()), (ips[0], ips));
        assert_eq!(c.admin_listen, vec!["[::1]:5003".parse().unwrap()]);
        assert!(c.proxy_protocol_from.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.proxy_protocol_from.contains("11.1.2.3".parse().unwrap()));
        assert_eq!(c.ban_file, Some(PathBuf::from("/etc/b")));
        assert_eq!(c.motd_file, Some(PathBuf::from("/etc/m")));
        assert_eq!(c.log_dir, PathBuf::from("-"));
        assert_eq!(c.db, PathBuf::from("/var/lib/x.db"));
        for (args, word) in [
            (&["--admin-listen", "5003"][..], "admin-listen"),
            (
                &["--proxy-protocol-from", "10.0.0.0/99"],
                "proxy-protocol-from",
            ),
            (&["--max-frame-json", "10"], "max-frame-json"),
            (&["--max-frame-game", "10"], "max-frame-game"),
            (&["--json-heartbeat-ms", "1"], "json-heartbeat-ms"),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.0.contains(word), "{args:?}: {e}");
        }
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(vec!["--help".into()]), Ok(Action::Help));
        assert_eq!(parse(vec!["-V".into()]), Ok(Action::Version));
    }
}
