//! `hls-bench`: requests per second for Tinsel's Low-Latency HLS, served from
//! memory, beside nginx serving the very same bytes as static files, in one
//! run. Tinsel gets a live stream from an ffmpeg publisher; its playlist and
//! one complete segment are copied into a directory that nginx serves, first
//! with one worker, then with two. `wrk` loads each URL in turn while the
//! publisher and Tinsel keep running, so every row has the same background.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use tinsel_load::http;
use tinsel_load::process::{
    Guarded, TempDir, die_with_parent, free_port, shutdown_signal, start_publisher, wait_listening,
};
use tinsel_load::procfs::tree_cpu_seconds;
use tinsel_load::wrk::{WrkReport, parse_report};

const STREAM_NAME: &str = "tree";
const TINSEL_KEY: &str = "benchkey12345";
/// How long a server may take to listen after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long Tinsel may take to list two complete segments once ffmpeg has
/// started: about 4 s of stream, plus ffmpeg's start.
const FIRST_SEGMENTS_TIMEOUT: Duration = Duration::from_secs(30);
/// The publisher's keyframe interval, which is Tinsel's segment length.
const SEGMENT: Duration = Duration::from_secs(2);
/// Segments Tinsel keeps unless told otherwise.
const DEFAULT_WINDOW_SEGMENTS: u64 = 6;
/// Between a segment's completion and the end of its wrk run, besides the
/// run itself: noticing it, copying it, and wrk's start and finish.
const SEGMENT_MARGIN: Duration = Duration::from_millis(1500);
/// Between two looks at the playlist while waiting for it to change.
const POLL: Duration = Duration::from_millis(100);
/// For each setup request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Beyond its duration, how long a wrk run may take before it is killed.
const WRK_GRACE: Duration = Duration::from_secs(30);

