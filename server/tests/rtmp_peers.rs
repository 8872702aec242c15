//! RTMP against real peers: ffmpeg publishes like OBS; ffprobe, ffmpeg and VLC play.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{KEY, Publisher, Server, probe_three_seconds, run, temp_dir, wait_for};

#[test]
fn ffprobe_reads_video_and_audio_at_the_published_size() {
    let server = Server::start(&[]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);

    let (probe, out) = probe_three_seconds(
        &server.play_url(),
        &[
            "-show_entries",
            "stream=codec_type,codec_name,profile,width,height,sample_rate,nb_read_frames",
        ],
    );
    let streams = probe["streams"].as_array().unwrap();
    assert_eq!(
        streams.len(),
        2,
        "only video and audio, no phantom data tracks: {out}"
    );
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("a video stream");
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .expect("an audio stream");
    assert_eq!(
        (
            video["codec_name"].as_str(),
            video["width"].as_u64(),
            video["height"].as_u64()
        ),
        (Some("h264"), Some(1280), Some(720))
    );
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(audio["sample_rate"], "48000");
    let frames = |s: &serde_json::Value| {
        s["nb_read_frames"]
            .as_str()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        frames(video) >= 30,
        "decoded video frames: {}",
        frames(video)
    );
    assert!(
        frames(audio) >= 30,
        "decoded audio frames: {}",
        frames(audio)
    );

    let status = server.tree_status();
    println!("/api/streams while live: {status}");
    assert_eq!(status["video"]["width"], 1280);
    assert_eq!(status["video"]["height"], 720);
    assert_eq!(
        status["video"]["profile"], video["profile"],
        "the profile ffprobe sees"
    );
    assert_eq!(status["video"]["bframes"], false);
    let fps = status["video"]["fps"].as_f64().unwrap();
    assert!((27.0..=33.0).contains(&fps), "measured fps {fps}");
    let kbps = status["video"]["kbps"].as_f64().unwrap();
    assert!(
        (1000.0..=5000.0).contains(&kbps),
        "measured video kbps {kbps}"
    );
    assert_eq!(status["audio"]["sample_rate"], 48000);
}

#[test]
fn vlc_plays_and_writes_decodable_video() {
    let server = Server::start(&[]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);

    // VLC refuses to run as root; run it as nobody, writing where nobody may.
    let out_dir = temp_dir("vlc");
    std::fs::set_permissions(
        &out_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let file = out_dir.join("vlc.ts");
    let sout = format!("#std{{access=file,mux=ts,dst={}}}", file.display());
    let mut vlc = Command::new("setpriv");
    if !is_root() {
        vlc = Command::new("cvlc");
    } else {
        vlc.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "cvlc",
        ]);
    }
    vlc.args([
        "-q",
        "--no-interact",
        "--play-and-exit",
        "--run-time",
        "5",
        &server.play_url(),
        "--sout",
        &sout,
    ])
    .env("HOME", &out_dir);
    let (_, _, vlc_err) = run(&mut vlc, Duration::from_secs(40));

    assert!(file.exists(), "VLC wrote no file; it said: {vlc_err}");
    let (ok, out, err) = run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v",
                "-show_entries",
                "stream=codec_name,width,height,nb_read_frames",
                "-of",
                "json",
            ])
            .arg(&file),
        Duration::from_secs(30),
    );
    assert!(ok, "ffprobe of VLC's file failed: {err}");
    let probe: serde_json::Value = serde_json::from_str(&out).unwrap();
    let video = &probe["streams"][0];
    assert_eq!(video["width"], 1280, "{out}");
    let frames: u64 = video["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(
        frames >= 60,
        "VLC recorded {frames} decodable video frames in 5 s"
    );
    // ffprobe decoded every frame to count them: any decode error is in `err`.
    assert!(err.trim().is_empty(), "decoding VLC's recording: {err}");
    println!("VLC recorded {frames} video frames; all decode without errors");
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn wrong_key_is_refused_and_so_is_a_second_publisher() {
    let server = Server::start(&[]);

    let wrong = "not-the-key-42";
    let mut intruder = Publisher::start(&format!("rtmp://{}/live/{wrong}", server.rtmp));
    let status = intruder
        .wait_exit(Duration::from_secs(20))
        .expect("ffmpeg gives up on a refused key");
    assert!(!status.success(), "a wrong key must not publish");
    assert_eq!(server.tree_status()["live"], false);
    let logs = server.logs().join("\n");
    let refusal = logs
        .lines()
        .find(|l| l.contains("unknown stream key"))
        .expect("a log line for the refusal");
    assert!(
        refusal.contains("peer=127.0.0.1:"),
        "names the peer: {refusal}"
    );
    assert!(!logs.contains(wrong), "the tried key is not logged in full");

    let mut first = Publisher::start(&server.publish_url());
    server.wait_live(true);
    let mut second = Publisher::start(&server.publish_url());
    let status = second
        .wait_exit(Duration::from_secs(20))
        .expect("the second publisher is refused");
    assert!(!status.success());
    assert!(first.is_running(), "the first publisher keeps going");
    let logs = server.logs().join("\n");
    assert!(logs.contains("refused second publisher"), "{logs}");
    assert!(!logs.contains(KEY), "the stream key never reaches the log");

    // Still live, and still flowing: a viewer gets a keyframe from the first publisher.
    let fps_before = server.tree_status()["video"]["fps"].as_f64().unwrap_or(0.0);
    assert!(fps_before > 25.0, "the stream flows at {fps_before} fps");
}

