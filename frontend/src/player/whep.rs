//! WebRTC playback over WHEP (RFC 9725): a receive-only peer connection for
//! video and audio, the offer POSTed as `application/sdp` once every candidate
//! is gathered (the server does not take trickled ones), the answer set, and
//! `DELETE` on the session's `Location` when the page is done with it.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Reflect;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    HtmlVideoElement, MediaStream, RtcIceGatheringState, RtcPeerConnection, RtcPeerConnectionState,
    RtcRtpTransceiverDirection, RtcRtpTransceiverInit, RtcSdpType, RtcSessionDescriptionInit,
    RtcTrackEvent,
};

/// Gathering waits this long at most; what is gathered by then is offered.
const GATHER_MS: i32 = 2000;

/// One WHEP session; [`Session::close`] ends it on both sides.
pub struct Session {
    pc: RtcPeerConnection,
    shared: Rc<RefCell<Shared>>,
    /// Kept alive as long as the connection: the browser calls them.
    _on_track: Closure<dyn FnMut(RtcTrackEvent)>,
    _on_state: Closure<dyn FnMut()>,
}

#[derive(Default)]
struct Shared {
    /// The session's URL, once the server answered.
    location: Option<String>,
    closed: bool,
}

impl Session {
    /// Starts playing `url` (`/whep/NAME`) into `video`; `on_fail` is called
    /// when it cannot: no WebRTC, the server refused, ICE failed.
    pub fn start(url: String, video: &HtmlVideoElement, on_fail: Rc<dyn Fn()>) -> Option<Self> {
        let Ok(pc) = RtcPeerConnection::new() else {
            on_fail();
            return None;
        };
        let target = video.clone();
        let on_track = Closure::<dyn FnMut(RtcTrackEvent)>::new(move |event: RtcTrackEvent| {
            let stream = event.streams().get(0).dyn_into::<MediaStream>().ok();
            let stream = stream.or_else(|| {
                let stream = MediaStream::new().ok()?;
                stream.add_track(&event.track());
                Some(stream)
            });
            if let Some(stream) = stream {
                // Both tracks arrive in the one stream: set it once.
                if target.src_object().as_ref() != Some(&stream) {
                    target.set_src_object(Some(&stream));
                }
            }
        });
        pc.set_ontrack(Some(on_track.as_ref().unchecked_ref()));
        let watched = pc.clone();
        let failed = Rc::clone(&on_fail);
        let on_state = Closure::<dyn FnMut()>::new(move || {
            if watched.connection_state() == RtcPeerConnectionState::Failed {
                failed();
            }
        });
        pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
        for kind in ["video", "audio"] {
            let init = RtcRtpTransceiverInit::new();
            init.set_direction(RtcRtpTransceiverDirection::Recvonly);
            pc.add_transceiver_with_str_and_init(kind, &init);
        }
        let shared = Rc::new(RefCell::new(Shared::default()));
        let session = Self {
            pc: pc.clone(),
            shared: Rc::clone(&shared),
            _on_track: on_track,
            _on_state: on_state,
        };
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(err) = negotiate(&pc, &url, &shared).await
                && !shared.borrow().closed
            {
                leptos::logging::warn!("WebRTC: {err}");
                on_fail();
            }
        });
        Some(session)
    }

    /// Ends the session: the peer connection here, the session on the server.
    pub fn close(&self) {
        let location = {
            let mut shared = self.shared.borrow_mut();
            shared.closed = true;
            shared.location.take()
        };
        self.pc.close();
        if let Some(location) = location {
            delete(location);
        }
    }

    /// How far behind the server the picture is, roughly, in seconds: half
    /// the round trip, plus what a frame spends here from its first packet
    /// to decoded (`totalProcessingDelay`, the jitter buffer included), or
    /// the jitter buffer alone where the browser does not say. Render time
    /// is not counted.
    pub fn latency(&self) -> impl std::future::Future<Output = Option<f64>> + 'static {
        let pc = self.pc.clone();
        async move {
            let report = JsFuture::from(pc.get_stats()).await.ok()?;
            let mut jitter = None;
            let mut rtt = 0.0;
            // RTCStatsReport is map-like: its entries are [id, stats] pairs.
            let entries = js_sys::try_iter(&report).ok()??;
            for entry in entries.flatten() {
                let stats = entry.unchecked_into::<js_sys::Array>().get(1);
                let get = |key: &str| Reflect::get(&stats, &key.into()).ok();
                let text = |key: &str| get(key).and_then(|v| v.as_string()).unwrap_or_default();
                let number = |key: &str| get(key).and_then(|v| v.as_f64());
                if text("type") == "inbound-rtp" && text("kind") == "video" {
                    let per_frame = |total: &str, count: &str| match (number(total), number(count))
                    {
                        (Some(total), Some(count)) if count > 0.0 => Some(total / count),
                        _ => None,
                    };
                    jitter = per_frame("totalProcessingDelay", "framesDecoded")
                        .or_else(|| per_frame("jitterBufferDelay", "jitterBufferEmittedCount"));
                }
                if text("type") == "candidate-pair"
                    && get("nominated").and_then(|v| v.as_bool()) == Some(true)
                {
                    rtt = number("currentRoundTripTime").unwrap_or(rtt);
                }
            }
            jitter.map(|j| j + rtt / 2.0)
        }
    }
}

