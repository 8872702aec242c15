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
/// "@elf made the tree blink". `None` for bookkeeping visitors need not see
/// (the end of a flash that went well, a schedule saved).
pub fn describe(entry: &AuditEntry) -> Option<String> {
    let action = entry.action.as_str();
    let outlet = &entry.outlet;
    if action == "flash end" {
        return (!entry.ok).then(|| format!("{outlet} did not go back after its flash"));
    }
    if action.starts_with("schedule") {
        return None;
    }
    let failed = !entry.ok;
    // A tweet's action names its author: "flash 5 s for @name".
    if let Some((verb, author)) = action.split_once(" for @") {
        if failed {
            return Some(format!(
                "@{author} tweeted at the tree, but the lights did not answer"
            ));
        }
        let did = match verb {
            "on" => "lit the tree",
            "off" => "switched the tree off",
            "toggle" => "switched the tree over",
            _ => "made the tree blink",
        };
        return Some(format!("@{author} {did}"));
    }
    let who = match entry.source.split_once(':') {
        Some(("admin", name)) => format!("@{name}"),
        Some(("tweet", _)) => "A tweet".to_string(),
        _ if entry.source == "schedule" => "The schedule".to_string(),
        _ => entry.source.clone(),
    };
    let already = entry.result.starts_with("already");
    let did = match action {
        "on" | "off" if already => format!("kept {outlet} {action}"),
        "on" | "off" => format!("switched {outlet} {action}"),
        "toggle" => format!("toggled {outlet}"),
        "reboot" => format!("rebooted {outlet}"),
        flash if flash.starts_with("flash") => format!("made {outlet} blink"),
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

    fn entry(source: &str, action: &str, result: &str, ok: bool) -> AuditEntry {
        AuditEntry {
            at: "2026-12-24T18:00:00Z".into(),
            source: source.into(),
            outlet: "tree-lights".into(),
            action: action.into(),
            result: result.into(),
            ok,
        }
    }

    #[test]
    fn lines_for_visitors() {
        let line = |source, action, result| describe(&entry(source, action, result, true)).unwrap();
        let failed =
            |source, action, result| describe(&entry(source, action, result, false)).unwrap();
        assert_eq!(
            line("admin:ana", "on", "switched on (was off)"),
            "@ana switched tree-lights on"
        );
        assert_eq!(
            line("schedule", "on", "already on"),
            "The schedule kept tree-lights on"
        );
        assert_eq!(
            line(
                "admin:ana",
                "flash 5 s",
                "flashed off for 5 s (read back: off)"
            ),
            "@ana made tree-lights blink"
        );
        assert_eq!(
            line(
                "tweet:123",
                "flash 5 s for @elf",
                "flashed off for 5 s (read back: off)"
            ),
            "@elf made the tree blink"
        );
        assert_eq!(
            failed("tweet:123", "flash 5 s for @elf", "PDU unreachable"),
            "@elf tweeted at the tree, but the lights did not answer"
        );
        assert_eq!(
            line(
                "tweet:123",
                "flash 5 s",
                "flashed on for 5 s (read back: on)"
            ),
            "A tweet made tree-lights blink"
        );
        assert_eq!(
            line("schedule", "off", "switched off (was on)"),
            "The schedule switched tree-lights off"
        );
        assert_eq!(
            failed("admin:bo", "toggle", "PDU unreachable"),
            "@bo toggled tree-lights, but it failed"
        );
        assert_eq!(
            line("admin:bo", "reboot", "rebooting (read back: rebooting)"),
            "@bo rebooted tree-lights"
        );
        assert_eq!(
            describe(&entry(
                "tweet:123",
                "flash end",
                "back on (read back: on)",
                true
            )),
            None
        );
        assert_eq!(
            failed("tweet:123", "flash end", "did not go back on: timeout"),
            "tree-lights did not go back after its flash"
        );
        assert_eq!(
            describe(&entry("admin:ana", "schedule 18:00-23:00", "saved", true)),
            None
        );
    }
}
