//! Publishers that do what OBS users do by mistake, with ffmpeg as the
//! publisher and real players: no keyframe for a minute, no video or no
//! audio at all, and a new resolution and profile after a restart. Each is
//! told in the log with what viewers see, and viewers play what can be
//! played.

mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{Publisher, Server, assert_valid_playlist, packet_times, run, wait_for};

/// A small picture keeps the encoders cheap beside everything else.
const SMALL: [&str; 2] = ["-s", "640x360"];

/// Waits for a server log line that contains `text`, and answers it.
fn log_line(server: &Server, within: Duration, text: &str) -> String {
    wait_for(within, text, || {
        server.logs().into_iter().find(|l| l.contains(text))
    })
}

/// The streams ffprobe finds in `url`: (codec_type, width) each. Its stream
/// analysis is bounded in stream time (2 s): FLV lets a track that has not
/// shown up keep ffprobe reading for 90 s, past any deadline here. Warnings
/// are kept for the message when it fails.
fn probe_streams(url: &str) -> Vec<(String, u64)> {
    let (ok, out, err) = run(
        Command::new("ffprobe")
            .args(["-v", "warning", "-rw_timeout", "10000000"])
            .args(["-analyzeduration", "2000000"])
            .args([
                "-show_entries",
                "stream=codec_type,width",
                "-of",
                "json",
                url,
            ]),
        Duration::from_secs(30),
    );
    assert!(ok, "ffprobe of {url}: {err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    json["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap_or("").to_string(),
                s["width"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn an_audio_only_stream_is_told_and_rtmp_players_get_the_sound() {
    let server = Server::start(&[]);
    let _publisher = Publisher::start_with(&server.publish_url(), &["-vn"]);
    server.wait_live(true);
    let line = log_line(&server, Duration::from_secs(20), "the stream has no video");
    println!("{line}");
    assert!(line.contains("RTMP players get the sound"), "{line}");
    let streams = probe_streams(&server.play_url());
    assert_eq!(
        streams,
        [("audio".to_string(), 0)],
        "what an RTMP player finds"
    );
    assert_eq!(server.tree_status()["video"], serde_json::Value::Null);
}

#[test]
fn a_video_only_stream_is_told_and_plays_silent_on_rtmp_and_hls() {
    let server = Server::start(&[]);
    let mut options = vec!["-an"];
    options.extend(SMALL);
    let _publisher = Publisher::start_with(&server.publish_url(), &options);
    server.wait_live(true);
    let line = log_line(&server, Duration::from_secs(20), "the stream has no audio");
    println!("{line}");
    assert_eq!(
        probe_streams(&server.play_url()),
        [("video".to_string(), 640)]
    );
    wait_for(Duration::from_secs(20), "an HLS segment", || {
        let (status, text) = server.get("/hls/tree/index.m3u8");
        (status == 200 && text.contains("#EXTINF:")).then_some(())
    });
    let (video, audio) = packet_times(&format!("http://{}/hls/tree/index.m3u8", server.http), 3);
    assert!(
        video.len() > 30 && audio.is_empty(),
        "{} video, {} audio packets",
        video.len(),
        audio.len()
    );
}

#[test]
fn a_new_resolution_and_profile_after_a_restart_is_told_and_players_follow() {
    let server = Server::start(&[]);
    // ultrafast leaves out what Main needs: a faster preset for the first.
    let first = [
        "-s",
        "640x360",
        "-preset",
        "superfast",
        "-profile:v",
        "main",
    ];
    let mut publisher = Publisher::start_with(&server.publish_url(), &first);
    server.wait_live(true);
    wait_for(
        Duration::from_secs(20),
        "the first video parameters",
        || (server.tree_status()["video"]["width"].as_u64() == Some(640)).then_some(()),
    );
    // An RTMP player attached across the restart, reading every frame's size.
    let play_url = server.play_url();
    let player = thread::spawn(move || {
        run(
            Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-rw_timeout",
                    "20000000",
                    "-read_intervals",
                    "%+14",
                ])
                .args([
                    "-select_streams",
                    "v",
                    "-show_entries",
                    "frame=width",
                    "-of",
                    "csv=p=0",
                ])
                .arg(&play_url),
            Duration::from_secs(60),
        )
    });
    thread::sleep(Duration::from_secs(4));
    publisher.kill();
    let restarted = Instant::now();
    let _publisher = Publisher::start_with(
        &server.publish_url(),
        &["-s", "320x240", "-profile:v", "baseline"],
    );
    let line = log_line(&server, Duration::from_secs(20), "the video changed from");
    println!("{line} ({:?} after the restart)", restarted.elapsed());
    assert!(
        line.contains("from 640x360 H.264 Main")
            && line.contains("to 320x240 H.264 Constrained Baseline"),
        "{line}"
    );
    // HLS: a discontinuity, then segments a player decodes at the new size.
    wait_for(
        Duration::from_secs(20),
        "a discontinuity in the playlist",
        || {
            let (status, text) = server.get("/hls/tree/index.m3u8");
            (status == 200 && text.contains("#EXT-X-DISCONTINUITY\n")).then_some(())
        },
    );
    let hls = format!("http://{}/hls/tree/index.m3u8", server.http);
    let widths = wait_for(Duration::from_secs(30), "HLS at the new size", || {
        let streams = probe_streams(&hls);
        streams
            .iter()
            .any(|(kind, width)| kind == "video" && *width == 320)
            .then_some(streams)
    });
    println!("HLS now: {widths:?}");
    let (_, out, err) = player.join().unwrap();
    let sizes: Vec<u64> = out
        .lines()
        .filter_map(|l| l.trim_end_matches(',').parse().ok())
        .collect();
    let before = sizes.iter().filter(|w| **w == 640).count();
    let after = sizes.iter().filter(|w| **w == 320).count();
    println!("the attached RTMP player decoded {before} frames at 640 wide, then {after} at 320");
    assert!(
        before > 30 && after > 30,
        "sizes the player decoded: {before} then {after}; {err}"
    );
    assert!(
        sizes.windows(2).filter(|w| w[0] != w[1]).count() == 1,
        "the size changed once"
    );
}

#[test]
fn a_minute_without_keyframes_keeps_the_playlist_valid_and_memory_bounded() {
    let server = Server::start(&[]);
    // A keyframe at the start, then none for a minute, then every 2 s.
    let keyframes = (0..)
        .map(|i| if i == 0 { 0 } else { 62 + 2 * i })
        .take(10)
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut options = vec![
        "-g",
        "100000",
        "-sc_threshold",
        "0",
        "-force_key_frames",
        &keyframes,
    ];
    options.extend(SMALL);
    let _publisher = Publisher::start_with(&server.publish_url(), &options);
    server.wait_live(true);
    let started = Instant::now();
    let playlist = || {
        let (status, text) = server.get("/hls/tree/index.m3u8");
        assert_eq!(status, 200, "{text}");
        assert_valid_playlist(&text);
        text
    };
    wait_for(Duration::from_secs(20), "the first segment", || {
        let (status, text) = server.get("/hls/tree/index.m3u8");
        (status == 200 && text.contains("#EXTINF:")).then_some(())
    });
    let mut rss = Vec::new();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(60) {
        last = playlist();
        rss.push(server.rss_kib());
        thread::sleep(Duration::from_secs(1));
    }
    // /api/streams, and the watch page and the admin panel from it, say so.
    let age = server.tree_status()["video"]["keyframe_age_s"].as_f64();
    assert!(
        age.is_some_and(|a| a > 40.0),
        "keyframe_age_s {age:?} after a minute"
    );
    let logs = server.logs().join("\n");
    assert!(
        logs.contains("HLS: no keyframe for 12 s; the segment is closed"),
        "the server says what happened:\n{logs}"
    );
    let durations: Vec<f64> = last
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.trim_end_matches(',').parse().ok())
        .collect();
    assert!(
        durations.iter().all(|d| *d <= 12.0),
        "segments of at most 12 s: {durations:?}"
    );
    // Memory: what the first 20 s made, and no more.
    let settled = rss[rss.len().min(20) - 1];
    let highest = *rss.iter().max().unwrap();
    println!(
        "RSS {} KiB after 20 s, at most {highest} KiB over the minute",
        settled
    );
    assert!(
        highest < settled + 16 * 1024,
        "RSS rose from {settled} to {highest} KiB"
    );
    // Keyframes again: new segments, and a player decodes them.
    let last_msn = |text: &str| {
        let first: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("a media sequence");
        first + text.matches("#EXTINF:").count() as u64
    };
    let before = last_msn(&last);
    wait_for(
        Duration::from_secs(30),
        "two segments after the keyframes came back",
        || (last_msn(&playlist()) >= before + 2).then_some(()),
    );
    let age = server.tree_status()["video"]["keyframe_age_s"].as_f64();
    assert!(
        age.is_some_and(|a| a < 3.0),
        "keyframe_age_s {age:?} with keyframes again"
    );
    assert!(
        server
            .logs()
            .join("\n")
            .contains("HLS: a keyframe again after"),
        "the server says HLS is back"
    );
    let (video, _) = packet_times(&format!("http://{}/hls/tree/index.m3u8", server.http), 4);
    assert!(
        video.len() > 60,
        "{} video packets after the keyframes",
        video.len()
    );
}

