//! Strangers on the RTMP port, over real sockets against the real binary:
//! thousands of idle and half-handshaken connections cannot keep the
//! publisher out, and a publisher sending broken media is closed with a
//! reason while the live stream plays on.
//!
//! Loopback is all of 127.0.0.0/8 on Linux, so attackers bind their sockets
//! to addresses of their own before connecting. ffmpeg and ffprobe cannot
//! choose their source address, so they go through a [`Relay`] that
//! connects to the server from the address it is given: the server sees the
//! publisher at 127.0.0.2 and the viewer at 127.0.0.3.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{KEY, Publisher, Server, probe_three_seconds, raise_open_files, wait_for};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use socket2::{Domain, Socket, Type};

/// A TCP connection to `to` from `source` (any address of 127.0.0.0/8).
fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddrV4::new(source, 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(3))?;
    Ok(socket.into())
}

/// Forwards every connection it accepts to `target`, connecting from
/// `source`.
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(target: SocketAddr, source: Ipv4Addr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = connect_from(source, target) else {
                    continue;
                };
                pipe(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                pipe(upstream, client);
            }
        });
        Relay { addr, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("rtmp://{}/{path}", self.addr)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// Whether the server has closed `stream` (reads what is left, never waits).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// The first address of attacker `n` (127.1.0.1 and up).
fn attacker(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (n / 250) as u8, (n % 250) as u8 + 1)
}

/// Opens one stranger's connection from `source`: idle, or C0 and part of
/// C1 of the handshake. `None` when the connect itself failed.
fn stranger(source: Ipv4Addr, to: SocketAddr, half_handshake: bool) -> Option<TcpStream> {
    let mut stream = connect_from(source, to).ok()?;
    if half_handshake {
        let mut c0_c1 = vec![3u8];
        c0_c1.extend((0..700u32).map(|i| (i * 7) as u8));
        let _ = stream.write_all(&c0_c1);
    }
    Some(stream)
}