/// Measures requests per second for Tinsel's LL-HLS playlist and segments
/// against nginx serving the same files from disk.
#[derive(Debug, Parser)]
struct Args {
    /// Tinsel binary.
    #[arg(long, default_value = "target/release/tinsel")]
    tinsel: PathBuf,
    /// Seconds wrk loads each URL.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration_s: u64,
    /// Connections wrk keeps open.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    connections: u64,
    /// wrk's threads; no more than the connections.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    threads: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// ffmpeg binary used to publish.
    #[arg(long, default_value = "ffmpeg")]
    ffmpeg: PathBuf,
    /// nginx binary.
    #[arg(long, default_value = "nginx")]
    nginx: PathBuf,
    /// wrk binary.
    #[arg(long, default_value = "wrk")]
    wrk: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Target {
    Playlist,
    Segment,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Playlist => "playlist",
            Target::Segment => "segment",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
enum Server {
    Tinsel,
    Nginx { workers: u32 },
}

/// nginx's worker counts, in order: one, as static-file benchmarks usually
/// run it, and two, so that it can use both cores as Tinsel's runtime does.
const NGINX_WORKERS: [u32; 2] = [1, 2];

impl Server {
    fn label(self) -> String {
        match self {
            Server::Tinsel => "tinsel".to_string(),
            Server::Nginx { workers: 1 } => "nginx 1 worker".to_string(),
            Server::Nginx { workers } => format!("nginx {workers} workers"),
        }
    }
}

impl From<Server> for String {
    fn from(server: Server) -> String {
        server.label()
    }
}

/// One wrk run.
#[derive(Debug, Serialize)]
struct Row {
    target: Target,
    server: Server,
    url: String,
    #[serde(flatten)]
    outcome: Outcome,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Outcome {
    Measured {
        wrk: WrkReport,
        /// User plus system CPU time of the server's processes over the
        /// run, in percent of one core (the machine's cores times 100 at
        /// most).
        server_cpu_percent: f64,
        window_s: f64,
    },
    Failed {
        error: String,
    },
}

impl Row {
    fn wrk(&self) -> Option<&WrkReport> {
        match &self.outcome {
            Outcome::Measured { wrk, .. } => Some(wrk),
            Outcome::Failed { .. } => None,
        }
    }

    /// Measured, and every response was the file asked for.
    fn clean(&self) -> bool {
        self.wrk().is_some_and(|wrk| wrk.non_2xx_3xx == 0)
    }
}

#[derive(Debug, Serialize)]
struct Ratio {
    target: Target,
    nginx_workers: u32,
    /// Tinsel's requests per second over nginx's; absent when either row
    /// failed or answered with errors.
    requests_per_s: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    duration_s: u64,
    connections: u64,
    threads: u64,
    cores: usize,
    /// Passed to Tinsel so the segment under test outlives its run.
    tinsel_window_segments: u64,
    /// Size of the playlist copied for nginx; Tinsel's varies around it.
    playlist_bytes: usize,
    segment_name: String,
    segment_bytes: usize,
    rows: Vec<Row>,
    ratios_tinsel_over_nginx: Vec<Ratio>,
    notes: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Servers, ffmpeg and wrk are spawned from this, the main thread (tokio
    // runs the main future on it), so their PR_SET_PDEATHSIG fires only when
    // the whole benchmark dies. Dropping `run` on a signal stops them.
    tokio::select! {
        code = run(&args) => code,
        signal = shutdown_signal() => {
            eprintln!("{signal}; stopping the servers");
            ExitCode::from(130)
        }
    }
}

async fn run(args: &Args) -> ExitCode {
    if args.threads > args.connections {
        eprintln!("--threads must not exceed --connections (wrk needs a connection per thread)");
        return ExitCode::from(2);
    }
    let report = match bench(args).await {
        Ok(report) => report,
        Err(err) => {
            eprintln!("hls-bench: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(err) => eprintln!("could not write JSON: {err}"),
        }
    } else {
        print!("{}", table(args, &report));
    }
    if report.rows.iter().all(Row::clean) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Starts Tinsel and the publisher, measures Tinsel, copies what it served,
/// and measures nginx serving the copy. Every process is stopped by its
/// guard on every path, temporary directories removed by theirs.
async fn bench(args: &Args) -> anyhow::Result<Report> {
    let duration = Duration::from_secs(args.duration_s);
    let progress = |message: String| {
        if !args.json {
            eprintln!("{message}");
        }
    };
    let tinsel_dir = TempDir::create("hls-bench", "tinsel")?;
    let files = TempDir::create("hls-bench", "files")?;
    let rtmp_port = free_port()?;
    let http_port = free_port()?;
    let window = window_segments(duration);
    let mut tinsel = start_tinsel(
        &args.tinsel,
        tinsel_dir.path(),
        rtmp_port,
        http_port,
        window,
    )?;
    wait_listening(&mut tinsel, rtmp_port, START_TIMEOUT).await?;
    wait_listening(&mut tinsel, http_port, START_TIMEOUT).await?;
    let publish_url = format!("rtmp://127.0.0.1:{rtmp_port}/live/{TINSEL_KEY}");
    let mut publisher = start_publisher(&args.ffmpeg, tinsel_dir.path(), &publish_url)
        .with_context(|| {
            format!(
                "could not start {}; install it with `apt-get install ffmpeg`",
                args.ffmpeg.display()
            )
        })?;

    progress("tinsel: waiting for two complete segments".into());
    let listed = wait_for_segments(http_port, &mut tinsel, &mut publisher).await?;
    progress(format!(
        "tinsel: {} segments listed; wrk {} s per URL, {} connections",
        complete_segments(&listed).len(),
        args.duration_s,
        args.connections
    ));
    let base = format!("http://127.0.0.1:{http_port}/hls/{STREAM_NAME}");
    let mut rows = Vec::new();
    let url = format!("{base}/index.m3u8");
    rows.push(measure(args, Target::Playlist, Server::Tinsel, url, tinsel.pid()).await);
    tinsel.check_running()?;

    // Copied after the run rather than before: by then the playlist is as
    // long as it was during most of it.
    let playlist = fetch_playlist(http_port).await?;
    std::fs::write(files.path().join("index.m3u8"), &playlist)
        .context("could not copy the playlist")?;
    // A segment that has just completed, so that it is still listed, and
    // served, when its run ends.
    let (segment_name, segment) = fresh_segment(http_port, &mut tinsel, &mut publisher).await?;
    std::fs::write(files.path().join(&segment_name), &segment)
        .context("could not copy the segment")?;
    let url = format!("{base}/{segment_name}");
    rows.push(measure(args, Target::Segment, Server::Tinsel, url, tinsel.pid()).await);
    tinsel.check_running()?;

    let copies = [
        ("index.m3u8", playlist.as_bytes()),
        (segment_name.as_str(), segment.as_slice()),
    ];
    for workers in NGINX_WORKERS {
        let server = Server::Nginx { workers };
        progress(format!("{}: starting", server.label()));
        let nginx_dir = TempDir::create("hls-bench", &format!("nginx{workers}"))?;
        let started =
            start_nginx_serving(args, nginx_dir.path(), files.path(), workers, &copies).await;
        let (mut nginx, port) = match started {
            Ok(started) => started,
            Err(err) => {
                let error = format!("{err:#}");
                for (target, file) in [
                    (Target::Playlist, "index.m3u8"),
                    (Target::Segment, &segment_name),
                ] {
                    rows.push(Row {
                        target,
                        server,
                        url: format!("/{file}"),
                        outcome: Outcome::Failed {
                            error: error.clone(),
                        },
                    });
                }
                continue;
            }
        };
        for (target, file) in [
            (Target::Playlist, "index.m3u8"),
            (Target::Segment, &segment_name),
        ] {
            let url = format!("http://127.0.0.1:{port}/{file}");
            rows.push(measure(args, target, server, url, nginx.pid()).await);
        }
        nginx.stop();
    }

    let mut notes = Vec::new();
    if let Err(err) = publisher.check_running() {
        notes.push(format!(
            "the publisher stopped before the end, so later rows ran without it: {err:#}"
        ));
    }
    if window != DEFAULT_WINDOW_SEGMENTS {
        notes.push(format!(
            "Tinsel ran with --hls-window-segments {window} (default {DEFAULT_WINDOW_SEGMENTS}) so that the segment outlives a {} s run",
            args.duration_s
        ));
    }
    let ratios_tinsel_over_nginx = ratios(&rows);
    Ok(Report {
        duration_s: args.duration_s,
        connections: args.connections,
        threads: args.threads,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        tinsel_window_segments: window,
        playlist_bytes: playlist.len(),
        segment_name,
        segment_bytes: segment.len(),
        rows,
        ratios_tinsel_over_nginx,
        notes,
    })
}

/// Segments Tinsel must keep for the one under test to outlive its run: a
/// segment is forgotten `window` segment lengths after it completes. The
/// default when that is enough.
fn window_segments(duration: Duration) -> u64 {
    let needed = (duration + SEGMENT_MARGIN).as_secs_f64() / SEGMENT.as_secs_f64();
    (needed.ceil() as u64).max(DEFAULT_WINDOW_SEGMENTS)
}

fn start_tinsel(
    binary: &Path,
    dir: &Path,
    rtmp_port: u16,
    http_port: u16,
    window: u64,
) -> anyhow::Result<Guarded> {
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .arg("--rtmp-listen")
        .arg(format!("127.0.0.1:{rtmp_port}"))
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{http_port}"))
        .arg("--data-dir")
        .arg(dir)
        .arg("--stream")
        .arg(format!("{STREAM_NAME}={TINSEL_KEY}"));
    if window != DEFAULT_WINDOW_SEGMENTS {
        command.arg("--hls-window-segments").arg(window.to_string());
    }
    // Tinsel reads TINSEL_* settings; the caller's must not change the run.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TINSEL_") {
            command.env_remove(name);
        }
    }
    Guarded::spawn("tinsel", command, dir.join("tinsel.log")).with_context(|| {
        format!(
            "could not start {}; build it with `cargo build -p tinsel --release`",
            binary.display()
        )
    })
}

/// Starts nginx on a free port, serving `root`, and checks that it serves
/// each of `copies` byte for byte.
async fn start_nginx_serving(
    args: &Args,
    dir: &Path,
    root: &Path,
    workers: u32,
    copies: &[(&str, &[u8])],
) -> anyhow::Result<(Guarded, u16)> {
    let port = free_port()?;
    let config = dir.join("nginx.conf");
    std::fs::write(&config, nginx_config(dir, root, port, workers))
        .with_context(|| format!("could not write {}", config.display()))?;
    let mut command = Command::new(&args.nginx);
    // -e: the error log before the config is read, which would otherwise be
    // the system one.
    command
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(dir);
    let mut nginx = Guarded::spawn("nginx", command, dir.join("nginx.log")).with_context(|| {
        format!(
            "could not start {}; install it with `apt-get install nginx`",
            args.nginx.display()
        )
    })?;
    wait_listening(&mut nginx, port, START_TIMEOUT).await?;
    for (name, bytes) in copies {
        let response = http::get(port, &format!("/{name}"), HTTP_TIMEOUT).await?;
        if response.status != 200 || response.body != *bytes {
            bail!(
                "nginx does not serve the copy of {name}: status {}, {} bytes, expected {}{}",
                response.status,
                response.body.len(),
                bytes.len(),
                read_error_log(dir)
            );
        }
    }
    Ok((nginx, port))
}

fn read_error_log(dir: &Path) -> String {
    tinsel_load::process::read_tail(&dir.join("error.log"), 1000)
        .map(|text| format!("; end of its error log:\n{}", text.trim_end()))
        .unwrap_or_default()
}

fn nginx_config(dir: &Path, root: &Path, port: u16, workers: u32) -> String {
    let dir = dir.display();
    let root = root.display();
    format!(
        "worker_processes {workers};\n\
         daemon off;\n\
         error_log {dir}/error.log;\n\
         pid {dir}/nginx.pid;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n    \
         access_log off;\n    \
         sendfile on;\n    \
         tcp_nopush on;\n    \
         keepalive_requests 100000;\n    \
         types {{ application/vnd.apple.mpegurl m3u8; video/mp4 m4s; }}\n    \
         server {{ listen 127.0.0.1:{port}; root {root}; }}\n\
         }}\n"
    )
}

async fn fetch_playlist(port: u16) -> anyhow::Result<String> {
    let path = format!("/hls/{STREAM_NAME}/index.m3u8");
    let response = http::get(port, &path, HTTP_TIMEOUT).await?;
    if response.status != 200 {
        bail!(
            "{path} answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body).trim()
        );
    }
    String::from_utf8(response.body).with_context(|| format!("{path} is not UTF-8"))
}

/// Polls the playlist until it lists two complete segments.
async fn wait_for_segments(
    port: u16,
    tinsel: &mut Guarded,
    publisher: &mut Guarded,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + FIRST_SEGMENTS_TIMEOUT;
    loop {
        tinsel.check_running()?;
        publisher.check_running()?;
        let last = match fetch_playlist(port).await {
            Ok(text) => match complete_segments(&text).len() {
                2.. => return Ok(text),
                n => format!("{n} complete segment(s) listed"),
            },
            Err(err) => format!("{err:#}"),
        };
        if Instant::now() >= deadline {
            bail!(
                "Tinsel's playlist did not list two segments within {FIRST_SEGMENTS_TIMEOUT:?} ({last}){}",
                tinsel.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits for the next segment to complete and downloads it: its name and
/// bytes.
async fn fresh_segment(
    port: u16,
    tinsel: &mut Guarded,
    publisher: &mut Guarded,
) -> anyhow::Result<(String, Vec<u8>)> {
    let newest = |text: &str| complete_segments(text).last().map(|uri| uri.to_string());
    let before = newest(&fetch_playlist(port).await?);
    let limit = SEGMENT * 3;
    let deadline = Instant::now() + limit;
    let name = loop {
        tinsel.check_running()?;
        publisher.check_running()?;
        match newest(&fetch_playlist(port).await?) {
            Some(name) if Some(&name) != before.as_ref() => break name,
            _ if Instant::now() >= deadline => {
                bail!("no new segment within {limit:?}; the newest is still {before:?}")
            }
            _ => tokio::time::sleep(POLL).await,
        }
    };
    if !is_plain_file_name(&name) {
        bail!("the playlist lists {name:?}, not a file beside it");
    }
    let path = format!("/hls/{STREAM_NAME}/{name}");
    let response = http::get(port, &path, HTTP_TIMEOUT).await?;
    if response.status != 200 || response.body.is_empty() {
        bail!(
            "{path} answered {} with {} bytes",
            response.status,
            response.body.len()
        );
    }
    Ok((name, response.body))
}

/// The URIs of the complete segments, oldest first: the first line after
/// each `#EXTINF` that is neither blank nor a tag (RFC 8216bis 4.1).
/// Parts (`#EXT-X-PART`) and the preload hint are tags, so they are skipped.
fn complete_segments(playlist: &str) -> Vec<&str> {
    let mut uris = Vec::new();
    let mut after_extinf = false;
    for line in playlist.lines().map(str::trim) {
        if line.starts_with("#EXTINF:") {
            after_extinf = true;
        } else if after_extinf && !line.is_empty() && !line.starts_with('#') {
            uris.push(line);
            after_extinf = false;
        }
    }
    uris
}

/// A name that can be written into the copy directory as is.
fn is_plain_file_name(uri: &str) -> bool {
    !uri.is_empty() && uri != "." && uri != ".." && !uri.contains(['/', '\\', '?', '#', '\0'])
}

/// Runs wrk against `url` while measuring the server's CPU time.
async fn measure(args: &Args, target: Target, server: Server, url: String, pid: i32) -> Row {
    if !args.json {
        eprintln!("{}: {} {url}", server.label(), target.name());
    }
    let outcome = match run_wrk(args, &url, pid).await {
        Ok(outcome) => outcome,
        Err(err) => Outcome::Failed {
            error: format!("{err:#}"),
        },
    };
    Row {
        target,
        server,
        url,
        outcome,
    }
}

async fn run_wrk(args: &Args, url: &str, server_pid: i32) -> anyhow::Result<Outcome> {
    let mut command = Command::new(&args.wrk);
    command
        .arg("-t")
        .arg(args.threads.to_string())
        .arg("-c")
        .arg(args.connections.to_string())
        .arg("-d")
        .arg(format!("{}s", args.duration_s))
        .arg("--latency")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut command);
    let mut command = tokio::process::Command::from(command);
    // Dropped on a signal or a timeout: wrk goes with it.
    command.kill_on_drop(true);
    let limit = Duration::from_secs(args.duration_s) + WRK_GRACE;
    let cpu_before = tree_cpu_seconds(server_pid)?;
    let started = Instant::now();
    let output = tokio::time::timeout(limit, command.output())
        .await
        .with_context(|| format!("wrk took longer than {limit:?}"))?
        .with_context(|| {
            format!(
                "could not run {}; install it with `apt-get install wrk`",
                args.wrk.display()
            )
        })?;
    let window = started.elapsed();
    let cpu_after = tree_cpu_seconds(server_pid).context("the server exited during the run")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            output.status,
            stdout.trim(),
            stderr.trim()
        );
    }
    let wrk = parse_report(&stdout)
        .with_context(|| format!("wrk said:\n{}{}", stdout.trim(), stderr.trim()))?;
    Ok(Outcome::Measured {
        wrk,
        server_cpu_percent: 100.0 * (cpu_after - cpu_before) / window.as_secs_f64(),
        window_s: window.as_secs_f64(),
    })
}

fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let find = |target, server| {
        rows.iter()
            .find(|row| row.target == target && row.server == server)
            .filter(|row| row.clean())
            .and_then(Row::wrk)
    };
    let mut out = Vec::new();
    for target in [Target::Playlist, Target::Segment] {
        for workers in NGINX_WORKERS {
            let requests_per_s = match (
                find(target, Server::Tinsel),
                find(target, Server::Nginx { workers }),
            ) {
                (Some(tinsel), Some(nginx)) if nginx.requests_per_s > 0.0 => {
                    Some(tinsel.requests_per_s / nginx.requests_per_s)
                }
                _ => None,
            };
            out.push(Ratio {
                target,
                nginx_workers: workers,
                requests_per_s,
            });
        }
    }
    out
}

fn table(args: &Args, report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "LL-HLS over HTTP/1.1 keep-alive on 127.0.0.1: wrk -t{} -c{} -d{}s --latency per row",
        args.threads, args.connections, args.duration_s
    );
    let _ = writeln!(
        out,
        "playlist: Tinsel's live index.m3u8 ({} B when copied for nginx); segment: {} ({} B, 2 s of 720p30 x264 2500k + AAC 128k)",
        report.playlist_bytes, report.segment_name, report.segment_bytes
    );
    let _ = writeln!(
        out,
        "{:<8} | {:<15} | {:>9} | {:>8} | {:>8} | {:>8} | {:>10} | {:>7} | {:>10}",
        "target",
        "server",
        "req/s",
        "MiB/s",
        "p50 ms",
        "p99 ms",
        "server CPU",
        "non-2xx",
        "socket err"
    );
    for row in &report.rows {
        match &row.outcome {
            Outcome::Measured {
                wrk,
                server_cpu_percent,
                ..
            } => {
                let _ = writeln!(
                    out,
                    "{:<8} | {:<15} | {:>9.0} | {:>8.1} | {:>8.2} | {:>8.2} | {:>9.0}% | {:>7} | {:>10}",
                    row.target.name(),
                    row.server.label(),
                    wrk.requests_per_s,
                    wrk.bytes_per_s / f64::from(1u32 << 20),
                    wrk.latency_p50_ms,
                    wrk.latency_p99_ms,
                    server_cpu_percent,
                    wrk.non_2xx_3xx,
                    wrk.socket_errors.total(),
                );
            }
            Outcome::Failed { .. } => {
                let _ = writeln!(
                    out,
                    "{:<8} | {:<15} | failed (see below)",
                    row.target.name(),
                    row.server.label()
                );
            }
        }
    }
    for target in [Target::Playlist, Target::Segment] {
        let parts: Vec<String> = report
            .ratios_tinsel_over_nginx
            .iter()
            .filter(|ratio| ratio.target == target)
            .map(|ratio| {
                let value = ratio
                    .requests_per_s
                    .map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
                format!(
                    "{value} vs {}",
                    Server::Nginx {
                        workers: ratio.nginx_workers
                    }
                    .label()
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "Tinsel/nginx req/s, {}: {}",
            target.name(),
            parts.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "Machine: {} cores. Tinsel's multi-threaded tokio runtime may use all of them; nginx has 1 worker, then 2. \
         wrk ({} threads) runs on the same machine and competes with the server for CPU, as do the ffmpeg publisher \
         and Tinsel's ingest, which run throughout (nginx rows included). Server CPU is in % of one core.",
        report.cores, args.threads
    );
    let _ = writeln!(
        out,
        "Tinsel's playlist is live: it changes with every part (~334 ms), so its size varies a little during its row."
    );
    for note in &report.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    for row in &report.rows {
        if let Outcome::Failed { error } = &row.outcome {
            let _ = writeln!(out, "{} {}: {error}", row.server.label(), row.target.name());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinsel_load::wrk::SocketErrors;

    /// A playlist as Tinsel writes it: two complete segments, the parts of
    /// the one being written, and a preload hint.
    const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002\n\
        #EXT-X-PART-INF:PART-TARGET=0.334\n#EXT-X-MEDIA-SEQUENCE:100\n\
        #EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-MAP:URI=\"init100.mp4\"\n\
        #EXT-X-PROGRAM-DATE-TIME:2026-11-26T22:00:00.000Z\n\
        #EXT-X-PART:DURATION=0.33333,URI=\"part100.0.m4s\",INDEPENDENT=YES\n\
        #EXTINF:2.00000,\nseg100.m4s\n\
        #EXT-X-PROGRAM-DATE-TIME:2026-11-26T22:00:02.000Z\n\
        #EXTINF:2.00000,\nseg101.m4s\n\
        #EXT-X-PROGRAM-DATE-TIME:2026-11-26T22:00:04.000Z\n\
        #EXT-X-PART:DURATION=0.33333,URI=\"part102.0.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part102.1.m4s\"\n";

    #[test]
    fn complete_segments_in_order_without_parts() {
        assert_eq!(
            complete_segments(PLAYLIST),
            vec!["seg100.m4s", "seg101.m4s"]
        );
    }

    #[test]
    fn the_uri_may_follow_other_tags_and_blank_lines() {
        let text =
            "#EXTM3U\r\n#EXTINF:2.0,\r\n#EXT-X-BYTERANGE:100@0\r\n\r\nseg7.m4s\r\n#EXTINF:2.0,\r\n";
        assert_eq!(complete_segments(text), vec!["seg7.m4s"]);
    }

    #[test]
    fn no_complete_segment_yet() {
        let text = "#EXTM3U\n#EXT-X-PART:DURATION=0.33,URI=\"part5.0.m4s\"\n\
                    #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part5.1.m4s\"\n";
        assert!(complete_segments(text).is_empty());
        assert!(complete_segments("").is_empty());
    }

    #[test]
    fn only_plain_names_are_copied() {
        assert!(is_plain_file_name("seg101.m4s"));
        assert!(!is_plain_file_name("../seg101.m4s"));
        assert!(!is_plain_file_name("/etc/passwd"));
        assert!(!is_plain_file_name("seg101.m4s?x=1"));
        assert!(!is_plain_file_name(".."));
        assert!(!is_plain_file_name(""));
    }

    #[test]
    fn the_window_grows_only_for_long_runs() {
        assert_eq!(window_segments(Duration::from_secs(10)), 6);
        assert_eq!(window_segments(Duration::from_secs(1)), 6);
        assert_eq!(window_segments(Duration::from_secs(11)), 7);
        assert_eq!(window_segments(Duration::from_secs(60)), 31);
    }

    #[test]
    fn nginx_config_serves_the_copies_on_loopback() {
        let config = nginx_config(
            Path::new("/bench/nginx"),
            Path::new("/bench/files"),
            18080,
            2,
        );
        assert!(
            config.starts_with("worker_processes 2;\ndaemon off;\n"),
            "{config}"
        );
        assert!(config.contains("pid /bench/nginx/nginx.pid;"));
        assert!(config.contains("error_log /bench/nginx/error.log;"));
        assert!(config.contains("server { listen 127.0.0.1:18080; root /bench/files; }"));
        assert!(config.contains("types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s; }"));
        assert!(config.contains("keepalive_requests 100000;"));
    }

    impl Row {
        fn measured(target: Target, server: Server, requests_per_s: f64, non_2xx_3xx: u64) -> Row {
            Row {
                target,
                server,
                url: String::new(),
                outcome: Outcome::Measured {
                    wrk: WrkReport {
                        requests: 1,
                        requests_per_s,
                        bytes_per_s: 1.0,
                        latency_p50_ms: 1.0,
                        latency_p75_ms: 1.0,
                        latency_p90_ms: 1.0,
                        latency_p99_ms: 1.0,
                        non_2xx_3xx,
                        socket_errors: SocketErrors::default(),
                    },
                    server_cpu_percent: 100.0,
                    window_s: 10.0,
                },
            }
        }
    }

    #[test]
    fn ratios_skip_failed_and_erroneous_rows() {
        let one = Server::Nginx { workers: 1 };
        let two = Server::Nginx { workers: 2 };
        let rows = vec![
            Row::measured(Target::Playlist, Server::Tinsel, 30_000.0, 0),
            Row::measured(Target::Segment, Server::Tinsel, 3_000.0, 12),
            Row::measured(Target::Playlist, one, 20_000.0, 0),
            Row::measured(Target::Segment, one, 2_000.0, 0),
            Row::measured(Target::Playlist, two, 40_000.0, 0),
            Row {
                target: Target::Segment,
                server: two,
                url: String::new(),
                outcome: Outcome::Failed {
                    error: "gone".into(),
                },
            },
        ];
        let values: Vec<_> = ratios(&rows)
            .iter()
            .map(|r| (r.target, r.nginx_workers, r.requests_per_s))
            .collect();
        assert_eq!(
            values,
            vec![
                (Target::Playlist, 1, Some(1.5)),
                (Target::Playlist, 2, Some(0.75)),
                (Target::Segment, 1, None),
                (Target::Segment, 2, None),
            ]
        );
    }

    #[test]
    fn rows_serialize_flat_with_the_server_label() {
        let row = Row::measured(Target::Playlist, Server::Nginx { workers: 2 }, 1.0, 0);
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["server"], "nginx 2 workers");
        assert_eq!(json["target"], "playlist");
        assert_eq!(json["wrk"]["requests_per_s"], 1.0);
        assert_eq!(json["server_cpu_percent"], 100.0);
    }
}
