//! Command line. Two spellings are accepted and may be mixed: the seed's
//! `key=value` tokens (`vcmi-proxy logging=info port=5002 capacity=50
//! healthcheck=30`) and conventional flags (`--port 5002`). Invalid values
//! stop the program with one line naming the argument (exit code 2), never a
//! silent fallback.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
vcmi-proxy - lobby and game relay server for VCMI 1.1-1.4 online play

USAGE:
    vcmi-proxy [OPTIONS] [key=value ...]

OPTIONS (each also accepted as key=value, e.g. port=5002):
    --port N            TCP port to listen on (default 5002; 0 picks a free port)
    --bind ADDR         address to listen on (default 0.0.0.0)
    --capacity N        most logged-in lobby users at once (default 50)
    --healthcheck N     seconds of silence before a lobby client (VCMI 1.2+) is
                        asked :>>HEALTH:, dropped after as long again
                        (default 30; 0 disables; 1-9 are refused)
    --logging LEVEL     debug, info, warning, error or critical (default info)
    --log-dir DIR       where proxyServer.log (and proxyServer_debug.log with
                        logging=debug) are written (default: current directory)
    --max-frame BYTES   largest client frame accepted (default 65536)
    --session-grace S   seconds a started game is kept without pipes (default 1800)
    --pipe-timeout S    seconds a game pipe may take for its handshake (default 30)
    --first-frame-timeout S
                        seconds a new connection may take to send its first
                        complete frame (default 10)
    --max-connections N most open connections of any kind; beyond it accepting
                        pauses until some close (default: from the open-file
                        limit, minus headroom)
    --max-per-ip N      most simultaneous connections from one IP address
                        (default 32; 0 = no limit)
    --max-output BYTES  unsent output a lobby client may accumulate before it
                        is dropped as a slow consumer (default 1048576)
    --flood-rate N      chat and room commands per second a client may send
                        on average (default 5; 0 = no limit)
    --flood-burst N     ... and in a burst (default 10)
    --shutdown-grace S  on SIGTERM/SIGINT, seconds running games may go on
                        before the server exits (default 30)
    --stats-interval S  seconds between statistics lines in the log
                        (default 60; 0 = never)
    --db PATH           the JSON lobby's SQLite database, vcmilobby's schema
                        (default vcmiLobby.db in the working directory;
                        created if missing)
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
    pub pipe_timeout: Duration,
    pub first_frame_timeout: Duration,
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
    pub max_frame_json: usize,
    pub max_frame_game: usize,
    /// Period of our own empty frame to every JSON connection (§1.1: 10 s;
    /// `json-heartbeat-ms` is a hidden setting for tests).
    pub json_heartbeat: Duration,
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
            pipe_timeout: Duration::from_secs(30),
            first_frame_timeout: Duration::from_secs(10),
            max_connections: None,
            max_per_ip: 32,
            max_output: 1024 * 1024,
            flood_rate: 5,
            flood_burst: 10,
            shutdown_grace: Duration::from_secs(30),
            stats_interval: Some(Duration::from_secs(60)),
            db: PathBuf::from("vcmiLobby.db"),
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
    "pipe-timeout",
    "first-frame-timeout",
    "max-connections",
    "max-per-ip",
    "max-output",
    "flood-rate",
    "flood-burst",
    "shutdown-grace",
    "stats-interval",
    "db",
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

fn seconds(key: &str, v: &str, min: u64) -> Result<Duration, ArgError> {
    let s: u64 = number(key, v)?;
    if s < min {
        return Err(ArgError(format!(
            "{key}: must be at least {min} seconds, got {s}"
        )));
    }
    Ok(Duration::from_secs(s))
}

fn apply(c: &mut Config, key: &str, v: &str) -> Result<(), ArgError> {
    match key {
        "port" => c.port = number(key, v)?,
        "bind" => {
            c.bind = v
                .trim()
                .parse()
                .map_err(|_| ArgError(format!("bind: '{v}' is not an IP address")))?
        }
        "capacity" => {
            c.capacity = number(key, v)?;
            if c.capacity == 0 {
                return Err(ArgError("capacity: must be at least 1".into()));
            }
        }
        "healthcheck" => {
            let s: u64 = number(key, v)?;
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
        "session-grace" => c.session_grace = seconds(key, v, 1)?,
        "pipe-timeout" => c.pipe_timeout = seconds(key, v, 1)?,
        "first-frame-timeout" => c.first_frame_timeout = seconds(key, v, 1)?,
        "max-connections" => {
            let n: usize = number(key, v)?;
            if n < 16 {
                return Err(ArgError(format!(
                    "max-connections: must be at least 16, got {n}"
                )));
            }
            c.max_connections = Some(n);
        }
        "max-per-ip" => c.max_per_ip = number(key, v)?,
        "max-output" => {
            c.max_output = number(key, v)?;
            if c.max_output < 4096 {
                return Err(ArgError(format!(
                    "max-output: must be at least 4096 bytes, got {}",
                    c.max_output
                )));
            }
        }
        "flood-rate" => c.flood_rate = number(key, v)?,
        "flood-burst" => {
            c.flood_burst = number(key, v)?;
            if c.flood_burst == 0 {
                return Err(ArgError("flood-burst: must be at least 1".into()));
            }
        }
        "shutdown-grace" => c.shutdown_grace = seconds(key, v, 0)?,
        "stats-interval" => {
            let s: u64 = number(key, v)?;
            c.stats_interval = (s > 0).then(|| Duration::from_secs(s));
        }
        "db" => c.db = PathBuf::from(v),
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
