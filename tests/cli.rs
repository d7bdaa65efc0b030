//! The command line as an operator meets it.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vcmi-proxy"))
        .args(args)
        .output()
        .expect("run vcmi-proxy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for word in [
        "--port",
        "--bind",
        "--capacity",
        "--healthcheck",
        "--logging",
        "--log-dir",
        "--max-frame",
    ] {
        assert!(out.contains(word), "help lacks {word}");
    }
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("vcmi-proxy {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn invalid_values_exit_2_with_one_line_naming_the_argument() {
    for (args, word) in [
        (&["port=http"][..], "port"),
        (&["healthcheck=3"], "healthcheck"),
        (&["--logging", "chatty"], "logging"),
        (&["--capacity", "-1"], "capacity"),
        (&["nonsense"], "nonsense"),
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(word), "{args:?}: {err}");
    }
}

#[test]
fn seed_command_line_starts_and_writes_the_log() {
    let dir = std::env::temp_dir().join(format!("vcmi-proxy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vcmi-proxy"))
        // the default --db, vcmiLobby.db, is created in the working directory
        .current_dir(&dir)
        .args([
            "logging=debug",
            "port=0",
            "capacity=50",
            "healthcheck=30",
            "bind=127.0.0.1",
        ])
        .arg(format!("log-dir={}", dir.display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("read");
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line}");
    assert!(
        dir.join("vcmiLobby.db").exists(),
        "default database created"
    );
    let log = std::fs::read_to_string(dir.join("proxyServer.log")).expect("proxyServer.log");
    assert!(
        log.contains(" - INFO - [!] Listening as 127.0.0.1:"),
        "{log}"
    );
    assert!(dir.join("proxyServer_debug.log").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn out_of_range_values_exit_2_without_a_panic() {
    for args in [
        &["--session-grace", "99999999999"][..],
        &["--memory-budget", "99999999999999999"],
        &["--login-timeout", "100000"],
        &["pipe-wait=0"],
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.contains(&args[0].trim_start_matches("--")[..8]),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_database_that_cannot_be_opened_exits_2_with_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_vcmi-proxy"))
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--db",
            "/nonexistent-dir/x/vcmiLobby.db",
        ])
        .arg("--log-dir")
        .arg(std::env::temp_dir())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent-dir/x/vcmiLobby.db"), "{err}");
}
