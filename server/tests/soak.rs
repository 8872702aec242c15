//! Soak: the real server for `TINSEL_SOAK_S` seconds (default 60, CI's short
//! mode; `scripts/soak 3600` for an hour) with everything at once:
//!
//! - a publisher (ffmpeg) that restarts every `TINSEL_SOAK_RESTART_S` (15 s
//!   in the short mode, 300 s in long runs, as OBS restarting every five
//!   minutes);
//! - one RTMP viewer attached from start to end, which must receive media
//!   after every restart on the same connection (no viewer of the live
//!   stream lost);
//! - one WHEP viewer (a Rust webrtc peer) attached from start to end, held
//!   to the same rule;
//! - RTMP viewers (the project's load tool), WHEP viewers and HLS viewers
//!   (playlist and media fetches) joining and leaving;
//! - with `TINSEL_SOAK_BROWSER=1` (scripts/soak sets it), the watch page
//!   open in headless Chromium the whole time (e2e/soak_page.mjs), which
//!   must keep playing by itself across every restart;
//! - hostile clients beside them, from another address (127.0.0.2): random
//!   bytes to the RTMP port, garbage HTTP requests, junk datagrams to the
//!   WebRTC UDP port, and idle TCP connections held open and renewed.
//!
//! Every few seconds it samples the server's resident memory, open file
//! descriptors and CPU time (/proc/PID/status, /proc/PID/fd, /proc/PID/stat)
//! and the viewers `/api/streams` counts. After a warm-up the second half of
//! the run may not exceed the first half's maximum by more than
//! [`RSS_GROWTH_KIB`] and [`FD_GROWTH`] (growth that keeps going is a leak),
//! nor its CPU per viewer by more than [`CPU_PER_VIEWER_GROWTH`]. The run
//! ends with the samples and a plot of RSS over time.
//! Every loop is bounded by the run's deadline and a count.

mod common;
#[path = "common/whep_viewer.rs"]
mod whep_viewer;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{KEY, Server, wait_for};
use tinsel_load::{Track, Viewer};

/// How much the second half's peak RSS may exceed the first half's.
const RSS_GROWTH_KIB: u64 = 16 * 1024;
/// How many more descriptors the second half may hold at its peak.
const FD_GROWTH: usize = 24;
/// How much the second half's CPU per viewer may exceed the first half's.
const CPU_PER_VIEWER_GROWTH: f64 = 1.5;
/// Idle connections the hostile side holds open to each TCP port.
const IDLE_CONNECTIONS: usize = 20;
/// A restart's media must reach the attached viewer within this.
const RESTART_MEDIA_WITHIN: Duration = Duration::from_secs(20);

fn env_s(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// A lighter publisher than `common::Publisher` (360p), so an hour of
/// restarts leaves the machine's cores to the server and the viewers.
fn publisher(url: &str, log: &std::path::Path) -> Child {
    let stderr = std::fs::File::create(log).expect("the publisher's log file");
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
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
            "-g", "60", "-bf", "0", "-b:v", "800k", "-pix_fmt", "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start ffmpeg (is it installed?)")
}

fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[derive(Default)]
struct Attached {
    video_frames: u64,
    last_video_at: Option<Instant>,
    /// Why the connection ended, if it did.
    lost: Option<String>,
}

#[derive(Default)]
struct Counts {
    rtmp_viewers_served: AtomicU64,
    rtmp_viewers_failed: AtomicU64,
    whep_viewers_served: AtomicU64,
    whep_viewers_failed: AtomicU64,
    hls_fetches_ok: AtomicU64,
    hls_fetches_failed: AtomicU64,
    hostile_rtmp: AtomicU64,
    hostile_http: AtomicU64,
    hostile_udp: AtomicU64,
    idle_opened: AtomicU64,
}

struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: usize,
    /// The server's CPU time so far, in clock ticks.
    cpu_ticks: u64,
    /// Viewers of every kind, as `/api/streams` counts them.
    viewers: u64,
}

/// The server's user and system time so far (/proc/PID/stat, fields 14 and
/// 15), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: fields are counted after its ')'.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}

