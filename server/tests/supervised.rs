//! A stream's HLS segmenter and WebRTC feed, made to fail on purpose (the
//! `TINSEL_TEST_TASK_FAILURES` hook): each comes back on its own, the
//! counters in `/api/streams` say so, and viewers that reconnect play.

mod common;
#[path = "common/whep_viewer.rs"]
mod whep_viewer;

use std::time::{Duration, Instant};

use common::{Publisher, Server, temp_dir, wait_for};

#[test]
fn failed_stream_tasks_come_back_counted_and_viewers_play_again() {
    let server = Server::start_with_env(
        temp_dir("data"),
        &["--webrtc-ip", "127.0.0.1"],
        &[("TINSEL_TEST_TASK_FAILURES", "1")],
    );
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    // Each task's first run panics two seconds after the server started.
    let restarts = wait_for(Duration::from_secs(20), "both tasks restarted", || {
        let r = &server.tree_status()["restarts"];
        (r["hls"] == 1 && r["webrtc"] == 1).then(|| r.clone())
    });
    let logs = server.logs().join("\n");
    for task in ["HLS of tree", "WebRTC feed of tree"] {
        let line = logs
            .lines()
            .find(|l| l.contains("task panicked; restarting it") && l.contains(task))
            .unwrap_or_else(|| panic!("a warning for {task}:\n{logs}"));
        assert!(line.contains("delay=500ms"), "back within a second: {line}");
    }
    println!("restarts: {restarts}");

    // HLS: new segments after the restart.
    let started = Instant::now();
    let playlist = wait_for(
        Duration::from_secs(20),
        "a playlist with two segments",
        || {
            let (status, text) = server.get("/hls/tree/index.m3u8");
            (status == 200 && text.matches("#EXTINF:").count() >= 2).then_some(text)
        },
    );
    println!(
        "HLS playlist with two segments {:?} after the restarts",
        started.elapsed()
    );
    assert!(playlist.contains("#EXT-X-MAP:URI="));
    // WebRTC: a new viewer plays.
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
    wait_for(Duration::from_secs(20), "the WHEP viewer's frames", || {
        (viewer.frames() >= 30).then_some(())
    });
    runtime.block_on(viewer.close());
    // Nothing failed again.
    let r = &server.tree_status()["restarts"];
    assert_eq!(
        (r["hls"].as_u64(), r["webrtc"].as_u64()),
        (Some(1), Some(1))
    );
}