/// ffmpeg publishing to `url` with the codecs given, as a user who picked the
/// wrong ones would; answers its exit status and what it printed.
fn publish_with_codecs(url: &str, codecs: &[&str]) -> (bool, String) {
    let (ok, _, err) = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", "20"])
            .args(codecs)
            .args(["-f", "flv", url]),
        Duration::from_secs(30),
    );
    (ok, err)
}

#[test]
fn a_publisher_with_the_wrong_codecs_reads_the_reason_in_its_own_output() {
    let server = Server::start(&[]);
    let cases = [
        (
            ["-c:v", "libx264", "-c:a", "libmp3lame"],
            "audio format 2 is not AAC (10); set the audio encoder to AAC",
        ),
        (
            ["-c:v", "flv", "-c:a", "aac"],
            "video codec id 2 is not H.264 (7); set the encoder to H.264",
        ),
    ];
    for (codecs, reason) in cases {
        let started = Instant::now();
        let (ok, output) = publish_with_codecs(&server.publish_url(), &codecs);
        println!(
            "{codecs:?}: ffmpeg ended after {:?}: {output}",
            started.elapsed()
        );
        assert!(!ok, "ffmpeg gave up");
        assert!(
            output.contains(&format!("Server error: {reason}")),
            "{codecs:?}: {output}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "told at once");
        log_line(&server, Duration::from_secs(5), reason);
    }
    assert_eq!(server.tree_status()["live"], false);
    // The wrong application: the hint has the port this server listens on.
    let wrong = format!("rtmp://{}/vod/key", server.rtmp);
    let (ok, output) = publish_with_codecs(&wrong, &["-c:v", "libx264", "-c:a", "aac"]);
    let hint = format!("use rtmp://HOST:{}/live", server.rtmp.port());
    assert!(!ok && output.contains(&hint), "{output}");
}
