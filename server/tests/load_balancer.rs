//! The cluster behind a real HAProxy (Debian's), with the config shipped in
//! deploy/haproxy/: OBS publishes through it to the origin, players and
//! WHEP viewers go through it to two edges, a killed edge's players are
//! back on the other within 3 s, and a WHEP session's DELETE reaches the
//! edge that holds it.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Publisher, Server, probe_three_seconds, wait_for};
use tinsel_load::Viewer;

const SECRET: &str = "cluster-secret-for-the-tests-0123";
/// An offer Chromium made (recorded), as the watch page sends it.
const CHROMIUM_OFFER: &str = include_str!("data/chromium-offer.sdp");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Haproxy {
    child: Child,
    ingest: SocketAddr,
    rtmp: SocketAddr,
    http: SocketAddr,
}

impl Haproxy {
    fn start(origin: &Server, edges: [&Server; 2]) -> Haproxy {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy/haproxy.cfg");
        let lb = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let (ingest, rtmp, http) = (lb(free_port()), lb(free_port()), lb(free_port()));
        let mut command = Command::new("haproxy");
        command
            .args(["-f", config.to_str().unwrap(), "-db"])
            .env("TINSEL_LB_INGEST", ingest.to_string())
            .env("TINSEL_LB_RTMP", rtmp.to_string())
            .env("TINSEL_LB_HTTP", http.to_string())
            .env("TINSEL_ORIGIN_RTMP", origin.rtmp.to_string())
            .env("TINSEL_ORIGIN_HTTP", origin.http.to_string())
            // No cache in this test: /hls/ goes to the origin itself.
            .env("TINSEL_CACHE_HTTP", origin.http.to_string());
        for (name, edge) in ["A", "B"].iter().zip(edges) {
            command
                .env(format!("TINSEL_EDGE_{name}_RTMP"), edge.rtmp.to_string())
                .env(format!("TINSEL_EDGE_{name}_HTTP"), edge.http.to_string())
                .env(
                    format!("TINSEL_EDGE_{name}_HTTP_HOST"),
                    edge.http.ip().to_string(),
                )
                .env(
                    format!("TINSEL_EDGE_{name}_HTTP_PORT"),
                    edge.http.port().to_string(),
                );
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy runs (scripts/setup --test installs it)");
        let haproxy = Haproxy {
            child,
            ingest,
            rtmp,
            http,
        };
        wait_for(Duration::from_secs(10), "HAProxy listening", || {
            std::net::TcpStream::connect(haproxy.http).ok()
        });
        haproxy
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn edge(origin: &Server) -> Server {
    Server::start(&[
        "--cluster-secret",
        SECRET,
        "--webrtc-ip",
        "127.0.0.1",
        "--origin",
        &format!("rtmp://{}", origin.rtmp),
    ])
}

/// A player that reconnects when its connection breaks, as VLC and ffmpeg
/// players do (here at once); it records its longest time without media.
async fn reconnecting_player(url: String, until: Instant, longest_gap: Arc<Mutex<Duration>>) {
    let until = tokio::time::Instant::from_std(until);
    let mut last_media: Option<Instant> = None;
    while tokio::time::Instant::now() < until {
        let Ok(mut viewer) = Viewer::connect(&url, Duration::from_secs(2)).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        loop {
            let next = tokio::time::timeout_at(until, viewer.next_media()).await;
            match next {
                Ok(Ok(Some(media))) if !media.config => {
                    let now = Instant::now();
                    if let Some(last) = last_media {
                        let mut longest = longest_gap.lock().unwrap();
                        *longest = (*longest).max(now - last);
                    }
                    last_media = Some(now);
                }
                Ok(Ok(Some(_))) => {}
                // Gone: reconnect through the load balancer.
                Ok(Ok(None) | Err(_)) => break,
                Err(_) => return,
            }
        }
    }
}

#[test]
fn the_cluster_plays_through_haproxy_and_survives_an_edge_killed() {
    let origin = Server::start(&["--cluster-secret", SECRET]);
    let edge_a = edge(&origin);
    let mut edge_b = edge(&origin);
    let haproxy = Haproxy::start(&origin, [&edge_a, &edge_b]);

    // OBS publishes through the load balancer, to the origin.
    let _publisher = Publisher::start(&format!("rtmp://{}/live/{}", haproxy.ingest, common::KEY));
    origin.wait_live(true);
    wait_for(
        Duration::from_secs(20),
        "the stream's video on the origin",
        || origin.tree_status()["video"]["width"].as_u64(),
    );

    // A player through the load balancer plays from an edge.
    let play_url = format!("rtmp://{}/live/tree", haproxy.rtmp);
    let (probe, _) = probe_three_seconds(&play_url, &["-show_entries", "stream=codec_name"]);
    assert_eq!(probe["streams"].as_array().unwrap().len(), 2, "{probe}");

    // The watch page and the API come through it too; the admin's login
    // goes to the origin (an edge has no accounts).
    let (status, _) = get(haproxy.http, "/");
    assert_eq!(status, 200);
    let (status, body) = get(haproxy.http, "/api/accounts");
    assert_eq!(status, 200, "{body}");

    // WHEP sessions: each DELETE reaches the edge that holds the session.
    for _ in 0..6 {
        let response = ureq::post(&format!("http://{}/whep/tree", haproxy.http))
            .set("Content-Type", "application/sdp")
            .timeout(Duration::from_secs(15))
            .send_string(CHROMIUM_OFFER)
            .expect("a WHEP answer through the load balancer");
        assert_eq!(response.status(), 201);
        let location = response.header("location").unwrap().to_string();
        let deleted = ureq::delete(&format!("http://{}{location}", haproxy.http))
            .timeout(Duration::from_secs(5))
            .call();
        assert!(
            deleted.as_ref().is_ok_and(|r| r.status() == 200),
            "DELETE {location} went to the edge that holds it: {deleted:?}"
        );
    }

    // Twenty reconnecting players; edge B is killed under them. Those on B
    // are playing again through A within 3 s.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(14);
    let gaps: Vec<Arc<Mutex<Duration>>> = (0..20).map(|_| Arc::default()).collect();
    let players: Vec<_> = gaps
        .iter()
        .map(|gap| {
            runtime.spawn(reconnecting_player(
                play_url.clone(),
                until,
                Arc::clone(gap),
            ))
        })
        .collect();
    wait_for(Duration::from_secs(20), "players on both edges", || {
        let on = |edge: &Server| edge.tree_status()["viewers"]["rtmp"].as_u64().unwrap_or(0);
        (on(&edge_a) > 0 && on(&edge_b) > 0 && on(&edge_a) + on(&edge_b) == 20).then_some(())
    });
    let on_b = edge_b.tree_status()["viewers"]["rtmp"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    common::signal(edge_b.pid(), libc::SIGKILL);
    let _ = edge_b.wait_exit(Duration::from_secs(5));
    wait_for(Duration::from_secs(10), "every player on edge A", || {
        (edge_a.tree_status()["viewers"]["rtmp"].as_u64() == Some(20)).then_some(())
    });
    runtime.block_on(async {
        for player in players {
            player.await.unwrap();
        }
    });
    let mut longest: Vec<Duration> = gaps.iter().map(|g| *g.lock().unwrap()).collect();
    longest.sort();
    println!(
        "{on_b} of 20 players were on the killed edge; longest gaps without media: {longest:?}"
    );
    let worst = *longest.last().unwrap();
    assert!(
        worst < Duration::from_secs(3),
        "a player of the killed edge played again within 3 s, not {worst:?}"
    );
}

fn get(at: SocketAddr, path: &str) -> (u16, String) {
    match ureq::get(&format!("http://{at}{path}"))
        .timeout(Duration::from_secs(10))
        .call()
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(err) => panic!("GET {path}: {err}"),
    }
}
