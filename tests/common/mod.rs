//! Test support shared by the integration tests (`mod common;`).
//!
//! * [`Server`] runs the real `vcmi-proxy` binary on an ephemeral loopback port with a private log
//!   directory, so every test (or every conformance scenario) gets a server nobody else talks to:
//!   the welcome line and the USERS lists count every connection of a server.
//! * [`frame`], [`lobby_hello`], [`pipe_hello`] build what a VCMI launcher or game process sends
//!   (re-exported from `vcmi_proxy::wire`, the same bytes as `vcmiproto.py` of the conformance
//!   material).
//! * [`Client`] is a blocking client for hand-written tests: every read blocks on the socket with a
//!   read timeout, so tests never sleep-and-hope.
//!
//! Only `std` and the library are used so that every test binary can include this module at no
//! cost.

// Every integration test is its own crate and uses a different subset of these helpers.
#![allow(dead_code)]

pub mod admin;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vcmi_proxy::wire;
// What clients send: one set of builders, in the library (shared with benches, fuzz and the tool).
// Each test binary uses a different subset of them.
#[allow(unused_imports)]
pub use vcmi_proxy::wire::{
    frame, lobby_hello, lobby_hello_payload, split_messages, ENDIAN_LITTLE,
};

/// How long [`Server::start`] waits for the `listening on` line. A debug build under a parallel
/// test run can be slow to start, but never this slow.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The VCMI version the launcher of the recordings announced.
pub const DEFAULT_VCMI_VERSION: &str = "1.4.5";

/// Distinguishes temp dirs of servers started by the same test process.
static SERVER_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A running `vcmi-proxy` child process; dropping it kills the process.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    /// Owned by this server alone: `<temp>/vcmi-proxy-test-<pid>-<seq>-<nanos>`.
    base_dir: PathBuf,
    log_dir: PathBuf,
    /// stdout after the listening line and all of stderr, collected by reader threads (a pipe
    /// nobody reads would eventually block a chatty server).
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The stderr reader; joined after a failed start so the error quotes all of stderr.
    stderr_reader: Option<thread::JoinHandle<()>>,
    keep_dir: bool,
}

