//! Test harness: the real `tinsel` binary on loopback ports, and real peers
//! (ffmpeg, ffprobe, VLC) around it. Every wait has a deadline.

#![allow(dead_code)]

pub mod snmpd;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const KEY: &str = "test-key-0123456789";

/// A `tinsel serve` process on ports the OS picked.
pub struct Server {
    child: Child,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    pub data_dir: PathBuf,
    /// The session cookie of the test admin, once logged in.
    /// The test admin's session cookie and CSRF token, once logged in.
    admin_session: Mutex<Option<(String, String)>>,
}

/// The admin account tests log in with (see [`Server::admin_get`]).
pub const ADMIN: &str = "tester";
pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// `tinsel user add NAME --password-stdin` with `password` on stdin.
pub fn user_add(data_dir: &std::path::Path, name: &str, password: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tinsel"))
        .args(["user", "add", name, "--password-stdin", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tinsel user add");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        Self::start_in(temp_dir("data"), extra)
    }

    pub fn start_in(data_dir: PathBuf, extra: &[&str]) -> Server {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// As [`Server::start_in`], with these environment variables set.
    pub fn start_with_env(data_dir: PathBuf, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_tinsel")),
            data_dir,
            extra,
            env,
        )
    }

    /// As [`Server::start`], with `folder` as the working directory and no
    /// `TINSEL_SITE_DIR`: the server finds its web app by itself.
    pub fn start_from(folder: &std::path::Path, extra: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tinsel"));
        command.current_dir(folder).env_remove("TINSEL_SITE_DIR");
        Self::spawn(command, temp_dir("data"), extra, &[])
    }

    /// As [`Server::start`], run by `command` (its program and first
    /// arguments, e.g. `ip netns exec NS tinsel`); the flags follow.
    pub fn start_by(command: Command, extra: &[&str]) -> Server {
        Self::spawn(command, temp_dir("data"), extra, &[])
    }

    fn spawn(
        mut command: Command,
        data_dir: PathBuf,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        // A flag the test gives itself replaces the loopback one.
        let loopback = LOOPBACK
            .chunks(2)
            .filter(|pair| !extra.contains(&pair[0]))
            .flatten();
        let mut child = command
            .arg("serve")
            .args(loopback)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--stream", &format!("tree={KEY}")])
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tinsel");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = Server {
            child,
            rtmp: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            logs,
            data_dir,
            admin_session: Mutex::new(None),
        };
        server.rtmp = server.wait_for_address("RTMP listening");
        server.http = server.wait_for_address("HTTP listening");
        server
    }

    pub fn wait_for_address(&self, marker: &str) -> SocketAddr {
        let line = wait_for(
            Duration::from_secs(20),
            &format!("log line {marker:?}"),
            || {
                let logs = self.logs();
                // What main prints when the server does not start.
                if let Some(error) = logs.iter().find(|line| line.starts_with("tinsel: ")) {
                    panic!("the server did not start: {error}");
                }
                logs.into_iter().find(|line| line.contains(marker))
            },
        );
        let addr = line
            .split("addr=")
            .nth(1)
            .expect("addr= in the line")
            .trim();
        addr.parse().expect("a socket address")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn publish_url(&self) -> String {
        format!("rtmp://{}/live/{KEY}", self.rtmp)
    }

    pub fn play_url(&self) -> String {
        format!("rtmp://{}/live/tree", self.rtmp)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&format!("http://{}{path}", self.http))
            .timeout(Duration::from_secs(10))
            .call()
        {
            Ok(response) => (
                response.status(),
                response.into_string().unwrap_or_default(),
            ),
            Err(ureq::Error::Status(code, response)) => {
                (code, response.into_string().unwrap_or_default())
            }
            Err(err) => panic!("GET {path}: {err}"),
        }
    }

    /// The test admin's cookie and CSRF token: the admin is created (with
    /// `tinsel user add`, which works while the server runs) and logged in on
    /// first use.
    fn admin_session(&self) -> (String, String) {
        let mut session = self.admin_session.lock().unwrap();
        if session.is_none() {
            let (ok, _, err) = user_add(&self.data_dir, ADMIN, ADMIN_PASSWORD);
            assert!(ok, "tinsel user add: {err}");
            let body = format!(r#"{{"username":"{ADMIN}","password":"{ADMIN_PASSWORD}"}}"#);
            let response = ureq::post(&format!("http://{}/api/session", self.http))
                .timeout(Duration::from_secs(10))
                .set("Content-Type", "application/json")
                .send_string(&body)
                .expect("the test admin logs in");
            let cookie = response.header("set-cookie").expect("a session cookie");
            let cookie = cookie.split(';').next().unwrap().to_string();
            let info: serde_json::Value =
                serde_json::from_str(&response.into_string().unwrap()).unwrap();
            let csrf = info["csrf_token"]
                .as_str()
                .expect("a CSRF token")
                .to_string();
            *session = Some((cookie, csrf));
        }
        session.clone().unwrap()
    }

    /// GETs an admin route as the test admin.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let (cookie, _) = self.admin_session();
        let request = ureq::get(&format!("http://{}{path}", self.http))
            .timeout(Duration::from_secs(10))
            .set("Cookie", &cookie);
        answer(path, request.call())
    }

    /// POSTs JSON to an admin route as the test admin, with the CSRF token.
    pub fn admin_post(&self, path: &str, json: &str) -> (u16, String) {
        let (cookie, csrf) = self.admin_session();
        let request = ureq::post(&format!("http://{}{path}", self.http))
            .timeout(Duration::from_secs(30))
            .set("Cookie", &cookie)
            .set("X-CSRF-Token", &csrf)
            .set("Content-Type", "application/json");
        answer(path, request.send_string(json))
    }

    /// The `/api/streams` entry of the `tree` stream.
    pub fn tree_status(&self) -> serde_json::Value {
        let (status, body) = self.get("/api/streams");
        assert_eq!(status, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        list.as_array()
            .and_then(|streams| streams.iter().find(|s| s["name"] == "tree").cloned())
            .expect("the tree stream is listed")
    }

    pub fn wait_live(&self, live: bool) {
        wait_for(
            Duration::from_secs(20),
            &format!("stream live = {live}"),
            || (self.tree_status()["live"] == live).then_some(()),
        );
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// The exit status once the process ends within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        wait_exit(&mut self.child, within)
    }

    /// Sends SIGTERM and returns the exit status, or panics after a deadline.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.child.id(), libc::SIGTERM);
        wait_exit(&mut self.child, Duration::from_secs(15)).expect("tinsel exits after SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ffmpeg process publishing a synthetic stream like OBS does: 720p30 H.264
/// (no B-frames, keyframe every 2 s) and AAC.
pub struct Publisher {
    child: Child,
}

impl Publisher {
    pub fn start(url: &str) -> Publisher {
        Self::start_with(url, &[])
    }

    pub fn start_with(url: &str, video_options: &[&str]) -> Publisher {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args([
                "-g", "60", "-bf", "0", "-b:v", "2500k", "-pix_fmt", "yuv420p",
            ])
            .args(video_options)
            .args(["-c:a", "aac", "-b:a", "128k", "-f", "flv", url])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ffmpeg (is it installed?)");
        Publisher { child }
    }

    /// Waits for ffmpeg to end; `None` if it is still running at the deadline.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        wait_exit(&mut self.child, within)
    }

    pub fn stderr(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Status and body of an answer, whatever its status.
fn answer(path: &str, result: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match result {
        Ok(response) => (
            response.status(),
            response.into_string().unwrap_or_default(),
        ),
        Err(ureq::Error::Status(code, response)) => {
            (code, response.into_string().unwrap_or_default())
        }
        Err(err) => panic!("{path}: {err}"),
    }
}

pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a pid we spawned; no memory is involved.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

pub fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` until it gives a value, or panics naming `what` at the deadline.
/// Raises this process's open-file limit to its hard limit (a server started
/// afterwards inherits it) and returns it.
pub fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_cur
}

pub fn wait_for<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(
        format!(
            "tinsel-test-{label}-{}-{:?}",
            std::process::id(),
            Instant::now()
        )
        .replace([' ', '{', '}', ':', ','], ""),
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `tinsel serve`'s flags for a test: every port on loopback, picked by the
/// system.
pub const LOOPBACK: [&str; 6] = [
    "--rtmp-listen",
    "127.0.0.1:0",
    "--http-listen",
    "127.0.0.1:0",
    "--webrtc-udp-port",
    "0",
];

/// Runs a command to completion with a deadline, returning (success, stdout, stderr).
pub fn run(command: &mut Command, within: Duration) -> (bool, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("start {command:?}: {err}"));
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let status = wait_exit(&mut child, within);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.is_some(),
        "{command:?} did not finish within {within:?}; stderr: {err}"
    );
    (status.unwrap().success(), out, err)
}

/// ffprobe decodes the first three seconds of `url`; it must do so without
/// a single error. Returns its JSON, parsed and as text.
pub fn probe_three_seconds(url: &str, entries: &[&str]) -> (serde_json::Value, String) {
    let (ok, out, err) = run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-rw_timeout",
                "10000000",
                "-read_intervals",
                "%+3",
                "-count_frames",
            ])
            .args(entries)
            .args(["-of", "json", url]),
        Duration::from_secs(30),
    );
    assert!(ok && err.trim().is_empty(), "ffprobe of {url}: {err}");
    (serde_json::from_str(&out).unwrap(), out)
}

/// Every packet's presentation time ffprobe read from `url` in `seconds`,
/// video and audio apart, in the order read.
pub fn packet_times(url: &str, seconds: u32) -> (Vec<f64>, Vec<f64>) {
    let (ok, out, err) = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-rw_timeout", "10000000"])
            .args(["-read_intervals", &format!("%+{seconds}")])
            .args([
                "-show_entries",
                "packet=codec_type,pts_time",
                "-of",
                "csv=p=0",
            ])
            .arg(url),
        Duration::from_secs(u64::from(seconds) + 30),
    );
    assert!(ok && err.trim().is_empty(), "ffprobe of {url}: {err}");
    let (mut video, mut audio) = (Vec::new(), Vec::new());
    for line in out.lines() {
        let mut fields = line.split(',');
        let (Some(kind), Some(Ok(pts))) = (fields.next(), fields.next().map(str::parse::<f64>))
        else {
            continue;
        };
        match kind {
            "video" => video.push(pts),
            "audio" => audio.push(pts),
            _ => {}
        }
    }
    (video, audio)
}

/// A playlist a player can follow: hls_m3u8 reads it up to its last complete
/// segment (it knows no LL-HLS, so the segment being written, parts without
/// a segment URI yet, is beyond it), every part has a URI, and it ends with
/// the preload hint.
pub fn assert_valid_playlist(text: &str) {
    let complete = text
        .rfind(".m4s\n")
        .map(|at| &text[..at + 5])
        .unwrap_or_else(|| panic!("no segment in the playlist:\n{text}"));
    hls_m3u8::MediaPlaylist::try_from(complete)
        .unwrap_or_else(|err| panic!("an invalid playlist ({err}):\n{text}"));
    assert!(
        text.lines()
            .filter(|l| l.starts_with("#EXT-X-PART:"))
            .all(|l| l.contains("URI=\"part")),
        "a part without its URI:\n{text}"
    );
    assert!(
        text.trim_end()
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("#EXT-X-PRELOAD-HINT:")),
        "no preload hint at the end:\n{text}"
    );
}