#[test]
fn ffmpeg_player_keeps_playing_across_a_publisher_restart() {
    let server = Server::start(&[]);
    let mut publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);

    let mut player = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-nostdin",
            "-rw_timeout",
            "30000000",
            "-i",
            &server.play_url(),
        ])
        .args([
            "-f",
            "null",
            "-",
            "-progress",
            "pipe:1",
            "-stats_period",
            "0.2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let frames = Arc::new(Mutex::new(0u64));
    let seen = Arc::clone(&frames);
    let stdout = player.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line
                .strip_prefix("frame=")
                .and_then(|n| n.trim().parse().ok())
            {
                *seen.lock().unwrap() = n;
            }
        }
    });
    let count = || *frames.lock().unwrap();
    wait_for(
        Duration::from_secs(20),
        "the player to decode 60 frames",
        || (count() >= 60).then_some(()),
    );

    publisher.kill();
    server.wait_live(false);
    let at_gap = count();
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    wait_for(
        Duration::from_secs(20),
        "frames from the new publisher",
        || (count() >= at_gap + 60).then_some(()),
    );
    assert!(
        matches!(player.try_wait(), Ok(None)),
        "the same ffmpeg player is still running"
    );
    println!(
        "player decoded {at_gap} frames before the restart and {} in all",
        count()
    );
    let _ = player.kill();
    let _ = player.wait();
}

#[test]
fn b_frames_are_reported_and_the_stream_still_plays() {
    let server = Server::start(&[]);
    // OBS's default: Max B-frames 2.
    let _publisher = Publisher::start_with(&server.publish_url(), &["-bf", "2"]);
    server.wait_live(true);
    let status = wait_for(Duration::from_secs(20), "B-frames to be reported", || {
        let status = server.tree_status();
        (status["video"]["bframes"] == true).then_some(status)
    });
    println!("/api/streams with B-frames: {status}");
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l.contains("B-frames") && l.contains("Max B-frames to 0")),
        "the log says what to do"
    );

    // Players still get a stream that decodes (its first GOP is sent as it is,
    // since packing it would break the presentation order).
    let (probe, out) = probe_three_seconds(
        &server.play_url(),
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "stream=has_b_frames,nb_read_frames",
        ],
    );
    let frames: u64 = probe["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(frames >= 30, "{out}");
}

#[test]
fn a_player_past_the_cap_is_told_why_and_the_others_play_on() {
    let server = Server::start(&["--rtmp-max-connections", "1"]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    let mut first = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-nostdin", "-i"])
        .arg(server.play_url())
        .args(["-c", "copy", "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), "the first RTMP viewer", || {
        (server.tree_status()["viewers"]["rtmp"].as_u64() == Some(1)).then_some(())
    });

    let started = std::time::Instant::now();
    let (ok, _, stderr) = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_streams"])
            .arg(server.play_url()),
        Duration::from_secs(20),
    );
    assert!(!ok, "the second viewer is refused");
    assert!(
        stderr.contains("no room for more RTMP viewers"),
        "ffprobe shows the reason: {stderr}"
    );
    println!("refused in {:?}: {}", started.elapsed(), stderr.trim());
    assert!(
        matches!(first.try_wait(), Ok(None)),
        "the first viewer keeps playing"
    );
    assert_eq!(server.tree_status()["viewers"]["rtmp"], 1);
    let logs = server.logs().join("\n");
    assert!(
        logs.contains("rtmp_max_connections"),
        "the refusal names the limit"
    );
    let _ = first.kill();
    let _ = first.wait();
}
