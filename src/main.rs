//! Entry point: parse arguments, set up logging, run the event loop.

use std::io::Write;
use std::process::ExitCode;
use vcmi_proxy::config::{self, Action};
use vcmi_proxy::json::sqlite::SqliteStore;
use vcmi_proxy::{logging, server::Server};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let cfg = match config::parse(args) {
        Ok(Action::Run(cfg)) => *cfg,
        Ok(Action::Help) => {
            print!("{}", config::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Action::Version) => {
            println!("vcmi-proxy {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("vcmi-proxy: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(cfg.logging, &cfg.log_dir) {
        eprintln!("vcmi-proxy: {e}");
        return ExitCode::from(2);
    }
    let store = match SqliteStore::open(&cfg.db) {
        Ok(store) => store,
        Err(e) => {
            eprintln!(
                "vcmi-proxy: cannot open the lobby database {}: {e}",
                cfg.db.display()
            );
            return ExitCode::from(2);
        }
    };
    let mut server = match Server::bind(cfg.clone(), Box::new(store)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vcmi-proxy: cannot start on {}:{}: {e}", cfg.bind, cfg.port);
            log::error!("[!] cannot start on {}:{}: {e}", cfg.bind, cfg.port);
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = server.install_signals() {
        log::warn!("[!] signals not handled: {e}");
    }
    log::info!("==========================================");
    log::info!("[!] vcmi-proxy version {}", env!("CARGO_PKG_VERSION"));
    log::info!("[!] Listening as {}", server.local_addr());
    log::info!(
        "[!] capacity {} users, at most {} connections",
        cfg.capacity,
        server.max_connections()
    );
    // tests and supervisors read this line to learn the port (port=0)
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }
    for addr in server.admin_addrs() {
        log::info!("[!] admin endpoint on http://{addr}/metrics");
        println!("admin listening on {addr}");
    }
    let _ = std::io::stdout().flush();
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("[!] event loop failed: {e}");
            eprintln!("vcmi-proxy: event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}
