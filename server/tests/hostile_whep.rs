//! WHEP and the WebRTC UDP port under a stranger's input, over real sockets
//! with ffmpeg publishing: offer floods that never connect, garbage and
//! oversized SDP, and junk datagrams sprayed at the shared UDP port while a
//! real viewer (a Rust webrtc peer) plays.

mod common;
#[path = "common/whep_viewer.rs"]
mod whep_viewer;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{Publisher, Server, wait_for};

/// An offer from Chromium 156, with no candidates: the server answers it,
/// and then nobody ever connects.
const CHROMIUM_OFFER: &str = include_str!("data/chromium-offer.sdp");

/// The most a test lets the server grow while it is attacked.
const RSS_GROWTH_BOUND_KIB: u64 = 64 * 1024;

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One HTTP/1.1 request from the loopback address `from`, read to the end.
/// The body is written from a thread of its own, so a server that answers
/// before reading it all (413) is heard.
fn request(from: IpAddr, to: SocketAddr, head: &str, body: Vec<u8>) -> Reply {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(from, 0).into()).unwrap();
    socket
        .connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for chunk in body.chunks(16 * 1024) {
            if writer.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// POSTs `offer` to `/whep/tree` from `from`.
fn post_offer(from: IpAddr, server: &Server, path: &str, offer: &[u8]) -> Reply {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        server.http,
        offer.len()
    );
    request(from, server.http, &head, offer.to_vec())
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .count()
}

fn webrtc_viewers(server: &Server) -> u64 {
    server.tree_status()["viewers"]["webrtc"]
        .as_u64()
        .expect("viewers.webrtc")
}

