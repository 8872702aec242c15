//! `webrtc-bench`: what Tinsel's WebRTC fan-out costs, against its RTMP
//! fan-out of the same stream as the baseline, in one run. Starts one
//! Tinsel on free loopback ports with the WHEP session caps raised,
//! publishes a synthetic 720p30 stream with ffmpeg, then for each crowd
//! size N watches with N RTMP viewers, then with N WHEP viewers
//! (`run_crowd`, in this process: real ICE, DTLS and SRTP). For each crowd
//! it measures the server's CPU time over the window (from
//! /proc/PID/stat), its resident memory (sampled), what the viewers
//! received, and this process's own CPU time, to tell whether the load
//! generator or the server was the limit.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use tinsel_load::process::{
    Guarded, TempDir, free_port, shutdown_signal, start_publisher, wait_listening,
};
use tinsel_load::procfs::{
    ThreadCpu, machine_cpu, process_cpu_seconds, rss_kib, thread_cpu_seconds, tree_cpu_seconds,
};
use tinsel_load::{
    ErrorCount, Source, Summary, ViewerReport, WhepOptions, error_counts, opt_ms, run_crowd,
    summarize,
};

const STREAM_NAME: &str = "tree";
const TINSEL_KEY: &str = "benchkey12345";
/// How long the server may take to listen after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Time given to the stream to flow before the first viewers join.
const SETTLE: Duration = Duration::from_secs(3);
/// Between two crowds: the last one's sessions end, its sockets close.
const BETWEEN_CROWDS: Duration = Duration::from_secs(3);
/// How long a probe viewer watches; the stream has a keyframe every 2 s.
const PROBE: Duration = Duration::from_secs(4);
/// How often the server's resident memory is sampled during a crowd.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// The published stream's frame rate, which viewers are held to.
const EXPECTED_FPS: f64 = 30.0;
/// The most crowds one run measures, and the largest crowd: a run stays
/// bounded in time and in sockets.
const MAX_CROWDS: usize = 16;
const MAX_VIEWERS: usize = 20_000;
/// Session caps handed to the server: above any crowd this runs.
const WHEP_SESSION_CAP: usize = 100_000;
/// Share of all cores the machine may be busy (the server, this process,
/// the publisher, anything else) before it, rather than the server, counts
/// as the limit.
const SATURATED_SHARE: f64 = 0.9;

/// Measures Tinsel serving one stream over WebRTC (WHEP) to N viewers, with
/// N RTMP viewers of the same stream as the baseline.
#[derive(Debug, Parser)]
struct Args {
    /// Tinsel binary.
    #[arg(long, default_value = "target/release/tinsel")]
    tinsel: PathBuf,
    /// The built web app for the server (`--site-dir`); by default the
    /// server looks beside its binary.
    #[arg(long)]
    site_dir: Option<PathBuf>,
    /// Crowd sizes, measured in turn.
    #[arg(long, value_delimiter = ',', default_value = "100,300,500")]
    viewers: Vec<usize>,
    /// Seconds over which a crowd joins.
    #[arg(long, default_value_t = 5.0)]
    ramp_s: f64,
    /// Seconds every viewer keeps watching after the ramp.
    #[arg(long, default_value_t = 20.0)]
    duration_s: f64,
    /// Every WHEP viewer asks for a keyframe (RTCP PLI) this often.
    #[arg(long)]
    pli_every_s: Option<f64>,
    /// Skip the RTMP baseline.
    #[arg(long)]
    no_rtmp: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// ffmpeg binary used to publish.
    #[arg(long, default_value = "ffmpeg")]
    ffmpeg: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Protocol {
    Whep,
    Rtmp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Whep => "WHEP",
            Protocol::Rtmp => "RTMP",
        }
    }
}

