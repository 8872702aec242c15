//! Origin and edges on loopback: an edge pulls from the first origin that
//! has the stream live, with the cluster secret, and serves RTMP and WHEP
//! from its own hub; it fails over, says when it is not ready, and drains.

mod common;
#[path = "common/whep_viewer.rs"]
mod whep_viewer;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Publisher, Server, probe_three_seconds, run, wait_for};

const SECRET: &str = "cluster-secret-for-the-tests-0123";

fn origin() -> Server {
    Server::start(&["--cluster-secret", SECRET])
}

/// An edge of `origins`, in that order, with `extra` flags.
fn edge(origins: &[&Server], secret: &str, extra: &[&str]) -> Server {
    let urls: Vec<(String, String)> = origins
        .iter()
        .map(|o| (format!("rtmp://{}", o.rtmp), format!("http://{}", o.http)))
        .collect();
    let mut args = vec!["--cluster-secret", secret, "--webrtc-ip", "127.0.0.1"];
    for (rtmp, http) in &urls {
        args.extend(["--origin", rtmp.as_str(), "--origin-http", http.as_str()]);
    }
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn metric(server: &Server, sample: &str) -> Option<f64> {
    let (_, text) = server.get("/metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
}

fn ready(server: &Server) -> (u16, String) {
    server.get("/readyz")
}

/// An RTMP player (ffmpeg) that plays for at most `seconds`.
fn player(url: &str, seconds: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-loglevel", "error", "-rw_timeout", "30000000", "-i", url])
        .args(["-t", &seconds.to_string(), "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg runs")
}

#[test]
fn an_edge_pulls_when_a_viewer_comes_and_serves_rtmp_and_whep() {
    let origin = origin();
    let _publisher = Publisher::start(&origin.publish_url());
    origin.wait_live(true);
    let edge = edge(&[&origin], SECRET, &[]);
    assert_eq!(ready(&edge).0, 200);
    // Nobody watches on the edge yet: nothing pulled.
    assert_eq!(edge.tree_status()["live"], false);
    assert!(
        !origin
            .logs()
            .iter()
            .any(|l| l.contains("edge started pulling"))
    );

    // An RTMP player on the edge starts the pull; it plays H.264 and AAC.
    let (probe, _) = probe_three_seconds(
        &edge.play_url(),
        &["-show_entries", "stream=codec_name,nb_read_frames"],
    );
    let codecs: Vec<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert_eq!(codecs, ["h264", "aac"], "{probe}");
    assert!(
        origin
            .logs()
            .iter()
            .any(|l| l.contains("edge started pulling"))
    );
    // The edge is one connection on the origin, not counted as a viewer.
    edge.wait_live(true);
    assert_eq!(
        metric(
            &origin,
            r#"tinsel_stream_viewers{stream="tree",protocol="rtmp"}"#
        ),
        Some(0.0)
    );

    // WHEP on the edge (the Rust WebRTC peer) plays from the edge's hub.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let viewer = runtime
        .block_on(whep_viewer::play(format!("http://{}/whep/tree", edge.http)))
        .expect("a WHEP viewer plays through the edge");
    wait_for(
        Duration::from_secs(20),
        "WebRTC frames through the edge",
        || (viewer.frames() >= 30).then_some(()),
    );
    runtime.block_on(viewer.close());

    // An edge does not package LL-HLS, and says where it comes from.
    let (status, body) = edge.get("/hls/tree/index.m3u8");
    assert_eq!(status, 404);
    assert!(body.contains("packaged once, on the origin"), "{body}");

    // OBS pointed at the edge is told where to go.
    let (ok, _, err) = run(
        Command::new("ffmpeg")
            .args([
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=30",
            ])
            .args(["-t", "5", "-c:v", "libx264", "-f", "flv"])
            .arg(format!("rtmp://{}/live/{}", edge.rtmp, common::KEY)),
        Duration::from_secs(20),
    );
    assert!(!ok, "a publisher on an edge is refused");
    assert!(
        edge.logs()
            .iter()
            .any(|l| l.contains("publisher on an edge")),
        "{err}"
    );
}

#[test]
fn an_edge_with_the_wrong_secret_is_refused_and_says_so() {
    let origin = origin();
    let _publisher = Publisher::start(&origin.publish_url());
    origin.wait_live(true);
    let edge = edge(
        &[&origin],
        "not-the-cluster-secret-000000",
        &["--edge-pull", "always"],
    );
    wait_for(Duration::from_secs(20), "the refusal in both logs", || {
        let at_origin = origin
            .logs()
            .iter()
            .any(|l| l.contains("cluster_secret") && l.contains("wrong cluster secret"));
        let at_edge = edge
            .logs()
            .iter()
            .any(|l| l.contains("edge pull failed") && l.contains("Play.Failed"));
        (at_origin && at_edge).then_some(())
    });
    assert_eq!(edge.tree_status()["live"], false);
}

#[test]
fn an_edge_fails_over_says_when_no_origin_answers_and_drains() {
    // Origin A has no publisher yet; B has the stream.
    let a = origin();
    let mut b = origin();
    let _on_b = Publisher::start(&b.publish_url());
    b.wait_live(true);
    let mut edge = edge(
        &[&a, &b],
        SECRET,
        &["--edge-pull", "always", "--drain-s", "4"],
    );
    edge.wait_live(true);
    assert!(b.logs().iter().any(|l| l.contains("edge started pulling")));
    let mut watching = player(&edge.play_url(), 60);
    wait_for(Duration::from_secs(20), "the player on the edge", || {
        (metric(
            &edge,
            r#"tinsel_stream_viewers{stream="tree",protocol="rtmp"}"#,
        ) == Some(1.0))
        .then_some(())
    });

    // B goes away; the publisher comes back on A (OBS reconnecting through
    // the load balancer): the edge finds the stream on A, and the player
    // that stayed attached gets media again.
    b.terminate();
    drop(_on_b);
    let _on_a = Publisher::start(&a.publish_url());
    a.wait_live(true);
    wait_for(Duration::from_secs(20), "the edge pulling from A", || {
        a.logs()
            .iter()
            .any(|l| l.contains("edge started pulling"))
            .then_some(())
    });
    let sent = || {
        metric(
            &edge,
            r#"tinsel_stream_bytes_sent_total{stream="tree",protocol="rtmp"}"#,
        )
        .unwrap()
    };
    let before = sent();
    wait_for(
        Duration::from_secs(20),
        "media to the attached player again",
        || (sent() > before + 100_000.0).then_some(()),
    );
    assert!(
        watching.try_wait().unwrap().is_none(),
        "the player stayed connected"
    );
    assert_eq!(ready(&edge).0, 200);

    // SIGTERM drains: not ready at once, the attached player still gets
    // media for the drain time, then the edge is gone.
    common::signal(edge.pid(), libc::SIGTERM);
    let started = Instant::now();
    wait_for(Duration::from_secs(2), "draining in /readyz", || {
        let (status, body) = ready(&edge);
        (status == 503 && body.contains("draining")).then_some(())
    });
    let before = sent();
    wait_for(Duration::from_secs(3), "media while draining", || {
        (sent() > before + 50_000.0).then_some(())
    });
    let status = edge.wait_exit(Duration::from_secs(15));
    let took = started.elapsed();
    assert!(status.is_some(), "the edge exits after the drain");
    assert!(
        took >= Duration::from_millis(3500),
        "the edge kept serving for the drain time (4 s), not {took:?}"
    );
    let _ = watching.kill();
    let _ = watching.wait();
}

#[test]
fn an_edge_whose_origins_are_gone_is_not_ready_and_says_why() {
    let mut origin = origin();
    let edge = edge(&[&origin], SECRET, &[]);
    assert_eq!(ready(&edge), (200, "ready\n".to_string()));
    origin.terminate();
    let (_, body) = wait_for(Duration::from_secs(15), "the edge not ready", || {
        let answer = ready(&edge);
        (answer.0 == 503).then_some(answer)
    });
    assert!(body.contains("no origin reachable"), "{body}");
    assert_eq!(
        metric(&edge, "tinsel_ready"),
        Some(0.0),
        "the metric says it too"
    );
}

#[test]
fn an_edge_shows_the_origins_lights_and_actions_live() {
    use std::io::BufRead;
    let origin = origin();
    let edge = edge(&[&origin], SECRET, &[]);
    wait_for(
        Duration::from_secs(20),
        "the origin's outlets on the edge",
        || {
            let (_, body) = edge.get("/api/lights");
            body.contains("outlet-1").then_some(())
        },
    );
    // A watch page's live events on the edge.
    let url = format!("http://{}/api/events", edge.http);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let response = ureq::get(&url)
            .timeout(Duration::from_secs(30))
            .call()
            .unwrap();
        let mut event = String::new();
        for line in std::io::BufReader::new(response.into_reader()).lines() {
            let Ok(line) = line else { return };
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ")
                && event == "action"
            {
                let _ = tx.send(data.to_string());
                return;
            }
        }
    });
    // The lights are switched on the origin, where the admin is.
    let (status, body) = origin.admin_post("/api/lights/outlet-1", r#"{"action":"on"}"#);
    assert_eq!(status, 200, "{body}");
    let action = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the action reaches a page on the edge");
    assert!(
        action.contains("outlet-1") && action.contains("admin:"),
        "{action}"
    );
    wait_for(Duration::from_secs(10), "outlet-1 on, on the edge", || {
        let (_, body) = edge.get("/api/lights");
        let lights: serde_json::Value = serde_json::from_str(&body).ok()?;
        lights
            .as_array()?
            .iter()
            .any(|o| o["name"] == "outlet-1" && o["on"] == true)
            .then_some(())
    });
}
