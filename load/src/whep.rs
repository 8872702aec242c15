//! One WHEP viewer (RFC 9725): an SDP offer POSTed over HTTP(S), the answer
//! applied, then real ICE, DTLS and SRTP on one UDP socket, driven by one
//! task around a sans-IO `rtc` peer connection. Its interceptors send
//! receiver reports and NACKs as a browser's would, and TWCC feedback when
//! the server negotiates it. Nothing is decoded: packets go to the pure
//! counters of [`crate::rtp_count`] and frames to [`Tally`]. The session is
//! ended with DELETE on its `Location`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::statistics::StatsSelector;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::time::{Instant as TokioInstant, sleep_until, timeout_at};

use crate::flv::Track;
use crate::report::{Tally, ViewerReport, WARMUP, WebrtcStats, percentile};
use crate::rtp_count::{Frame, FrameAssembler, SenderClock, SeqCounter, Unwrapper, h264_has_idr};
use crate::viewer::Media;

/// The payload types offered; an answer uses the offer's numbers.
const H264_PT: u8 = 102;
const OPUS_PT: u8 = 111;
const VIDEO_CLOCK: u32 = 90_000;
const AUDIO_CLOCK: u32 = 48_000;
/// Constrained baseline 3.1, what browsers offer first.
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";
/// Kernel receive buffer asked for on each viewer socket: a keyframe, or a
/// group of pictures replayed on join, arrives as a burst that the default
/// (about 200 KiB) can drop before the task reads it. The server, not the
/// load generator, is what is measured.
const SOCKET_RECV_BUFFER: libc::c_int = 2 * 1024 * 1024;
/// Larger than any datagram on the path (the MTU), with room to spare.
const DATAGRAM_BUFFER: usize = 4096;
/// Datagrams read in one go before the peer connection is polled.
const READ_BATCH: usize = 64;
/// Signalling requests (offers and DELETEs) in flight at once, all viewers
/// together: under a server's per-address HTTP connection cap.
const SIGNALLING_CONCURRENCY: usize = 16;
/// Connectivity checks every 50 ms, RFC 8445's Ta and what browsers pace
/// them at (the crate's default, 200 ms, would add that much to every
/// join), for as long in all as the default: 1.4 s per candidate pair.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);
const ICE_MAX_CHECKS: u16 = 28;
/// The longest a DELETE may take at the end.
const DELETE_TIMEOUT: Duration = Duration::from_secs(3);
/// Frame lags kept for the median; a minute at 30 fps fits many times over.
const MAX_LAG_SAMPLES: usize = 20_000;

/// Where a viewer was when it stopped.
#[derive(Debug, thiserror::Error)]
pub enum WhepError {
    #[error("bad WHEP URL {url:?}: {reason}; expected http(s)://HOST[:PORT]/PATH")]
    BadUrl { url: String, reason: String },
    #[error("could not resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("could not open a UDP socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("WebRTC setup failed: {0}")]
    Setup(String),
    #[error("the offer could not be sent: {0}")]
    Post(String),
    #[error("the offer was refused: HTTP {status}{body}")]
    Refused { status: u16, body: String },
    #[error("the answer has no Location header")]
    NoLocation,
    #[error("the answer could not be applied: {0}")]
    Answer(String),
    #[error("timed out after {:.1} s while {stage}", .after.as_secs_f64())]
    Timeout {
        stage: &'static str,
        after: Duration,
    },
}

fn setup(err: impl std::fmt::Display) -> WhepError {
    WhepError::Setup(err.to_string())
}

/// What every viewer of a crowd shares: the HTTP client and a cap on the
/// signalling requests in flight.
#[derive(Clone)]
pub struct WhepClient {
    http: reqwest::Client,
    signalling: Arc<Semaphore>,
}

