//! Hostile RTMP input over real sockets: while a live ffmpeg publisher and an
//! ffmpeg viewer keep going, strangers send what took rml_rtmp (and the
//! peers in PEERS.md) down. Afterwards the server is alive, `/healthz`
//! answers, a new viewer plays, and resident memory stayed bounded.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{KEY, Publisher, Server, probe_three_seconds, wait_for};

/// How much the attacks may add to the server's resident memory. Before it
/// publishes, a connection may hold at most `rtmp_max_command_bytes` (64 KiB)
/// of unfinished messages, plus its 64 KiB read buffer: the 100 strangers
/// holding a partial command cost about 13 MiB here (measured), and nothing
/// else below holds memory once its connection is closed.
const RSS_HEADROOM_KIB: u64 = 32 * 1024;

/// A raw TCP client past the (original, digest-free) handshake.
struct Stranger {
    socket: TcpStream,
}

impl Stranger {
    fn connect(server: SocketAddr) -> Stranger {
        let mut socket = TcpStream::connect(server).expect("connect to the RTMP port");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c0c1 = vec![3u8];
        c0c1.resize(1 + 1536, 0);
        socket.write_all(&c0c1).unwrap();
        let mut s0s1s2 = vec![0u8; 1 + 2 * 1536];
        socket
            .read_exact(&mut s0s1s2)
            .expect("the server's handshake");
        assert_eq!(s0s1s2[0], 3);
        // C2: an echo of S1.
        socket.write_all(&s0s1s2[1..1 + 1536]).unwrap();
        Stranger { socket }
    }

    /// Writes, ignoring a reset: the server may close while we still send.
    fn send(&mut self, bytes: &[u8]) {
        let _ = self.socket.write_all(bytes);
    }

    /// Whether the server closes the connection within `within` (reading
    /// and dropping whatever it sends first).
    fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.socket.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// A message in chunks of `chunk_size` on chunk stream `csid` (type 0, then
/// type 3 headers), as a client writes it.
fn message(csid: u8, type_id: u8, stream_id: u32, payload: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut out = header0(csid, 0, payload.len() as u32, type_id, stream_id);
    for (i, chunk) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.push(0xc0 | csid);
        }
        out.extend_from_slice(chunk);
    }
    out
}

fn header0(csid: u8, timestamp: u32, length: u32, type_id: u8, stream_id: u32) -> Vec<u8> {
    let mut h = vec![csid];
    h.extend_from_slice(&timestamp.min(0xff_ffff).to_be_bytes()[1..]);
    h.extend_from_slice(&length.to_be_bytes()[1..]);
    h.push(type_id);
    h.extend_from_slice(&stream_id.to_le_bytes());
    if timestamp >= 0xff_ffff {
        h.extend_from_slice(&timestamp.to_be_bytes());
    }
    h
}

