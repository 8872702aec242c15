//! `/api/events` (server-sent events) and `/api/site` against the real binary:
//! the status and the lights come at once, a change is pushed, and an open
//! event stream does not hold up shutdown.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use common::{Publisher, Server};

/// An open event stream: `(event, data)` pairs as they come.
struct Events {
    lines: std::io::Lines<BufReader<Box<dyn Read + Send + Sync>>>,
}

impl Events {
    fn open(server: &Server, query: &str) -> Events {
        let agent = ureq::AgentBuilder::new()
            .timeout_read(Duration::from_secs(20))
            .build();
        let response = agent
            .get(&format!("http://{}/api/events{query}", server.http))
            .call()
            .expect("the event stream opens");
        assert_eq!(
            response.header("content-type"),
            Some("text/event-stream"),
            "the event stream's type"
        );
        Events {
            lines: BufReader::new(response.into_reader()).lines(),
        }
    }

    /// The next event; keep-alive comments are skipped.
    fn next(&mut self) -> (String, serde_json::Value) {
        let mut event = None;
        for line in self.lines.by_ref() {
            let line = line.expect("the event stream stays open");
            if let Some(name) = line.strip_prefix("event: ") {
                event = Some(name.to_string());
            } else if let Some(data) = line.strip_prefix("data: ") {
                let data = serde_json::from_str(data).expect("JSON data");
                return (event.take().expect("event: before data:"), data);
            }
        }
        panic!("the event stream ended");
    }

    /// Reads events until one passes `check`, within `limit` events.
    fn until(
        &mut self,
        limit: usize,
        what: &str,
        check: impl Fn(&str, &serde_json::Value) -> bool,
    ) -> serde_json::Value {
        for _ in 0..limit {
            let (event, data) = self.next();
            if check(&event, &data) {
                return data;
            }
        }
        panic!("no {what} in {limit} events");
    }
}

#[test]
fn status_and_lights_at_once_changes_pushed_and_shutdown_not_held_up() {
    let mut server = Server::start(&[]);
    let mut events = Events::open(&server, "?stream=tree");
    let first: Vec<_> = (0..2).map(|_| events.next()).collect();
    let stream = &first
        .iter()
        .find(|(e, _)| e == "stream")
        .expect("a stream event at once")
        .1;
    assert_eq!(stream["name"], "tree");
    assert_eq!(stream["live"], false);
    let lights = &first
        .iter()
        .find(|(e, _)| e == "lights")
        .expect("a lights event at once")
        .1;
    let (_, listed) = server.get("/api/lights");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(lights, &listed, "the same outlets as /api/lights");

    let _publisher = Publisher::start(&server.publish_url());
    let started = Instant::now();
    let live = events.until(100, "live status", |e, d| {
        e == "stream" && d["live"] == true && d["video"].is_object()
    });
    println!(
        "live status pushed {:?} after the publisher started",
        started.elapsed()
    );
    assert_eq!(live["video"]["width"], 1280);

    // The page's stream is still open: shutdown must not wait for it.
    let asked = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "shutdown took {:?}",
        asked.elapsed()
    );
}

#[test]
fn the_default_stream_unknown_streams_and_the_site() {
    let server = Server::start(&[]);
    let mut events = Events::open(&server, "");
    let stream = events.until(3, "stream event", |e, _| e == "stream");
    assert_eq!(
        stream["name"], "tree",
        "no ?stream= follows the first stream"
    );

    let (status, body) = server.get("/api/events?stream=nope");
    assert_eq!(status, 404);
    assert!(body.contains("nope"), "{body}");

    let (status, body) = server.get("/api/site");
    assert_eq!(status, 200);
    let site: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        site["rtmp_port"],
        server.rtmp.port(),
        "the port really bound"
    );
    assert_eq!(site["rtmp_app"], "live");
    assert_eq!(site["default_stream"], "tree");
    assert_eq!(site["youtube_fallback"], serde_json::Value::Null);
    assert!(!body.contains(common::KEY), "no stream key in {body}");
}