impl WhepClient {
    /// # Errors
    ///
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new() -> Result<WhepClient, WhepError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("tinsel-load/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| WhepError::Setup(format!("HTTP client: {err}")))?;
        Ok(WhepClient {
            http,
            signalling: Arc::new(Semaphore::new(SIGNALLING_CONCURRENCY)),
        })
    }
}

/// How a WHEP viewer behaves beyond watching.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WhepOptions {
    /// Send a PLI (a keyframe request) this often, from the first frame.
    pub pli_every: Option<Duration>,
}

/// Offers, plays until `deadline`, reports, then DELETEs the session.
pub async fn watch_until(
    client: &WhepClient,
    url: &str,
    options: WhepOptions,
    deadline: TokioInstant,
) -> ViewerReport {
    let posted_at = Instant::now();
    let mut session = match Session::open(client, url, deadline).await {
        Ok(session) => session,
        Err(err) => return ViewerReport::failed(err.to_string()),
    };
    let report = session.play(posted_at, options, deadline).await;
    session.close(client).await;
    report
}

struct Session {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local_addr: SocketAddr,
    location: reqwest::Url,
    answered_after: Duration,
    wire_bytes_sent: u64,
    /// The last connection state the peer connection announced.
    state: RTCPeerConnectionState,
}

/// Time since `start`, as the error of a step that ran out of time.
fn timed_out(stage: &'static str, start: Instant) -> WhepError {
    WhepError::Timeout {
        stage,
        after: start.elapsed(),
    }
}

impl Session {
    async fn open(
        client: &WhepClient,
        url: &str,
        deadline: TokioInstant,
    ) -> Result<Session, WhepError> {
        let start = Instant::now();
        let parsed = reqwest::Url::parse(url).map_err(|err| WhepError::BadUrl {
            url: url.to_string(),
            reason: err.to_string(),
        })?;
        let server = match timeout_at(deadline, resolve(&parsed)).await {
            Ok(server) => server?,
            Err(_) => return Err(timed_out("resolving the server", start)),
        };
        let socket = bind_towards(server)?;
        let local_addr = socket.local_addr().map_err(WhepError::Socket)?;
        let mut pc = peer_connection(local_addr)?;
        let offer = pc.create_offer(None).map_err(setup)?;
        pc.set_local_description(Instant::now(), offer)
            .map_err(setup)?;
        let offer = pc
            .local_description()
            .ok_or_else(|| setup("no local description after setting it"))?
            .sdp;

        let (answer, location) = match timeout_at(deadline, post(client, parsed, offer)).await {
            Ok(answered) => answered?,
            Err(_) => return Err(timed_out("waiting for the answer", start)),
        };
        let answered_after = start.elapsed();
        let answer =
            RTCSessionDescription::answer(answer).map_err(|e| WhepError::Answer(e.to_string()))?;
        pc.set_remote_description(Instant::now(), answer)
            .map_err(|e| WhepError::Answer(e.to_string()))?;
        Ok(Session {
            pc,
            socket,
            local_addr,
            location,
            answered_after,
            wire_bytes_sent: 0,
            state: RTCPeerConnectionState::New,
        })
    }

