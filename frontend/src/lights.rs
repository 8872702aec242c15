//! The tree's lights on the watch page: one bulb per outlet (on, off or
//! unknown) and the latest actions, as the server pushes them.

use leptos::prelude::*;

use crate::api::{AuditEntry, OutletState};
use crate::live::LiveFeed;

#[component]
pub fn Lights(feed: LiveFeed) -> AnyView {
    let bulbs = move || match feed.lights.get() {
        None => view! { <p class="quiet">"Asking the tree…"</p> }.into_any(),
        Some(outlets) if outlets.is_empty() => {
            view! { <p class="quiet">"No lights are wired up."</p> }.into_any()
        }
        Some(outlets) => view! {
            <ul class="bulbs">
                {outlets.into_iter().map(|outlet| view! { <Bulb outlet/> }).collect_view()}
            </ul>
        }
        .into_any(),
    };
    let actions = move || {
        feed.actions
            .get()
            .iter()
            .filter_map(describe)
            .map(|line| view! { <li>{line}</li> })
            .collect_view()
    };
    view! {
        <section class="lights" aria-labelledby="lights-title">
            <h2 id="lights-title">"The lights"</h2>
            {bulbs}
            <ul class="actions" aria-live="polite">{actions}</ul>
        </section>
    }
    .into_any()
}

#[component]
fn Bulb(outlet: OutletState) -> AnyView {
    let (state, said) = match outlet.on {
        Some(true) => ("on", "on"),
        Some(false) => ("off", "off"),
        None => ("unknown", "unknown"),
    };
    let (name, error) = (outlet.name.clone(), outlet.error.clone());
    view! {
        <li class="bulb" data-outlet=name data-state=state title=error>
            <span class="dot" aria-hidden="true"></span>
            <span class="outlet">{outlet.name}</span>
            <span class="state">{said}</span>
            {outlet.simulated.then(|| view! { <span class="tag">"simulated"</span> })}
            {outlet.error.map(|_| view! { <span class="tag warn">"not answering"</span> })}
        </li>
    }
    .into_any()
}

/// One audit entry as a line for visitors: "@ana switched tree-lights on",
/// "@elf lit the tree". `None` for bookkeeping visitors need not see (the end
/// of a flash).
pub fn describe(entry: &AuditEntry) -> Option<String> {
    let action = entry.action.as_str();
    if action == "flash end" {
        return None;
    }
    let failed = !entry.result.starts_with("ok");
    // A tweet's action names its author: "flash 5 s for @name".
    if let Some((_, author)) = action.split_once(" for @") {
        let line = format!("@{author} lit the tree");
        return Some(if failed {
            format!("{line}, but the lights did not answer")
        } else {
            line
        });
    }
    let who = match entry.source.split_once(':') {
        Some(("admin", name)) => format!("@{name}"),
        Some(("tweet", _)) => "A tweet".to_string(),
        _ if entry.source == "schedule" => "The schedule".to_string(),
        _ => entry.source.clone(),
    };
    let outlet = &entry.outlet;
    let did = match action {
        "on" => format!("switched {outlet} on"),
        "off" => format!("switched {outlet} off"),
        "toggle" => format!("toggled {outlet}"),
        flash if flash.starts_with("flash") => format!("flashed {outlet}"),
        other => format!("did {other} on {outlet}"),
    };
    Some(if failed {
        format!("{who} {did}, but it failed")
    } else {
        format!("{who} {did}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(source: &str, action: &str, result: &str) -> AuditEntry {
        AuditEntry {
            at: "2026-12-24T18:00:00Z".into(),
            source: source.into(),
            outlet: "tree-lights".into(),
            action: action.into(),
            result: result.into(),
        }
    }

    #[test]
    fn lines_for_visitors() {
        let line = |source, action, result| describe(&entry(source, action, result)).unwrap();
        assert_eq!(
            line("admin:ana", "on", "ok: on"),
            "@ana switched tree-lights on"
        );
        assert_eq!(
            line("admin:ana", "flash 5 s", "ok: on"),
            "@ana flashed tree-lights"
        );
        assert_eq!(
            line("tweet:123", "flash 5 s for @elf", "ok: on"),
            "@elf lit the tree"
        );
        assert_eq!(
            line("tweet:123", "flash 5 s", "ok: on"),
            "A tweet flashed tree-lights"
        );
        assert_eq!(
            line("schedule", "off", "ok: off"),
            "The schedule switched tree-lights off"
        );
        assert_eq!(
            line("admin:bo", "toggle", "PDU unreachable"),
            "@bo toggled tree-lights, but it failed"
        );
        assert_eq!(describe(&entry("tweet:123", "flash end", "ok: off")), None);
    }
}