/// AMF0 by hand: the test must not trust the server's own encoder.
fn amf_string(text: &str) -> Vec<u8> {
    let mut out = vec![0x02];
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

fn amf_long_string(text: &str) -> Vec<u8> {
    let mut out = vec![0x0c];
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

fn amf_number(n: f64) -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend_from_slice(&n.to_be_bytes());
    out
}

fn command(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn connect_live() -> Vec<u8> {
    let mut object = vec![0x03];
    object.extend_from_slice(&3u16.to_be_bytes());
    object.extend_from_slice(b"app");
    object.extend(amf_string("live"));
    object.extend_from_slice(&[0, 0, 9]);
    message(
        3,
        20,
        0,
        &command(&[amf_string("connect"), amf_number(1.0), object]),
        128,
    )
}

fn create_stream(transaction: f64) -> Vec<u8> {
    message(
        3,
        20,
        0,
        &command(&[
            amf_string("createStream"),
            amf_number(transaction),
            vec![0x05],
        ]),
        128,
    )
}

/// An ffmpeg process playing the stream for as long as it runs.
struct Viewer(Child);

impl Viewer {
    fn start(url: &str) -> Viewer {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args([
                "-rw_timeout",
                "10000000",
                "-i",
                url,
                "-c",
                "copy",
                "-f",
                "null",
                "-",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ffmpeg (is it installed?)");
        Viewer(child)
    }

    fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fixed-seed xorshift: the same "random" bytes on every run.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn hostile_rtmp_input_ends_only_the_strangers_connections() {
    let server = Server::start(&[]);
    let mut publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    let mut viewer = Viewer::start(&server.play_url());
    // Let the publisher, the viewer and the HLS output settle before measuring.
    wait_for(Duration::from_secs(20), "a viewer counted", || {
        (server.tree_status()["viewers"]["rtmp"] == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let rss_before = server.rss_kib();
    let mut rss_peak = rss_before;
    let started = Instant::now();

    // Each attack, and whether the server must close the connection for it.
    let mut attacks: Vec<(&str, Vec<u8>, bool)> = Vec::new();
    // About 1 MB of nested strict arrays in one command: a stack overflow
    // of the whole process with rml_amf0. Refused by its announced length.
    let mut nested = command(&[amf_string("connect"), amf_number(1.0)]);
    for _ in 0..200_000 {
        nested.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
    }
    attacks.push((
        "1 MB of nested arrays",
        message(3, 20, 0, &nested, 128),
        true,
    ));
    // The same within the command size limit: refused by depth.
    nested.truncate(60_000);
    attacks.push((
        "60 KB of nested arrays",
        message(3, 20, 0, &nested, 128),
        true,
    ));
    // 16 MiB announced, 140 bytes sent.
    let mut announced = header0(3, 0, 0x00ff_ffff, 20, 0);
    announced.extend_from_slice(&[0u8; 140]);
    attacks.push(("16 MiB announced", announced, true));
    // A chunk size of 2^31 - 1.
    attacks.push((
        "chunk size 2^31-1",
        message(2, 1, 0, &0x7fff_ffffu32.to_be_bytes(), 128),
        true,
    ));
    // Chunk stream id churn: 256 chunk streams with two-byte basic headers.
    let mut churn = Vec::new();
    for id in 0..=255u8 {
        churn.extend_from_slice(&[0x00, id]);
        churn.extend_from_slice(&header0(0, 0, 1, 8, 1)[1..]);
        churn.push(0);
    }
    attacks.push(("chunk stream churn", churn, true));
    // A type 3 chunk on a chunk stream never seen.
    attacks.push(("type 3 on a fresh chunk stream", vec![0xc9; 64], true));
    // Interleaved partial messages filling more than a command's worth.
    let mut interleaved = Vec::new();
    for csid in 4..60u8 {
        interleaved.extend(header0(csid, 0xff_ffff + 5, 60_000, 18, 0));
        interleaved.extend_from_slice(&[0u8; 128]);
    }
    for _ in 0..10 {
        for csid in 4..60u8 {
            interleaved.push(0xc0 | csid);
            interleaved.extend_from_slice(&(0xff_ffff_u32 + 5).to_be_bytes());
            interleaved.extend_from_slice(&[0u8; 128]);
        }
    }
    attacks.push(("interleaved partial messages", interleaved, true));
    // 10,000 createStream after connect.
    let mut streams = connect_live();
    for i in 0..10_000 {
        streams.extend(create_stream(f64::from(i) + 2.0));
    }
    attacks.push(("10,000 createStream", streams, true));
    // createStream and publish without connect, connect with no values, a
    // bare @setDataFrame: answered or ignored, never a panic.
    let mut sloppy = create_stream(2.0);
    sloppy.extend(message(3, 20, 1, &command(&[amf_string("publish")]), 128));
    sloppy.extend(message(3, 20, 0, &amf_string("connect"), 128));
    sloppy.extend(message(3, 18, 1, &amf_string("@setDataFrame"), 128));
    sloppy.extend(message(
        3,
        18,
        1,
        &command(&[amf_string("@setDataFrame"), amf_string("onMetaData")]),
        128,
    ));
    attacks.push(("commands missing their values", sloppy, false));
    // Publish names: 1 MB (over the command size), 2,000 bytes (over the
    // name limit), and with control characters.
    for (label, name) in [
        ("a 1 MB name", "k".repeat(1 << 20)),
        ("a 2,000-byte name", "k".repeat(2000)),
        ("a name with a newline", format!("{KEY}\nFAKE LOG LINE")),
    ] {
        let mut bytes = connect_live();
        bytes.extend(create_stream(2.0));
        bytes.extend(message(
            3,
            20,
            1,
            &command(&[
                amf_string("publish"),
                amf_number(3.0),
                vec![0x05],
                amf_long_string(&name),
            ]),
            128,
        ));
        attacks.push((label, bytes, name.len() > 60_000));
    }
    // Noise.
    for seed in 1..=50u64 {
        attacks.push(("random bytes", noise(seed, 4096), false));
    }

    let mut closed = 0;
    for (label, bytes, must_close) in &attacks {
        let mut stranger = Stranger::connect(server.rtmp);
        stranger.send(bytes);
        if *must_close {
            assert!(
                stranger.closed_within(Duration::from_secs(10)),
                "the server closes the connection that sent {label}"
            );
            closed += 1;
        }
        rss_peak = rss_peak.max(server.rss_kib());
    }
    // A bad handshake, and a handshake cut short.
    for first in [[0x06u8].as_slice(), &[3, 1, 2, 3]] {
        let mut socket = TcpStream::connect(server.rtmp).unwrap();
        socket.write_all(first).unwrap();
    }
    // Many strangers at once, each holding a partial command just under the
    // limit (about 60 KB each), then all leaving.
    let mut holders = Vec::new();
    for _ in 0..100 {
        let mut stranger = Stranger::connect(server.rtmp);
        let mut partial = header0(3, 0, 65_000, 20, 0);
        partial.extend_from_slice(&[0x05; 128]);
        for _ in 0..450 {
            partial.push(0xc3);
            partial.extend_from_slice(&[0x05; 128]);
        }
        stranger.send(&partial);
        holders.push(stranger);
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_holding = server.rss_kib();
    rss_peak = rss_peak.max(rss_holding);
    drop(holders);
    let attack_time = started.elapsed();

    // The server is alive, answers, and its own publisher and viewer kept going.
    assert!(publisher.is_running(), "the publisher kept publishing");
    assert!(viewer.is_running(), "the viewer kept playing");
    let (status, _) = server.get("/healthz");
    assert_eq!(status, 200);
    assert_eq!(server.tree_status()["live"], true);
    let (json, _) =
        probe_three_seconds(&server.play_url(), &["-show_entries", "stream=codec_type"]);
    let tracks = json["streams"].as_array().map_or(0, Vec::len);
    assert_eq!(tracks, 2, "a new viewer gets video and audio: {json}");

    let logs = server.logs().join("\n");
    assert!(!logs.contains("panicked"), "{logs}");
    for key in [
        "rtmp_max_command_bytes",
        "rtmp_max_chunk_size",
        "rtmp_max_chunk_streams",
        "rtmp_chunk_format",
        "rtmp_max_streams",
        "rtmp_amf0",
        "rtmp_max_name_bytes",
        "rtmp_handshake",
    ] {
        assert!(logs.contains(key), "a refusal line names {key}");
    }
    assert!(
        !logs.contains("FAKE LOG LINE"),
        "a stranger's text never starts a log line"
    );

    let grown = rss_peak.saturating_sub(rss_before);
    println!(
        "{} attacks ({closed} closed by the server) in {attack_time:?}; RSS before {rss_before} KiB, \
         holding 100 partial commands {rss_holding} KiB, peak {rss_peak} KiB (+{grown} KiB)",
        attacks.len()
    );
    assert!(
        grown < RSS_HEADROOM_KIB,
        "RSS grew by {grown} KiB (from {rss_before} to {rss_peak}); the bound is {RSS_HEADROOM_KIB} KiB"
    );
}