    /// Runs the peer connection until `deadline` or until it fails.
    async fn play(
        &mut self,
        posted_at: Instant,
        options: WhepOptions,
        deadline: TokioInstant,
    ) -> ViewerReport {
        let mut media = Counters::new(posted_at);
        let mut buf = vec![0u8; DATAGRAM_BUFFER];
        let mut connected_after = None;
        let mut next_pli: Option<Instant> = None;
        let error = loop {
            if let Err(err) = self.flush() {
                break Some(err);
            }
            if let Some(err) = self.events(&mut media, &mut connected_after, posted_at) {
                break Some(err);
            }
            let (anchor_at, anchor_wall) = (Instant::now(), unix_now());
            while let Some(TaggedRTCMessage { now, message }) = self.pc.poll_read() {
                media.message(now, message, anchor_at, anchor_wall);
            }
            let now = Instant::now();
            if now >= deadline.into_std() {
                break None;
            }
            if let (Some(every), Some(first)) = (options.pli_every, media.first_frame_at) {
                let due = *next_pli.get_or_insert(first + every);
                if now >= due {
                    if let Err(err) = self.send_pli(&media) {
                        break Some(err);
                    }
                    next_pli = Some(due + every);
                }
            }
            let mut wake = deadline.into_std();
            if let Some(at) = self.pc.poll_timeout() {
                wake = wake.min(at);
            }
            if let Some(at) = next_pli {
                wake = wake.min(at);
            }
            if wake <= now {
                if let Err(err) = self.pc.handle_timeout(now) {
                    break Some(format!("the peer connection failed: {err}"));
                }
                continue;
            }
            tokio::select! {
                _ = sleep_until(TokioInstant::from_std(wake)) => {
                    if let Err(err) = self.pc.handle_timeout(Instant::now()) {
                        break Some(format!("the peer connection failed: {err}"));
                    }
                }
                received = self.socket.recv_from(&mut buf) => {
                    let (n, from) = match received {
                        Ok(received) => received,
                        Err(err) => break Some(format!("socket error: {err}")),
                    };
                    self.read(&buf[..n], from, &mut media);
                    // Whatever else is already queued, before polling again.
                    for _ in 1..READ_BATCH {
                        let Ok((n, from)) = self.socket.try_recv_from(&mut buf) else {
                            break;
                        };
                        self.read(&buf[..n], from, &mut media);
                    }
                }
            }
        };
        let error = error.or_else(|| {
            // No times in errors: a crowd's are counted by their text.
            connected_after.is_none().then(|| {
                format!(
                    "ICE and DTLS did not connect by the deadline (last state {})",
                    self.state
                )
            })
        });
        let end = if error.is_some() {
            Instant::now()
        } else {
            deadline.into_std()
        };
        let mut report = media.tally.finish(end, error);
        // Every packet's payload, including those of frames that counted
        // toward none.
        report.bytes = media.payload_bytes;
        let (nacks_sent, plis_sent) = self.feedback_sent();
        report.webrtc = Some(WebrtcStats {
            answer: Some(self.answered_after),
            connected: connected_after,
            packets: media.packets,
            expected: media.video_seq.expected() + media.audio_seq.expected(),
            lost: media.video_seq.lost() + media.audio_seq.lost(),
            late: media.video_seq.late() + media.audio_seq.late(),
            duplicates: media.video_seq.duplicates() + media.audio_seq.duplicates(),
            stale_packets: media.frames.stale_packets(),
            nacks_sent,
            plis_sent,
            wire_bytes_received: media.wire_bytes_received,
            wire_bytes_sent: self.wire_bytes_sent,
            sender_lag_ms: media.lag_median_ms(),
        });
        report
    }