/// Clock ticks per second (sysconf(_SC_CLK_TCK)).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant; no memory is involved.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// RSS over time as text: `rows` lines from the highest value down.
fn plot(samples: &[Sample], rows: usize, columns: usize) -> String {
    if samples.is_empty() {
        return String::new();
    }
    let chunk = samples.len().div_ceil(columns).max(1);
    let points: Vec<u64> = samples
        .chunks(chunk)
        .map(|c| c.iter().map(|s| s.rss_kib).max().unwrap_or(0))
        .collect();
    let (low, high) = (
        *points.iter().min().unwrap() as f64,
        *points.iter().max().unwrap() as f64,
    );
    let span = (high - low).max(1.0);
    let mut out = String::new();
    for row in (0..rows).rev() {
        let level = low + span * row as f64 / (rows - 1).max(1) as f64;
        out.push_str(&format!("{:>7.1} MiB |", level / 1024.0));
        for &p in &points {
            let at = ((p as f64 - low) / span * (rows - 1) as f64).round() as usize;
            out.push(if at == row { '*' } else { ' ' });
        }
        out.push('\n');
    }
    let minutes = samples.last().unwrap().at.as_secs_f64() / 60.0;
    out.push_str(&format!(
        "            +{}\n             0 min{:>width$.0} min\n",
        "-".repeat(points.len()),
        minutes,
        width = points.len().saturating_sub(5)
    ));
    out
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A TCP connection from 127.0.0.2: the hostile side is another address than
/// the publisher and the viewers, as a stranger on the internet would be.
fn connect_from_stranger(target: SocketAddr) -> Option<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    let local: SocketAddr = "127.0.0.2:0".parse().unwrap();
    socket.bind(&local.into()).ok()?;
    socket
        .connect_timeout(&target.into(), Duration::from_secs(2))
        .ok()?;
    Some(socket.into())
}

/// A small xorshift, so the hostile bytes differ without a crate.
struct Noise(u64);

impl Noise {
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0 as u8
            })
            .collect()
    }

    /// 1 to `max` random bytes.
    fn junk(&mut self, max: u64) -> Vec<u8> {
        let len = 1 + self.below(max) as usize;
        self.bytes(len)
    }

    fn below(&mut self, n: u64) -> u64 {
        u64::from(
            self.bytes(4)
                .iter()
                .fold(0u32, |a, b| a << 8 | u32::from(*b)),
        ) % n
    }
}

/// Runs `work` in a thread until `stop` or `deadline`, at most `max` times.
fn keep_doing(
    stop: &Arc<AtomicBool>,
    deadline: Instant,
    max: u64,
    mut work: impl FnMut(u64) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        for i in 0..max {
            if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                return;
            }
            work(i);
        }
    })
}

/// Viewers of every kind `/api/streams` counts; 0 if it does not answer.
fn viewers(http: SocketAddr) -> u64 {
    let Ok(response) = ureq::get(&format!("http://{http}/api/streams"))
        .timeout(Duration::from_secs(5))
        .call()
    else {
        return 0;
    };
    let streams: serde_json::Value = response
        .into_string()
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    streams
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["viewers"].as_object())
        .flat_map(|v| v.values().filter_map(serde_json::Value::as_u64))
        .sum()
}

