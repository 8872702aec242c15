//! Daily on/off times per outlet, in the server's time zone.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::{Panel, api};

#[component]
pub(super) fn Schedules(panel: Panel) -> impl IntoView {
    // Only the names: the form's choices must not be rebuilt on every refresh.
    let names = Memo::new(move |_| {
        panel
            .outlets
            .with(|list| list.iter().map(|o| o.name.clone()).collect::<Vec<_>>())
    });
    let outlet = RwSignal::new(String::new());
    let on = RwSignal::new("07:30".to_string());
    let off = RwSignal::new("19:00".to_string());
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let chosen = outlet.get_untracked();
        let chosen = if chosen.is_empty() {
            names.with_untracked(|n| n.first().cloned().unwrap_or_default())
        } else {
            chosen
        };
        spawn_local(async move {
            match api::schedule_put(
                chosen,
                on.get_untracked(),
                off.get_untracked(),
                panel.csrf(),
            )
            .await
            {
                Ok(_) => {
                    panel.error.set(None);
                    panel.refresh();
                }
                Err(err) => panel.fail(err),
            }
        });
    };
    let timezone = move || {
        panel
            .schedules
            .with(|s| s.as_ref().map(|s| s.timezone.clone()))
            .unwrap_or_default()
    };
    let rows = move || {
        let list = panel
            .schedules
            .with(|s| s.as_ref().map(|s| s.schedules.clone()));
        list.unwrap_or_default()
            .into_iter()
            .map(|schedule| {
                let name = schedule.outlet.clone();
                let delete = move |_| {
                    let name = name.clone();
                    spawn_local(async move {
                        match api::schedule_delete(name, panel.csrf()).await {
                            Ok(()) => panel.refresh(),
                            Err(err) => panel.fail(err),
                        }
                    });
                };
                let label = schedule.outlet.clone();
                view! {
                    <li data-schedule=schedule.outlet>
                        <span class="name">{label}</span>
                        <span>"on "{schedule.on}</span>
                        <span>"off "{schedule.off}</span>
                        <button class="big" on:click=delete>"Delete"</button>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <section class="schedules">
            <h2>"Schedules"</h2>
            <p class="hint">"Times are in "{timezone}". A schedule is applied at once, and caught up after a restart."</p>
            <ul class="schedule-list">{rows}</ul>
            <form class="schedule-form" on:submit=save>
                <label>
                    "Outlet"
                    <select on:change=move |ev| outlet.set(event_target_value(&ev))>
                        {move || names.get().into_iter()
                            .map(|n| {
                                let label = n.clone();
                                view! { <option value=n>{label}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    "On at"
                    <input type="time" step="1" required prop:value=move || on.get()
                        on:input=move |ev| on.set(event_target_value(&ev))/>
                </label>
                <label>
                    "Off at"
                    <input type="time" step="1" required prop:value=move || off.get()
                        on:input=move |ev| off.set(event_target_value(&ev))/>
                </label>
                <button type="submit" class="big">"Save schedule"</button>
            </form>
        </section>
    }
    .into_any()
}
