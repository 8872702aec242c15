//! `fanout-bench`: Tinsel against nginx-rtmp with the same published stream
//! and the same crowd of RTMP viewers, in one run. Starts each server on
//! free loopback ports, publishes with ffmpeg, watches with `run_many` in
//! this process, and measures only the server's processes: CPU time over
//! the viewing window (from /proc/PID/stat) and peak RSS (VmHWM).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use tinsel_load::process::{
    Guarded, TempDir, free_port, shutdown_signal, start_publisher, wait_listening,
};
use tinsel_load::procfs::{descendants, peak_rss_kib, process_cpu_seconds, tree_cpu_seconds};
use tinsel_load::{ErrorCount, Summary, Track, Viewer, error_counts, opt_ms, run_many, summarize};

/// Where Debian's libnginx-mod-rtmp puts the module.
const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
const STREAM_NAME: &str = "tree";
const TINSEL_KEY: &str = "benchkey12345";
/// How long a server may take to listen after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Time given to the stream to flow before viewers join.
const SETTLE: Duration = Duration::from_secs(3);
/// How long a probe viewer may wait for a keyframe; the test stream has one
/// every 2 s.
const PROBE_TIMEOUT: Duration = Duration::from_secs(6);

/// Measures Tinsel and nginx-rtmp serving the same stream to N RTMP viewers.
#[derive(Debug, Parser)]
struct Args {
    /// Tinsel binary.
    #[arg(long, default_value = "target/release/tinsel")]
    tinsel: PathBuf,
    /// Concurrent viewers per server.
    #[arg(long, default_value_t = 500)]
    viewers: usize,
    /// Seconds over which the viewers join.
    #[arg(long, default_value_t = 2.0)]
    ramp_s: f64,
    /// Seconds every viewer keeps watching after the ramp.
    #[arg(long, default_value_t = 20.0)]
    duration_s: f64,
    /// Servers to measure, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "tinsel,nginx"
    )]
    servers: Vec<ServerKind>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// ffmpeg binary used to publish.
    #[arg(long, default_value = "ffmpeg")]
    ffmpeg: PathBuf,
    /// nginx binary (with libnginx-mod-rtmp installed).
    #[arg(long, default_value = "nginx")]
    nginx: PathBuf,
}

/// The published stream's frame rate, which viewers are held to.
const EXPECTED_FPS: f64 = 30.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum ServerKind {
    Tinsel,
    Nginx,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Tinsel => "tinsel",
            ServerKind::Nginx => "nginx",
        }
    }
}

