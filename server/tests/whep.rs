//! WHEP with a Rust WebRTC peer (the webrtc crate) as the viewer: it receives
//! H.264 and Opus RTP from a stream ffmpeg publishes, and the H.264 it
//! reassembles decodes. Its UDP socket loses one video packet on purpose; the
//! peer's own NACK brings it back from the server's retransmission buffer.

mod common;

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::{Publisher, Server, run, temp_dir, wait_for};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// Which incoming video packet the viewer's network loses: one well after
/// the first keyframe, so that a NACK has to bring it back.
const LOST_VIDEO_PACKET: usize = 300;

/// Tokio, except that the viewer's UDP socket loses one video packet.
#[derive(Debug)]
struct LossyRuntime {
    /// The SSRC and sequence number of the packet lost.
    lost: Arc<Mutex<Option<(u32, u16)>>>,
}

#[derive(Debug)]
struct LossySocket {
    io: tokio::net::UdpSocket,
    video_packets: AtomicUsize,
    lost: Arc<Mutex<Option<(u32, u16)>>>,
}

impl Runtime for LossyRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }
    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        socket.set_nonblocking(true)?;
        // Room for the catch-up GOP that arrives in one burst, as a
        // browser's socket has; the default drops part of it here.
        socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20)?;
        Ok(Arc::new(LossySocket {
            io: tokio::net::UdpSocket::from_std(socket)?,
            video_packets: AtomicUsize::new(0),
            lost: Arc::clone(&self.lost),
        }))
    }
    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        TokioRuntime.wrap_tcp_listener(listener)
    }
    fn connect_tcp<'a>(
        &'a self,
        remote: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        TokioRuntime.connect_tcp(remote)
    }
    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        TokioRuntime.resolve_host(host)
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.sleep(duration)
    }
    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }
    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future);
    }
}

impl AsyncUdpSocket for LossySocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        self.io
            .poll_send_to(cx, transmit.contents, transmit.destination)
    }
    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut buf = tokio::io::ReadBuf::new(&mut bufs[0]);
            let from = match self.io.poll_recv_from(cx, &mut buf) {
                Poll::Ready(Ok(from)) => from,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            };
            let packet = buf.filled();
            // RTP (version 2, not an RTCP type), not Opus: a video packet.
            // Its header is in the clear under SRTP.
            let payload_type = packet.get(1).map_or(0, |b| b & 0x7f);
            let is_video = packet.len() > 12
                && packet[0] >> 6 == 2
                && !(72..=79).contains(&payload_type)
                && payload_type != 111;
            if is_video
                && self.video_packets.fetch_add(1, Ordering::Relaxed) + 1 == LOST_VIDEO_PACKET
            {
                let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
                let seq = u16::from_be_bytes([packet[2], packet[3]]);
                *self.lost.lock().unwrap() = Some((ssrc, seq));
                continue;
            }
            let len = packet.len();
            let mut m = RecvMeta::default();
            m.addr = from;
            m.len = len;
            m.stride = len.max(1);
            meta[0] = m;
            return Poll::Ready(Ok(1));
        }
    }
}

struct Viewer {
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
    gathered: mpsc::UnboundedSender<()>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Viewer {
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }
}

fn codec(
    mime: &str,
    clock_rate: u32,
    channels: u16,
    fmtp: &str,
    payload_type: u8,
) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.into(),
            rtcp_feedback: vec![],
        },
        payload_type,
    }
}

