//! The scheduler task: switches outlets at their daily transitions.
//!
//! At startup it gives every scheduled outlet the state due now (catching up
//! on transitions missed while the server was down). After that it acts only
//! at transitions, so an admin's command in the middle of a window stands
//! until the next one. It wakes at least once a minute and applies every
//! transition since its last look, so a late wake-up or a clock step never
//! skips one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::control::schedule::Window;
use crate::control::{Action, Lights, Schedule, Source};

/// The longest the scheduler sleeps between looks.
const MAX_SLEEP: Duration = Duration::from_secs(60);

pub async fn run(lights: Lights, token: CancellationToken) {
    let mut last = lights.now();
    for (schedule, window) in load(&lights).await {
        let due = window.due(lights.inner.timezone, last);
        apply(&lights, &schedule.outlet, due).await;
    }
    loop {
        let schedules = load(&lights).await;
        let now = lights.now();
        let next = schedules
            .iter()
            .filter_map(|(_, w)| w.next(lights.inner.timezone, last))
            .map(|t| t.at)
            .min();
        let wait = match next {
            // A transition already past (the clock stepped) is applied at once.
            Some(at) => (at - now).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        tokio::select! {
            () = token.cancelled() => return,
            // A new or changed schedule was applied when it was set; look
            // again with the new list (after the old list's due transitions).
            () = lights.inner.schedules_changed.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        let now = lights.now();
        apply_between(&lights, &schedules, last, now).await;
        last = now;
    }
}

/// Applies, per outlet, the last transition in `(from, to]`.
async fn apply_between(
    lights: &Lights,
    schedules: &[(Schedule, Window)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    for (schedule, window) in schedules {
        if let Some(last) = window.transitions(lights.inner.timezone, from, to).last() {
            apply(lights, &schedule.outlet, last.on).await;
        }
    }
}

async fn apply(lights: &Lights, outlet: &str, on: bool) {
    let action = if on { Action::On } else { Action::Off };
    // The outcome is audited and shown on the outlet.
    if let Err(err) = lights.command(outlet, action, Source::Schedule).await {
        warn!(%outlet, cause = %err, "scheduled switch failed");
    }
}

/// The stored schedules of outlets that still exist, with their windows.
async fn load(lights: &Lights) -> Vec<(Schedule, Window)> {
    let schedules = match lights.schedules().await {
        Ok(schedules) => schedules,
        Err(err) => {
            warn!(cause = %err, "cannot read the light schedules");
            return Vec::new();
        }
    };
    schedules
        .into_iter()
        .filter_map(|schedule| {
            if lights.check_outlet(&schedule.outlet).is_err() {
                warn!(outlet = %schedule.outlet, "a schedule names an outlet that is no longer configured; ignoring it");
                return None;
            }
            match Window::parse(&schedule.on, &schedule.off) {
                Ok(window) => Some((schedule, window)),
                Err(err) => {
                    warn!(outlet = %schedule.outlet, cause = %err, "ignoring a stored schedule");
                    None
                }
            }
        })
        .collect()
}