    /// One datagram into the peer connection.
    fn read(&mut self, datagram: &[u8], from: SocketAddr, media: &mut Counters) {
        media.wire_bytes_received += datagram.len() as u64;
        // A datagram the connection cannot take (a stray, a replay) is
        // dropped, as a browser would; a failed connection says so through
        // its state.
        let _ = self.pc.handle_read(TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: self.local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(datagram),
        });
    }

    /// Sends what the peer connection has queued. Only UDP is used: the
    /// answer's TCP candidates, if any, are never paired with this socket.
    fn flush(&mut self) -> Result<(), String> {
        while let Some(out) = self.pc.poll_write() {
            if out.transport.transport_protocol != TransportProtocol::UDP {
                continue;
            }
            match self
                .socket
                .try_send_to(&out.message, out.transport.peer_addr)
            {
                Ok(n) => self.wire_bytes_sent += n as u64,
                // A full send buffer drops the datagram, as UDP does.
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(format!("socket error: {err}")),
            }
        }
        Ok(())
    }

    fn events(
        &mut self,
        media: &mut Counters,
        connected_after: &mut Option<Duration>,
        posted_at: Instant,
    ) -> Option<String> {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    self.state = state;
                    match state {
                        RTCPeerConnectionState::Connected => {
                            connected_after.get_or_insert_with(|| posted_at.elapsed());
                        }
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            let when = if connected_after.is_some() {
                                "while playing"
                            } else {
                                "before it connected"
                            };
                            return Some(format!("the peer connection went {state} {when}"));
                        }
                        _ => {}
                    }
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let kind = self
                        .pc
                        .rtp_receiver(init.receiver_id)
                        .map(|receiver| receiver.track().kind());
                    let track = match kind {
                        Some(RtpCodecKind::Video) => Track::Video,
                        Some(RtpCodecKind::Audio) => Track::Audio,
                        _ => continue,
                    };
                    if track == Track::Video {
                        media.video_receiver = Some((init.receiver_id, init.ssrc));
                    }
                    media.tracks.insert(init.track_id, track);
                }
                _ => {}
            }
        }
        None
    }

    fn send_pli(&mut self, media: &Counters) -> Result<(), String> {
        let Some((receiver_id, ssrc)) = media.video_receiver else {
            return Ok(());
        };
        let Some(mut receiver) = self.pc.rtp_receiver(receiver_id) else {
            return Ok(());
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        receiver
            .write_rtcp(Instant::now(), vec![Box::new(pli)])
            .map_err(|err| format!("could not send a PLI: {err}"))
    }

    /// NACKs and PLIs sent, from the connection's statistics.
    fn feedback_sent(&mut self) -> (u32, u32) {
        let stats = self.pc.get_stats(Instant::now(), StatsSelector::None);
        stats
            .inbound_rtp_streams()
            .fold((0, 0), |(nacks, plis), stream| {
                (nacks + stream.nack_count, plis + stream.pli_count)
            })
    }

    /// DELETE, then close the peer connection and send its goodbyes.
    async fn close(mut self, client: &WhepClient) {
        let request = async {
            let _permit = client.signalling.acquire().await;
            let _ = client
                .http
                .delete(self.location.clone())
                .timeout(DELETE_TIMEOUT)
                .send()
                .await;
        };
        // Best effort: the session also ends when its peer goes quiet.
        let _ = tokio::time::timeout(DELETE_TIMEOUT, request).await;
        let _ = self.pc.close();
        let _ = self.flush();
    }
}

/// The server's address from the URL's host, for picking the socket's.
async fn resolve(url: &reqwest::Url) -> Result<SocketAddr, WhepError> {
    let bad = |reason: &str| WhepError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("not an http:// or https:// URL"));
    }
    let host = url.host_str().ok_or_else(|| bad("no host"))?;
    let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
    // `host_str` keeps an IPv6 literal's brackets.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let mut addrs =
        tokio::net::lookup_host((bare, port))
            .await
            .map_err(|err| WhepError::Resolve {
                host: host.to_string(),
                reason: err.to_string(),
            })?;
    addrs.next().ok_or_else(|| WhepError::Resolve {
        host: host.to_string(),
        reason: "no addresses".to_string(),
    })
}

/// A UDP socket on the local address the system routes to `server` from
/// (loopback for a server on loopback), on an ephemeral port, with a large
/// receive buffer.
fn bind_towards(server: SocketAddr) -> Result<UdpSocket, WhepError> {
    let unspecified: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    // Connecting a UDP socket sends nothing; it only picks the route.
    let probe = std::net::UdpSocket::bind((unspecified, 0)).map_err(WhepError::Socket)?;
    probe.connect(server).map_err(WhepError::Socket)?;
    let local_ip = probe.local_addr().map_err(WhepError::Socket)?.ip();
    let socket = std::net::UdpSocket::bind((local_ip, 0)).map_err(WhepError::Socket)?;
    // SAFETY: a plain setsockopt on a socket this function owns, with a
    // pointer to a c_int and its size. Failure leaves the default buffer.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&SOCKET_RECV_BUFFER as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    socket.set_nonblocking(true).map_err(WhepError::Socket)?;
    UdpSocket::from_std(socket).map_err(WhepError::Socket)
}

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str, pt: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.into(),
            rtcp_feedback: vec![],
        },
        payload_type: pt,
    }
}

