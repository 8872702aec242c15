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

/// CPU seconds the process `pid` has used (user and system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / per_second
}

/// The server's CPU use over `window`, as a share of one core.
fn cpu_share(server: &Server, window: Duration, mut meanwhile: impl FnMut()) -> f64 {
    let (cpu, started) = (cpu_seconds(server.pid()), Instant::now());
    while started.elapsed() < window {
        meanwhile();
        std::thread::sleep(Duration::from_millis(100));
    }
    (cpu_seconds(server.pid()) - cpu) / started.elapsed().as_secs_f64()
}

#[test]
fn a_thousand_open_watch_pages_cost_under_five_percent_of_a_core() {
    use std::io::Write;
    const PAGES: usize = 1000;
    const WINDOW: Duration = Duration::from_secs(10);
    common::raise_open_files();
    let server = Server::start(&[
        "--http-max-sse-per-ip",
        "2000",
        "--http-max-connections-per-ip",
        "2000",
    ]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    // The baseline: the live stream and nobody watching.
    let baseline = cpu_share(&server, WINDOW, || {});

    let mut pages: Vec<std::net::TcpStream> = (0..PAGES)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(server.http).unwrap();
            write!(
                s,
                "GET /api/events HTTP/1.1\r\nHost: tinsel\r\nAccept: text/event-stream\r\n\r\n"
            )
            .unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    // Every page reads what it is sent, as a browser would.
    let mut received = vec![0usize; PAGES];
    let mut buf = [0u8; 16 * 1024];
    let mut read_all = |received: &mut [usize]| {
        for (page, got) in pages.iter_mut().zip(received.iter_mut()) {
            while let Ok(n) = page.read(&mut buf) {
                if n == 0 {
                    break;
                }
                *got += buf[..n]
                    .windows(13)
                    .filter(|w| w == b"event: stream")
                    .count();
            }
        }
    };
    common::wait_for(Duration::from_secs(20), "every page's first status", || {
        read_all(&mut received);
        received.iter().all(|&n| n > 0).then_some(())
    });
    let before: usize = received.iter().sum();
    let with_pages = cpu_share(&server, WINDOW, || read_all(&mut received));
    let events: usize = received.iter().sum::<usize>() - before;
    let cost = (with_pages - baseline).max(0.0);
    println!(
        "{PAGES} open watch pages: the server used {:.1} % of a core with them, {:.1} % without \
         (the live stream alone): {:.2} % for the pages, {events} status events in {WINDOW:?}",
        with_pages * 100.0,
        baseline * 100.0,
        cost * 100.0
    );
    assert!(
        events >= PAGES * 3,
        "each page gets the figures every 2 s: {events} events"
    );
    assert!(
        cost < 0.05,
        "the pages cost {:.1} % of a core",
        cost * 100.0
    );
}