/// The URIs of a media playlist: segments, and parts of the live edge.
fn playlist_uris(text: &str) -> Vec<String> {
    let mut uris: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    uris.extend(
        text.lines()
            .filter(|l| l.starts_with("#EXT-X-PART:"))
            .filter_map(|l| {
                l.split("URI=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .map(str::to_string)
            }),
    );
    uris
}

#[test]
fn soak_publisher_restarts_viewers_and_hostile_clients_keep_memory_and_fds_flat() {
    let run_for = env_s("TINSEL_SOAK_S", 60);
    let restart_every = env_s(
        "TINSEL_SOAK_RESTART_S",
        if run_for <= Duration::from_secs(300) {
            15
        } else {
            300
        },
    );
    let warmup = (run_for / 5).max(Duration::from_secs(10));
    // In a network namespace of its own (scripts/soak), WebRTC is offered on
    // a documentation address, so Chromium's WebRTC (which ignores loopback)
    // can play too.
    let webrtc_ip = std::env::var("TINSEL_SOAK_WEBRTC_IP").unwrap_or_else(|_| "127.0.0.1".into());
    // The web app the build made, for the watch page.
    let site = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/site");
    let server = Server::start(&["--webrtc-ip", &webrtc_ip, "--site-dir", site]);
    let udp: SocketAddr = server.wait_for_address("WebRTC UDP listening");
    let (rtmp, http, pid) = (server.rtmp, server.http, server.pid());
    let publish_url = format!("rtmp://{rtmp}/live/{KEY}");
    let play_url = server.play_url();
    println!(
        "soak: {} s, publisher restart every {} s, warm-up {} s, server pid {pid}",
        run_for.as_secs(),
        restart_every.as_secs(),
        warmup.as_secs()
    );

    let started = Instant::now();
    let deadline = started + run_for;
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let attached = Arc::new(Mutex::new(Attached::default()));

    let publisher_log = server.data_dir.join("publisher.log");
    let mut live = publisher(&publish_url, &publisher_log);
    server.wait_live(true);

    // The attached viewer, on its own runtime for the whole run.
    let viewer = {
        let (attached, stop, url) = (Arc::clone(&attached), Arc::clone(&stop), play_url.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut viewer = match Viewer::connect(&url, Duration::from_secs(10)).await {
                    Ok(v) => v,
                    Err(err) => {
                        attached.lock().unwrap().lost = Some(format!("cannot play: {err}"));
                        return;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let next =
                        tokio::time::timeout(Duration::from_secs(1), viewer.next_media()).await;
                    let media = match next {
                        Err(_elapsed) => continue,
                        Ok(Ok(Some(media))) => media,
                        Ok(Ok(None)) => {
                            attached.lock().unwrap().lost =
                                Some("the server closed the connection".into());
                            return;
                        }
                        Ok(Err(err)) => {
                            attached.lock().unwrap().lost = Some(err.to_string());
                            return;
                        }
                    };
                    if matches!(media.track, Track::Video) && !media.config {
                        let mut a = attached.lock().unwrap();
                        a.video_frames += 1;
                        a.last_video_at = Some(media.received_at);
                    }
                }
            });
        })
    };

    // The attached WHEP viewer, and the runtime the WHEP viewers run on.
    let whep_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let whep_url = format!("http://{http}/whep/tree");
    // WHEP answers once the stream's video parameters are known.
    wait_for(
        Duration::from_secs(20),
        "the stream's video parameters",
        || server.tree_status()["video"]["width"].as_u64(),
    );
    let whep_attached = whep_runtime
        .block_on(whep_viewer::play(whep_url.clone()))
        .expect("the attached WHEP viewer plays");

    // The watch page in Chromium, open from here to the end.
    let page_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut page = (std::env::var("TINSEL_SOAK_BROWSER").as_deref() == Ok("1")).then(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/soak_page.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg(format!("http://{http}/"))
            .arg(
                run_for
                    .saturating_sub(started.elapsed())
                    .as_secs()
                    .max(1)
                    .to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node for the watch page (scripts/setup --test installs it)");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::clone(&page_lines);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        });
        child
    });

    let mut workers = Vec::new();
    // WHEP viewers joining and leaving: each watches 3 s after its first
    // frames, then ends its session with DELETE.
    {
        let (counts, url) = (Arc::clone(&counts), whep_url.clone());
        let handle = whep_runtime.handle().clone();
        workers.push(keep_doing(&stop, deadline, 100_000, move |_| {
            let served = handle.block_on(async {
                let viewer = whep_viewer::play(url.clone()).await.ok()?;
                let started = Instant::now();
                while viewer.frames() < 10 && started.elapsed() < Duration::from_secs(10) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
                let frames = viewer.frames();
                viewer.close().await;
                (frames >= 10).then_some(())
            });
            if served.is_some() {
                counts.whep_viewers_served.fetch_add(1, Ordering::Relaxed);
            } else {
                counts.whep_viewers_failed.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(500));
            }
        }));
    }
    // RTMP viewers joining and leaving: each watches 3 s, two at a time.
    for _ in 0..2 {
        let (counts, url) = (Arc::clone(&counts), play_url.clone());
        workers.push(keep_doing(&stop, deadline, 100_000, move |_| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let report = rt.block_on(tinsel_load::watch(&url, Duration::from_secs(3)));
            if report.video_frames > 0 {
                counts.rtmp_viewers_served.fetch_add(1, Ordering::Relaxed);
            } else {
                counts.rtmp_viewers_failed.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(500));
            }
        }));
    }
    // HLS viewers: the playlist, then a segment or part from it, twice a second.
    {
        let counts = Arc::clone(&counts);
        let mut noise = Noise(0x1234_5678_9abc_def1);
        workers.push(keep_doing(&stop, deadline, 1_000_000, move |_| {
            let get = |path: &str| {
                ureq::get(&format!("http://{http}{path}"))
                    .timeout(Duration::from_secs(10))
                    .call()
                    .ok()
                    .and_then(|r| {
                        let mut body = Vec::new();
                        r.into_reader().take(8 << 20).read_to_end(&mut body).ok()?;
                        Some(body)
                    })
            };
            let fetched = get("/hls/tree/index.m3u8").and_then(|playlist| {
                let uris = playlist_uris(&String::from_utf8_lossy(&playlist));
                let pick = uris.get(noise.below(uris.len().max(1) as u64) as usize)?;
                get(&format!("/hls/tree/{pick}"))
            });
            let counter = if fetched.is_some() {
                &counts.hls_fetches_ok
            } else {
                &counts.hls_fetches_failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(500));
        }));
    }
    // Random bytes to the RTMP port (some start like a handshake).
    {
        let counts = Arc::clone(&counts);
        let mut noise = Noise(0xdead_beef_cafe_f00d);
        workers.push(keep_doing(&stop, deadline, 1_000_000, move |i| {
            if let Some(mut s) = connect_from_stranger(rtmp) {
                let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                let mut junk = noise.junk(8192);
                if i % 2 == 0 {
                    junk[0] = 3;
                }
                let _ = s.write_all(&junk);
                counts.hostile_rtmp.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(200));
        }));
    }
    // Garbage HTTP requests, read until the server answers or closes.
    {
        let counts = Arc::clone(&counts);
        let mut noise = Noise(0x0bad_f00d_1234_4321);
        let requests: [&[u8]; 5] = [
            b"GET /hls/tree/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /hls/tree/index.m3u8?_HLS_msn=99999999999999999999&_HLS_part=-1 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"username\":",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: \xff\xfe\r\n\r\n",
        ];
        workers.push(keep_doing(&stop, deadline, 1_000_000, move |i| {
            if let Some(mut s) = connect_from_stranger(http) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                let request = if i % 6 == 5 {
                    noise.junk(4096)
                } else {
                    requests[(i % 6) as usize % requests.len()].to_vec()
                };
                let _ = s.write_all(&request);
                let mut answer = [0u8; 4096];
                let _ = s.read(&mut answer);
                counts.hostile_http.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(200));
        }));
    }
    // Junk datagrams to the WebRTC port: random, and STUN-looking.
    {
        let counts = Arc::clone(&counts);
        let mut noise = Noise(0x5eed_5eed_5eed_5eed);
        let socket = UdpSocket::bind("127.0.0.2:0").unwrap();
        let target: SocketAddr = format!("127.0.0.1:{}", udp.port()).parse().unwrap();
        workers.push(keep_doing(&stop, deadline, 10_000_000, move |i| {
            let mut datagram = noise.junk(1400);
            if i % 3 == 0 && datagram.len() >= 20 {
                // A Binding Request header with the magic cookie.
                datagram[..8].copy_from_slice(&[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
            }
            if socket.send_to(&datagram, target).is_ok() {
                counts.hostile_udp.fetch_add(1, Ordering::Relaxed);
            }
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    // Idle connections to both TCP ports, renewed every 10 s.
    {
        let counts = Arc::clone(&counts);
        workers.push(keep_doing(&stop, deadline, 100_000, move |_| {
            let mut held = Vec::new();
            for target in [rtmp, http] {
                for _ in 0..IDLE_CONNECTIONS {
                    if let Some(s) = connect_from_stranger(target) {
                        held.push(s);
                        counts.idle_opened.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            std::thread::sleep(Duration::from_secs(10));
            drop(held);
        }));
    }

    // The main loop: restart the publisher on time, sample every 2 s.
    let mut samples: Vec<Sample> = Vec::new();
    let mut restarts: Vec<Instant> = Vec::new();
    let mut next_restart = started + restart_every;
    let mut next_sample = started;
    let mut checked_restarts = 0;
    while Instant::now() < deadline {
        let now = Instant::now();
        if now >= next_sample {
            samples.push(Sample {
                at: now - started,
                rss_kib: rss_kib(pid),
                fds: open_fds(pid),
                cpu_ticks: cpu_ticks(pid),
                viewers: viewers(http),
            });
            next_sample += Duration::from_secs(2);
        }
        if now >= next_restart && deadline.saturating_duration_since(now) > RESTART_MEDIA_WITHIN {
            end(&mut live);
            live = publisher(&publish_url, &publisher_log);
            restarts.push(Instant::now());
            next_restart += restart_every;
        }
        // Each restart must bring media to the attached viewer in time.
        if let Some(at) = restarts.get(checked_restarts).copied() {
            let (lost, last_video_at, frames) = {
                let a = attached.lock().unwrap();
                (a.lost.clone(), a.last_video_at, a.video_frames)
            };
            let whep_back = whep_attached
                .last_frame_at()
                .is_some_and(|t| t > at + Duration::from_secs(1));
            if lost.is_some() || at.elapsed() >= RESTART_MEDIA_WITHIN {
                stop.store(true, Ordering::Relaxed);
                let logs = server.logs();
                let tail = &logs[logs.len().saturating_sub(30)..];
                panic!(
                    "restart {} at {:.0} s: the attached RTMP viewer {} ({frames} frames so far); \
                     the attached WHEP viewer {} ({} frames so far); \
                     stream {}; publisher {:?}: {}\nlast server log lines:\n{}",
                    checked_restarts + 1,
                    (at - started).as_secs_f64(),
                    match &lost {
                        Some(why) => format!("was lost: {why}"),
                        None if last_video_at.is_some_and(|t| t > at + Duration::from_secs(1)) => {
                            "has video again".to_string()
                        }
                        None => format!("got no video within {RESTART_MEDIA_WITHIN:?}"),
                    },
                    if whep_back {
                        "has video again".to_string()
                    } else {
                        format!("got no video within {RESTART_MEDIA_WITHIN:?}")
                    },
                    whep_attached.frames(),
                    server.tree_status(),
                    live.try_wait(),
                    std::fs::read_to_string(&publisher_log).unwrap_or_default(),
                    tail.join("\n")
                );
            }
            if whep_back && last_video_at.is_some_and(|t| t > at + Duration::from_secs(1)) {
                println!(
                    "restart {} at {:.0} s: both attached viewers have video again \
                     (RTMP {frames} frames, WHEP {} so far)",
                    checked_restarts + 1,
                    (at - started).as_secs_f64(),
                    whep_attached.frames(),
                );
                checked_restarts += 1;
            }
        }
        assert!(open_fds(pid) > 0, "the server process is gone");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The last restarts' media, with the deadline they are owed.
    while let Some(at) = restarts.get(checked_restarts) {
        let a = wait_for(RESTART_MEDIA_WITHIN, "video after the last restart", || {
            let a = attached.lock().unwrap();
            let after = |t: Option<Instant>| t.is_some_and(|t| t > *at + Duration::from_secs(1));
            (a.lost.is_some() || after(a.last_video_at) && after(whep_attached.last_frame_at()))
                .then_some(a.lost.clone())
        });
        assert!(a.is_none(), "the attached viewer was lost: {a:?}");
        checked_restarts += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    let _ = viewer.join();
    let whep_frames = whep_attached.frames();
    whep_runtime.block_on(whep_attached.close());
    end(&mut live);
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200, "/healthz after the soak");

    let attached = attached.lock().unwrap();
    let after_warmup: Vec<&Sample> = samples.iter().filter(|s| s.at >= warmup).collect();
    let (first, second) = after_warmup.split_at(after_warmup.len() / 2);
    let peak = |part: &[&Sample]| {
        (
            part.iter().map(|s| s.rss_kib).max().unwrap_or(0),
            part.iter().map(|s| s.fds).max().unwrap_or(0),
        )
    };
    let ((rss_first, fds_first), (rss_second, fds_second)) = (peak(first), peak(second));
    let range = |f: &dyn Fn(&Sample) -> u64| {
        (
            samples.iter().map(f).min().unwrap_or(0),
            samples.iter().map(f).max().unwrap_or(0),
        )
    };
    let (rss_min, rss_max) = range(&|s| s.rss_kib);
    let (fd_min, fd_max) = range(&|s| s.fds as u64);
    let c = &counts;
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "soak figures over {:.0} s ({} samples):\n\
         RSS {rss_min}..{rss_max} KiB; after warm-up, peak {rss_first} KiB in the first half, {rss_second} KiB in the second\n\
         open fds {fd_min}..{fd_max}; after warm-up, peak {fds_first} in the first half, {fds_second} in the second\n\
         publisher restarts {}, the attached viewers got {} (RTMP) and {whep_frames} (WHEP) video frames and were never lost\n\
         RTMP viewers served {} (failed {}), WHEP viewers served {} (failed {}), HLS fetches {} ok ({} failed)\n\
         hostile: {} RTMP junk connections, {} garbage HTTP requests, {} junk datagrams, {} idle connections",
        started.elapsed().as_secs_f64(),
        samples.len(),
        restarts.len(),
        attached.video_frames,
        n(&c.rtmp_viewers_served),
        n(&c.rtmp_viewers_failed),
        n(&c.whep_viewers_served),
        n(&c.whep_viewers_failed),
        n(&c.hls_fetches_ok),
        n(&c.hls_fetches_failed),
        n(&c.hostile_rtmp),
        n(&c.hostile_http),
        n(&c.hostile_udp),
        n(&c.idle_opened),
    );
    // CPU per viewer in each half after the warm-up: the server's CPU time
    // over the half, as a share of one core, over the viewers it had on average.
    let tps = ticks_per_second();
    let cpu_per_viewer = |part: &[&Sample]| {
        let (Some(a), Some(b)) = (part.first(), part.last()) else {
            return 0.0;
        };
        let seconds = (b.at - a.at).as_secs_f64().max(1.0);
        let core = (b.cpu_ticks - a.cpu_ticks) as f64 / tps / seconds * 100.0;
        let viewers = part.iter().map(|s| s.viewers).sum::<u64>() as f64 / part.len() as f64;
        core / viewers.max(1.0)
    };
    let (cpu_first, cpu_second) = (cpu_per_viewer(first), cpu_per_viewer(second));
    println!(
        "CPU per viewer after warm-up: {cpu_first:.2} % of a core in the first half, \
         {cpu_second:.2} % in the second"
    );
    for pair in samples.windows(2) {
        let (a, s) = (&pair[0], &pair[1]);
        let core = (s.cpu_ticks - a.cpu_ticks) as f64 / tps / (s.at - a.at).as_secs_f64() * 100.0;
        println!(
            "  t={:>5.0} s  RSS {:>7} KiB  fds {:>4}  CPU {core:>5.1} %  viewers {:>3}",
            s.at.as_secs_f64(),
            s.rss_kib,
            s.fds,
            s.viewers
        );
    }
    println!("RSS over the run:\n{}", plot(&samples, 12, 72));
    if let Some(mut page) = page.take() {
        let status = common::wait_exit(&mut page, Duration::from_secs(60));
        let lines = page_lines.lock().unwrap();
        let states: Vec<serde_json::Value> = lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let playing = states
            .windows(2)
            .filter(|w| w[1]["frames"] != w[0]["frames"] && w[1]["frames"].as_u64() > Some(0))
            .count();
        let modes: std::collections::BTreeMap<String, usize> =
            states.iter().fold(Default::default(), |mut m, s| {
                *m.entry(s["mode"].as_str().unwrap_or("none").to_string())
                    .or_default() += 1;
                m
            });
        println!(
            "the watch page in Chromium: {} samples, playing in {playing}, modes {modes:?}, \
             last {:?}",
            states.len(),
            lines.last()
        );
        assert!(
            status.is_some_and(|s| s.success()),
            "the watch page's browser failed"
        );
        let share = playing as f64 / states.len().saturating_sub(1).max(1) as f64;
        assert!(
            share >= 0.9,
            "the watch page played in only {:.0} % of the samples",
            share * 100.0
        );
    }
    assert!(!restarts.is_empty(), "the run is too short for a restart");
    assert!(n(&c.rtmp_viewers_served) > 0, "no RTMP viewer was served");
    assert!(n(&c.whep_viewers_served) > 0, "no WHEP viewer was served");
    assert!(n(&c.hls_fetches_ok) > 0, "no HLS fetch succeeded");
    // Every WHEP session ended with DELETE is gone.
    wait_for(Duration::from_secs(10), "the WHEP sessions to end", || {
        (server.tree_status()["viewers"]["webrtc"].as_u64()? == 0).then_some(())
    });
    assert!(
        rss_second <= rss_first + RSS_GROWTH_KIB,
        "RSS kept growing: peak {rss_first} KiB, then {rss_second} KiB"
    );
    assert!(
        cpu_second <= cpu_first * CPU_PER_VIEWER_GROWTH + 0.05,
        "CPU per viewer grew: {cpu_first:.2} % then {cpu_second:.2} % of a core"
    );
    assert!(
        fds_second <= fds_first + FD_GROWTH,
        "open fds kept growing: peak {fds_first}, then {fds_second}"
    );
}
