//! The outward links: where the stream is pushed (YouTube) and the tweet
//! poller, each with whether it works and, if not, why.

use leptos::prelude::*;

use super::Panel;
use super::api::{PushView, TweetsView};

#[component]
pub(super) fn Links(panel: Panel) -> impl IntoView {
    view! {
        <section class="links">
            <h2>"Pushes"</h2>
            {move || {
                let pushes = panel.pushes.get();
                if pushes.is_empty() {
                    view! {
                        <p class="notice">"No push targets. Add a [[push]] url (rtmp://a.rtmp.youtube.com/live2/KEY) to the config file, or start with --push URL."</p>
                    }
                    .into_any()
                } else {
                    view! {
                        <ul class="pushes">
                            {pushes.into_iter().map(|push| view! { <PushLine push/> }).collect_view()}
                        </ul>
                    }
                    .into_any()
                }
            }}
            <h2>"Tweets"</h2>
            {move || panel.tweets.get().map(|tweets| view! { <TweetsLine tweets/> })}
        </section>
    }
    .into_any()
}

#[component]
fn PushLine(push: PushView) -> impl IntoView {
    let sent = format!("{:.1} MB sent", push.bytes_sent as f64 / 1e6);
    let error = push
        .last_error
        .filter(|_| !push.connected)
        .map(|e| view! { <span class="warning">" — "{e}</span> });
    let state = push.state.clone();
    view! {
        <li class="push" data-state=state>
            <strong>{push.target}</strong>" ("{push.stream}"): "{push.state}", "{sent}{error}
        </li>
    }
    .into_any()
}

#[component]
fn TweetsLine(tweets: TweetsView) -> impl IntoView {
    if !tweets.enabled {
        let how = tweets.how_to_enable.unwrap_or(tweets.detail);
        return view! { <p class="notice tweets" data-state="off">"The tweet poller is off. "{how}</p> }
            .into_any();
    }
    let failing = tweets.state != "ok";
    let query = tweets.query.unwrap_or_default();
    let last = tweets.last_poll_at.unwrap_or_else(|| "not yet".to_string());
    let state = tweets.state.clone();
    view! {
        <p class="tweets" class:warning=failing data-state=state>
            "Searching for "<code>{query}</code>": "{tweets.state}" — "{tweets.detail}
            <br/>
            {tweets.fired}" fired, "{tweets.coalesced}" folded into earlier flashes; last answer "{last}
        </p>
    }
    .into_any()
}