/// One server's figures.
#[derive(Debug, Serialize)]
struct Measured {
    server: ServerKind,
    /// User plus system CPU time of all the server's processes over the window.
    cpu_s: f64,
    /// Wall-clock length of the viewing window.
    window_s: f64,
    cpu_percent_of_one_core: f64,
    /// VmHWM of the server process (for nginx, of its worker).
    peak_rss_mib: f64,
    /// CPU time this process (the viewers) used in the same window, for
    /// judging whether the load generator was the bottleneck.
    load_generator_cpu_s: f64,
    summary: Summary,
    errors: Vec<ErrorCount>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Outcome {
    Measured(Box<Measured>),
    Failed { server: ServerKind, error: String },
}

#[derive(Debug, Serialize)]
struct Ratios {
    /// Tinsel's CPU share of a core over nginx's.
    cpu: Option<f64>,
    peak_rss: Option<f64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Servers and ffmpeg are spawned from this, the main thread (tokio runs
    // the main future on it), so their PR_SET_PDEATHSIG fires only when the
    // whole benchmark dies. Dropping `run` on a signal stops them cleanly.
    tokio::select! {
        code = run(&args) => code,
        signal = shutdown_signal() => {
            eprintln!("{signal}; stopping the servers");
            ExitCode::from(130)
        }
    }
}

async fn run(args: &Args) -> ExitCode {
    let (Ok(ramp), Ok(duration)) = (
        Duration::try_from_secs_f64(args.ramp_s),
        Duration::try_from_secs_f64(args.duration_s),
    ) else {
        eprintln!("--ramp-s and --duration-s must be non-negative numbers of seconds");
        return ExitCode::from(2);
    };
    let mut outcomes = Vec::new();
    for &kind in &args.servers {
        if !args.json {
            eprintln!(
                "{}: starting, {} viewers over {:?}, then {:?}",
                kind.name(),
                args.viewers,
                ramp,
                duration
            );
        }
        let outcome = match bench_one(kind, args, ramp, duration).await {
            Ok(measured) => Outcome::Measured(Box::new(measured)),
            Err(err) => Outcome::Failed {
                server: kind,
                error: format!("{err:#}"),
            },
        };
        outcomes.push(outcome);
    }
    let ratios = ratios(&outcomes);
    if args.json {
        let out = serde_json::json!({
            "viewers": args.viewers,
            "ramp_s": args.ramp_s,
            "duration_s": args.duration_s,
            "expected_fps": EXPECTED_FPS,
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "servers": outcomes,
            "ratios_tinsel_over_nginx": ratios,
        });
        match serde_json::to_string_pretty(&out) {
            Ok(text) => println!("{text}"),
            Err(err) => eprintln!("could not write JSON: {err}"),
        }
    } else {
        print!("{}", table(args, &outcomes, &ratios));
    }
    let all_ran = outcomes.iter().all(|o| matches!(o, Outcome::Measured(_)));
    if all_ran {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Starts `kind`, publishes to it, watches it with the crowd, and stops
/// everything; processes are stopped on every path by their guards.
async fn bench_one(
    kind: ServerKind,
    args: &Args,
    ramp: Duration,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let dir = TempDir::create("fanout-bench", kind.name())?;
    let rtmp_port = free_port()?;
    let mut server = match kind {
        ServerKind::Tinsel => start_tinsel(&args.tinsel, &dir, rtmp_port)?,
        ServerKind::Nginx => start_nginx(&args.nginx, &dir, rtmp_port)?,
    };
    wait_listening(&mut server, rtmp_port, START_TIMEOUT).await?;

    let base = format!("rtmp://127.0.0.1:{rtmp_port}/live");
    let (publish_url, play_url) = match kind {
        ServerKind::Tinsel => (
            format!("{base}/{TINSEL_KEY}"),
            format!("{base}/{STREAM_NAME}"),
        ),
        ServerKind::Nginx => (
            format!("{base}/{STREAM_NAME}"),
            format!("{base}/{STREAM_NAME}"),
        ),
    };
    let mut publisher =
        start_publisher(&args.ffmpeg, dir.path(), &publish_url).with_context(|| {
            format!(
                "could not start {}; install it with `apt-get install ffmpeg`",
                args.ffmpeg.display()
            )
        })?;
    tokio::time::sleep(SETTLE).await;
    publisher.check_running()?;
    server.check_running()?;
    probe(&play_url)
        .await
        .with_context(|| format!("the stream does not play from {play_url}"))?;

    let server_pid = server.pid();
    let cpu_before = tree_cpu_seconds(server_pid)?;
    let self_before = process_cpu_seconds(std::process::id() as i32)?;
    let started = Instant::now();
    let reports = run_many(&play_url, args.viewers, ramp, duration).await;
    let window = started.elapsed();
    let cpu_after = tree_cpu_seconds(server_pid)?;
    let self_after = process_cpu_seconds(std::process::id() as i32)?;
    let peak_rss_kib = match kind {
        ServerKind::Tinsel => peak_rss_kib(server_pid)?,
        // The worker serves the connections; the master only supervises.
        ServerKind::Nginx => descendants(server_pid)
            .into_iter()
            .filter_map(|pid| peak_rss_kib(pid).ok())
            .max()
            .unwrap_or(0),
    };
    // Still running at the end means nobody left early through a crash.
    server.check_running()?;
    publisher.stop();
    server.stop();

    let cpu_s = cpu_after - cpu_before;
    let summary = summarize(&reports, EXPECTED_FPS);
    let errors = error_counts(reports.iter().filter_map(|r| r.error.as_deref()));
    Ok(Measured {
        server: kind,
        cpu_s,
        window_s: window.as_secs_f64(),
        cpu_percent_of_one_core: 100.0 * cpu_s / window.as_secs_f64(),
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
        load_generator_cpu_s: self_after - self_before,
        summary,
        errors,
    })
}

fn start_tinsel(binary: &Path, dir: &TempDir, rtmp_port: u16) -> anyhow::Result<Guarded> {
    let http_port = free_port()?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .arg("--rtmp-listen")
        .arg(format!("127.0.0.1:{rtmp_port}"))
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{http_port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--stream")
        .arg(format!("{STREAM_NAME}={TINSEL_KEY}"))
        // Every viewer of the benchmark comes from 127.0.0.1, which the
        // per-address cap would otherwise stop at 256.
        .arg("--rtmp-max-connections-per-ip")
        .arg("1000000");
    // Tinsel reads TINSEL_* settings; the caller's must not change the run.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TINSEL_") {
            command.env_remove(name);
        }
    }
    Guarded::spawn("tinsel", command, dir.path().join("tinsel.log")).with_context(|| {
        format!(
            "could not start {}; build it with `cargo build -p tinsel --release`",
            binary.display()
        )
    })
}

fn start_nginx(binary: &Path, dir: &TempDir, rtmp_port: u16) -> anyhow::Result<Guarded> {
    if !Path::new(NGINX_RTMP_MODULE).exists() {
        bail!(
            "{NGINX_RTMP_MODULE} is missing; install it with `apt-get install nginx libnginx-mod-rtmp`"
        );
    }
    let config = dir.path().join("nginx.conf");
    std::fs::write(&config, nginx_config(dir.path(), rtmp_port))
        .with_context(|| format!("could not write {}", config.display()))?;
    let mut command = Command::new(binary);
    // -e: the error log before the config is read, which would otherwise be
    // the system one.
    command
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(dir.path());
    Guarded::spawn("nginx", command, dir.path().join("nginx.log")).with_context(|| {
        format!(
            "could not start {}; install it with `apt-get install nginx libnginx-mod-rtmp`",
            binary.display()
        )
    })
}

fn nginx_config(dir: &Path, rtmp_port: u16) -> String {
    let dir = dir.display();
    format!(
        "load_module {NGINX_RTMP_MODULE};\n\
         worker_processes 1;\n\
         daemon off;\n\
         error_log {dir}/error.log;\n\
         pid {dir}/nginx.pid;\n\
         events {{ worker_connections 4096; }}\n\
         rtmp {{\n    server {{\n        listen 127.0.0.1:{rtmp_port};\n        chunk_size 4096;\n        \
         application live {{ live on; }}\n    }}\n}}\n"
    )
}

/// One viewer that must see a keyframe, so that a broken setup fails here
/// with a clear message rather than as 500 failed viewers.
async fn probe(url: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PROBE_TIMEOUT;
    let mut viewer = Viewer::connect(url, PROBE_TIMEOUT).await?;
    loop {
        match tokio::time::timeout_at(deadline, viewer.next_media()).await {
            Ok(Ok(Some(media)))
                if media.track == Track::Video && media.keyframe && !media.config =>
            {
                return Ok(());
            }
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => bail!("the server closed the probe connection"),
            Ok(Err(err)) => return Err(err.into()),
            Err(_) => bail!("no keyframe within {PROBE_TIMEOUT:?}"),
        }
    }
}

fn ratios(outcomes: &[Outcome]) -> Ratios {
    let find = |kind| {
        outcomes.iter().find_map(|outcome| match outcome {
            Outcome::Measured(m) if m.server == kind => Some(m),
            _ => None,
        })
    };
    let (Some(tinsel), Some(nginx)) = (find(ServerKind::Tinsel), find(ServerKind::Nginx)) else {
        return Ratios {
            cpu: None,
            peak_rss: None,
        };
    };
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    Ratios {
        cpu: ratio(
            tinsel.cpu_percent_of_one_core,
            nginx.cpu_percent_of_one_core,
        ),
        peak_rss: ratio(tinsel.peak_rss_mib, nginx.peak_rss_mib),
    }
}

fn table(args: &Args, outcomes: &[Outcome], ratios: &Ratios) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} RTMP viewers joining over {} s, then {} s each; 1280x720 30 fps x264 2500k + AAC 128k; {cores} cores",
        args.viewers, args.ramp_s, args.duration_s
    );
    let _ = writeln!(
        out,
        "{:<7} | {:>6} | {:>17} | {:>12} | {:>10} | {:>11} | {:>8} | {:>18}",
        "server",
        "CPU s",
        "CPU % of one core",
        "peak RSS MiB",
        "keeping up",
        "TTFK median",
        "TTFK p95",
        "behind live median"
    );
    for outcome in outcomes {
        match outcome {
            Outcome::Measured(m) => {
                let _ = writeln!(
                    out,
                    "{:<7} | {:>6.2} | {:>17.1} | {:>12.1} | {:>10} | {:>11} | {:>8} | {:>18}",
                    m.server.name(),
                    m.cpu_s,
                    m.cpu_percent_of_one_core,
                    m.peak_rss_mib,
                    format!("{}/{}", m.summary.keeping_up, m.summary.viewers),
                    opt_ms(m.summary.ttfk_median),
                    opt_ms(m.summary.ttfk_p95),
                    opt_ms(m.summary.behind_live_median),
                );
            }
            Outcome::Failed { server, .. } => {
                let _ = writeln!(out, "{:<7} | failed (see below)", server.name());
            }
        }
    }
    let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
    let _ = writeln!(
        out,
        "Tinsel/nginx: CPU {}, peak RSS {}",
        ratio(ratios.cpu),
        ratio(ratios.peak_rss)
    );
    for outcome in outcomes {
        match outcome {
            Outcome::Measured(m) => {
                let fps = m
                    .summary
                    .fps_median
                    .map_or_else(|| "-".to_string(), |fps| format!("{fps:.1}"));
                let _ = writeln!(
                    out,
                    "{}: window {:.1} s, median received fps {fps}, {} failed; load generator used {:.2} CPU s",
                    m.server.name(),
                    m.window_s,
                    m.summary.failed,
                    m.load_generator_cpu_s
                );
                for error in &m.errors {
                    let _ = writeln!(out, "  {} viewer(s): {}", error.viewers, error.error);
                }
            }
            Outcome::Failed { server, error } => {
                let _ = writeln!(out, "{}: {error}", server.name());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_config_listens_on_loopback_only() {
        let config = nginx_config(Path::new("/bench"), 19350);
        assert!(config.contains("listen 127.0.0.1:19350;"), "{config}");
        assert!(config.contains("load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;"));
        assert!(config.contains("daemon off;"));
        assert!(config.contains("pid /bench/nginx.pid;"));
        assert!(config.contains("application live { live on; }"));
    }
}
