//! A WHEP viewer for the tests: a Rust webrtc peer on a plain loopback
//! socket that posts its offer, applies the answer and counts the video
//! frames (RTP marker bits) it receives. Included with `#[path]` by the
//! tests that need it, so the others build without it.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::ice::mdns::MulticastDnsMode;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCSessionDescription, Registry, SettingEngineBuilder,
    register_default_interceptors,
};

/// A playing viewer: leave with [`WhepViewer::close`], as a browser would.
pub struct WhepViewer {
    pc: Arc<dyn PeerConnection>,
    /// The ICE ufrag of the server's answer.
    pub ufrag: String,
    /// Video frames received so far, kept up to date by a task.
    frames: Arc<AtomicUsize>,
    /// When the last video frame arrived.
    last_frame_at: Arc<Mutex<Option<Instant>>>,
    /// The session's URL from the answer's `Location`.
    location: String,
}

impl WhepViewer {
    pub fn frames(&self) -> usize {
        self.frames.load(Ordering::Relaxed)
    }

    pub fn last_frame_at(&self) -> Option<Instant> {
        *self.last_frame_at.lock().unwrap()
    }

    /// Ends the session with `DELETE` on its location, then closes the peer.
    pub async fn close(self) {
        let location = self.location;
        let _ = tokio::task::spawn_blocking(move || {
            // Best effort: the session also ends when the peer closes.
            let _ = ureq::delete(&location)
                .timeout(Duration::from_secs(5))
                .call();
        })
        .await;
        let _ = self.pc.close().await;
    }
}

struct ViewerEvents {
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
    gathered: mpsc::UnboundedSender<()>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ViewerEvents {
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }
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

/// Posts an offer for H.264 and Opus to `whep_url` and plays the answer.
/// Fails (closing what it opened) if any step does not complete in time.
pub async fn play(whep_url: String) -> Result<WhepViewer, String> {
    let mut media = MediaEngine::default();
    let fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
    media
        .register_codec(
            codec("video/H264", 90_000, 0, fmtp, 102),
            RtpCodecKind::Video,
        )
        .map_err(|e| e.to_string())?;
    media
        .register_codec(
            codec("audio/opus", 48_000, 2, "minptime=10;useinbandfec=1", 111),
            RtpCodecKind::Audio,
        )
        .map_err(|e| e.to_string())?;
    let registry =
        register_default_interceptors(Registry::new(), &mut media).map_err(|e| e.to_string())?;
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
        .with_handler(Arc::new(ViewerEvents {
            tracks: tracks_tx,
            gathered: gathered_tx,
        }))
        .with_udp_addrs(vec!["127.0.0.1:0"])
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    let negotiated = negotiate(&pc, &mut gathered, whep_url).await;
    let (ufrag, location) = match negotiated {
        Ok(answered) => answered,
        Err(err) => {
            let _ = pc.close().await;
            return Err(err);
        }
    };
    let frames = Arc::new(AtomicUsize::new(0));
    let last_frame_at = Arc::new(Mutex::new(None));
    for _ in 0..2 {
        let track = match tokio::time::timeout(Duration::from_secs(20), tracks.recv()).await {
            Ok(Some(track)) => track,
            _ => {
                let _ = pc.close().await;
                return Err("no track within 20 s of the answer".into());
            }
        };
        let (frames, last_frame_at) = (Arc::clone(&frames), Arc::clone(&last_frame_at));
        tokio::spawn(async move {
            let video = track.kind().await == RtpCodecKind::Video;
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event
                    && video
                    && packet.header.marker
                {
                    frames.fetch_add(1, Ordering::Relaxed);
                    *last_frame_at.lock().unwrap() = Some(Instant::now());
                }
            }
        });
    }
    Ok(WhepViewer {
        pc,
        ufrag,
        frames,
        last_frame_at,
        location,
    })
}

/// Offer, POST, answer: returns the answer's ICE ufrag and the session's
/// absolute URL.
async fn negotiate(
    pc: &Arc<dyn PeerConnection>,
    gathered: &mut mpsc::UnboundedReceiver<()>,
    whep_url: String,
) -> Result<(String, String), String> {
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            ..Default::default()
        };
        pc.add_transceiver_from_kind(kind, Some(init))
            .await
            .map_err(|e| e.to_string())?;
    }
    let offer = pc.create_offer(None).await.map_err(|e| e.to_string())?;
    pc.set_local_description(offer)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(5), gathered.recv())
        .await
        .map_err(|_| "ICE gathering did not complete within 5 s".to_string())?;
    let offer = pc
        .local_description()
        .await
        .ok_or("no local description")?
        .sdp;
    let (answer, location) = tokio::task::spawn_blocking(move || {
        let reply = ureq::post(&whep_url)
            .set("Content-Type", "application/sdp")
            .timeout(Duration::from_secs(20))
            .send_string(&offer)
            .map_err(|e| format!("the offer was refused: {e}"))?;
        let location = reply
            .header("Location")
            .ok_or("no Location in the 201 Created")?;
        // The location is a path on the same origin.
        let origin = whep_url
            .find("/whep/")
            .map_or(&whep_url[..], |i| &whep_url[..i]);
        let location = format!("{origin}{location}");
        Ok::<_, String>((reply.into_string().map_err(|e| e.to_string())?, location))
    })
    .await
    .map_err(|e| e.to_string())??;
    let ufrag = answer
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .ok_or("no ICE ufrag in the answer")?
        .to_string();
    let answer = RTCSessionDescription::answer(answer).map_err(|e| e.to_string())?;
    pc.set_remote_description(answer)
        .await
        .map_err(|e| e.to_string())?;
    Ok((ufrag, location))
}
