//! WHEP sessions: an SDP offer in, an answer out, then one task per viewer
//! ([`super::session`]) that sends the stream's feed as RTP.
//!
//! The HTTP handler only answers the offer; the session lives on in its task
//! until the viewer leaves (DELETE, ICE failure, or the connection closing),
//! or never connects within `whep_connect_timeout_s`.
//!
//! An offer is a stranger's: it is checked for size and shape first
//! ([`sdp::check_offer`]), then given a slot under the session caps
//! ([`Admission`]), and only then is a peer connection built. The `rtc`
//! crate's peer connection is sans-IO: building it and answering the offer
//! touch no socket, so the answer's candidates are made here by hand, on the
//! shared UDP port and the session's ICE-TCP listener.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::tcp_type::TcpType;
use rtc::interceptor::{
    NackResponderBuilder, Registry, SenderReportBuilder, Slot as InterceptorSlot,
};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::shared::error::Error as RtcError;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::admission::{Admission, AdmissionError, Slot};
use super::feed::Feed;
use super::ice_tcp::IceTcp;
use super::keyframe::{self, KeyframeRequests};
use super::limits::WhepLimits;
use super::replay::ReplayBudget;
use super::sdp::{self, OfferLimits, SdpError};
use super::session::{Media, Session};
use super::udp_mux::UdpMux;

const OPUS_DEFAULT_PT: u8 = 111;
/// Video packets kept per viewer for retransmission: about a second of a
/// 2.5 Mbit/s stream, several round trips even on a phone (a power of two, as
/// the NACK responder needs; each costs about 110 bytes a viewer).
const NACK_HISTORY: u16 = 256;

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
    Negotiation(#[source] RtcError),
    /// The WebRTC stack failed on the server's side (sockets, setup).
    #[error("WebRTC setup failed: {0}")]
    Setup(#[source] RtcError),
    /// No address to offer: the server has no usable interface for `webrtc_ip`.
    #[error(
        "no address to offer WebRTC viewers on {0}; set webrtc_ip to the address viewers reach"
    )]
    NoAddress(IpAddr),
}

impl WhepError {
    /// What kind of refusal, as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            WhepError::UnknownStream(_) => "unknown_stream",
            WhepError::NotLive(_) => "not_live",
            WhepError::Offer(_) | WhepError::Negotiation(_) => "bad_offer",
            WhepError::Full(_) => "full",
            WhepError::Setup(_) | WhepError::NoAddress(_) => "server_error",
        }
    }
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

struct Entry {
    stream: String,
    token: CancellationToken,
    /// Set once ICE and DTLS completed: only then is it a viewer.
    connected: Arc<AtomicBool>,
}

/// Every stream's feed and every viewer's session. Cheap to clone.
#[derive(Clone)]
pub struct Whep {
    feeds: Arc<HashMap<String, Arc<Feed>>>,
    sessions: Arc<Mutex<HashMap<String, Entry>>>,
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

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
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
    /// Nothing in it waits, so a request abandoned half-way leaves nothing
    /// half-made: once answered, the session is freed after the connect
    /// timeout if nobody connects.
    ///
    /// # Errors
    /// An offer over a limit or without a usable H.264 format, an unknown or
    /// offline stream, the session caps reached, or the WebRTC stack failing.
    pub fn create(
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
        self.negotiate(Offer {
            stream: stream.to_string(),
            feed: Arc::clone(feed),
            sdp: offer,
            h264,
            offered_fmtp,
            peer,
            slot,
        })
    }

