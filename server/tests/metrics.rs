//! `/metrics` as Prometheus (Debian's) scrapes it, and `/readyz`.

mod common;
#[path = "common/prometheus.rs"]
mod prometheus;
#[path = "common/whep_viewer.rs"]
mod whep_viewer;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Publisher, Server, wait_for};
use prometheus::Prometheus;

/// An RTMP player (ffmpeg) that plays for at most `seconds`.
fn rtmp_player(url: &str, seconds: u32) -> Child {
    Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-i",
            url,
            "-t",
            &seconds.to_string(),
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg runs")
}

#[test]
fn prometheus_scrapes_viewers_traffic_and_the_process() {
    let server = Server::start(&["--webrtc-ip", "127.0.0.1"]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    let prometheus = Prometheus::start(&server.http.to_string());

    let health = wait_for(
        Duration::from_secs(30),
        "Prometheus to scrape the server",
        || {
            prometheus
                .target_health()
                .filter(|(health, _)| health != "unknown")
        },
    );
    assert_eq!(health.0, "up", "the scrape failed: {}", health.1);
    prometheus.wait_value(
        r#"tinsel_stream_publisher_up{stream="tree"}"#,
        "the publisher up",
        |v| v == 1.0,
    );
    prometheus.wait_value("tinsel_ready", "the node ready", |v| v == 1.0);
    prometheus.wait_value("tinsel_build_info", "the build info", |v| v == 1.0);

    // Two RTMP players for 20 s: the viewer gauge rises to 2, then the bytes
    // sent to RTMP viewers grow.
    let mut players = [
        rtmp_player(&server.play_url(), 20),
        rtmp_player(&server.play_url(), 20),
    ];
    prometheus.wait_value(
        r#"tinsel_stream_viewers{stream="tree",protocol="rtmp"}"#,
        "two RTMP viewers counted",
        |v| v == 2.0,
    );
    // Two viewers are sent about twice what comes in (a steady test stream;
    // RTMP adds its chunk headers, a player's start adds the cached GOP).
    let ratio = prometheus.wait_value(
        r#"sum(rate(tinsel_stream_bytes_sent_total{stream="tree",protocol="rtmp"}[5s]))
           / sum(rate(tinsel_stream_bytes_received_total{stream="tree"}[5s]))"#,
        "RTMP bytes out about twice the bytes in",
        |v| (1.6..2.6).contains(&v),
    );
    println!("RTMP bytes out / bytes in with two players: {ratio:.2}");

    // LL-HLS requests are counted by kind, and the HLS viewer shows.
    let (status, playlist) = server.get("/hls/tree/index.m3u8");
    assert_eq!(status, 200, "{playlist}");
    prometheus.wait_value(
        r#"tinsel_hls_requests_total{kind="playlist"}"#,
        "the playlist request counted",
        |v| v >= 1.0,
    );
    prometheus.wait_value(
        r#"tinsel_stream_viewers{stream="tree",protocol="hls"}"#,
        "the HLS viewer counted",
        |v| v == 1.0,
    );
    // A WHEP viewer (the Rust WebRTC peer): an answered offer, a session,
    // a WebRTC viewer, and bytes sent over WebRTC.
    wait_for(
        Duration::from_secs(20),
        "the stream's video parameters",
        || server.tree_status()["video"]["width"].as_u64(),
    );
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
    prometheus.wait_value(
        r#"tinsel_webrtc_offers_total{result="answered"}"#,
        "the answered offer counted",
        |v| v == 1.0,
    );
    prometheus.wait_value("tinsel_webrtc_sessions", "the WHEP session", |v| v == 1.0);
    prometheus.wait_value(
        r#"tinsel_stream_viewers{stream="tree",protocol="webrtc"}"#,
        "the WebRTC viewer counted",
        |v| v == 1.0,
    );
    let webrtc = prometheus.wait_value(
        r#"rate(tinsel_stream_bytes_sent_total{stream="tree",protocol="webrtc"}[5s])"#,
        "WebRTC bytes sent growing",
        |v| v > 0.0,
    );
    println!(
        "WebRTC out {:.0} kbit/s to one viewer",
        webrtc * 8.0 / 1000.0
    );
    assert!(viewer.frames() > 0, "the WHEP viewer got frames");
    runtime.block_on(viewer.close());

    // The process figures, under the standard names.
    let rss = prometheus.wait_value("process_resident_memory_bytes", "the RSS", |v| v > 0.0);
    assert!(rss < 1e9, "a node with two viewers uses {rss} bytes");
    prometheus.wait_value("process_cpu_seconds_total", "the CPU time", |v| v > 0.0);

    for player in &mut players {
        let _ = player.kill();
        let _ = player.wait();
    }
    prometheus.wait_value(
        r#"tinsel_stream_viewers{stream="tree",protocol="rtmp"}"#,
        "the RTMP viewers gone",
        |v| v == 0.0,
    );
    let (health, error) = prometheus.target_health().unwrap();
    assert_eq!(health, "up", "{error}");
}

#[test]
fn readyz_says_ready_and_metrics_is_openmetrics_text() {
    let server = Server::start(&[]);
    let (status, body) = server.get("/readyz");
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let response = ureq::get(&format!("http://{}/metrics", server.http))
        .call()
        .unwrap();
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.into_string().unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("tinsel_stream_publisher_up{stream=\"tree\"} 0\n"),
        "{text}"
    );

    // A lights command (the simulated PDU) is counted by who asked and how it went.
    let (status, body) = server.admin_post("/api/lights/outlet-1", r#"{"action":"on"}"#);
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.admin_post(
        "/api/lights/outlet-1",
        r#"{"action":"flash","seconds":999}"#,
    );
    assert_eq!(status, 400, "{body}");
    wait_for(Duration::from_secs(10), "both commands counted", || {
        let (_, text) = server.get("/metrics");
        let counted = |result: &str| {
            text.contains(&format!(
                "tinsel_lights_commands_total{{source=\"admin\",result=\"{result}\"}} 1\n"
            ))
        };
        (counted("ok") && counted("failed")).then_some(())
    });
}
