//! A season of stream time in seconds: ffmpeg publishes with its clock set
//! just before the points where timelines wrap, and real players watch across
//! them. OBS and ffmpeg write their RTMP timestamps in 31 bits, so their
//! clock wraps after 2^31 ms (24.9 days); HLS video's 90 kHz clock passes
//! 2^32 units after 13.25 hours, and so does WebRTC's (which wraps by
//! design). An encoder that uses all 32 bits of RTMP's timestamps, starting
//! near the top, is ffmpeg's RTMP client sending an FLV clip whose times were
//! moved there.

mod common;
#[path = "common/whep_viewer.rs"]
mod whep_viewer;

use std::any::Any;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Publisher, Server, packet_times, run, wait_for};

/// 2^31 ms, where OBS and ffmpeg's clock wraps.
const RTMP_WRAP_S: f64 = 2_147_483.648;
/// 2^32 ms, where RTMP's own timestamps wrap.
const RTMP_WRAP_32_S: f64 = 4_294_967.296;
/// 2^32 units of 90 kHz.
const VIDEO_WRAP_S: f64 = 4_294_967_296.0 / 90_000.0;
/// How far before a wrap the publisher's clock starts.
const LEAD_S: f64 = 8.0;
/// One video frame at 30 fps.
const FRAME_S: f64 = 1.0 / 30.0;

/// A small picture keeps three encoders cheap beside everything else.
const SMALL: [&str; 2] = ["-s", "640x360"];

/// What a player needs across `crossing`: both tracks read on both sides of
/// it, each rising in small steps, and every video frame with audio within
/// one frame of it.
fn assert_plays_through(what: &str, (video, audio): &(Vec<f64>, Vec<f64>), crossing: f64) {
    println!(
        "{what}: {} video packets {:.3}..{:.3} s, {} audio packets {:.3}..{:.3} s",
        video.len(),
        video.first().unwrap_or(&0.0),
        video.last().unwrap_or(&0.0),
        audio.len(),
        audio.first().unwrap_or(&0.0),
        audio.last().unwrap_or(&0.0),
    );
    for (track, times) in [("video", video), ("audio", audio)] {
        assert!(times.len() > 60, "{what}: {} {track} packets", times.len());
        assert!(
            times.first().unwrap() < &crossing && times.last().unwrap() > &(crossing + 1.0),
            "{what}: {track} from {} to {} s does not cross {crossing} s",
            times.first().unwrap(),
            times.last().unwrap()
        );
        for pair in times.windows(2) {
            let step = pair[1] - pair[0];
            assert!(
                step > 0.0 && step < 0.2,
                "{what}: {track} went from {} to {} s",
                pair[0],
                pair[1]
            );
        }
    }
    let (first, last) = (audio[0], audio[audio.len() - 1]);
    let mut worst: f64 = 0.0;
    for &v in video.iter().filter(|&&v| v >= first && v <= last) {
        let at = audio.partition_point(|&a| a < v);
        let nearest = [at.checked_sub(1), Some(at)]
            .into_iter()
            .flatten()
            .filter_map(|i| audio.get(i))
            .map(|a| (a - v).abs())
            .fold(f64::INFINITY, f64::min);
        worst = worst.max(nearest);
    }
    println!(
        "{what}: video and audio at most {:.1} ms apart",
        worst * 1000.0
    );
    assert!(worst <= FRAME_S, "{what}: audio {worst} s from video");
}

/// ffmpeg publishing with its clock at `start_s`.
fn ffmpeg_from(start_s: f64) -> impl Fn(&Server) -> Box<dyn Any> {
    move |server| {
        let offset = format!("{start_s:.3}");
        let mut options = vec!["-output_ts_offset", &offset];
        options.extend(SMALL);
        Box::new(Publisher::start_with(&server.publish_url(), &options))
    }
}

/// ffmpeg's RTMP client publishing an FLV clip of its own making whose
/// timestamps were moved by `shift_ms` (tests/data/flv_retime.py), which
/// ffmpeg's FLV muxer could not write: it keeps 31 bits.
struct RetimedFlv {
    pacer: Child,
    ffmpeg: Child,
}