/// One crowd's figures.
#[derive(Debug, Serialize)]
struct Measured {
    protocol: Protocol,
    viewers: usize,
    /// Wall-clock length of the window: the ramp, the watching, the leaving.
    window_s: f64,
    /// User plus system CPU time of the server over the window.
    server_cpu_s: f64,
    server_cpu_percent_of_one_core: f64,
    /// The server thread that used the most CPU over the window, and how
    /// much of a core: near 100 % it, not the cores, is the limit.
    busiest_thread: Option<String>,
    busiest_thread_cpu_percent: Option<f64>,
    /// Server CPU per viewer per second watched, in milliseconds (1 ms/s
    /// is 0.1 % of a core).
    server_cpu_ms_per_viewer_s: Option<f64>,
    /// What the viewers received: RTP packets (WHEP), or audio and video
    /// messages (RTMP).
    units_received: u64,
    /// Server CPU per unit received, in microseconds.
    server_cpu_us_per_unit: Option<f64>,
    /// The server's resident memory before the crowd and its highest
    /// sample during it.
    rss_before_mib: f64,
    rss_peak_mib: f64,
    rss_per_viewer_kib: Option<f64>,
    /// Media payload per viewer per second watched (RTP payload, or FLV
    /// tags), and for WHEP all UDP bytes (SRTP, RTCP, DTLS, STUN).
    payload_kbit_s_per_viewer: Option<f64>,
    wire_kbit_s_per_viewer: Option<f64>,
    /// CPU time this process (the viewers) used in the same window.
    load_generator_cpu_s: f64,
    load_generator_cpu_percent_of_one_core: f64,
    load_generator_cpu_ms_per_viewer: Option<f64>,
    /// Share of all cores busy over the window, whatever used them.
    machine_busy_percent: Option<f64>,
    /// Whether the machine was nearly fully busy: then the figures say more
    /// about the machine than the server.
    saturated: bool,
    summary: Summary,
    errors: Vec<ErrorCount>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Outcome {
    Measured(Box<Measured>),
    Failed { protocol: Protocol, error: String },
}

/// One crowd size: the RTMP baseline, WHEP, and how they compare.
#[derive(Debug, Serialize)]
struct Round {
    viewers: usize,
    whep: Outcome,
    rtmp: Option<Outcome>,
    /// WHEP's server CPU over RTMP's, both as a share of a core.
    cpu_ratio_whep_over_rtmp: Option<f64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // The server and ffmpeg are spawned from this, the main thread (tokio
    // runs the main future on it), so their PR_SET_PDEATHSIG fires only when
    // the whole benchmark dies. Dropping `run` on a signal stops them.
    tokio::select! {
        code = run(&args) => code,
        signal = shutdown_signal() => {
            eprintln!("{signal}; stopping the server");
            ExitCode::from(130)
        }
    }
}

struct Plan {
    ramp: Duration,
    duration: Duration,
    pli_every: Option<Duration>,
}

fn plan(args: &Args) -> anyhow::Result<Plan> {
    let (Ok(ramp), Ok(duration)) = (
        Duration::try_from_secs_f64(args.ramp_s),
        Duration::try_from_secs_f64(args.duration_s),
    ) else {
        bail!("--ramp-s and --duration-s must be non-negative numbers of seconds");
    };
    let pli_every = match args.pli_every_s {
        None => None,
        Some(s) => match Duration::try_from_secs_f64(s) {
            Ok(every) if !every.is_zero() => Some(every),
            _ => bail!("--pli-every-s must be a positive number of seconds"),
        },
    };
    if args.viewers.is_empty() || args.viewers.len() > MAX_CROWDS {
        bail!("--viewers takes 1 to {MAX_CROWDS} crowd sizes");
    }
    if let Some(&n) = args.viewers.iter().find(|&&n| n == 0 || n > MAX_VIEWERS) {
        bail!("a crowd of {n}: each must have 1 to {MAX_VIEWERS} viewers");
    }
    Ok(Plan {
        ramp,
        duration,
        pli_every,
    })
}

async fn run(args: &Args) -> ExitCode {
    let plan = match plan(args) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("{err:#}");
            return ExitCode::from(2);
        }
    };
    let rounds = match bench(args, &plan).await {
        Ok(rounds) => rounds,
        Err(err) => {
            eprintln!("webrtc-bench: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        let out = serde_json::json!({
            "ramp_s": args.ramp_s,
            "duration_s": args.duration_s,
            "pli_every_s": args.pli_every_s,
            "expected_fps": EXPECTED_FPS,
            "cores": cores(),
            "rounds": rounds,
        });
        match serde_json::to_string_pretty(&out) {
            Ok(text) => println!("{text}"),
            Err(err) => eprintln!("could not write JSON: {err}"),
        }
    } else {
        print!("{}", table(args, &rounds));
    }
    let all_ran = rounds.iter().all(|round| {
        matches!(round.whep, Outcome::Measured(_))
            && !matches!(round.rtmp, Some(Outcome::Failed { .. }))
    });
    if all_ran {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts the server and the publisher, checks that the stream plays both
/// ways, then measures every crowd; the guards stop both on every path.
async fn bench(args: &Args, plan: &Plan) -> anyhow::Result<Vec<Round>> {
    let dir = TempDir::create("webrtc-bench", "tinsel")?;
    let rtmp_port = free_port()?;
    let http_port = free_port()?;
    let mut server = start_tinsel(args, &dir, rtmp_port, http_port)?;
    wait_listening(&mut server, rtmp_port, START_TIMEOUT).await?;
    wait_listening(&mut server, http_port, START_TIMEOUT).await?;

    let publish_url = format!("rtmp://127.0.0.1:{rtmp_port}/live/{TINSEL_KEY}");
    let rtmp = Source::Rtmp(format!("rtmp://127.0.0.1:{rtmp_port}/live/{STREAM_NAME}"));
    let whep_url = format!("http://127.0.0.1:{http_port}/whep/{STREAM_NAME}");
    let whep = Source::from_url(
        &whep_url,
        WhepOptions {
            pli_every: plan.pli_every,
        },
    )?;
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
    probe(&rtmp).await?;
    probe(&whep).await?;

    let mut rounds = Vec::new();
    for &viewers in &args.viewers {
        // The baseline first: memory the WHEP crowd leaves behind would
        // otherwise be reused by the RTMP one and hide its growth.
        let rtmp_outcome = if args.no_rtmp {
            None
        } else {
            let measured =
                crowd(&mut server, &rtmp, Protocol::Rtmp, viewers, plan, args.json).await;
            tokio::time::sleep(BETWEEN_CROWDS).await;
            Some(outcome(Protocol::Rtmp, measured))
        };
        let measured = crowd(&mut server, &whep, Protocol::Whep, viewers, plan, args.json).await;
        let whep_outcome = outcome(Protocol::Whep, measured);
        tokio::time::sleep(BETWEEN_CROWDS).await;
        let ratio = match (&whep_outcome, &rtmp_outcome) {
            (Outcome::Measured(w), Some(Outcome::Measured(r))) => ratio(
                w.server_cpu_percent_of_one_core,
                r.server_cpu_percent_of_one_core,
            ),
            _ => None,
        };
        rounds.push(Round {
            viewers,
            whep: whep_outcome,
            rtmp: rtmp_outcome,
            cpu_ratio_whep_over_rtmp: ratio,
        });
        // A server that died takes every later crowd with it; say so once.
        if let Err(err) = server.check_running() {
            bail!("{err}");
        }
        if let Err(err) = publisher.check_running() {
            bail!("{err}");
        }
    }
    publisher.stop();
    server.stop();
    Ok(rounds)
}

fn outcome(protocol: Protocol, measured: anyhow::Result<Measured>) -> Outcome {
    match measured {
        Ok(measured) => Outcome::Measured(Box::new(measured)),
        Err(err) => Outcome::Failed {
            protocol,
            error: format!("{err:#}"),
        },
    }
}

fn start_tinsel(
    args: &Args,
    dir: &TempDir,
    rtmp_port: u16,
    http_port: u16,
) -> anyhow::Result<Guarded> {
    let cap = WHEP_SESSION_CAP.to_string();
    let mut command = Command::new(&args.tinsel);
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
        // Media from and to loopback only, on a port the system picks; the
        // answer names it.
        .arg("--webrtc-ip")
        .arg("127.0.0.1")
        .arg("--webrtc-udp-port")
        .arg("0")
        // Every viewer of the benchmark comes from 127.0.0.1, which the
        // per-address caps would otherwise stop at 20 (WHEP) and 256 (RTMP).
        .args(["--whep-max-sessions", &cap])
        .args(["--whep-max-sessions-per-ip", &cap])
        .args(["--rtmp-max-connections-per-ip", "1000000"]);
    if let Some(site) = &args.site_dir {
        command.arg("--site-dir").arg(site);
    }
    // Tinsel reads TINSEL_* settings; the caller's must not change the run.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TINSEL_") {
            command.env_remove(name);
        }
    }
    Guarded::spawn("tinsel", command, dir.path().join("tinsel.log")).with_context(|| {
        format!(
            "could not start {}; build it with `cargo build -p tinsel --release`",
            args.tinsel.display()
        )
    })
}