fn start_live(extra: &[&str]) -> (Server, Publisher) {
    let mut args = vec!["--webrtc-ip", "127.0.0.1"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    wait_for(
        Duration::from_secs(20),
        "the stream's video parameters",
        || server.tree_status()["video"]["width"].as_u64(),
    );
    (server, publisher)
}

/// No request may have been a 500: a client mistake is never logged as a
/// server fault.
fn assert_no_server_faults(server: &Server) {
    let faults: Vec<String> = server
        .logs()
        .into_iter()
        .filter(|line| line.contains("request failed") || line.contains("panicked"))
        .collect();
    assert!(faults.is_empty(), "server faults logged: {faults:#?}");
}

#[test]
fn offers_that_never_connect_are_capped_per_address_and_freed() {
    const CAP: usize = 8;
    const OFFERS: usize = 300;
    let (server, _publisher) = start_live(&[
        "--whep-max-sessions-per-ip",
        "8",
        "--whep-connect-timeout-s",
        "4",
    ]);
    let fds_before = open_fds(&server);
    let rss_before = server.rss_kib();

    let started = Instant::now();
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    (0..OFFERS / 6)
                        .map(|_| {
                            post_offer(
                                loopback(1),
                                &server,
                                "/whep/tree",
                                CHROMIUM_OFFER.as_bytes(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let flood = started.elapsed();
    let accepted = replies.iter().filter(|r| r.status == 201).count();
    let full: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    println!(
        "{OFFERS} offers from one address in {flood:?}: {accepted} accepted, {} refused",
        full.len()
    );
    assert!(
        flood < Duration::from_secs(4),
        "the flood ({flood:?}) ended within the connect timeout, so no slot came free"
    );
    assert_eq!(accepted, CAP, "statuses: {:?}", statuses(&replies));
    assert_eq!(
        full.len(),
        OFFERS - CAP,
        "statuses: {:?}",
        statuses(&replies)
    );
    let refusal = full[0];
    assert!(
        refusal.body.contains("whep_max_sessions_per_ip"),
        "{}",
        refusal.body
    );
    assert!(refusal.header("retry-after").is_some(), "{}", refusal.head);
    // Sessions that never connected hold slots, but nobody watches.
    assert_eq!(
        webrtc_viewers(&server),
        0,
        "unconnected offers are not viewers"
    );
    let fds_held = open_fds(&server);

    // Another address is not held up by the first one's sessions.
    let other = post_offer(
        loopback(2),
        &server,
        "/whep/tree",
        CHROMIUM_OFFER.as_bytes(),
    );
    assert_eq!(other.status, 201, "{}", other.body);

    // Nobody connects: after the timeout every session is gone, with its
    // sockets and listener.
    let freed = Instant::now();
    wait_for(Duration::from_secs(15), "the sessions freed", || {
        let freed = server
            .logs()
            .iter()
            .filter(|l| l.contains("WebRTC viewer never connected; session freed"))
            .count();
        (freed > CAP).then_some(())
    });
    let fds_after = wait_for(Duration::from_secs(10), "the fds closed", || {
        let fds = open_fds(&server);
        (fds <= fds_before + 2).then_some(fds)
    });
    let rss_after = server.rss_kib();
    println!(
        "sessions freed {:?} after the flood; fds {fds_before} before, {fds_held} with {CAP} \
         sessions, {fds_after} after; RSS {rss_before} KiB before, {rss_after} KiB after",
        freed.elapsed()
    );
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l.contains("limit=\"whep_max_sessions_per_ip\"")
                || l.contains("limit=whep_max_sessions_per_ip")),
        "a refusal line names the limit"
    );
    assert!(rss_after < rss_before + RSS_GROWTH_BOUND_KIB);

    // The address may open sessions again.
    let again = post_offer(
        loopback(1),
        &server,
        "/whep/tree",
        CHROMIUM_OFFER.as_bytes(),
    );
    assert_eq!(again.status, 201, "{}", again.body);
    assert_no_server_faults(&server);
}

#[test]
fn the_total_session_cap_turns_away_every_address_with_a_reason() {
    let (server, _publisher) = start_live(&["--whep-max-sessions", "4"]);
    let offer = |from: u8| {
        post_offer(
            loopback(from),
            &server,
            "/whep/tree",
            CHROMIUM_OFFER.as_bytes(),
        )
    };
    // Two addresses fill the server between them.
    let taken: Vec<u16> = [1, 2, 1, 2]
        .into_iter()
        .map(|from| offer(from).status)
        .collect();
    assert_eq!(taken, [201; 4]);
    // A third address, under its own per-address cap, finds it full.
    let full = offer(3);
    assert_eq!(full.status, 503, "{}", full.body);
    assert!(full.body.contains("whep_max_sessions"), "{}", full.body);
    assert!(full.header("retry-after").is_some(), "{}", full.head);
    assert_eq!(server.get("/healthz").0, 200);
    assert_no_server_faults(&server);
}

fn statuses(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.status).collect()
}

/// The offer that took the server to 2 GB: one payload type 20,000 times on
/// the m= line and a 50 KB fmtp line.
fn repeated_payload_type_offer(repeats: usize, fmtp_bytes: usize) -> String {
    let mut sdp = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    sdp.push_str("m=video 9 UDP/TLS/RTP/SAVPF");
    sdp.push_str(&" 102".repeat(repeats));
    sdp.push_str("\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;x=");
    sdp.push_str(&"a".repeat(fmtp_bytes));
    sdp.push_str("\r\n");
    sdp
}

#[test]
fn garbage_and_oversized_offers_get_a_4xx_with_a_reason() {
    let (server, _publisher) = start_live(&[]);
    let rss_before = server.rss_kib();
    let from = loopback(1);
    let offer = |body: &[u8]| post_offer(from, &server, "/whep/tree", body);

    let big = repeated_payload_type_offer(20_000, 50_000);
    let mut cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not SDP", b"hello".to_vec(), 400, "v=0"),
        ("JSON", br#"{"sdp":"v=0"}"#.to_vec(), 400, "v=0"),
        (
            "not UTF-8",
            vec![b'v', b'=', b'0', 0xff, 0xfe],
            400,
            "UTF-8",
        ),
        ("empty", Vec::new(), 400, "v=0"),
        // Over every route's body limit: refused before the WHEP route runs.
        (
            "the 133 KB repeated payload type",
            big.clone().into_bytes(),
            413,
            "http_max_body_bytes",
        ),
        // Within the server's body limit, over the offer limit.
        (
            "a 40 KB offer",
            repeated_payload_type_offer(100, 40_000).into_bytes(),
            413,
            "whep_max_offer_bytes",
        ),
        (
            "one payload type 100 times on the m= line",
            repeated_payload_type_offer(100, 10).into_bytes(),
            400,
            "whep_max_payload_types",
        ),
        (
            "a 20 KB fmtp line",
            repeated_payload_type_offer(1, 20_000).into_bytes(),
            400,
            "whep_max_offer_line_bytes",
        ),
        (
            "thousands of lines",
            format!("v=0\r\n{}", "a=x\r\n".repeat(5_000)).into_bytes(),
            400,
            "whep_max_offer_lines",
        ),
        (
            "audio only",
            b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n".to_vec(),
            400,
            "H.264",
        ),
        (
            "a mangled fingerprint",
            CHROMIUM_OFFER
                .replace("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 zz")
                .replace("a=ice-ufrag:", "a=ice-ufrag")
                .into_bytes(),
            400,
            "negotiated",
        ),
    ];
    // Truncated at every tenth of its length: each is a 4xx or an answer,
    // never a 500.
    for tenth in 1..10 {
        let cut = CHROMIUM_OFFER.len() * tenth / 10;
        cases.push((
            "a truncated offer",
            CHROMIUM_OFFER.as_bytes()[..cut].to_vec(),
            0,
            "",
        ));
    }
    let started = Instant::now();
    for (what, body, status, reason) in &cases {
        let reply = offer(body);
        println!("{what}: {} {}", reply.status, reply.body);
        if *status == 0 {
            assert!(
                reply.status == 201 || (400..500).contains(&reply.status),
                "{what}: {} {}",
                reply.status,
                reply.body
            );
        } else {
            assert_eq!(reply.status, *status, "{what}: {}", reply.body);
            assert!(reply.body.contains(reason), "{what}: {}", reply.body);
        }
    }
    // A 2 MB body, declared: refused before it is read.
    let head = "POST /whep/tree HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\n\
         Content-Length: 2000000\r\nConnection: close\r\n\r\n";
    let declared = request(from, server.http, head, Vec::new());
    assert_eq!(declared.status, 413, "{}", declared.body);
    // And chunked, with no length: refused once the limit is read.
    let head = "POST /whep/tree HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let mut chunked = Vec::new();
    for _ in 0..64 {
        chunked.extend_from_slice(format!("{:x}\r\n", 8192).as_bytes());
        chunked.extend_from_slice(&[b'a'; 8192]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let streamed = request(from, server.http, head, chunked);
    assert_eq!(streamed.status, 413, "{}", streamed.body);
    assert!(
        streamed.body.contains("whep_max_offer_bytes"),
        "{}",
        streamed.body
    );

    // The monster offers, again and again.
    for _ in 0..50 {
        assert_eq!(offer(big.as_bytes()).status, 413);
    }
    let took = started.elapsed();
    let rss_after = server.rss_kib();
    println!(
        "{} hostile offers in {took:?}; RSS {rss_before} KiB before, {rss_after} KiB after \
         (bound: +{RSS_GROWTH_BOUND_KIB} KiB)",
        cases.len() + 52
    );
    assert!(
        rss_after < rss_before + RSS_GROWTH_BOUND_KIB,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert_eq!(server.get("/healthz").0, 200);
    assert_no_server_faults(&server);
}

/// A STUN Binding request naming `ufrag` as ours, with a MESSAGE-INTEGRITY
/// that is only zeros: it gets a route, and the ICE agent must reject it.
fn forged_binding_request(ufrag: &str, id: u8) -> Vec<u8> {
    let username = format!("{ufrag}:intruder");
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&0x0006u16.to_be_bytes());
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    attrs.resize(attrs.len().next_multiple_of(4), 0);
    attrs.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
    attrs.extend_from_slice(&[0; 20]);
    let mut packet = vec![0x00, 0x01];
    packet.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    packet.extend_from_slice(&[id; 12]);
    packet.extend_from_slice(&attrs);
    packet
}

/// Junk of every kind the demultiplexer sorts by (RFC 7983): random bytes,
/// STUN with lying lengths, DTLS records, RTP and RTCP headers with nothing
/// sane behind them.
fn junk(seed: u64, count: usize, ufrag: &str) -> Vec<Vec<u8>> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|i| {
            let len = (next() % 1400) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            match i % 6 {
                0 => {}
                1 => {
                    let mut stun = forged_binding_request(ufrag, i as u8);
                    let cut = (next() as usize) % stun.len();
                    stun.truncate(cut.max(20));
                    stun[2..4].copy_from_slice(&(next() as u16).to_be_bytes());
                    bytes = stun;
                }
                2 if len >= 13 => bytes[..3].copy_from_slice(&[0x16, 0xfe, 0xfd]),
                3 if len >= 12 => bytes[..2].copy_from_slice(&[0x80, 0xc8]),
                4 if len >= 12 => bytes[0] = 0x80,
                _ => bytes.truncate((next() % 20) as usize),
            }
            bytes
        })
        .collect()
}

#[test]
fn junk_on_the_udp_port_leaves_a_playing_viewer_playing() {
    const SPRAYERS: usize = 40;
    const DATAGRAMS: usize = 30_000;
    let (server, _publisher) = start_live(&[]);
    let shared_udp = server.wait_for_address("WebRTC UDP listening");
    let whep_url = format!("http://{}/whep/tree", server.http);
    let rss_before = server.rss_kib();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let viewer = runtime
        .block_on(whep_viewer::play(whep_url))
        .expect("a WHEP viewer plays");
    let ufrag = viewer.ufrag.clone();
    wait_for(Duration::from_secs(20), "the viewer's first frames", || {
        (viewer.frames() >= 30).then_some(())
    });

    // Sprayers on many ports: each first sends a forged Binding request with
    // the session's ufrag (so some get routes, up to the cap), then junk.
    let sockets: Vec<UdpSocket> = (0..SPRAYERS)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for (i, socket) in sockets.iter().enumerate() {
        let _ = socket.send_to(&forged_binding_request(&ufrag, i as u8), shared_udp);
    }
    let before_spray = viewer.frames();
    let started = Instant::now();
    let datagrams = junk(0x5eed, DATAGRAMS, &ufrag);
    for (i, datagram) in datagrams.iter().enumerate() {
        let _ = sockets[i % SPRAYERS].send_to(datagram, shared_udp);
        if i % 1000 == 999 {
            // About 6,000 datagrams a second, over five seconds.
            let due = Duration::from_millis(((i + 1) / 6) as u64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let sprayed = started.elapsed();
    let during = viewer.frames() - before_spray;
    // 30 fps: the viewer keeps receiving through the spray and after it.
    let after_spray = viewer.frames();
    wait_for(Duration::from_secs(10), "frames after the spray", || {
        (viewer.frames() >= after_spray + 60).then_some(())
    });
    let rss_after = server.rss_kib();
    println!(
        "{DATAGRAMS} junk datagrams from {SPRAYERS} ports in {sprayed:?}; the viewer got \
         {during} frames meanwhile; RSS {rss_before} KiB before, {rss_after} KiB after"
    );
    assert!(
        during as f64 >= sprayed.as_secs_f64() * 20.0,
        "only {during} frames in {sprayed:?} of spraying"
    );
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l.contains("whep_max_remotes_per_session")),
        "the forged routes hit the per-session cap"
    );
    assert!(rss_after < rss_before + RSS_GROWTH_BOUND_KIB);
    assert_eq!(webrtc_viewers(&server), 1);
    runtime.block_on(viewer.close());
    assert_eq!(server.get("/healthz").0, 200);
    assert_no_server_faults(&server);
}
