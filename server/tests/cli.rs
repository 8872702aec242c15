//! The `tinsel` command as users meet it: help, defaults, bad config, signals.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::{LOOPBACK, Server, run, temp_dir};

fn tinsel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tinsel"))
}

#[test]
fn help_lists_every_option_with_its_default() {
    let (ok, out, _) = run(tinsel().args(["serve", "--help"]), Duration::from_secs(10));
    assert!(ok);
    for option in [
        "--config",
        "--rtmp-listen",
        "--http-listen",
        "--data-dir",
        "--stream",
        "--site-dir",
        "--viewer-queue-frames",
        "--viewer-stall-timeout-s",
    ] {
        assert!(out.contains(option), "{option} missing from:\n{out}");
    }
    for default in ["[::]:1935", "[::]:8080", "./data", "TINSEL_HTTP_LISTEN"] {
        assert!(out.contains(default), "{default} missing from:\n{out}");
    }
}

#[test]
fn bad_config_exits_non_zero_with_one_line() {
    let dir = temp_dir("badconfig");
    let file = dir.join("tinsel.toml");
    std::fs::write(&file, "http_listen = 8080\n").unwrap();
    let (ok, _, err) = run(
        tinsel().args(["serve", "--config"]).arg(&file),
        Duration::from_secs(10),
    );
    assert!(!ok);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("tinsel:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("tinsel.toml"), "names the file: {err}");

    let (ok, _, err) = run(
        tinsel().args(["serve", "--rtmp-listen", "nowhere"]),
        Duration::from_secs(10),
    );
    assert!(!ok);
    assert!(
        err.contains("rtmp_listen") && err.contains("[::]:1935"),
        "{err}"
    );
}

#[test]
fn taken_port_is_reported() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = temp_dir("taken");
    let (ok, _, err) = run(
        tinsel()
            .args([
                "serve",
                "--rtmp-listen",
                "127.0.0.1:0",
                "--http-listen",
                &addr,
                "--data-dir",
            ])
            .arg(&dir),
        Duration::from_secs(10),
    );
    assert!(!ok);
    assert!(
        err.contains("already taken") && err.contains("--http-listen"),
        "{err}"
    );
}

/// Starts `tinsel serve` on the default streams, collects what it prints until
/// it is ready, then stops it.
fn first_output(dir: &std::path::Path) -> String {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = tinsel()
        .arg("serve")
        .args(LOOPBACK)
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Reads to the end, so the server never writes into a closed pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("HTTP listening") {
                let _ = ready_tx.send(());
            }
        }
    });
    let stdout = child.stdout.take().unwrap();
    let printed = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    ready
        .recv_timeout(Duration::from_secs(20))
        .expect("the server gets ready");
    common::signal(child.id(), libc::SIGTERM);
    let status =
        common::wait_exit(&mut child, Duration::from_secs(15)).expect("exits after SIGTERM");
    assert!(status.success());
    printed.join().unwrap()
}

#[test]
fn first_start_makes_a_private_key_and_shows_it_until_the_first_publish() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("firststart");
    let first = first_output(&dir);
    let path = dir.join("tree.key");
    let key = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert!(key.len() >= 24, "a long random key");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        first.contains(&format!("Stream Key: {key}")),
        "OBS settings printed: {first}"
    );
    assert!(
        first.contains("/live"),
        "the OBS server URL is printed: {first}"
    );
    let second = first_output(&dir);
    assert!(
        second.contains(&format!("Stream Key: {key}")),
        "nothing published yet, so the key is shown again: {second}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        key,
        "the key is made once"
    );
}

#[test]
fn sigterm_shuts_down_cleanly_and_health_answers() {
    let mut server = Server::start(&[]);
    let (status, body) = server.get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}