impl RetimedFlv {
    fn start(url: &str, shift_ms: u64) -> Self {
        let dir = common::temp_dir("flv");
        let clip = dir.join("clip.flv");
        let (ok, _, err) = run(
            Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
                .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
                .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
                .args([
                    "-t",
                    "30",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-tune",
                    "zerolatency",
                ])
                .args([
                    "-g", "60", "-bf", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv",
                ])
                .arg(&clip),
            Duration::from_secs(60),
        );
        assert!(ok, "ffmpeg made no clip: {err}");
        let mut pacer = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/flv_retime.py"
            ))
            .arg(&clip)
            .arg(shift_ms.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let ffmpeg = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "data",
                "-i",
                "pipe:0",
            ])
            .args(["-map", "0", "-c", "copy", "-f", "data", url])
            .stdin(pacer.stdout.take().unwrap())
            .stdout(Stdio::null())
            .spawn()
            .expect("start ffmpeg");
        Self { pacer, ffmpeg }
    }
}

impl Drop for RetimedFlv {
    fn drop(&mut self) {
        for child in [&mut self.pacer, &mut self.ffmpeg] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A publisher started by `publish` (it stops when dropped), and the server's
/// HLS, RTMP and WebRTC viewers watching it cross `crossing` seconds of
/// stream time; `rtmp_crossing` is where an RTMP player sees it, if not there.
fn watch_across(
    publish: impl Fn(&Server) -> Box<dyn Any>,
    crossing: f64,
    rtmp_crossing: Option<f64>,
) -> Server {
    let server = Server::start(&["--webrtc-ip", "127.0.0.1"]);
    let _publisher = publish(&server);
    server.wait_live(true);
    let published = Instant::now();
    // WHEP answers, and HLS lists, once the first keyframe is in.
    wait_for(Duration::from_secs(20), "the first HLS segment", || {
        let (status, text) = server.get("/hls/tree/index.m3u8");
        (status == 200 && text.contains("#EXTINF:")).then_some(())
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let viewer = runtime
        .block_on(whep_viewer::play(format!(
            "http://{}/whep/tree",
            server.http
        )))
        .expect("a WHEP viewer plays");
    // The players read from before the crossing to well past it.
    let seconds = (LEAD_S + 6.0) as u32;
    let hls_url = format!("http://{}/hls/tree/index.m3u8", server.http);
    let play_url = server.play_url();
    let (hls, rtmp) = thread::scope(|scope| {
        let hls = scope.spawn(|| packet_times(&hls_url, seconds));
        let rtmp = scope.spawn(|| packet_times(&play_url, seconds));
        (hls.join().unwrap(), rtmp.join().unwrap())
    });
    assert_plays_through("HLS", &hls, crossing);
    assert_plays_through("RTMP", &rtmp, rtmp_crossing.unwrap_or(crossing));
    // WebRTC: frames kept coming until now, past the crossing.
    let frames = viewer.frames();
    assert!(
        frames as f64 > (published.elapsed().as_secs_f64() - 3.0) * 30.0 * 0.8,
        "the WHEP viewer got {frames} frames in {:?}",
        published.elapsed()
    );
    let last = viewer.last_frame_at().expect("WHEP frames");
    assert!(
        last.elapsed() < Duration::from_millis(500),
        "WHEP frames stopped"
    );
    println!("WHEP: {frames} frames, the last {:?} ago", last.elapsed());
    runtime.block_on(viewer.close());
    server
}

#[test]
fn a_publisher_clock_wrapping_at_2_31_ms_plays_through_on_every_path() {
    let server = watch_across(ffmpeg_from(RTMP_WRAP_S - LEAD_S), RTMP_WRAP_S, None);
    let logs = server.logs().join("\n");
    assert!(
        logs.contains("the publisher's clock wrapped at 2^31 ms"),
        "the wrap is logged:\n{logs}"
    );
    assert!(!logs.contains("jumped"), "a wrap is no jump:\n{logs}");
}

#[test]
fn stream_time_past_2_32_units_of_90_khz_plays_through_on_every_path() {
    watch_across(ffmpeg_from(VIDEO_WRAP_S - LEAD_S), VIDEO_WRAP_S, None);
}

#[test]
fn a_publisher_clock_starting_just_before_2_32_ms_plays_through_on_every_path() {
    let lead_ms = (LEAD_S * 1000.0) as u64;
    let server = watch_across(
        |server| {
            Box::new(RetimedFlv::start(
                &server.publish_url(),
                (1 << 32) - lead_ms,
            ))
        },
        RTMP_WRAP_32_S,
        // RTMP's timestamps wrap here by the protocol; ffmpeg's player
        // follows the wrap and counts the time before it as negative.
        Some(0.0),
    );
    let logs = server.logs().join("\n");
    assert!(
        logs.contains("the publisher's clock wrapped at 2^32 ms"),
        "the wrap is logged:\n{logs}"
    );
    assert!(!logs.contains("jumped"), "a wrap is no jump:\n{logs}");
}