#[test]
fn idle_and_half_handshaken_strangers_cannot_keep_the_publisher_out() {
    let nofile = raise_open_files();
    // Sockets this test holds open at once: the opening flood and the churn.
    let (flood_local, flood_spread, churn) = (1_000, 4_000, 3_000);
    assert!(
        nofile > (flood_local + flood_spread + churn + 500) as u64,
        "the hard open-file limit {nofile} is too low for this test"
    );
    let server = Server::start(&["--rtmp-start-timeout-s", "2"]);
    let fds_before = open_files(server.pid());
    let rss_before = server.rss_kib();

    // The opening flood: 1,000 connections from 127.0.0.1, past its cap of
    // 256, and 4,000 from 16 other addresses (250 each, under the cap), so
    // the pending pool (512) is full many times over. Half of each are idle,
    // half sent C0 and 700 of C1's 1,536 bytes.
    let started = Instant::now();
    let mut held = Vec::new();
    let mut failed = 0;
    for n in 0..flood_local + flood_spread {
        let source = if n < flood_local {
            Ipv4Addr::LOCALHOST
        } else {
            attacker(n % 16)
        };
        match stranger(source, server.rtmp, n % 2 == 1) {
            Some(stream) => held.push(stream),
            None => failed += 1,
        }
    }
    println!(
        "{} stranger connections opened in {:?} ({failed} connects failed)",
        held.len(),
        started.elapsed()
    );

    // The churn: strangers keep arriving, one every 2 ms from the same 16
    // addresses, while the publisher connects and a viewer plays.
    let stop = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicUsize::new(0));
    let churner = {
        let (stop, churned, to) = (Arc::clone(&stop), Arc::clone(&churned), server.rtmp);
        std::thread::spawn(move || {
            let mut streams = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed)
                && streams.len() < churn
                && Instant::now() < deadline
            {
                let n = streams.len();
                if let Some(stream) = stranger(attacker(n % 16), to, n % 2 == 0) {
                    streams.push(stream);
                }
                churned.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
            streams
        })
    };

    let publisher_relay = Relay::start(server.rtmp, Ipv4Addr::new(127, 0, 0, 2));
    let asked = Instant::now();
    let _publisher = Publisher::start(&publisher_relay.url(&format!("live/{KEY}")));
    server.wait_live(true);
    let to_live = asked.elapsed();
    println!(
        "the publisher went live {to_live:?} after ffmpeg started, with {} strangers churning",
        churned.load(Ordering::Relaxed)
    );
    assert!(
        to_live < Duration::from_secs(10),
        "the publisher took {to_live:?} to go live"
    );

    let viewer_relay = Relay::start(server.rtmp, Ipv4Addr::new(127, 0, 0, 3));
    let (probe, out) = probe_three_seconds(
        &viewer_relay.url("live/tree"),
        &["-show_entries", "stream=codec_type,nb_read_frames"],
    );
    let streams = probe["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 2, "video and audio: {out}");
    println!(
        "ffprobe played through the attack: {}; {} strangers so far",
        serde_json::to_string(&probe["streams"]).unwrap(),
        churned.load(Ordering::Relaxed)
    );
    stop.store(true, Ordering::Relaxed);
    held.extend(churner.join().unwrap());

    // Every stranger is closed by the start timeout (2 s), or was refused
    // at once.
    let waited = Instant::now();
    let total = held.len();
    wait_for(Duration::from_secs(10), "every stranger closed", || {
        held.retain_mut(|stream| !closed_by_server(stream));
        held.is_empty().then_some(())
    });
    println!(
        "all {total} strangers closed by the server {:?} after the attack",
        waited.elapsed()
    );

    let logs = server.logs();
    for limit in [
        "rtmp_max_connections_per_ip",
        "rtmp_max_pending",
        "rtmp_start_timeout_s",
    ] {
        let line = logs
            .iter()
            .find(|line| line.contains("refused") && line.contains(limit));
        println!("{limit}: {line:?}");
        assert!(line.is_some(), "a refusal line naming {limit}");
    }
    assert!(
        !logs
            .iter()
            .any(|line| line.contains("refused") && line.contains("127.0.0.2")),
        "the publisher was never refused: {:?}",
        logs.iter()
            .filter(|line| line.contains("127.0.0.2"))
            .collect::<Vec<_>>()
    );
    let refusals = logs.iter().filter(|line| line.contains("refused")).count();
    println!("{refusals} refusal lines logged for {total} strangers (one a second per limit)");
    assert!(
        refusals < 100,
        "refusals are rate-limited: {refusals} lines"
    );

    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(server.tree_status()["live"], true);
    let fds_after = wait_for(Duration::from_secs(10), "open files back down", || {
        let now = open_files(server.pid());
        (now <= fds_before + 10).then_some(now)
    });
    let rss_after = server.rss_kib();
    println!(
        "server open files {fds_before} before, {fds_after} after (publisher live); \
         RSS {rss_before} KiB before, {rss_after} KiB after"
    );
    assert!(
        rss_after < rss_before + 96 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
}

/// A hand-driven RTMP client (rml_rtmp's), to send what no encoder would.
struct RtmpClient {
    stream: TcpStream,
    session: ClientSession,
}

impl RtmpClient {
    fn connect(to: SocketAddr) -> Result<RtmpClient, String> {
        let mut stream = TcpStream::connect(to).map_err(|err| err.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut handshake = Handshake::new(PeerType::Client);
        stream
            .write_all(&handshake.generate_outbound_p0_and_p1().unwrap())
            .map_err(|err| err.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 8192];
        let remaining = loop {
            if Instant::now() > deadline {
                return Err("the handshake did not finish".into());
            }
            let n = match stream.read(&mut buf) {
                Ok(0) => return Err("the server closed during the handshake".into()),
                Ok(n) => n,
                Err(err) if is_timeout(&err) => continue,
                Err(err) => return Err(format!("handshake: {err}")),
            };
            match handshake
                .process_bytes(&buf[..n])
                .map_err(|err| format!("{err:?}"))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    stream
                        .write_all(&response_bytes)
                        .map_err(|err| err.to_string())?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    stream
                        .write_all(&response_bytes)
                        .map_err(|err| err.to_string())?;
                    break remaining_bytes;
                }
            }
        };
        let (session, results) = ClientSession::new(ClientSessionConfig::new()).unwrap();
        let mut client = RtmpClient { stream, session };
        client.send(results)?;
        if !remaining.is_empty() {
            let results = client
                .session
                .handle_input(&remaining)
                .map_err(|err| err.to_string())?;
            client.send(results)?;
        }
        Ok(client)
    }

    fn send(
        &mut self,
        results: Vec<ClientSessionResult>,
    ) -> Result<Vec<ClientSessionEvent>, String> {
        let mut events = Vec::new();
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => {
                    self.stream
                        .write_all(&packet.bytes)
                        .map_err(|err| err.to_string())?;
                }
                ClientSessionResult::RaisedEvent(event) => events.push(event),
                _ => {}
            }
        }
        Ok(events)
    }

    /// Reads until an event `wanted` accepts arrives.
    fn wait_event(
        &mut self,
        what: &str,
        wanted: impl Fn(&ClientSessionEvent) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut buf = vec![0u8; 65536];
        loop {
            if Instant::now() > deadline {
                return Err(format!("no {what}"));
            }
            let n = match self.stream.read(&mut buf) {
                Ok(0) => return Err(format!("the server closed while waiting for {what}")),
                Ok(n) => n,
                Err(err) if is_timeout(&err) => continue,
                Err(err) => return Err(format!("waiting for {what}: {err}")),
            };
            let results = self
                .session
                .handle_input(&buf[..n])
                .map_err(|err| err.to_string())?;
            if self.send(results)?.iter().any(&wanted) {
                return Ok(());
            }
        }
    }

    /// Connects and publishes on `key`, as OBS would.
    fn publish(to: SocketAddr, key: &str) -> Result<RtmpClient, String> {
        let mut client = RtmpClient::connect(to)?;
        let request = client
            .session
            .request_connection("live".to_string())
            .unwrap();
        client.send(vec![request])?;
        client.wait_event("connect accepted", |event| {
            matches!(event, ClientSessionEvent::ConnectionRequestAccepted)
        })?;
        let request = client
            .session
            .request_publishing(key.to_string(), PublishRequestType::Live)
            .unwrap();
        client.send(vec![request])?;
        client.wait_event("publish accepted", |event| {
            matches!(event, ClientSessionEvent::PublishRequestAccepted)
        })?;
        Ok(client)
    }

    fn send_video(&mut self, tag: &[u8]) -> Result<(), String> {
        let packet = self
            .session
            .publish_video_data(Bytes::copy_from_slice(tag), RtmpTimestamp::new(0), false)
            .map_err(|err| err.to_string())?;
        self.send(vec![packet]).map(drop)
    }

    fn send_audio(&mut self, tag: &[u8]) -> Result<(), String> {
        let packet = self
            .session
            .publish_audio_data(Bytes::copy_from_slice(tag), RtmpTimestamp::new(0), false)
            .map_err(|err| err.to_string())?;
        self.send(vec![packet]).map(drop)
    }

    /// Whether the server closes the connection within `within`.
    fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(err) if is_timeout(&err) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

