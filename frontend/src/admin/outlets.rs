//! The outlets, their live state, and the buttons that switch them.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::{Panel, api};
use crate::api::OutletState;

/// How long the flash button shows an outlet the other way.
const FLASH_S: u32 = 5;

#[component]
pub(super) fn Outlets(panel: Panel) -> impl IntoView {
    view! {
        <section class="outlets">
            <h2>"Outlets"</h2>
            <div class="outlet-grid">
                {move || panel.outlets.get().into_iter()
                    .map(|outlet| view! { <OutletCard panel outlet/> })
                    .collect_view()}
            </div>
        </section>
    }
    .into_any()
}

#[component]
fn OutletCard(panel: Panel, outlet: OutletState) -> impl IntoView {
    let state = match outlet.on {
        Some(true) => "on",
        Some(false) => "off",
        None => "unknown",
    };
    let name = outlet.name.clone();
    let button = move |label: &'static str, action: &'static str, seconds: Option<u32>| {
        let name = name.clone();
        let click = move |_| {
            let name = name.clone();
            spawn_local(async move {
                match api::command(name, action, seconds, panel.csrf()).await {
                    Ok(updated) => {
                        panel.error.set(None);
                        panel.outlets.update(|list| {
                            if let Some(o) = list.iter_mut().find(|o| o.name == updated.name) {
                                *o = updated;
                            }
                        });
                        panel.refresh();
                    }
                    Err(err) => panel.fail(err),
                }
            });
        };
        view! { <button class=format!("big {action}") data-action=action on:click=click>{label}</button> }
    };
    view! {
        <article class="outlet" data-outlet=outlet.name.clone() data-state=state>
            <h3>
                <span class="name">{outlet.name.clone()}</span>
                <span class=format!("badge {state}")>{state}</span>
                {outlet.simulated.then(|| view! { <span class="badge simulated">"simulated"</span> })}
                {outlet.protected.then(|| view! {
                    <span class="badge protected" title="protected: it never flashes, and tweets never switch it">"protected"</span>
                })}
            </h3>
            {outlet.error.map(|e| view! { <p class="notice error">{e}</p> })}
            <div class="buttons">
                {button("On", "on", None)}
                {button("Off", "off", None)}
                {button("Toggle", "toggle", None)}
                {(!outlet.protected).then(|| button("Flash 5 s", "flash", Some(FLASH_S)))}
                {button("Reboot", "reboot", None)}
            </div>
        </article>
    }
    .into_any()
}
