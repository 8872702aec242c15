//! The link to the origin cut, for real: the origin runs in a network
//! namespace the test makes (a veth pair on documentation addresses
//! RFC 5737), the edge outside it, and `ip link set down` cuts the link.
//! The edge says it is not ready, answers a new WHEP viewer 503 with the
//! reason, and fails over to a second origin when it has one.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Publisher, Server, wait_for};

const SECRET: &str = "cluster-secret-for-the-tests-0123";
const CHROMIUM_OFFER: &str = include_str!("data/chromium-offer.sdp");

/// A namespace with one veth pair to it: the host's end `HOST_IP`, the
/// namespace's `NS_IP`. Removed (and the pair with it) when dropped.
struct Namespace {
    name: String,
    host_if: String,
}

const HOST_IP: &str = "198.51.100.1";
const NS_IP: &str = "198.51.100.2";

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip runs");
    assert!(status.success(), "ip {args:?}");
}

impl Namespace {
    fn create() -> Namespace {
        let id = std::process::id();
        let (name, host_if, ns_if) = (
            format!("tinsel-origin-{id}"),
            format!("tso{id}"),
            format!("tsi{id}"),
        );
        // Interface names are at most 15 bytes.
        let (host_if, ns_if) = (
            host_if[..host_if.len().min(15)].to_string(),
            ns_if[..ns_if.len().min(15)].to_string(),
        );
        ip(&["netns", "add", &name]);
        let namespace = Namespace {
            name: name.clone(),
            host_if: host_if.clone(),
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        ip(&["addr", "add", &format!("{HOST_IP}/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{NS_IP}/24"),
            "dev",
            &ns_if,
        ]);
        ip(&["-n", &name, "link", "set", &ns_if, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        namespace
    }

    fn command(&self) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(env!("CARGO_BIN_EXE_tinsel"));
        command
    }

    fn link(&self, up: bool) {
        ip(&["link", "set", &self.host_if, if up { "up" } else { "down" }]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn the_origin_link_cut_makes_the_edge_not_ready_and_it_fails_over() {
    let namespace = Namespace::create();
    let origin_a = Server::start_by(
        namespace.command(),
        &[
            "--rtmp-listen",
            &format!("{NS_IP}:0"),
            "--http-listen",
            &format!("{NS_IP}:0"),
            "--cluster-secret",
            SECRET,
        ],
    );
    let origin_b = Server::start(&["--cluster-secret", SECRET]);
    let mut args = vec!["--cluster-secret", SECRET, "--webrtc-ip", "127.0.0.1"];
    let (a_rtmp, a_http) = (
        format!("rtmp://{}", origin_a.rtmp),
        format!("http://{}", origin_a.http),
    );
    let (b_rtmp, b_http) = (
        format!("rtmp://{}", origin_b.rtmp),
        format!("http://{}", origin_b.http),
    );
    args.extend(["--origin", &a_rtmp, "--origin-http", &a_http]);
    args.extend(["--origin", &b_rtmp, "--origin-http", &b_http]);
    args.extend(["--edge-pull", "always"]);
    let edge = Server::start(&args);

    // OBS publishes to A, across the link; the edge pulls from A.
    let mut on_a = Publisher::start(&origin_a.publish_url());
    origin_a.wait_live(true);
    edge.wait_live(true);
    assert_eq!(edge.get("/readyz").0, 200);

    // The link goes down: the edge's pull stops getting media, and its probe
    // finds B still up, so it stays ready and looks for the stream.
    namespace.link(false);
    edge.wait_live(false);
    assert_eq!(
        edge.get("/readyz").0,
        200,
        "B answers, so the edge is ready"
    );

    // The publisher reconnects to B: the edge finds the stream there.
    let _on_b = Publisher::start(&origin_b.publish_url());
    edge.wait_live(true);
    assert!(
        origin_b
            .logs()
            .iter()
            .any(|l| l.contains("edge started pulling"))
    );
    drop(_on_b);
    drop(origin_b);

    // Now no origin answers: not ready, and a new WHEP viewer hears why.
    let (status, body) = wait_for(Duration::from_secs(20), "the edge not ready", || {
        let answer = edge.get("/readyz");
        (answer.0 == 503).then_some(answer)
    });
    assert!(body.contains("no origin reachable"), "{status} {body}");
    edge.wait_live(false);
    let refused = ureq::post(&format!("http://{}/whep/tree", edge.http))
        .set("Content-Type", "application/sdp")
        .timeout(Duration::from_secs(15))
        .send_string(CHROMIUM_OFFER);
    match refused {
        Err(ureq::Error::Status(503, response)) => {
            let text = response.into_string().unwrap();
            assert!(text.contains("no origin reachable"), "{text}");
        }
        other => panic!("a WHEP offer with no origin: {other:?}"),
    }

    // The link back: A answers again, the edge is ready and pulls from it.
    namespace.link(true);
    // ffmpeg may have given up on A while the link was down.
    if !on_a.is_running() {
        on_a = Publisher::start(&origin_a.publish_url());
    }
    wait_for(Duration::from_secs(20), "the edge ready again", || {
        (edge.get("/readyz").0 == 200).then_some(())
    });
    edge.wait_live(true);
    drop(on_a);
}
