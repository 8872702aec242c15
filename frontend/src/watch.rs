//! The watch page (`/`, `/watch/NAME`): the player, whether the stream is
//! live, how many watch, what it carries, the tree's lights, and links to
//! watch elsewhere or share. Everything after the first load is pushed by the
//! server ([`crate::live`]).

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::{SiteInfo, StreamStatus};
use crate::lights::Lights;
use crate::live::LiveFeed;
use crate::player::{Player, PlayerState};

/// What the page loaded: the stream (if it exists) and the site's settings.
type Loaded = Result<Option<(StreamStatus, SiteInfo)>, String>;

#[component]
pub fn WatchPage() -> impl IntoView {
    let params = use_params_map();
    // Loaded in the browser only. A `LocalResource` under `<Suspense>` did
    // the same, but on the server each render left its never-run task and
    // reactive nodes behind: about 1.4 KB per page view, for good.
    let page = RwSignal::new(None::<Loaded>);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let wanted = params.read().get("name");
        leptos::task::spawn_local(async move {
            let loaded = async {
                let (streams, site) = (crate::api::streams().await?, crate::api::site().await?);
                let stream = streams
                    .into_iter()
                    .find(|s| wanted.as_deref().is_none_or(|n| n == s.name));
                Ok::<_, String>(stream.map(|stream| (stream, site)))
            };
            page.set(Some(loaded.await));
        });
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = params;
    let loading = || view! { <Skeleton/> };
    view! {
        <section class="watch">
            {move || match page.get() {
                None => loading().into_any(),
                Some(Err(err)) => view! { <p class="notice error">{err}</p> }.into_any(),
                Some(Ok(None)) => view! { <p class="notice">"No such stream."</p> }.into_any(),
                Some(Ok(Some((stream, site)))) => view! { <Watch stream site/> }.into_any(),
            }}
        </section>
    }
}

/// The page's frame before the data is in: the layout does not jump when it is.
#[component]
fn Skeleton() -> AnyView {
    view! {
        <div class="watch-grid">
            <div class="stage">
                <div class="player">
                    <div class="screen"><p class="notice loading">"Loading the stream…"</p></div>
                </div>
            </div>
        </div>
    }
    .into_any()
}

#[component]
fn Watch(stream: StreamStatus, site: SiteInfo) -> AnyView {
    let name = stream.name.clone();
    let feed = LiveFeed::new(stream);
    #[cfg(feature = "hydrate")]
    feed.connect(&name);
    let live = Signal::derive(move || feed.status.with(|s| s.live && s.video.is_some()));
    let youtube = Signal::stored(site.youtube_fallback.clone());
    let player = PlayerState {
        mode: RwSignal::new(None),
        latency: RwSignal::new(None),
    };
    view! {
        <div class="watch-grid">
            <div class="stage">
                <Player stream=name.clone() live youtube state=player/>
            </div>
            <aside class="side">
                <StreamCard feed/>
                <Lights feed/>
                <Elsewhere name site/>
            </aside>
        </div>
    }
    .into_any()
}

#[component]
fn StreamCard(feed: LiveFeed) -> AnyView {
    let status = feed.status;
    let name = status.with_untracked(|s| s.name.clone());
    let label = name.clone();
    let state = move || {
        if status.with(|s| s.live) {
            "live"
        } else {
            "offline"
        }
    };
    let watching = move || status.with(|s| s.viewers.rtmp + s.viewers.hls + s.viewers.webrtc);
    let video = move || {
        status.with(|s| s.video.clone()).map(|v| {
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
                {crate::api::keyframe_warning(v.keyframe_age_s).map(|text| view! { <li class="warning">{text}</li> })}
            }
        })
    };
    let audio = move || {
        status.with(|s| s.audio.clone()).map(|a| {
            let rate = a.sample_rate.map(|r| format!("{:.1} kHz", f64::from(r) / 1000.0)).unwrap_or_default();
            let channels = a.channels.map(|c| format!("{c} ch")).unwrap_or_default();
            view! { <li class="audio"><span class="codec">{a.codec}</span><span>{rate}</span><span>{channels}</span></li> }
        })
    };
    view! {
        <article class="stream" data-stream=name.clone() data-state=state>
            <h1>
                <span class="name">{label}</span>
                <span class=move || format!("badge {}", state())>{state}</span>
            </h1>
            <p class="viewers" aria-live="polite"><strong class="count">{watching}</strong>" watching"</p>
            <ul class="codecs">{video}{audio}</ul>
        </article>
    }
    .into_any()
}

/// Watch in VLC, and share the page.
#[component]
fn Elsewhere(name: String, site: SiteInfo) -> AnyView {
    #[cfg(feature = "hydrate")]
    let host = window().location().hostname().unwrap_or_default();
    #[cfg(not(feature = "hydrate"))]
    let host = String::from("localhost");
    let rtmp = rtmp_url(&host, site.rtmp_port, &site.rtmp_app, &name);
    let shared = RwSignal::new(None::<&'static str>);
    let share = move |_| {
        #[cfg(feature = "hydrate")]
        share_page(shared);
    };
    view! {
        <section class="elsewhere" aria-labelledby="elsewhere-title">
            <h2 id="elsewhere-title">"Watch elsewhere"</h2>
            <div class="buttons">
                <a class="button vlc" href=rtmp.clone()>"Watch in VLC"</a>
                <button type="button" class="button share" on:click=share>"Share"</button>
            </div>
            <p class="rtmp">"VLC: Media → Open Network Stream → "<code class="rtmp-url">{rtmp}</code></p>
            <p class="shared" role="status">{move || shared.get()}</p>
        </section>
    }
    .into_any()
}

/// The RTMP play URL on the host the page came from (`[::1]` stays bracketed).
pub fn rtmp_url(host: &str, port: u16, app: &str, stream: &str) -> String {
    format!("rtmp://{host}:{port}/{app}/{stream}")
}

/// The system's share sheet where there is one (phones), else the clipboard.
#[cfg(feature = "hydrate")]
fn share_page(shared: RwSignal<Option<&'static str>>) {
    use wasm_bindgen::JsCast;
    let window = window();
    let navigator = window.navigator();
    let url = window.location().href().unwrap_or_default();
    let share = js_sys::Reflect::get(&navigator, &"share".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    let promise = match share {
        Some(share) => {
            let data = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&data, &"title".into(), &"The tree, live".into());
            let _ = js_sys::Reflect::set(&data, &"url".into(), &url.as_str().into());
            share.call1(&navigator, &data).ok().map(|p| (p, "Shared."))
        }
        None => Some((
            navigator.clipboard().write_text(&url).into(),
            "Link copied.",
        )),
    };
    if let Some((promise, done)) = promise {
        leptos::task::spawn_local(async move {
            let promise: js_sys::Promise = promise.unchecked_into();
            let said = match wasm_bindgen_futures::JsFuture::from(promise).await {
                Ok(_) => done,
                Err(_) => "Copy the address from the address bar.",
            };
            shared.set(Some(said));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_urls() {
        assert_eq!(
            rtmp_url("tree.example", 1935, "live", "tree"),
            "rtmp://tree.example:1935/live/tree"
        );
        assert_eq!(
            rtmp_url("[::1]", 1935, "live", "tree"),
            "rtmp://[::1]:1935/live/tree"
        );
    }
}