/// A receive-only peer connection for H.264 and Opus with the default
/// interceptors (NACK, receiver reports, TWCC feedback), with `local` as
/// its one host candidate.
fn peer_connection(local: SocketAddr) -> Result<RTCPeerConnection, WhepError> {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            codec(MIME_TYPE_H264, VIDEO_CLOCK, 0, H264_FMTP, H264_PT),
            RtpCodecKind::Video,
        )
        .map_err(setup)?;
    media
        .register_codec(
            codec(MIME_TYPE_OPUS, AUDIO_CLOCK, 2, OPUS_FMTP, OPUS_PT),
            RtpCodecKind::Audio,
        )
        .map_err(setup)?;
    let registry = register_default_interceptors(Registry::new(), &mut media)
        .map_err(setup)?
        .with(Slot::from(SENDER_REPORTS_SLOT), SenderReports::default());
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_CHECKS))
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_setting_engine(settings)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(Instant::now())
        .map_err(setup)?;
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            ..Default::default()
        };
        pc.add_transceiver_from_kind(kind, Some(init))
            .map_err(setup)?;
    }
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(setup)?;
    let candidate = RTCIceCandidate::from(&candidate).to_json().map_err(setup)?;
    pc.add_local_candidate(candidate).map_err(setup)?;
    // The end of gathering: the offer carries every candidate there is.
    pc.add_local_candidate(RTCIceCandidateInit::default())
        .map_err(setup)?;
    Ok(pc)
}

/// Where [`SenderReports`] goes in the interceptor chain: after every
/// default interceptor, so that the receiver reports have read the sender
/// reports first.
const SENDER_REPORTS_SLOT: usize = 14_000;