fn is_timeout(err: &std::io::Error) -> bool {
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

#[test]
fn a_publisher_sending_broken_media_is_closed_and_the_live_stream_plays_on() {
    const EVIL_KEY: &str = "evil-key-0123456789";
    let server = Server::start(&["--stream", &format!("evil={EVIL_KEY}")]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);

    let play_url = server.play_url();
    let viewer = std::thread::spawn(move || {
        probe_three_seconds(
            &play_url,
            &["-show_entries", "stream=codec_type,nb_read_frames"],
        )
    });

    // (what, is video, the tag, the reason the log must give)
    let sps_only_header = [
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0x01, 0x00, 0x02, 0x68, 0xef,
    ];
    let cases: [(&str, bool, Vec<u8>, &str); 6] = [
        (
            "an empty AVC sequence header",
            true,
            vec![0x17, 0, 0, 0, 0],
            "H.264 sequence header is empty",
        ),
        (
            "a sequence header with zero SPS",
            true,
            [&[0x17, 0, 0, 0, 0][..], &sps_only_header].concat(),
            "carries no SPS",
        ),
        (
            "a NAL unit longer than its tag",
            true,
            vec![0x17, 1, 0, 0, 0, 0x00, 0x10, 0x00, 0x00, 0x65, 0x88],
            "past its end",
        ),
        (
            "a sequence header with an empty SPS",
            true,
            vec![
                0x17, 0, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x00, 0x01, 0x00, 0x02,
                0x68, 0xef,
            ],
            "empty SPS",
        ),
        (
            "an empty AAC sequence header",
            false,
            vec![0xaf, 0],
            "AAC sequence header is empty",
        ),
        (
            "an AAC-LD sequence header",
            false,
            vec![0xaf, 0, 0xb9, 0x90],
            "AAC object type 23",
        ),
    ];
    let mut closed_in = Vec::new();
    for (what, video, tag, reason) in &cases {
        // The previous attacker's stream is released as its connection ends.
        let mut attacker = wait_for(Duration::from_secs(20), "the evil stream free", || {
            RtmpClient::publish(server.rtmp, EVIL_KEY)
                .inspect_err(|err| println!("publishing on evil: {err}; again"))
                .ok()
        });
        let sent = Instant::now();
        let written = if *video {
            attacker.send_video(tag)
        } else {
            attacker.send_audio(tag)
        };
        written.unwrap_or_else(|err| panic!("sending {what}: {err}"));
        assert!(
            attacker.closed_within(Duration::from_secs(5)),
            "the server closes a publisher sending {what}"
        );
        closed_in.push(sent.elapsed());
        wait_for(
            Duration::from_secs(5),
            &format!("the log's reason for {what}"),
            || {
                server
                    .logs()
                    .into_iter()
                    .find(|line| line.contains(r#"stream "evil" refused"#) && line.contains(reason))
            },
        );
    }
    println!("attackers closed after {closed_in:?}");

    let (probe, out) = viewer.join().expect("the viewer played without an error");
    let frames = |kind: &str| {
        probe["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["codec_type"] == kind)
            .and_then(|s| s["nb_read_frames"].as_str()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        frames("video") >= 60 && frames("audio") >= 60,
        "the viewer kept playing through the attacks: {out}"
    );
    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(server.tree_status()["live"], true);
    let streams: serde_json::Value = serde_json::from_str(&server.get("/api/streams").1).unwrap();
    let evil = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "evil")
        .unwrap();
    assert_eq!(
        evil["live"], false,
        "no attacker is left publishing: {evil}"
    );
    // A new viewer plays too.
    probe_three_seconds(&server.play_url(), &["-show_entries", "stream=codec_type"]);
}