impl Server {
    /// Start the server with `--bind 127.0.0.1 --port 0 --log-dir <fresh dir>` followed by
    /// `args`; panics with the server's stderr if it does not come up.
    pub fn start(args: &[&str]) -> Server {
        match Server::try_start(args) {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Server::start`], but reports a server that does not come up as an error (the
    /// conformance runner turns it into a failed scenario instead of aborting everything).
    pub fn try_start(args: &[&str]) -> Result<Server, String> {
        let base_dir = unique_temp_dir()?;
        let log_dir = base_dir.join("log");
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| format!("cannot create log dir {}: {e}", log_dir.display()))?;

        let mut child = Command::new(env!("CARGO_BIN_EXE_vcmi-proxy"))
            .args(["--bind", "127.0.0.1", "--port", "0", "--log-dir"])
            .arg(&log_dir)
            // the JSON lobby's database in the server's own dir (a later `--db` in `args` wins),
            // never vcmiLobby.db in the working directory
            .arg("--db")
            .arg(base_dir.join("vcmiLobby.db"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot spawn vcmi-proxy: {e}"))?;

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut stderr_reader = None;
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            stderr_reader = Some(thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // Ends at EOF, i.e. when the child exits.
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    lock(&sink).extend_from_slice(&buf[..n]);
                }
            }));
        }

        // The first stdout line goes through a channel so that waiting for it can time out;
        // the rest is kept for `stdout()`.
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (line_tx, line_rx) = mpsc::channel::<io::Result<String>>();
        if let Some(pipe) = child.stdout.take() {
            let sink = Arc::clone(&stdout);
            thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut first = String::new();
                let res = reader.read_line(&mut first).map(|_| first);
                let _ = line_tx.send(res);
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    lock(&sink).extend_from_slice(&buf[..n]);
                }
            });
        }

        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_dir,
            log_dir,
            stdout,
            stderr,
            stderr_reader,
            keep_dir: false,
        };
        let line = match line_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(line)) if !line.is_empty() => line,
            Ok(Ok(_)) | Ok(Err(_)) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(server.startup_failure("stdout closed before the listening line"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(server
                    .startup_failure(&format!("no listening line within {STARTUP_TIMEOUT:?}")));
            }
        };
        let addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse::<SocketAddr>().ok());
        match addr {
            Some(addr) => {
                server.addr = addr;
                Ok(server)
            }
            None => Err(server.startup_failure(&format!(
                "expected `listening on 127.0.0.1:PORT` as first stdout line, got {line:?}"
            ))),
        }
    }

    /// Build the error of a failed start: kill the child (so its stderr is complete) and quote it.
    fn startup_failure(&mut self, what: &str) -> String {
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .map(|s| s.to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"));
        // The child is gone, so its stderr pipe is at EOF and the reader ends promptly.
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let stderr = self.stderr_text();
        format!(
            "vcmi-proxy did not start: {what} ({status}); stderr:\n{}",
            if stderr.is_empty() {
                "(empty)"
            } else {
                &stderr
            }
        )
    }

    /// The address the server listens on (127.0.0.1 and the port it chose).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The directory passed as `--log-dir` (removed when the server is dropped, unless
    /// [`Server::keep_log_dir`] was called or the dropping thread is panicking).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Keep the log directory after the server is dropped (to look at a failure's logs).
    pub fn keep_log_dir(&mut self) {
        self.keep_dir = true;
    }

    /// What the server wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr)).into_owned()
    }

    /// What the server wrote to stdout after its listening line so far.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stdout)).into_owned()
    }

    /// Connect a [`Client`] to this server.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() && !self.keep_dir {
            // A failing test: the logs are what one wants to look at next.
            eprintln!("vcmi-proxy logs kept in {}", self.log_dir.display());
        } else if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.base_dir);
        }
    }
}

/// Lock a mutex even if a reader thread panicked while holding it (the data is only bytes).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A new empty directory under the system temp dir. The name combines pid, a per-process counter
/// and the clock, so parallel test processes and repeated runs never share one.
fn unique_temp_dir() -> Result<PathBuf, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seq = SERVER_SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "vcmi-proxy-test-{}-{seq}-{nanos}",
        std::process::id()
    ));
    // create_dir (not create_dir_all) fails if the name exists: the directory is really fresh.
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

// -- what clients send ------------------------------------------------------------------------

/// Everything a VCMI game process writes to open a pipe ([`vcmi_proxy::wire::pipe_hello`]), with
/// the name `VCMI 1.4.5 (<role>)` when `name` is `None`.
pub fn pipe_hello(role: &str, uuid: &str, name: Option<&str>, endian: &[u8]) -> Vec<u8> {
    match name {
        Some(n) => wire::pipe_hello(n, uuid, endian),
        None => wire::pipe_hello(
            &format!("VCMI {DEFAULT_VCMI_VERSION} ({role})"),
            uuid,
            endian,
        ),
    }
}

// -- small helpers the test files share -------------------------------------------------------

/// How long [`login`] waits for the welcome burst.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `needle` (non-empty) occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Bytes as text, invalid UTF-8 replaced (for assertion messages).
pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Logs `user` in (protocol 5, utf8, VCMI 1.4.5) and consumes the welcome burst.
pub fn login(server: &Server, user: &str) -> Client {
    let mut c = server.client();
    c.hello(user);
    c.recv_until(|b| contains(b, b"currently playing"), LOGIN_TIMEOUT);
    c
}

// -- a blocking client -----------------------------------------------------------------------

/// One TCP connection to the server. Received bytes are buffered until a `recv_*`/`expect_*`
/// call consumes them, so a message that arrived early is not lost.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The server closed (FIN) or reset the connection.
    closed: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        // Tests write small frames and expect them to arrive as written.
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("set write timeout");
        Client {
            stream,
            buf: Vec::new(),
            closed: false,
        }
    }

    /// Send one length-prefixed frame.
    pub fn send_frame(&mut self, payload: &[u8]) {
        self.send_raw(&frame(payload));
    }

    /// Send bytes as they are, in one write.
    pub fn send_raw(&mut self, data: &[u8]) {
        self.stream
            .write_all(data)
            .unwrap_or_else(|e| panic!("send of {} bytes failed: {e}", data.len()));
    }

    /// Send the lobby handshake for `user` (protocol 5, utf8, version 1.4.5).
    pub fn hello(&mut self, user: &str) {
        self.send_frame(&lobby_hello(
            user,
            5,
            Some("utf8"),
            Some(DEFAULT_VCMI_VERSION),
        ));
    }

    /// Whether the server closed or reset the connection (as far as reads have seen).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes received but not consumed yet.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Read once, waiting at most `wait`. Returns false on timeout or when the connection ended.
    fn read_some(&mut self, wait: Duration) -> bool {
        if self.closed {
            return false;
        }
        // A zero timeout is an error for set_read_timeout; 1 ms is the finest useful wait.
        let wait = wait.max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(wait))
            .expect("set read timeout");
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    return false;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return false;
                }
                // A reset (or any other error) ends the connection as far as the test goes.
                Err(_) => {
                    self.closed = true;
                    return false;
                }
            }
        }
    }

    /// Read until `done(buffered bytes)` is true, then return and consume the whole buffer.
    /// Panics (showing what arrived) on timeout or when the server closes first.
    pub fn recv_until(
        &mut self,
        mut done: impl FnMut(&[u8]) -> bool,
        timeout: Duration,
    ) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while !done(&self.buf) {
            let now = Instant::now();
            assert!(
                now < deadline,
                "timeout after {timeout:?}; received so far: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            if !self.read_some(deadline - now) && self.closed {
                panic!(
                    "connection closed; received before: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Read everything that arrives until `quiet` passes without a byte (or `timeout` in all, or
    /// the connection ends) and return it with what was already buffered. Handy to assert that
    /// nothing (more) arrives.
    pub fn recv_quiet(&mut self, quiet: Duration, timeout: Duration) -> Vec<u8> {
        let start = Instant::now();
        let mut last = start;
        loop {
            let now = Instant::now();
            if now - last >= quiet || now - start >= timeout || self.closed {
                break;
            }
            let wait = (quiet - (now - last)).min(timeout - (now - start));
            if self.read_some(wait) {
                last = Instant::now();
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Expect exactly these `:>>` messages next, in order. Waits until that many bytes arrived
    /// (or what arrived can no longer match), consumes only the expected length, so later
    /// messages stay buffered, and asserts with a message-by-message comparison.
    pub fn expect_messages(&mut self, expected: &[&str], timeout: Duration) {
        let want: Vec<u8> = expected.concat().into_bytes();
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.buf.len().min(want.len());
            if self.buf.len() >= want.len() || self.buf[..n] != want[..n] || self.closed {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.read_some(deadline - now);
        }
        let n = self.buf.len().min(want.len());
        let got: Vec<u8> = self.buf.drain(..n).collect();
        let got = split_messages(&String::from_utf8_lossy(&got));
        let want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            got, want,
            "unexpected messages (left: received, right: expected; closed: {})",
            self.closed
        );
    }

    /// Receive `n` complete `:>>` messages. A message is complete once the next one starts or
    /// 50 ms pass without a byte (the server may write one message in several pieces). Later
    /// messages stay buffered. Panics on timeout with what arrived.
    pub fn recv_messages(&mut self, n: usize, timeout: Duration) -> Vec<String> {
        const SETTLE: Duration = Duration::from_millis(50);
        let count = |b: &[u8]| b.windows(3).filter(|w| w == b":>>").count();
        let deadline = Instant::now() + timeout;
        while count(&self.buf) < n {
            let now = Instant::now();
            assert!(
                now < deadline && !self.closed,
                "expected {n} messages within {timeout:?} (closed: {}); received: {:?}",
                self.closed,
                String::from_utf8_lossy(&self.buf)
            );
            self.read_some(deadline - now);
        }
        // The n-th message is complete when message n+1 begins or the line goes quiet.
        let settle_end = Instant::now() + SETTLE;
        while count(&self.buf) == n && !self.closed {
            let now = Instant::now();
            if now >= settle_end || !self.read_some(settle_end - now) {
                break;
            }
        }
        // Byte offset where message n+1 starts (or the end of the buffer).
        let mut seen = 0;
        let mut cut = self.buf.len();
        for i in 0..self.buf.len().saturating_sub(2) {
            if &self.buf[i..i + 3] == b":>>" {
                seen += 1;
                if seen == n + 1 {
                    cut = i;
                    break;
                }
            }
        }
        let taken: Vec<u8> = self.buf.drain(..cut).collect();
        split_messages(&String::from_utf8_lossy(&taken))
    }

    /// Wait until the server closes or resets the connection; returns false if it is still open
    /// after `timeout`. Data arriving meanwhile stays buffered.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.read_some(deadline - now);
        }
        true
    }

    /// Close the connection from the client side (FIN).
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// The underlying stream, for tests that need socket options or a second handle.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl Server {
    /// Process id of the running server (e.g. to read `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Server {
    /// Resident set size of the server process in KiB (`VmRSS` of `/proc/<pid>/status`), or
    /// `None` once the process is gone.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib_of(self.pid())
    }

    /// The current content of `<log-dir>/proxyServer.log` (empty if it does not exist).
    pub fn log_text(&self) -> String {
        std::fs::read(self.log_dir.join("proxyServer.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Poll `proxyServer.log` every 50 ms until `done(log)` holds; returns the log then, or
    /// `None` after `timeout`.
    pub fn wait_log(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.log_text();
            if done(&text) {
                return Some(text);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Send a signal (`"TERM"`, `"HUP"`, ...) to the server with the `kill` command.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Wait up to `timeout` for the server process to exit on its own; its exit status, or
    /// `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `VmRSS` of process `pid` in KiB (Linux), `None` if it cannot be read.
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples a process's `VmRSS` every 10 ms on a thread and remembers the largest value, to
/// quote the peak memory of a phase of a test.
pub struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<thread::JoinHandle<u64>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut peak = rss_kib_of(pid).unwrap_or(0);
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib_of(pid).unwrap_or(0));
                thread::sleep(Duration::from_millis(10));
            }
            peak.max(rss_kib_of(pid).unwrap_or(0))
        });
        RssSampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop sampling; the peak in KiB.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