async fn negotiate(
    pc: &RtcPeerConnection,
    url: &str,
    shared: &Rc<RefCell<Shared>>,
) -> Result<(), String> {
    let js = |err: JsValue| format!("{err:?}");
    let offer = JsFuture::from(pc.create_offer()).await.map_err(js)?;
    let offer: RtcSessionDescriptionInit = offer.unchecked_into();
    JsFuture::from(pc.set_local_description(&offer))
        .await
        .map_err(js)?;
    gathered(pc).await;
    let sdp = pc
        .local_description()
        .map(|d| d.sdp())
        .ok_or("no local description")?;
    let response = gloo_net::http::Request::post(url)
        .header("Content-Type", "application/sdp")
        .body(sdp)
        .map_err(|err| err.to_string())?
        .send()
        .await
        .map_err(|err| format!("cannot reach the server: {err}"))?;
    if response.status() != 201 {
        return Err(format!("the server answered {}", response.status()));
    }
    let location = response.headers().get("Location");
    let answer = response.text().await.map_err(|err| err.to_string())?;
    if shared.borrow().closed {
        // Closed while the server was answering: end what it just made.
        if let Some(location) = location {
            delete(location);
        }
        return Ok(());
    }
    shared.borrow_mut().location = location;
    let description = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
    description.set_sdp(&answer);
    JsFuture::from(pc.set_remote_description(&description))
        .await
        .map_err(js)?;
    Ok(())
}

/// Resolves when ICE gathering completes, or after [`GATHER_MS`].
async fn gathered(pc: &RtcPeerConnection) {
    if pc.ice_gathering_state() == RtcIceGatheringState::Complete {
        return;
    }
    let watched = pc.clone();
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let done = resolve.clone();
        let watched = watched.clone();
        let check = Closure::<dyn FnMut()>::new(move || {
            if watched.ice_gathering_state() == RtcIceGatheringState::Complete {
                let _ = done.call0(&JsValue::NULL);
            }
        });
        pc.set_onicegatheringstatechange(Some(check.as_ref().unchecked_ref()));
        // One small callback per attempt, left to the connection it watches.
        check.forget();
        if let Some(window) = web_sys::window() {
            let _ =
                window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, GATHER_MS);
        }
    });
    let _ = JsFuture::from(promise).await;
    pc.set_onicegatheringstatechange(None);
}

fn delete(location: String) {
    wasm_bindgen_futures::spawn_local(async move {
        let _ = gloo_net::http::Request::delete(&location).send().await;
    });
}