/// Hands the application the sender reports, which the interceptors
/// otherwise consume (inbound RTCP stops at the end of the chain unless
/// marked for delivery); everything else inbound stops here, as it would.
#[derive(Default)]
struct SenderReports {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for SenderReports {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let reports: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| p.as_any().is::<SenderReport>())
                .cloned()
                .collect();
            if reports.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(reports);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for SenderReports {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// POSTs the offer; returns the answer and the session's URL.
async fn post(
    client: &WhepClient,
    url: reqwest::Url,
    offer: String,
) -> Result<(String, reqwest::Url), WhepError> {
    let _permit = client.signalling.acquire().await;
    let response = client
        .http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/sdp")
        .header(reqwest::header::ACCEPT, "application/sdp")
        .body(offer)
        .send()
        .await
        .map_err(|err| WhepError::Post(error_chain(&err)))?;
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    // Relative to the URL the answer came from, after any redirect.
    let base = response.url().clone();
    let body = response
        .text()
        .await
        .map_err(|err| WhepError::Post(error_chain(&err)))?;
    if status != reqwest::StatusCode::CREATED {
        let body = body.trim();
        let body = if body.is_empty() {
            String::new()
        } else {
            format!(": {}", body.chars().take(200).collect::<String>())
        };
        return Err(WhepError::Refused {
            status: status.as_u16(),
            body,
        });
    }
    let location = location.ok_or(WhepError::NoLocation)?;
    let location = base.join(&location).map_err(|_| WhepError::NoLocation)?;
    Ok((body, location))
}

/// An error and its causes, as reqwest's own message leaves them out.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// What one viewer's packets add up to.
struct Counters {
    tally: Tally,
    tracks: HashMap<String, Track>,
    video_receiver: Option<(RTCRtpReceiverId, u32)>,
    video_seq: SeqCounter,
    audio_seq: SeqCounter,
    frames: FrameAssembler,
    video_clock: Unwrapper,
    audio_clock: Unwrapper,
    /// The last sender report of each stream, by SSRC.
    sender_clocks: Vec<(u32, SenderClock)>,
    packets: u64,
    payload_bytes: u64,
    wire_bytes_received: u64,
    first_frame_at: Option<Instant>,
    first_keyframe_at: Option<Instant>,
    lags_ms: Vec<f64>,
}

impl Counters {
    fn new(posted_at: Instant) -> Counters {
        Counters {
            tally: Tally::new(posted_at),
            tracks: HashMap::new(),
            video_receiver: None,
            video_seq: SeqCounter::default(),
            audio_seq: SeqCounter::default(),
            frames: FrameAssembler::default(),
            video_clock: Unwrapper::new(VIDEO_CLOCK),
            audio_clock: Unwrapper::new(AUDIO_CLOCK),
            sender_clocks: Vec::new(),
            packets: 0,
            payload_bytes: 0,
            wire_bytes_received: 0,
            first_frame_at: None,
            first_keyframe_at: None,
            lags_ms: Vec::new(),
        }
    }

    /// `anchor_at` and `anchor_wall` are one moment on the monotonic and
    /// the wall clock, to place `now` on the wall clock.
    fn message(
        &mut self,
        now: Instant,
        message: RTCMessage,
        anchor_at: Instant,
        anchor_wall: Duration,
    ) {
        match message {
            RTCMessage::RtpPacket(track_id, packet) => {
                self.packets += 1;
                self.payload_bytes += packet.payload.len() as u64;
                let track =
                    self.tracks
                        .get(&track_id)
                        .copied()
                        .or(match packet.header.payload_type {
                            H264_PT => Some(Track::Video),
                            OPUS_PT => Some(Track::Audio),
                            _ => None,
                        });
                match track {
                    Some(Track::Video) => {
                        self.video_seq.record(packet.header.sequence_number);
                        let keyframe = h264_has_idr(&packet.payload);
                        let completed = self.frames.push(
                            packet.header.timestamp,
                            packet.header.marker,
                            keyframe,
                            packet.payload.len(),
                            now,
                        );
                        for frame in completed.into_iter().flatten() {
                            self.video_frame(packet.header.ssrc, frame, anchor_at, anchor_wall);
                        }
                    }
                    Some(Track::Audio) => {
                        self.audio_seq.record(packet.header.sequence_number);
                        self.tally.record(&Media {
                            track: Track::Audio,
                            timestamp: self.audio_clock.millis(packet.header.timestamp),
                            keyframe: false,
                            config: false,
                            len: packet.payload.len(),
                            received_at: now,
                        });
                    }
                    None => {}
                }
            }
            RTCMessage::RtcpPacket(_, packets) => {
                for packet in packets {
                    let Some(report) = packet.as_any().downcast_ref::<SenderReport>() else {
                        continue;
                    };
                    let clock_rate = if Some(report.ssrc) == self.video_receiver.map(|(_, s)| s) {
                        VIDEO_CLOCK
                    } else {
                        AUDIO_CLOCK
                    };
                    let Some(clock) =
                        SenderClock::from_report(report.ntp_time, report.rtp_time, clock_rate)
                    else {
                        continue;
                    };
                    match self
                        .sender_clocks
                        .iter_mut()
                        .find(|(s, _)| *s == report.ssrc)
                    {
                        Some((_, known)) => *known = clock,
                        None => self.sender_clocks.push((report.ssrc, clock)),
                    }
                }
            }
            _ => {}
        }
    }

    fn video_frame(&mut self, ssrc: u32, frame: Frame, anchor_at: Instant, anchor_wall: Duration) {
        let at = frame.completed_at;
        self.first_frame_at.get_or_insert(at);
        if frame.keyframe {
            self.first_keyframe_at.get_or_insert(at);
        }
        self.tally.record(&Media {
            track: Track::Video,
            timestamp: self.video_clock.millis(frame.timestamp),
            keyframe: frame.keyframe,
            config: false,
            len: frame.bytes,
            received_at: at,
        });
        let steady = self
            .first_keyframe_at
            .is_some_and(|first| at >= first + WARMUP);
        let clock = self
            .sender_clocks
            .iter()
            .find(|(s, _)| *s == ssrc)
            .map(|(_, clock)| *clock);
        if let (true, Some(clock)) = (steady, clock)
            && self.lags_ms.len() < MAX_LAG_SAMPLES
        {
            // `at` on the wall clock, through the anchor taken just after it.
            let arrived = anchor_wall.saturating_sub(anchor_at.saturating_duration_since(at));
            self.lags_ms
                .push(1000.0 * clock.lag_s(frame.timestamp, arrived));
        }
    }

    fn lag_median_ms(&mut self) -> Option<f64> {
        self.lags_ms.sort_unstable_by(f64::total_cmp);
        percentile(&self.lags_ms, 50.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers every request on a loopback port with `response`, and hands
    /// back each request's head.
    async fn http_server(
        response: &'static str,
    ) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut request = vec![0; 16 * 1024];
                    let n = socket.read(&mut request).await.unwrap_or(0);
                    let _ = tx.send(String::from_utf8_lossy(&request[..n]).into_owned());
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        (port, rx)
    }

    fn soon() -> TokioInstant {
        TokioInstant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn a_refused_offer_reports_the_status_and_body() {
        let (port, mut requests) = http_server(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 21\r\nConnection: close\r\n\r\nno such stream \"tree\"",
        )
        .await;
        let client = WhepClient::new().unwrap();
        let url = format!("http://127.0.0.1:{port}/whep/tree");
        let started = Instant::now();
        let report = watch_until(&client, &url, WhepOptions::default(), soon()).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        let error = report.error.unwrap();
        assert_eq!(
            error,
            "the offer was refused: HTTP 404: no such stream \"tree\""
        );
        let request = requests.recv().await.unwrap();
        assert!(
            request.starts_with("POST /whep/tree HTTP/1.1\r\n"),
            "{request}"
        );
        let lower = request.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/sdp"), "{request}");
        // A receive-only offer for H.264 and Opus with one host candidate.
        assert!(request.contains("a=recvonly"), "{request}");
        assert!(request.contains("H264/90000"), "{request}");
        assert!(request.contains("opus/48000/2"), "{request}");
        assert!(request.contains("a=rtcp-fb:102 nack"), "{request}");
        assert!(request.contains("typ host"), "{request}");
    }

    #[tokio::test]
    async fn an_answer_without_location_is_an_error() {
        let (port, _requests) = http_server(
            "HTTP/1.1 201 Created\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\nConnection: close\r\n\r\nv=0\n",
        )
        .await;
        let client = WhepClient::new().unwrap();
        let url = format!("http://127.0.0.1:{port}/whep/tree");
        let report = watch_until(&client, &url, WhepOptions::default(), soon()).await;
        assert_eq!(
            report.error.as_deref(),
            Some("the answer has no Location header")
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out_by_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let client = WhepClient::new().unwrap();
        let url = format!("http://127.0.0.1:{port}/whep/tree");
        let started = Instant::now();
        let deadline = TokioInstant::now() + Duration::from_millis(300);
        let report = watch_until(&client, &url, WhepOptions::default(), deadline).await;
        server.abort();
        assert!(started.elapsed() < Duration::from_secs(2));
        let error = report.error.unwrap();
        assert!(
            error.contains("timed out") && error.contains("answer"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn not_a_web_url() {
        let client = WhepClient::new().unwrap();
        let report = watch_until(
            &client,
            "ftp://example/whep",
            WhepOptions::default(),
            soon(),
        )
        .await;
        let error = report.error.unwrap();
        assert!(error.contains("not an http:// or https:// URL"), "{error}");
    }
}
