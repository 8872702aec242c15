//! WHEP sessions: an SDP offer in, an answer out, then one task per viewer that
//! sends the stream's feed as RTP (webrtc crate).
//!
//! The HTTP handler only answers the offer; the session lives on in its task
//! until the viewer leaves (DELETE, ICE failure, or the connection closing).
//!
//! An offer is a stranger's: it is checked for size and shape first
//! ([`sdp::check_offer`]), then given a slot under the session caps
//! ([`Admission`]), and only then is a peer connection built. From then on
//! the peer connection is closed on every way out (an error, the request
//! abandoned, a viewer that never connects within `whep_connect_timeout_s`):
//! dropping it would leave its driver task, socket and routes running.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot as InterceptorSlot;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    Registry, SettingEngineBuilder, register_default_interceptors,
};

use super::admission::{Admission, AdmissionError, Slot};
use super::feed::{Feed, Unit};
use super::keyframe::{self, KeyframeRequests};
use super::limits::WhepLimits;
use super::replay::{Answer, ReplayBudget};
use super::sdp::{self, OfferLimits, SdpError};
use super::udp_mux::UdpMux;

/// How long the server gathers its ICE candidates before answering.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
const OPUS_DEFAULT_PT: u8 = 111;

#[derive(Debug, Error)]
pub enum WhepError {
    #[error("no stream named {0:?}")]
    UnknownStream(String),
    #[error("stream {0:?} is not live")]
    NotLive(String),
    /// The offer is over a limit, malformed, or offers nothing the stream can
    /// be sent as.
    #[error("the offer is not usable: {0}")]
    Offer(#[from] SdpError),
    #[error(transparent)]
    Full(#[from] AdmissionError),
    /// The WebRTC stack refused the offer: a client mistake.
    #[error("the offer could not be negotiated: {0}; send the browser's offer as it made it")]
    Negotiation(#[source] webrtc::error::Error),
    /// The WebRTC stack failed on the server's side (sockets, setup).
    #[error("WebRTC setup failed: {0}")]
    Setup(#[source] webrtc::error::Error),
    #[error("ICE gathering did not finish within {0:?}; try again")]
    Gathering(Duration),
    #[error("the WebRTC negotiation task failed: {0}")]
    Task(String),
}

/// Where WebRTC media goes out from.
#[derive(Debug, Clone)]
pub struct WhepSettings {
    /// The address UDP sockets bind to, and so the host candidate offered.
    pub udp_ip: IpAddr,
    /// The one UDP port all sessions share (see [`super::udp_mux`]).
    pub udp_port: u16,
    /// The public address of a host behind 1:1 NAT, announced instead.
    pub public_ip: Option<IpAddr>,
    /// STUN and TURN servers announced to viewers (in the WHEP answer's Link
    /// headers).
    pub ice_servers: Vec<String>,
}

struct Session {
    stream: String,
    token: CancellationToken,
    /// Set once ICE and DTLS completed: only then is it a viewer.
    connected: Arc<AtomicBool>,
}

/// Every stream's feed and every viewer's session. Cheap to clone.
#[derive(Clone)]
pub struct Whep {
    feeds: Arc<HashMap<String, Arc<Feed>>>,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    settings: Arc<WhepSettings>,
    limits: WhepLimits,
    admission: Admission,
    mux: Arc<UdpMux>,
    tracker: TaskTracker,
    token: CancellationToken,
}

impl Whep {
    pub fn new(
        feeds: HashMap<String, Arc<Feed>>,
        settings: WhepSettings,
        limits: WhepLimits,
        mux: Arc<UdpMux>,
        tracker: TaskTracker,
        token: CancellationToken,
    ) -> Self {
        Self {
            feeds: Arc::new(feeds),
            sessions: Arc::default(),
            settings: Arc::new(settings),
            limits,
            admission: Admission::new(limits.whep_max_sessions, limits.whep_max_sessions_per_ip),
            mux,
            tracker,
            token,
        }
    }

    /// Sessions holding a slot, connected or not (for tests and logs).
    pub fn sessions_admitted(&self) -> usize {
        self.admission.sessions()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Viewers of `stream` whose session connected. Offers that never
    /// connect (a stranger's flood) hold a slot until their timeout but are
    /// not counted as viewers.
    pub fn viewers(&self, stream: &str) -> usize {
        self.sessions()
            .values()
            .filter(|s| s.stream == stream && s.connected.load(Ordering::Relaxed))
            .count()
    }

    /// Ends a session; false if there is none with that id.
    pub fn delete(&self, id: &str) -> bool {
        match self.sessions().remove(id) {
            Some(session) => {
                session.token.cancel();
                true
            }
            None => false,
        }
    }

    /// Answers a viewer's offer and starts its session.
    ///
    /// The negotiation runs in a task of its own, so a request abandoned
    /// half-way still ends in a session (freed after the connect timeout if
    /// nobody connects) or a closed peer connection, never a leaked one.
    ///
    /// # Errors
    /// An offer over a limit or without a usable H.264 format, an unknown or
    /// offline stream, the session caps reached, or the WebRTC stack failing.
    pub async fn create(
        &self,
        stream: &str,
        offer: &[u8],
        peer: SocketAddr,
    ) -> Result<(String, String), WhepError> {
        let offer = sdp::check_offer(offer, &OfferLimits::from(&self.limits))?.to_string();
        let feed = self
            .feeds
            .get(stream)
            .ok_or_else(|| WhepError::UnknownStream(stream.to_string()))?;
        let video = feed
            .video()
            .ok_or_else(|| WhepError::NotLive(stream.to_string()))?;
        let offered = sdp::offered_h264(&offer);
        if offered.is_empty() {
            return Err(SdpError::NoH264.into());
        }
        let h264 = sdp::choose_h264(&offered, &video)?;
        // The rtc crate pairs codecs by exact fmtp, so it is given the offer's
        // own line for the chosen format; the answer then states what the
        // stream really is (see `answer_with`).
        let offered_fmtp = offered
            .iter()
            .find(|o| o.payload_type == h264.payload_type)
            .map(|o| o.fmtp.to_string())
            .unwrap_or_default();
        let slot = self.admission.admit(peer.ip())?;
        let (whep, stream, feed) = (self.clone(), stream.to_string(), Arc::clone(feed));
        self.tracker
            .spawn(async move {
                whep.negotiate(Offer {
                    stream,
                    feed,
                    sdp: offer,
                    h264,
                    offered_fmtp,
                    peer,
                    slot,
                })
                .await
            })
            .await
            .map_err(|err| WhepError::Task(err.to_string()))?
    }

    /// Builds the peer connection for a checked offer, and closes it again if
    /// anything after that fails.
    async fn negotiate(&self, offer: Offer) -> Result<(String, String), WhepError> {
        let Offer {
            stream,
            feed,
            sdp: offer,
            h264,
            offered_fmtp,
            peer,
            slot,
        } = offer;
        let stream = stream.as_str();
        let opus_pt = opus_payload_type(&offer).unwrap_or(OPUS_DEFAULT_PT);

        let feedback = |kind: &str, parameter: &str| RTCPFeedback {
            typ: kind.into(),
            parameter: parameter.into(),
        };
        let video_codec = RTCRtpCodec {
            mime_type: "video/H264".into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: offered_fmtp,
            rtcp_feedback: vec![
                feedback("nack", ""),
                feedback("nack", "pli"),
                feedback("ccm", "fir"),
            ],
        };
        let audio_codec = RTCRtpCodec {
            mime_type: "audio/opus".into(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            rtcp_feedback: vec![],
        };
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: video_codec.clone(),
                    payload_type: h264.payload_type,
                },
                RtpCodecKind::Video,
            )
            .map_err(WhepError::Negotiation)?;
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: audio_codec.clone(),
                    payload_type: opus_pt,
                },
                RtpCodecKind::Audio,
            )
            .map_err(WhepError::Negotiation)?;
        let registry = register_default_interceptors(Registry::new(), &mut media)
            .map_err(WhepError::Setup)?
            .with(
                InterceptorSlot::from(keyframe::SLOT),
                KeyframeRequests::default(),
            );
        // The configured STUN/TURN servers are for viewers behind NAT (the HTTP
        // answer announces them); the server itself answers from a known
        // address and needs none.
        let config = RTCConfigurationBuilder::new().build();
        // No mDNS: a server offers its address as it is (and a host without a
        // multicast-capable interface cannot open the mDNS socket at all).
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(self.settings.udp_ip.is_loopback());
        let (events_tx, events) = mpsc::unbounded_channel();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(settings.build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Events(events_tx)))
            // The socket bound here only names the session; its media
            // travels through the shared port.
            .with_runtime(self.mux.runtime())
            .with_udp_addrs(vec![SocketAddr::new(self.settings.udp_ip, 0)])
            // Passive ICE-TCP candidates too (RFC 6544), for viewers on
            // networks that block UDP.
            .with_tcp_addrs(vec![SocketAddr::new(self.settings.udp_ip, 0)])
            .build()
            .await
            .map_err(WhepError::Setup)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let unfinished = Unfinished(Some(Arc::clone(&pc)));

        let video_ssrc = rand::random::<u32>();
        let audio_ssrc = rand::random::<u32>();
        let video_track = Arc::new(TrackLocalStaticRTP::new(track(
            stream,
            RtpCodecKind::Video,
            video_codec,
            video_ssrc,
        )));
        let audio_track = Arc::new(TrackLocalStaticRTP::new(track(
            stream,
            RtpCodecKind::Audio,
            audio_codec,
            audio_ssrc,
        )));
        pc.add_track(Arc::clone(&video_track) as Arc<dyn TrackLocal>)
            .await
            .map_err(WhepError::Setup)?;
        pc.add_track(Arc::clone(&audio_track) as Arc<dyn TrackLocal>)
            .await
            .map_err(WhepError::Setup)?;

        let mut events = events;
        let remote = RTCSessionDescription::offer(offer).map_err(WhepError::Negotiation)?;
        pc.set_remote_description(remote)
            .await
            .map_err(WhepError::Negotiation)?;
        let answer = pc
            .create_answer(None)
            .await
            .map_err(WhepError::Negotiation)?;
        pc.set_local_description(answer)
            .await
            .map_err(WhepError::Negotiation)?;
        // Non-trickle: the answer carries every candidate.
        let gathered = tokio::time::timeout(GATHER_TIMEOUT, async {
            while let Some(event) = events.recv().await {
                if matches!(event, Event::Gathered) {
                    return;
                }
            }
        })
        .await;
        if gathered.is_err() {
            unfinished.close().await;
            return Err(WhepError::Gathering(GATHER_TIMEOUT));
        }
        let Some(local) = pc.local_description().await else {
            unfinished.close().await;
            return Err(WhepError::Negotiation(webrtc::error::Error::Other(
                "no answer could be made for it".into(),
            )));
        };
        unfinished.disarm();

        let id = format!("{:016x}", rand::random::<u64>());
        let token = self.token.child_token();
        let connected = Arc::new(AtomicBool::new(false));
        self.sessions().insert(
            id.clone(),
            Session {
                stream: stream.to_string(),
                token: token.clone(),
                connected: Arc::clone(&connected),
            },
        );
        info!(%peer, stream, session = %id, profile = %h264.profile_level_id, "WebRTC viewer joined");
        let viewer = Viewer {
            pc,
            video: Track {
                local: video_track,
                ssrc: video_ssrc,
                payload_type: h264.payload_type,
                sequence: rand::random(),
            },
            audio: Track {
                local: audio_track,
                ssrc: audio_ssrc,
                payload_type: opus_pt,
                sequence: rand::random(),
            },
            offset: rand::random(),
            replay: ReplayBudget::new(self.limits.whep_keyframe_replay_percent),
        };
        let (whep, session) = (self.clone(), id.clone());
        let connect_timeout = Duration::from_secs(self.limits.whep_connect_timeout_s);
        self.tracker.spawn(async move {
            let connected = viewer
                .run(&feed, events, connect_timeout, &connected, token)
                .await;
            whep.sessions().remove(&session);
            drop(slot);
            if connected {
                info!(session = %session, "WebRTC viewer left");
            } else {
                info!(%peer, session = %session, "WebRTC viewer never connected; session freed");
            }
        });
        let mut answer = self.mux.route_answer(&local.sdp);
        if let Some(public) = self.settings.public_ip {
            // 1:1 NAT: viewers are told the public address instead of the local one.
            answer = sdp::with_public_address(&answer, public);
        }
        Ok((id, answer_with(&answer, h264.payload_type, &h264.fmtp)))
    }
}

/// A checked offer and the slot it was given, for [`Whep::negotiate`].
struct Offer {
    stream: String,
    feed: Arc<Feed>,
    sdp: String,
    h264: sdp::H264Answer,
    offered_fmtp: String,
    peer: SocketAddr,
    slot: Slot,
}

/// A peer connection that is not yet a session. Dropped armed (an error
/// returned with `?`), it is closed in a task of its own, since `close` is
/// async and a dropped connection would keep its driver running.
struct Unfinished(Option<Arc<dyn PeerConnection>>);

impl Unfinished {
    async fn close(mut self) {
        if let Some(pc) = self.0.take() {
            let _ = pc.close().await;
        }
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(pc) = self.0.take() {
            tokio::spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// The answer with the chosen H.264 format's fmtp line replaced by the
/// stream's real parameters: Safari shows black video when an answer claims
/// another profile than the bitstream has.
fn answer_with(answer: &str, payload_type: u8, fmtp: &str) -> String {
    let prefix = format!("a=fmtp:{payload_type} ");
    answer
        .split_inclusive('\n')
        .map(|line| {
            if line.starts_with(&prefix) {
                format!("{prefix}{fmtp}\r\n")
            } else {
                line.to_string()
            }
        })
        .collect()
}

fn track(stream: &str, kind: RtpCodecKind, codec: RTCRtpCodec, ssrc: u32) -> MediaStreamTrack {
    MediaStreamTrack::new(
        format!("tinsel-{stream}"),
        format!("tinsel-{stream}-{kind}"),
        format!("{stream} {kind}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )
}

/// The payload type the offer gives Opus, if any.
fn opus_payload_type(offer: &str) -> Option<u8> {
    offer.lines().find_map(|line| {
        let rest = line.strip_prefix("a=rtpmap:")?;
        let (pt, codec) = rest.split_once(' ')?;
        codec
            .to_ascii_lowercase()
            .starts_with("opus/48000")
            .then(|| pt.parse().ok())
            .flatten()
    })
}

enum Event {
    Gathered,
    State(RTCPeerConnectionState),
}

struct Events(mpsc::UnboundedSender<Event>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.send(Event::Gathered);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.0.send(Event::State(state));
    }
}

struct Track {
    local: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
}

impl Track {
    async fn send(
        &mut self,
        timestamp: u32,
        payload: bytes::Bytes,
        marker: bool,
    ) -> webrtc::error::Result<()> {
        let header = rtp::header::Header {
            version: 2,
            marker,
            payload_type: self.payload_type,
            sequence_number: self.sequence,
            timestamp,
            ssrc: self.ssrc,
            ..Default::default()
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.local.write_rtp(rtp::Packet { header, payload }).await
    }
}

struct Viewer {
    pc: Arc<dyn PeerConnection>,
    video: Track,
    audio: Track,
    /// Random start of this viewer's RTP timestamps (RFC 3550, 5.1).
    offset: u32,
    replay: ReplayBudget,
}

impl Viewer {
    /// Streams to the viewer once it connects, and closes the peer connection
    /// however it ends. Returns whether the viewer ever connected.
    async fn run(
        mut self,
        feed: &Feed,
        mut events: mpsc::UnboundedReceiver<Event>,
        connect_timeout: Duration,
        connected_flag: &AtomicBool,
        token: CancellationToken,
    ) -> bool {
        let connected = tokio::time::timeout(connect_timeout, async {
            while let Some(event) = events.recv().await {
                match event {
                    Event::State(RTCPeerConnectionState::Connected) => return true,
                    Event::State(
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed,
                    ) => return false,
                    _ => {}
                }
            }
            false
        });
        let ok = tokio::select! {
            () = token.cancelled() => false,
            result = connected => result.unwrap_or(false),
        };
        if ok {
            connected_flag.store(true, Ordering::Relaxed);
            let started = Instant::now();
            self.stream(feed, &mut events, &token).await;
            debug!(
                seconds = started.elapsed().as_secs(),
                "WebRTC viewer streamed"
            );
        }
        let _ = self.pc.close().await;
        ok
    }

    async fn stream(
        &mut self,
        feed: &Feed,
        events: &mut mpsc::UnboundedReceiver<Event>,
        token: &CancellationToken,
    ) {
        let mut subscription = feed.subscribe();
        let burst: Vec<_> = subscription.burst.drain(..).collect();
        if self.send_gop(&burst).await.is_err() {
            return;
        }
        let video_track = Arc::clone(&self.video.local);
        let mut feedback_open = true;
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                event = video_track.poll(), if feedback_open => match event {
                    // The viewer lost its picture (RFC 4585 PLI, RFC 5104 FIR):
                    // the current GOP goes again, packed as at the start, while
                    // its replay budget allows; else the next keyframe answers.
                    Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                        if packets.iter().any(|p| keyframe::is_keyframe_request(p.as_ref()))
                            && self.keyframe_requested(feed).await.is_err()
                        {
                            return;
                        }
                    }
                    Some(_) => {}
                    None => feedback_open = false,
                },
                event = events.recv() => match event {
                    Some(Event::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed | RTCPeerConnectionState::Disconnected)) | None => return,
                    Some(_) => {}
                },
                unit = subscription.recv() => {
                    let Some(unit) = unit else { return };
                    if self.send(&unit, None).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn keyframe_requested(&mut self, feed: &Feed) -> webrtc::error::Result<()> {
        let gop = feed.gop();
        let answer = self.replay.request(gop.iter().map(|u| u.bytes()).sum());
        debug!(?answer, "WebRTC viewer asked for a keyframe");
        match answer {
            Answer::Replay => self.send_gop(&gop).await,
            Answer::NextKeyframe | Answer::Waiting => Ok(()),
        }
    }

    /// A GOP packed one tick apart just before its last frame: the browser
    /// decodes through it at once and shows live frames, instead of playing a
    /// GOP-old picture through its jitter buffer.
    async fn send_gop(&mut self, gop: &[Arc<Unit>]) -> webrtc::error::Result<()> {
        let Some(Unit::Video { dts: live_edge, .. }) = gop.last().map(|u| &**u) else {
            return Ok(());
        };
        let edge = self.video_timestamp(*live_edge);
        let count = gop.len() as u32;
        for (i, unit) in gop.iter().enumerate() {
            self.send(unit, Some(edge.wrapping_sub(count - 1 - i as u32)))
                .await?;
        }
        Ok(())
    }

    fn video_timestamp(&self, dts_ms: u64) -> u32 {
        // RTP timestamps wrap (RFC 3550, 5.1); only differences matter.
        ((dts_ms * 90) as u32).wrapping_add(self.offset)
    }

    /// Sends a unit: live with `timestamp` `None`, else as part of a GOP
    /// packed at that timestamp.
    async fn send(&mut self, unit: &Unit, timestamp: Option<u32>) -> webrtc::error::Result<()> {
        let live = timestamp.is_none();
        match unit {
            Unit::Video {
                dts,
                keyframe,
                payloads,
            } => {
                let timestamp = timestamp.unwrap_or_else(|| self.video_timestamp(*dts));
                let last = payloads.len().saturating_sub(1);
                for (i, payload) in payloads.iter().enumerate() {
                    self.video
                        .send(timestamp, payload.clone(), i == last)
                        .await?;
                }
                if live {
                    self.replay.sent(unit.bytes(), *keyframe);
                }
                Ok(())
            }
            Unit::Audio { timestamp, payload } => {
                let timestamp = (*timestamp as u32).wrapping_add(self.offset);
                self.replay.sent(payload.len(), false);
                self.audio.send(timestamp, payload.clone(), false).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_states_the_stream_profile() {
        let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 106\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=rtcp-fb:106 nack\r\n";
        let fixed = answer_with(
            answer,
            106,
            "profile-level-id=42c01f;packetization-mode=1;level-asymmetry-allowed=1",
        );
        assert!(fixed.contains(
            "a=fmtp:106 profile-level-id=42c01f;packetization-mode=1;level-asymmetry-allowed=1\r\n"
        ));
        assert!(fixed.contains("a=rtcp-fb:106 nack\r\n"));
        assert!(!fixed.contains("42e01f"));
    }

    #[test]
    fn finds_the_opus_payload_type() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\n";
        assert_eq!(opus_payload_type(offer), Some(111));
        assert_eq!(opus_payload_type("v=0\r\n"), None);
    }
}
