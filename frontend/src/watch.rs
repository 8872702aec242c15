//! The watch page: which stream, whether it is live, and what it carries.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::{self, StreamStatus};

/// How often the page asks for the stream's status.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

#[component]
pub fn WatchPage() -> impl IntoView {
    let params = use_params_map();
    let wanted = move || params.read().get("name");
    let (tick, set_tick) = signal(0u32);
    Effect::new(move |_| {
        // Runs in the browser only: effects do not run during server rendering.
        let handle = set_interval_with_handle(move || set_tick.update(|t| *t += 1), REFRESH).ok();
        on_cleanup(move || {
            if let Some(handle) = handle {
                handle.clear();
            }
        });
    });
    let streams = LocalResource::new(move || {
        tick.track();
        api::streams()
    });

    let status = move || {
        streams.get().map(|result| {
            result.map(|list| {
                let name = wanted();
                list.into_iter()
                    .find(|s| name.as_deref().is_none_or(|n| n == s.name))
            })
        })
    };

    view! {
        <section class="watch">
            <Suspense fallback=|| view! { <p class="notice">"Loading the stream…"</p> }>
                {move || match status() {
                    None => view! { <p class="notice">"Loading the stream…"</p> }.into_any(),
                    Some(Err(err)) => view! { <p class="notice error">{err}</p> }.into_any(),
                    Some(Ok(None)) => view! { <p class="notice">"No such stream."</p> }.into_any(),
                    Some(Ok(Some(stream))) => view! { <StreamCard stream/> }.into_any(),
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn StreamCard(stream: StreamStatus) -> impl IntoView {
    let state = if stream.live { "live" } else { "offline" };
    let video = stream.video.map(|v| {
        let size = match (v.width, v.height) {
            (Some(w), Some(h)) => format!("{w}×{h}"),
            _ => "size unknown".to_string(),
        };
        let fps = v.fps.map(|f| format!("{f:.0} fps")).unwrap_or_default();
        let kbps = v.kbps.map(|k| format!("{k:.0} kbit/s")).unwrap_or_default();
        let profile = v.profile.unwrap_or_default();
        view! {
            <li class="video">
                <span class="codec">{v.codec}" "{profile}</span>
                <span class="resolution">{size}</span>
                <span>{fps}</span>
                <span>{kbps}</span>
            </li>
            {v.bframes.then(|| view! {
                <li class="warning">"B-frames in the stream: browsers cannot play it over WebRTC. Set Max B-frames to 0 in OBS."</li>
            })}
        }
    });
    let audio = stream.audio.map(|a| {
        let rate = a.sample_rate.map(|r| format!("{:.1} kHz", f64::from(r) / 1000.0)).unwrap_or_default();
        let channels = a.channels.map(|c| format!("{c} ch")).unwrap_or_default();
        view! { <li class="audio"><span class="codec">{a.codec}</span><span>{rate}</span><span>{channels}</span></li> }
    });
    let watching = stream.viewers.rtmp + stream.viewers.hls + stream.viewers.webrtc;
    let name = stream.name;
    let label = name.clone();
    view! {
        <article class="stream" data-stream=name data-state=state>
            <h1>
                <span class="name">{label}</span>
                <span class=format!("badge {state}")>{state}</span>
            </h1>
            <ul class="codecs">{video}{audio}</ul>
            <p class="viewers">{watching}" watching"</p>
        </article>
    }
}
