//! Stream health from `GET /api/streams`: is OBS connected, and what it sends.

use leptos::prelude::*;

use super::Panel;
use crate::api::StreamStatus;

#[component]
pub(super) fn Health(panel: Panel) -> impl IntoView {
    view! {
        <section class="health">
            <h2>"Streams"</h2>
            {move || panel.streams.get().into_iter()
                .map(|stream| view! { <StreamHealth stream/> })
                .collect_view()}
        </section>
    }
    .into_any()
}

#[component]
fn StreamHealth(stream: StreamStatus) -> impl IntoView {
    let publisher = if stream.live {
        "publisher connected"
    } else {
        "no publisher"
    };
    let video = stream.video.map(|v| {
        let fps = v.fps.map(|f| format!("{f:.0} fps")).unwrap_or_default();
        let kbps = v.kbps.map(|k| format!("{k:.0} kbit/s")).unwrap_or_default();
        let size = match (v.width, v.height) {
            (Some(w), Some(h)) => format!("{w}×{h}"),
            _ => String::new(),
        };
        view! {
            <li>"Video: "{v.codec}" "{v.profile.unwrap_or_default()}" "{size}" "{fps}" "{kbps}</li>
            {v.bframes.then(|| view! {
                <li class="warning">"B-frames in the stream: browsers cannot play it over WebRTC. Set Max B-frames to 0 in OBS."</li>
            })}
            {crate::api::keyframe_warning(v.keyframe_age_s).map(|text| view! { <li class="warning">{text}</li> })}
        }
    });
    let audio = stream.audio.map(|a| {
        let kbps = a.kbps.map(|k| format!("{k:.0} kbit/s")).unwrap_or_default();
        let rate = a
            .sample_rate
            .map(|r| format!("{:.1} kHz", f64::from(r) / 1000.0))
            .unwrap_or_default();
        view! { <li>"Audio: "{a.codec}" "{rate}" "{kbps}</li> }
    });
    let v = stream.viewers;
    let name = stream.name;
    let label = name.clone();
    view! {
        <article class="stream-health" data-stream=name data-live=stream.live.to_string()>
            <h3>{label}" — "{publisher}</h3>
            <ul>
                {video}
                {audio}
                <li>"Viewers: "{v.rtmp}" RTMP, "{v.hls}" HLS, "{v.webrtc}" WebRTC"</li>
            </ul>
        </article>
    }
    .into_any()
}
