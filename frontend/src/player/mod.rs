//! The player: one `<video>` fed over WebRTC or LL-HLS, or YouTube's embed as
//! the last resort, switched without a reload. [`watchdog`] decides (pure,
//! tested without a browser); the browser-side controller carries it out.

pub mod watchdog;
pub mod youtube;

#[cfg(feature = "hydrate")]
mod controller;
#[cfg(feature = "hydrate")]
mod hls;
#[cfg(feature = "hydrate")]
mod whep;

use leptos::prelude::*;

use watchdog::{Choice, Mode};

/// The choices the visitor has, in the order shown.
const CHOICES: [(Choice, &str); 4] = [
    (Choice::Auto, "Auto"),
    (Choice::Only(Mode::WebRtc), "WebRTC"),
    (Choice::Only(Mode::Hls), "HLS"),
    (Choice::Only(Mode::YouTube), "YouTube"),
];

/// What the player shows around it: how it plays and how far behind live.
#[derive(Clone, Copy)]
pub struct PlayerState {
    pub mode: RwSignal<Option<Mode>>,
    /// Seconds behind live, when the mode can tell.
    pub latency: RwSignal<Option<f64>>,
}

#[component]
pub fn Player(
    stream: String,
    /// Live with video, as the server last said.
    live: Signal<bool>,
    /// Config `youtube_fallback`.
    youtube: Signal<Option<String>>,
    state: PlayerState,
) -> AnyView {
    let PlayerState { mode, latency } = state;
    let choice = RwSignal::new(Choice::Auto);
    let muted = RwSignal::new(true);
    let video = NodeRef::<leptos::html::Video>::new();

    #[cfg(feature = "hydrate")]
    // Effects run after the view is mounted, so the element is there; this one
    // tracks nothing and runs once.
    Effect::new(move |_| {
        if let Some(element) = video.get_untracked() {
            controller::start(controller::Wiring {
                stream: stream.clone(),
                video: element,
                live,
                choice,
                mode,
                latency,
            });
        }
    });
    // On the server the player only renders; what it plays is the browser's.
    #[cfg(not(feature = "hydrate"))]
    let _ = (&stream, live, latency);

    let unmute = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(element) = video.get() {
            // In the tap's own handler: phones allow sound only from a gesture.
            element.set_muted(false);
            let _ = element.play();
        }
        muted.set(false);
    };
    let showing_video = move || mode.get().is_some_and(Mode::is_live);
    let embed = move || {
        (mode.get() == Some(Mode::YouTube)).then(|| {
            match youtube.get().as_deref().and_then(youtube::embed_url) {
                Some(src) => view! {
                    <iframe
                        class="youtube"
                        src=src
                        title="The tree on YouTube"
                        allow="autoplay; encrypted-media; picture-in-picture"
                        allowfullscreen=true
                    ></iframe>
                }
                .into_any(),
                None => view! {
                    <div class="offline-card">
                        <p class="big">"The tree is offline right now."</p>
                        <p>"This page starts playing by itself when it is back."</p>
                    </div>
                }
                .into_any(),
            }
        })
    };
    let buttons = CHOICES
        .into_iter()
        .map(|(option, label)| {
            view! {
                <button
                    type="button"
                    class="mode-button"
                    aria-pressed=move || (choice.get() == option).to_string()
                    on:click=move |_| choice.set(option)
                >
                    {label}
                </button>
            }
        })
        .collect_view();
    let playing = move || match mode.get() {
        None => "Connecting…".to_string(),
        // Without a fallback video the last resort is the offline card.
        Some(Mode::YouTube)
            if youtube
                .get()
                .as_deref()
                .and_then(youtube::embed_url)
                .is_some() =>
        {
            "Showing YouTube".to_string()
        }
        Some(Mode::YouTube) => "Offline: waiting for the stream".to_string(),
        Some(m) => format!("Playing over {}", m.label()),
    };
    let behind = move || {
        latency.get().filter(|_| showing_video()).map(|s| {
            if s < 1.0 {
                format!("about {:.0} ms behind live", s * 1000.0)
            } else {
                format!("about {s:.1} s behind live")
            }
        })
    };

    view! {
        <div class="player" data-mode=move || mode.get().map_or("waiting", Mode::label)>
            <div class="screen">
                <video
                    node_ref=video
                    class="video"
                    class:hidden=move || !showing_video()
                    playsinline=true
                    autoplay=true
                    muted=true
                    prop:muted=move || muted.get()
                ></video>
                {embed}
                <Show when=move || muted.get() && showing_video()>
                    <button type="button" class="unmute" on:click=unmute>

                        "Tap to unmute"
                    </button>
                </Show>
            </div>
            <div class="player-bar">
                <p class="playing">
                    <span class="mode">{playing}</span>
                    {move || behind().map(|b| view! { <span class="latency">{b}</span> })}
                </p>
                <div class="modes" role="group" aria-label="How to play">
                    {buttons}
                </div>
            </div>
        </div>
    }
    .into_any()
}