    /// Builds the peer connection for a checked offer, answers it, and starts
    /// the session's task.
    fn negotiate(&self, offer: Offer) -> Result<(String, String), WhepError> {
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
        let ips = host_ips(self.settings.udp_ip);
        if ips.is_empty() {
            return Err(WhepError::NoAddress(self.settings.udp_ip));
        }

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
        // Only what a sender needs: NACKs answered from the packets sent
        // last, sender reports (the browser syncs audio to video by them),
        // and keyframe requests passed up. No receiver-side interceptors:
        // viewers send no media.
        let registry = Registry::new()
            .with(
                InterceptorSlot::NackResponder,
                NackResponderBuilder::new().with_size(NACK_HISTORY).build(),
            )
            .with(
                InterceptorSlot::SenderReport,
                SenderReportBuilder::new().build(),
            )
            .with(
                InterceptorSlot::from(keyframe::SLOT),
                KeyframeRequests::default(),
            );
        // The configured STUN/TURN servers are for viewers behind NAT (the HTTP
        // answer announces them); the server itself answers from a known
        // address and needs none.
        let config = RTCConfigurationBuilder::new().build();
        // Our own ICE credentials: the ufrag is how the shared port finds the
        // session (RFC 8445, 7.2.2).
        let ufrag = random_token(16);
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(self.settings.udp_ip.is_loopback())
            .with_ice_credentials(ufrag.clone(), random_token(32));
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(settings.build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(Instant::now())
            .map_err(WhepError::Setup)?;

        let remote = RTCSessionDescription::offer(offer).map_err(WhepError::Negotiation)?;
        pc.set_remote_description(Instant::now(), remote)
            .map_err(WhepError::Negotiation)?;
        let video_ssrc = rand::random::<u32>();
        let audio_ssrc = rand::random::<u32>();
        let video_track = track(stream, RtpCodecKind::Video, video_codec, video_ssrc);
        let audio_track = track(stream, RtpCodecKind::Audio, audio_codec, audio_ssrc);
        let (video_id, audio_id) = (
            video_track.track_id().to_string(),
            audio_track.track_id().to_string(),
        );
        pc.add_track(video_track).map_err(WhepError::Setup)?;
        pc.add_track(audio_track).map_err(WhepError::Setup)?;

        let Some(port) = self.mux.register(&ufrag) else {
            return Err(WhepError::Setup(RtcError::Other(
                "two sessions drew the same ICE ufrag; try again".into(),
            )));
        };
        // Passive ICE-TCP candidates too (RFC 6544), for viewers on networks
        // that block UDP.
        let tcp = match IceTcp::bind(
            SocketAddr::new(self.settings.udp_ip, 0),
            self.limits.whep_max_tcp_per_session,
        ) {
            Ok(tcp) => Some(tcp),
            Err(err) => {
                warn!(%err, "WebRTC: no ICE-TCP listener for this viewer; UDP only");
                None
            }
        };
        for ip in &ips {
            add_host_candidate(&mut pc, "udp", *ip, port.port(), TcpType::Unspecified)?;
            if let Some(tcp) = &tcp {
                add_host_candidate(&mut pc, "tcp", *ip, tcp.port(), TcpType::Passive)?;
            }
        }
        let answer = pc.create_answer(None).map_err(WhepError::Negotiation)?;
        pc.set_local_description(Instant::now(), answer)
            .map_err(WhepError::Negotiation)?;
        let local = pc.local_description().ok_or_else(|| {
            WhepError::Negotiation(RtcError::Other("no answer could be made for it".into()))
        })?;

        let id = format!("{:016x}", rand::random::<u64>());
        let token = self.token.child_token();
        let connected = Arc::new(AtomicBool::new(false));
        self.sessions().insert(
            id.clone(),
            Entry {
                stream: stream.to_string(),
                token: token.clone(),
                connected: Arc::clone(&connected),
            },
        );
        info!(%peer, stream, session = %id, profile = %h264.profile_level_id, "WebRTC viewer joined");
        let media = |track_id, ssrc, payload_type| Media {
            track_id,
            ssrc,
            payload_type,
            sequence: rand::random(),
        };
        let session = Session::new(
            pc,
            port,
            tcp,
            media(video_id, video_ssrc, h264.payload_type),
            media(audio_id, audio_ssrc, opus_pt),
            ReplayBudget::new(self.limits.whep_keyframe_replay_percent),
        );
        let (whep, session_id) = (self.clone(), id.clone());
        let connect_timeout = Duration::from_secs(self.limits.whep_connect_timeout_s);
        self.tracker.spawn(async move {
            let connected = session.run(&feed, connect_timeout, &connected, token).await;
            whep.sessions().remove(&session_id);
            drop(slot);
            if connected {
                info!(session = %session_id, "WebRTC viewer left");
            } else {
                info!(%peer, session = %session_id, "WebRTC viewer never connected; session freed");
            }
        });
        let mut answer = local.sdp;
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

/// The addresses host candidates are offered on: `ip` itself, or for a
/// wildcard every usable interface address of its family (not loopback, which
/// no viewer can reach, nor link-local, whose scope a candidate cannot carry).
fn host_ips(ip: IpAddr) -> Vec<IpAddr> {
    if !ip.is_unspecified() {
        return vec![ip];
    }
    let Ok(interfaces) = rtc::shared::ifaces::ifaces() else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = interfaces
        .into_iter()
        .filter_map(|i| i.addr.map(|a| a.ip()))
        .filter(|a| a.is_ipv4() == ip.is_ipv4())
        .filter(|a| !a.is_loopback() && !a.is_unspecified() && !is_link_local(a))
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

fn add_host_candidate(
    pc: &mut RTCPeerConnection,
    network: &str,
    ip: IpAddr,
    port: u16,
    tcp_type: TcpType,
) -> Result<(), WhepError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: network.to_string(),
            address: ip.to_string(),
            port,
            component: 1,
            ..Default::default()
        },
        tcp_type,
    }
    .new_candidate_host()
    .map_err(WhepError::Setup)?;
    let init = RTCIceCandidate::from(&candidate)
        .to_json()
        .map_err(WhepError::Setup)?;
    pc.add_local_candidate(init).map_err(WhepError::Setup)
}

/// Letters and digits, which the ICE alphabet allows (RFC 8839, 5.4).
fn random_token(len: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
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