#[test]
fn rust_peer_gets_h264_that_decodes_and_opus() {
    let server = Server::start(&["--webrtc-ip", "127.0.0.1"]);
    let _publisher = Publisher::start(&server.publish_url());
    server.wait_live(true);
    wait_for(
        Duration::from_secs(20),
        "the stream's video parameters",
        || server.tree_status()["video"]["width"].as_u64(),
    );
    let whep_url = format!("http://{}/whep/tree", server.http);
    let shared_udp = server.wait_for_address("WebRTC UDP listening");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let lost = Arc::new(Mutex::new(None));
    let (annexb, frames, audio_packets) = runtime.block_on(async move {
        let mut media = MediaEngine::default();
        let profiles = [(102, "42e01f"), (104, "4d001f"), (106, "640032")];
        for (pt, profile) in profiles {
            let fmtp = format!(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"
            );
            media
                .register_codec(
                    codec("video/H264", 90_000, 0, &fmtp, pt),
                    RtpCodecKind::Video,
                )
                .unwrap();
        }
        media
            .register_codec(
                codec("audio/opus", 48_000, 2, "minptime=10;useinbandfec=1", 111),
                RtpCodecKind::Audio,
            )
            .unwrap();
        let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
        let settings = SettingEngineBuilder::new()
            .with_include_loopback_candidate(true)
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .build();
        let (tracks_tx, mut tracks) = mpsc::unbounded_channel();
        let (gathered_tx, mut gathered) = mpsc::unbounded_channel();
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(Arc::new(Viewer {
                tracks: tracks_tx,
                gathered: gathered_tx,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .with_runtime(Arc::new(LossyRuntime {
                lost: Arc::clone(&lost),
            }))
            .build()
            .await
            .unwrap();
        for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            };
            pc.add_transceiver_from_kind(kind, Some(init))
                .await
                .unwrap();
        }
        let offer = pc.create_offer(None).await.unwrap();
        pc.set_local_description(offer).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), gathered.recv())
            .await
            .expect("ICE gathering completes");
        let offer = pc.local_description().await.unwrap().sdp;

        let answer = tokio::task::spawn_blocking(move || {
            let response = ureq::post(&whep_url)
                .set("Content-Type", "application/sdp")
                .timeout(Duration::from_secs(20))
                .send_string(&offer)
                .expect("201 Created");
            assert_eq!(response.status(), 201);
            assert!(
                response
                    .header("location")
                    .unwrap()
                    .starts_with("/whep/tree/")
            );
            response.into_string().unwrap()
        })
        .await
        .unwrap();
        // Every session's UDP goes through the one shared port.
        let udp_ports: Vec<u16> = answer
            .lines()
            .filter(|l| l.starts_with("a=candidate:") && l.split(' ').nth(2) == Some("udp"))
            .map(|l| l.split(' ').nth(5).unwrap().parse().unwrap())
            .collect();
        assert!(!udp_ports.is_empty(), "UDP candidates in {answer}");
        assert!(
            udp_ports.iter().all(|&p| p == shared_udp.port()),
            "candidates {udp_ports:?} on the shared port {shared_udp}"
        );
        pc.set_remote_description(RTCSessionDescription::answer(answer).unwrap())
            .await
            .unwrap();

        let mut annexb = Vec::new();
        let (mut frames, mut audio_packets) = (0, 0);
        let mut readers = Vec::new();
        let (media_tx, mut media_rx) = mpsc::unbounded_channel();
        let mut video_track = None;
        for _ in 0..2 {
            let track = tokio::time::timeout(Duration::from_secs(20), tracks.recv())
                .await
                .expect("a track")
                .unwrap();
            if track.kind().await == RtpCodecKind::Video {
                video_track = Some(Arc::clone(&track));
            }
            let media_tx = media_tx.clone();
            readers.push(tokio::spawn(async move {
                while let Some(event) = track.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(packet) = event
                        && media_tx.send(packet).is_err()
                    {
                        break;
                    }
                }
            }));
        }
        let mut depacketizer = H264Packet::default();
        let mut video: Vec<(i64, Bytes, bool)> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while frames < 150 || audio_packets < 100 {
            let packet = tokio::time::timeout_at(deadline, media_rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("only {frames} frames and {audio_packets} audio packets in 30 s")
                })
                .unwrap();
            if packet.header.payload_type == 111 {
                audio_packets += 1;
                continue;
            }
            // Like a browser's jitter buffer: packets in sequence order, so
            // a retransmission answering a NACK lands where it belongs.
            let seq = packet.header.sequence_number;
            let extended = match video.last() {
                Some(&(last, _, _)) => last + i64::from(seq.wrapping_sub(last as u16) as i16),
                None => i64::from(seq),
            };
            video.push((extended, packet.payload.clone(), packet.header.marker));
            frames += usize::from(packet.header.marker);
        }
        video.sort_by_key(|(extended, _, _)| *extended);
        video.dedup_by_key(|(extended, _, _)| *extended);
        for (_, payload, _) in &video {
            if let Ok(nal) = depacketizer.depacketize(payload) {
                annexb.extend_from_slice(&nal);
            }
        }
        // A keyframe request (PLI) a moment after a keyframe: the answer must
        // come well before the publisher's next one, two seconds on.
        let is_keyframe = |payload: &Bytes| {
            let nal = payload.first().map_or(0, |b| b & 0x1f);
            nal == 5 || nal == 7 || (nal == 24 && payload.get(3).is_some_and(|b| b & 0x1f == 7))
        };
        let video_ssrc = loop {
            let packet = tokio::time::timeout_at(deadline, media_rx.recv())
                .await
                .expect("video")
                .unwrap();
            if packet.header.payload_type != 111 && is_keyframe(&packet.payload) {
                break packet.header.ssrc;
            }
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        while media_rx.try_recv().is_ok() {}
        let pli = PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: video_ssrc,
        };
        let asked = tokio::time::Instant::now();
        video_track
            .expect("a video track")
            .write_rtcp(vec![Box::new(pli)])
            .await
            .expect("PLI sent");
        let answered = loop {
            let packet = tokio::time::timeout_at(deadline, media_rx.recv())
                .await
                .expect("a keyframe")
                .unwrap();
            if packet.header.payload_type != 111 && is_keyframe(&packet.payload) {
                break asked.elapsed();
            }
        };
        println!("keyframe {answered:?} after a PLI");
        assert!(
            answered < Duration::from_millis(1000),
            "the PLI was answered after {answered:?}"
        );
        let lost = *lost.lock().unwrap();
        let (_, lost_seq) = lost.expect("the lossy socket dropped a video packet");
        assert!(
            video
                .iter()
                .any(|(extended, _, _)| *extended as u16 == lost_seq),
            "the dropped packet {lost_seq} came again after the NACK"
        );
        println!("video packet {lost_seq} lost on the way in, and resent after a NACK");
        let _ = pc.close().await;
        for reader in readers {
            reader.abort();
        }
        (annexb, frames, audio_packets)
    });

    let file = temp_dir("whep").join("received.h264");
    std::fs::write(&file, &annexb).unwrap();
    let (ok, out, err) = run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-f",
                "h264",
                "-count_frames",
                "-show_entries",
                "stream=width,height,nb_read_frames",
                "-of",
                "json",
            ])
            .arg(&file),
        Duration::from_secs(30),
    );
    assert!(
        ok && err.trim().is_empty(),
        "the received H.264 decodes: {err}"
    );
    let probe: serde_json::Value = serde_json::from_str(&out).unwrap();
    let stream = &probe["streams"][0];
    let decoded: u64 = stream["nb_read_frames"].as_str().unwrap().parse().unwrap();
    println!(
        "Rust WHEP peer: {frames} frames, {audio_packets} Opus packets; ffprobe decoded {decoded} frames of {}x{}",
        stream["width"], stream["height"]
    );
    assert_eq!(
        (stream["width"].as_u64(), stream["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert!(decoded >= 140, "{decoded} frames decoded");
    let complaints: Vec<String> = server
        .logs()
        .into_iter()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect();
    assert!(
        complaints.is_empty(),
        "a viewer that played leaves no warning in the server's log: {complaints:#?}"
    );
}