/// One viewer that must play, so that a broken setup fails here with a
/// clear message rather than as a crowd of failed viewers.
async fn probe(source: &Source) -> anyhow::Result<()> {
    let report = source
        .watch_until(tokio::time::Instant::now() + PROBE)
        .await;
    if let Some(error) = report.error {
        bail!("the stream does not play from {}: {error}", source.url());
    }
    if report.time_to_first_keyframe.is_none() {
        bail!(
            "no keyframe from {} within {PROBE:?} ({} video frames)",
            source.url(),
            report.video_frames
        );
    }
    Ok(())
}

/// Samples a process's resident memory until dropped; keeps the highest.
struct RssSampler {
    peak_kib: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: i32) -> RssSampler {
        let peak_kib = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let peak = Arc::clone(&peak_kib);
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(RSS_SAMPLE_EVERY);
            loop {
                every.tick().await;
                match rss_kib(pid) {
                    Ok(kib) => {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    Err(_) => return,
                }
            }
        });
        RssSampler { peak_kib, task }
    }

    fn peak_kib(&self) -> u64 {
        self.peak_kib.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches with one crowd and measures the server and this process over it.
async fn crowd(
    server: &mut Guarded,
    source: &Source,
    protocol: Protocol,
    viewers: usize,
    plan: &Plan,
    quiet: bool,
) -> anyhow::Result<Measured> {
    if !quiet {
        eprintln!(
            "{} viewers over {}: joining over {:?}, then {:?}",
            viewers,
            protocol.name(),
            plan.ramp,
            plan.duration
        );
    }
    let server_pid = server.pid();
    let own_pid = std::process::id() as i32;
    let rss_before_kib = rss_kib(server_pid)?;
    let sampler = RssSampler::start(server_pid);
    let cpu_before = tree_cpu_seconds(server_pid)?;
    let threads_before = thread_cpu_seconds(server_pid)?;
    let own_before = process_cpu_seconds(own_pid)?;
    let machine_before = machine_cpu()?;
    let started = Instant::now();
    let reports = run_crowd(source, viewers, plan.ramp, plan.duration).await;
    let window = started.elapsed();
    let cpu_after = tree_cpu_seconds(server_pid)?;
    let threads_after = thread_cpu_seconds(server_pid)?;
    let own_after = process_cpu_seconds(own_pid)?;
    let machine_busy = machine_cpu()?.busy_share_since(&machine_before);
    let rss_peak_kib = sampler.peak_kib().max(rss_kib(server_pid)?);
    drop(sampler);
    server.check_running()?;

    let window_s = window.as_secs_f64();
    let server_cpu_s = cpu_after - cpu_before;
    let own_cpu_s = own_after - own_before;
    let watched_s = watched_seconds(viewers, plan.ramp, plan.duration);
    let per_viewer_s = |value: f64| (watched_s > 0.0).then(|| value / watched_s);
    let units = units_received(&reports);
    let payload: u64 = reports.iter().map(|r| r.bytes).sum();
    let wire: Option<u64> = (protocol == Protocol::Whep).then(|| {
        reports
            .iter()
            .filter_map(|r| r.webrtc.as_ref())
            .map(|w| w.wire_bytes_received)
            .sum()
    });
    let server_percent = 100.0 * server_cpu_s / window_s;
    let busiest = busiest_thread(&threads_before, &threads_after);
    let own_percent = 100.0 * own_cpu_s / window_s;
    Ok(Measured {
        protocol,
        viewers,
        window_s,
        server_cpu_s,
        server_cpu_percent_of_one_core: server_percent,
        busiest_thread_cpu_percent: busiest.as_ref().map(|(_, s)| 100.0 * s / window_s),
        busiest_thread: busiest.map(|(name, _)| name),
        server_cpu_ms_per_viewer_s: per_viewer_s(1000.0 * server_cpu_s),
        units_received: units,
        server_cpu_us_per_unit: (units > 0).then(|| 1e6 * server_cpu_s / units as f64),
        rss_before_mib: rss_before_kib as f64 / 1024.0,
        rss_peak_mib: rss_peak_kib as f64 / 1024.0,
        rss_per_viewer_kib: Some(
            rss_peak_kib.saturating_sub(rss_before_kib) as f64 / viewers as f64,
        ),
        payload_kbit_s_per_viewer: per_viewer_s(payload as f64 * 8.0 / 1000.0),
        wire_kbit_s_per_viewer: wire.and_then(|bytes| per_viewer_s(bytes as f64 * 8.0 / 1000.0)),
        load_generator_cpu_s: own_cpu_s,
        load_generator_cpu_percent_of_one_core: own_percent,
        load_generator_cpu_ms_per_viewer: Some(1000.0 * own_cpu_s / viewers as f64),
        machine_busy_percent: machine_busy.map(|share| 100.0 * share),
        saturated: machine_busy.is_some_and(saturated),
        summary: summarize(&reports, EXPECTED_FPS),
        errors: error_counts(reports.iter().filter_map(|r| r.error.as_deref())),
    })
}

/// The thread that used the most CPU between two readings, with its name
/// and seconds; a thread that started in between counts from zero.
fn busiest_thread(before: &[ThreadCpu], after: &[ThreadCpu]) -> Option<(String, f64)> {
    after
        .iter()
        .map(|thread| {
            let earlier = before
                .iter()
                .find(|b| b.tid == thread.tid)
                .map_or(0.0, |b| b.cpu_s);
            (thread, thread.cpu_s - earlier)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(thread, seconds)| (format!("{} ({})", thread.name, thread.tid), seconds))
}

/// Viewer-seconds a crowd watches: viewer `i` of `n` joins `i/n` of the way
/// through the ramp and watches to its end plus `duration`.
fn watched_seconds(viewers: usize, ramp: Duration, duration: Duration) -> f64 {
    (0..viewers)
        .map(|i| ramp.as_secs_f64() * (1.0 - i as f64 / viewers as f64) + duration.as_secs_f64())
        .sum()
}

/// RTP packets for WHEP viewers, audio and video messages for RTMP ones.
fn units_received(reports: &[ViewerReport]) -> u64 {
    reports
        .iter()
        .map(|r| match &r.webrtc {
            Some(webrtc) => webrtc.packets,
            None => r.video_frames + r.audio_frames,
        })
        .sum()
}

/// The machine was busy for nearly all of its cores' time.
fn saturated(busy_share: f64) -> bool {
    busy_share >= SATURATED_SHARE
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

fn table(args: &Args, rounds: &[Round]) -> String {
    let mut out = String::new();
    let pli = args.pli_every_s.map_or_else(
        || "no PLIs".to_string(),
        |s| format!("a PLI every {s} s per WHEP viewer"),
    );
    let _ = writeln!(
        out,
        "Viewers joining over {} s, then {} s each; 1280x720 30 fps x264 2500k + AAC 128k (Opus over WebRTC); {pli}; {} cores",
        args.ramp_s,
        args.duration_s,
        cores()
    );
    let _ = writeln!(
        out,
        "{:>5} {:<4} | {:>6} {:>6} | {:>8} | {:>8} | {:>8} {:>8} | {:>7} {:>7} | {:>9} | {:>15} | {:>8} | {:>9}",
        "N",
        "",
        "CPU s",
        "% core",
        "ms/s/vwr",
        "µs/unit",
        "RSS MiB",
        "KiB/vwr",
        "kbit/s",
        "wire",
        "keeping",
        "first frame",
        "lag",
        "gen ms/v"
    );
    for round in rounds {
        for outcome in round.rtmp.iter().chain(std::iter::once(&round.whep)) {
            match outcome {
                Outcome::Measured(m) => {
                    let lag = m
                        .summary
                        .webrtc
                        .as_ref()
                        .and_then(|w| w.sender_lag_median_ms)
                        .map_or_else(
                            || opt_ms(m.summary.behind_live_median),
                            |ms| format!("{ms:.1} ms"),
                        );
                    let _ = writeln!(
                        out,
                        "{:>5} {:<4} | {:>6.2} {:>6.1} | {:>8} | {:>8} | {:>8.1} {:>8} | {:>7} {:>7} | {:>9} | {:>15} | {:>8} | {:>9}{}",
                        m.viewers,
                        m.protocol.name(),
                        m.server_cpu_s,
                        m.server_cpu_percent_of_one_core,
                        opt(m.server_cpu_ms_per_viewer_s, 3),
                        opt(m.server_cpu_us_per_unit, 2),
                        m.rss_peak_mib,
                        opt(m.rss_per_viewer_kib, 1),
                        opt(m.payload_kbit_s_per_viewer, 0),
                        opt(m.wire_kbit_s_per_viewer, 0),
                        format!("{}/{}", m.summary.keeping_up, m.summary.viewers),
                        format!(
                            "{} / {}",
                            opt_ms(m.summary.ttfk_median),
                            opt_ms(m.summary.ttfk_p95)
                        ),
                        lag,
                        opt(m.load_generator_cpu_ms_per_viewer, 1),
                        if m.saturated { "  saturated" } else { "" }
                    );
                }
                Outcome::Failed { protocol, .. } => {
                    let _ = writeln!(
                        out,
                        "{:>5} {:<4} | failed (see below)",
                        round.viewers,
                        protocol.name()
                    );
                }
            }
        }
        if let Some(r) = round.cpu_ratio_whep_over_rtmp {
            let _ = writeln!(out, "{:>5} WHEP/RTMP server CPU: {r:.2}x", round.viewers);
        }
    }
    let _ = writeln!(
        out,
        "ms/s/vwr: server CPU ms per viewer per second watched; µs/unit: server CPU per RTP packet (WHEP) or per RTMP message received; \
         RSS: peak sampled, and its growth per viewer; kbit/s: media payload per viewer, wire: all UDP bytes; \
         first frame: median / p95 from the request; lag: behind the sender's clock (WHEP, from RTCP sender reports), behind live (RTMP); \
         gen ms/v: the load generator's CPU per viewer over the crowd; saturated: the machine was over {:.0} % busy",
        100.0 * SATURATED_SHARE
    );
    for round in rounds {
        for outcome in round.rtmp.iter().chain(std::iter::once(&round.whep)) {
            match outcome {
                Outcome::Measured(m) => {
                    let mut line = format!(
                        "{} {}: window {:.1} s, machine {} % busy, busiest server thread {} at {} % of a core, load generator {:.2} CPU s ({:.1} % of a core), median fps {}",
                        m.viewers,
                        m.protocol.name(),
                        m.window_s,
                        opt(m.machine_busy_percent, 0),
                        m.busiest_thread.as_deref().unwrap_or("-"),
                        opt(m.busiest_thread_cpu_percent, 1),
                        m.load_generator_cpu_s,
                        m.load_generator_cpu_percent_of_one_core,
                        opt(m.summary.fps_median, 1),
                    );
                    if let Some(w) = &m.summary.webrtc {
                        let _ = write!(
                            line,
                            ", connected median {}, {} RTP lost ({}), {} NACKs, {} PLIs, {} packets of older frames",
                            opt_ms(w.connected_median),
                            w.lost,
                            opt(w.loss_percent, 3) + " %",
                            w.nacks_sent,
                            w.plis_sent,
                            w.stale_packets
                        );
                    }
                    let _ = writeln!(out, "{line}, {} failed", m.summary.failed);
                    for error in &m.errors {
                        let _ = writeln!(out, "  {} viewer(s): {}", error.viewers, error.error);
                    }
                }
                Outcome::Failed { protocol, error } => {
                    let _ = writeln!(out, "{} {}: {error}", round.viewers, protocol.name());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_watch_from_their_join_to_the_end() {
        // Two viewers over a 2 s ramp: one watches 2 + 10 s, one 1 + 10 s.
        let watched = watched_seconds(2, Duration::from_secs(2), Duration::from_secs(10));
        assert!((watched - 23.0).abs() < 1e-9, "{watched}");
        assert_eq!(
            watched_seconds(0, Duration::ZERO, Duration::from_secs(5)),
            0.0
        );
    }

    #[test]
    fn units_are_packets_for_webrtc_and_messages_for_rtmp() {
        let mut rtmp = ViewerReport::failed(String::new());
        rtmp.error = None;
        rtmp.video_frames = 300;
        rtmp.audio_frames = 470;
        let mut whep = rtmp.clone();
        whep.webrtc = Some(tinsel_load::WebrtcStats {
            packets: 3000,
            ..Default::default()
        });
        assert_eq!(units_received(&[rtmp.clone(), whep]), 3770);
        assert_eq!(units_received(&[rtmp]), 770);
    }

    #[test]
    fn saturation_is_a_nearly_full_machine() {
        assert!(!saturated(0.75));
        assert!(saturated(0.9));
        assert!(saturated(1.0));
    }

    #[test]
    fn plan_checks_its_arguments() {
        let args = |extra: &[&str]| {
            Args::try_parse_from(std::iter::once("webrtc-bench").chain(extra.iter().copied()))
                .unwrap()
        };
        let ok = plan(&args(&["--viewers", "20,100", "--pli-every-s", "10"])).unwrap();
        assert_eq!(ok.pli_every, Some(Duration::from_secs(10)));
        assert_eq!(args(&["--viewers", "20,100"]).viewers, vec![20, 100]);
        assert!(plan(&args(&["--viewers", "0"])).is_err());
        assert!(plan(&args(&["--pli-every-s", "0"])).is_err());
        assert!(plan(&args(&["--ramp-s=-1"])).is_err());
        assert!(plan(&args(&[])).unwrap().pli_every.is_none());
    }

    #[test]
    fn the_busiest_thread_by_cpu_used_between_readings() {
        let thread = |tid, name: &str, cpu_s| ThreadCpu {
            tid,
            name: name.to_string(),
            cpu_s,
        };
        let before = [thread(1, "main", 10.0), thread(2, "worker", 1.0)];
        let after = [
            thread(1, "main", 12.0),
            thread(2, "worker", 4.0),
            thread(3, "new", 2.5),
        ];
        assert_eq!(
            busiest_thread(&before, &after),
            Some(("worker (2)".to_string(), 3.0))
        );
        assert_eq!(busiest_thread(&before, &[]), None);
    }

    #[test]
    fn ratio_needs_a_baseline() {
        assert_eq!(ratio(30.0, 10.0), Some(3.0));
        assert_eq!(ratio(30.0, 0.0), None);
    }
}
