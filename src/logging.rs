//! Log files as the reference writes them (PROTOCOL.md §12.2):
//! `proxyServer.log` at info and up, `proxyServer_debug.log` too when
//! logging=debug, both appended in the log directory; warnings and errors
//! also go to stderr for whoever supervises the process. `--log-dir -`
//! writes no file and sends every line to stderr instead (journald).

use std::fs::{File, OpenOptions};
use std::io::{LineWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A log file that SIGHUP can reopen, so logrotate can move it away.
struct ReopenableFile {
    path: PathBuf,
    /// Line-buffered: fern writes a record in many fragments, and one
    /// write(2) per line instead of per fragment matters in a busy lobby.
    file: Mutex<LineWriter<File>>,
}

impl ReopenableFile {
    fn open(path: PathBuf) -> std::io::Result<Arc<ReopenableFile>> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Arc::new(ReopenableFile {
            path,
            file: Mutex::new(LineWriter::new(file)),
        }))
    }

    fn reopen(&self) -> std::io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let mut current = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = current.flush();
        *current = LineWriter::new(file);
        Ok(())
    }
}

/// fern's output: writes go to whatever file is current.
struct Writer(Arc<ReopenableFile>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush()
    }
}

static FILES: OnceLock<Vec<Arc<ReopenableFile>>> = OnceLock::new();

/// Reopens the log files (on SIGHUP, after logrotate moved them).
pub fn reopen() {
    for f in FILES.get().map(Vec::as_slice).unwrap_or_default() {
        if let Err(e) = f.reopen() {
            eprintln!("vcmi-proxy: cannot reopen {}: {e}", f.path.display());
        }
    }
    log::info!("[!] log files reopened");
}

/// `--log-dir -`: no file, every line (with its level) to stderr, where a
/// service manager (journald) collects it.
pub const STDERR_ONLY: &str = "-";

/// Installs the global logger.
pub fn init(level: log::LevelFilter, dir: &Path) -> Result<(), String> {
    if dir == Path::new(STDERR_ONLY) {
        return fern::Dispatch::new()
            .format(|out, message, record| {
                out.finish(format_args!(
                    "{} - {} - {}",
                    timestamp(),
                    level_name(record.level()),
                    message
                ))
            })
            .level(level)
            .chain(std::io::stderr())
            .apply()
            .map_err(|e| format!("logger: {e}"));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("log-dir {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    let mut open = |name: &str| -> Result<Box<dyn Write + Send>, String> {
        let f = ReopenableFile::open(dir.join(name))
            .map_err(|e| format!("log-dir {}: {name}: {e}", dir.display()))?;
        files.push(Arc::clone(&f));
        Ok(Box::new(Writer(f)))
    };
    // proxyServer.log never goes below info, whatever logging= says
    let file_level = level.min(log::LevelFilter::Info);
    let mut d = fern::Dispatch::new()
        .format(|out, message, record| {
            out.finish(format_args!(
                "{} - {} - {}",
                timestamp(),
                level_name(record.level()),
                message
            ))
        })
        .level(level)
        .chain(
            fern::Dispatch::new()
                .level(file_level)
                .chain(open("proxyServer.log")?),
        )
        .chain(
            fern::Dispatch::new()
                .level(log::LevelFilter::Warn)
                .chain(std::io::stderr()),
        );
    if level >= log::LevelFilter::Debug {
        d = d.chain(
            fern::Dispatch::new()
                .level(log::LevelFilter::Debug)
                .chain(open("proxyServer_debug.log")?),
        );
    }
    let _ = FILES.set(files);
    d.apply().map_err(|e| format!("logger: {e}"))
}

fn level_name(l: log::Level) -> &'static str {
    match l {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug | log::Level::Trace => "DEBUG",
    }
}

/// `%d-%b-%y %H:%M:%S` in UTC, without pulling in a date crate.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02}-{}-{:02} {:02}:{:02}:{:02}",
        d,
        MONTHS[(m - 1) as usize],
        y % 100,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_780), (2026, 11, 23));
    }
}
