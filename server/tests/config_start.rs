//! A newcomer's first hour: what the first starts print, bad config files
//! refused in one line, and `tinsel user add` / `tinsel key show` finding the
//! server's data dir from any folder.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{LOOPBACK, Publisher, run, temp_dir, wait_for};

fn tinsel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tinsel"))
}

/// A `tinsel serve` whose standard output is kept, started in `cwd`.
struct Started {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Started {
    fn start(cwd: &Path, args: &[&str]) -> Started {
        let mut child = tinsel()
            .arg("serve")
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tinsel");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let sink = Arc::clone(&stdout);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Started {
            child,
            stdout,
            stderr,
        }
    }

    /// The address of `marker` ("HTTP listening"), once logged.
    fn address(&self, marker: &str) -> SocketAddr {
        let line = wait_for(Duration::from_secs(20), marker, || {
            self.stderr
                .lock()
                .unwrap()
                .iter()
                .find(|line| line.contains(marker))
                .cloned()
        });
        line.split("addr=").nth(1).unwrap().trim().parse().unwrap()
    }

    /// What it printed, once it serves HTTP (the start message comes before).
    fn printed(&self) -> String {
        self.address("HTTP listening");
        self.stdout.lock().unwrap().clone()
    }

    fn stop(mut self) {
        common::signal(self.child.id(), libc::SIGTERM);
        let status = common::wait_exit(&mut self.child, Duration::from_secs(15))
            .expect("exits after SIGTERM");
        assert!(status.success(), "exit status {status}");
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_in(data_dir: &Path) -> Started {
    let mut args: Vec<&str> = LOOPBACK.to_vec();
    let dir = data_dir.to_str().unwrap();
    args.extend(["--data-dir", dir]);
    Started::start(data_dir.parent().unwrap(), &args)
}

fn key_in(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("tree.key"))
        .unwrap()
        .trim()
        .to_string()
}

/// The one `tinsel:` line of a start that fails, and that it was the only line.
fn refusal(args: &[&str], cwd: &Path) -> String {
    let (ok, out, err) = run(
        tinsel().args(args).current_dir(cwd),
        Duration::from_secs(10),
    );
    assert!(!ok, "{args:?} started: {out}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line for {args:?}: {err}");
    assert!(lines[0].starts_with("tinsel: "), "{err}");
    lines[0].to_string()
}

fn config_file(text: &str) -> PathBuf {
    let dir = temp_dir("config");
    let path = dir.join("tinsel.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_first_start_prints_the_url_the_key_and_the_first_admin_command() {
    let data = temp_dir("first").join("data");
    let server = serve_in(&data);
    let printed = server.printed();
    let http = server.address("HTTP listening");
    let rtmp = server.address("RTMP listening");
    let key = key_in(&data);
    for want in [
        format!("its data dir is {}\n", data.display()),
        format!("Watch page:  http://{http}/\n"),
        format!("Play in VLC: rtmp://{rtmp}/live/tree\n"),
        format!("Server:     rtmp://{rtmp}/live\n"),
        format!("Stream Key: {key}\n"),
        format!("tinsel key show --data-dir {}", data.display()),
        format!(
            "tinsel user add admin --password-stdin --data-dir {}\n",
            data.display()
        ),
    ] {
        assert!(printed.contains(&want), "{want:?} missing from:\n{printed}");
    }
    assert!(
        printed.contains("UDP to port "),
        "the WebRTC port: {printed}"
    );
    server.stop();

    // With an admin, the admin line goes; the key stays until a publish.
    let (ok, _, err) = common::user_add(&data, "admin", "correct horse battery");
    assert!(ok, "{err}");
    let again = serve_in(&data).printed();
    assert!(again.contains(&format!("Stream Key: {key}\n")), "{again}");
    assert!(!again.contains("tinsel user add"), "{again}");
}

#[test]
fn a_port_taken_at_the_first_start_loses_no_key_message() {
    let data = temp_dir("taken-first").join("data");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = data.to_str().unwrap();
    let err = refusal(
        &[
            "serve",
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            &addr,
            "--webrtc-udp-port",
            "0",
            "--data-dir",
            dir,
        ],
        data.parent().unwrap(),
    );
    assert!(err.contains("already taken"), "{err}");
    drop(taken);
    let printed = serve_in(&data).printed();
    let key = key_in(&data);
    assert!(
        printed.contains(&format!("Stream Key: {key}\n")),
        "{printed}"
    );
}

#[test]
fn after_the_first_publish_the_key_message_is_gone_and_key_show_prints_it() {
    let data = temp_dir("published").join("data");
    let server = serve_in(&data);
    let rtmp = server.address("RTMP listening");
    let key = key_in(&data);
    assert!(server.printed().contains(&key));
    let publisher = Publisher::start(&format!("rtmp://{rtmp}/live/{key}"));
    wait_for(
        Duration::from_secs(30),
        "the first publish is marked",
        || data.join("tree.published").exists().then_some(()),
    );
    drop(publisher);
    server.stop();

    let again = serve_in(&data);
    let printed = again.printed();
    assert!(!printed.contains(&key), "the key is not shown: {printed}");
    assert!(printed.contains("Watch page:"), "{printed}");
    again.stop();

    let elsewhere = temp_dir("key-show-cwd");
    let (ok, out, err) = run(
        tinsel()
            .args(["key", "show", "--data-dir"])
            .arg(&data)
            .current_dir(&elsewhere),
        Duration::from_secs(10),
    );
    assert!(ok, "{err}");
    assert!(out.contains(&format!("Stream Key: {key}\n")), "{out}");
    assert!(
        out.contains("rtmp://localhost:1935/live\n"),
        "the configured port: {out}"
    );

    let (ok, _, err) = run(
        tinsel().args(["key", "show"]).current_dir(&elsewhere),
        Duration::from_secs(10),
    );
    assert!(!ok && err.contains("no database in"), "{err}");
    assert!(!elsewhere.join("data").exists(), "no key made elsewhere");
}

#[test]
fn misspelled_keys_are_refused_with_the_nearest_valid_key() {
    let cwd = temp_dir("misspelled");
    let file = config_file("data_dir = \"data\"\nhttp_lisen = \"[::]:8080\"\n");
    let err = refusal(&["serve", "--config", file.to_str().unwrap()], &cwd);
    assert_eq!(
        err,
        format!(
            "tinsel: config file {}, line 2: unknown key http_lisen; did you mean http_listen?",
            file.display()
        )
    );
    let file = config_file("youtube_falback = \"dQw4w9WgXcQ\"\n");
    let err = refusal(&["serve", "--config", file.to_str().unwrap()], &cwd);
    assert!(err.ends_with("did you mean youtube_fallback?"), "{err}");
    let file =
        config_file("[[pdu]]\nname = \"pdu1\"\nadress = \"192.0.2.10:161\"\ncommunity = \"c\"\n");
    let err = refusal(&["serve", "--config", file.to_str().unwrap()], &cwd);
    assert!(
        err.ends_with("line 3: unknown key pdu.adress; did you mean pdu.address?"),
        "{err}"
    );
    let file = config_file("[twitter]\nquery = \"#tree\"\nblink = 2\n");
    let err = refusal(
        &[
            "user",
            "add",
            "a",
            "--password-stdin",
            "--config",
            file.to_str().unwrap(),
        ],
        &cwd,
    );
    assert!(
        err.ends_with("unknown key twitter.blink; did you mean twitter.blinks?"),
        "{err}"
    );
}

#[test]
fn a_missing_file_and_a_toml_error_are_one_line_each() {
    let cwd = temp_dir("missing");
    let err = refusal(&["serve", "--config", "tinsel.toml"], &cwd);
    assert_eq!(
        err,
        "tinsel: cannot read config file tinsel.toml: no such file; create it \
         (see README, \"Configuration\") or leave out --config"
    );
    let file = config_file("rtmp_listen = \"[::]:1935\"\nhttp_listen = 8080\n");
    let err = refusal(&["serve", "--config", file.to_str().unwrap()], &cwd);
    assert!(
        err.starts_with(&format!(
            "tinsel: config file {}, line 2, column 15: http_listen: invalid type",
            file.display()
        )),
        "{err}"
    );
    let file = config_file("[twitter\nquery = 1\n");
    let err = refusal(&["serve", "--config", file.to_str().unwrap()], &cwd);
    assert!(err.contains(", line 1, column "), "{err}");
}

#[test]
fn out_of_range_values_and_a_bad_youtube_fallback_are_refused() {
    let cwd = temp_dir("range");
    let err = refusal(&["serve", "--viewer-stall-timeout-s", "99999"], &cwd);
    assert_eq!(
        err,
        "tinsel: viewer_stall_timeout_s = 99999 is too large: it must be at most 3600"
    );
    let file = config_file("rtmp_batch_ms = 5000\n");
    let err = refusal(&["serve", "--config", file.to_str().unwrap()], &cwd);
    assert!(
        err.ends_with("rtmp_batch_ms = 5000 is too large: it must be at most 1000"),
        "{err}"
    );
    let file = config_file("youtube_fallback = \"VIDEO_ID\"\n");
    let err = refusal(&["serve", "--config", file.to_str().unwrap()], &cwd);
    assert!(
        err.contains("youtube_fallback = \"VIDEO_ID\" is not a YouTube video or channel; use an 11-character YouTube video id"),
        "{err}"
    );
    assert!(!cwd.join("data").exists(), "a refused start writes nothing");
}

#[test]
fn user_add_from_another_folder_with_the_config_uses_the_servers_database() {
    let home = temp_dir("user-add-home");
    let file = home.join("tinsel.toml");
    std::fs::write(
        &file,
        "rtmp_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         webrtc_udp_port = 0\ndata_dir = \"data\"\n",
    )
    .unwrap();
    let server = Started::start(&home, &["--config", "tinsel.toml"]);
    let http = server.address("HTTP listening");
    assert!(
        server
            .printed()
            .contains(&format!("--data-dir {}", home.join("data").display()))
    );

    let elsewhere = temp_dir("user-add-elsewhere");
    let add = |args: &[&str]| {
        use std::io::Write;
        let mut child = tinsel()
            .args(["user", "add", "admin", "--password-stdin"])
            .args(args)
            .current_dir(&elsewhere)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A refused run may exit before it reads the password: a closed pipe
        // is its answer, not a failure of the test.
        let _ = writeln!(child.stdin.take().unwrap(), "correct horse battery");
        let out = child.wait_with_output().unwrap();
        let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
        (out.status.success(), text(out.stdout), text(out.stderr))
    };

    let (ok, _, err) = add(&[]);
    assert!(!ok, "the default ./data of another folder is refused");
    let db = elsewhere.join("data").join("tinsel.db");
    assert!(
        err.contains(&format!("looked for {}", db.display())),
        "{err}"
    );
    assert!(
        err.contains("--data-dir") && err.contains("--config"),
        "{err}"
    );
    assert!(!elsewhere.join("data").exists(), "no second database");

    let (ok, out, err) = add(&["--config", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let db = home.join("data").join("tinsel.db");
    assert_eq!(
        out.trim(),
        format!(
            "admin account \"admin\" created (database {})",
            db.display()
        )
    );
    let answer = ureq::post(&format!("http://{http}/api/session"))
        .timeout(Duration::from_secs(10))
        .set("Content-Type", "application/json")
        .send_string(r#"{"username":"admin","password":"correct horse battery"}"#);
    assert_eq!(
        answer.map(|r| r.status()).ok(),
        Some(200),
        "the login works"
    );
}
