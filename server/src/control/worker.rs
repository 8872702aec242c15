//! One PDU's worker: the task that owns its outlets.
//!
//! Commands for the PDU queue here and run one at a time, so two switches of
//! one PDU never cross; a PDU that does not answer holds up only this queue.
//! Every switch is read back. A poll reads all outlets now and then, so a
//! switch made at the PDU itself shows up too. The poll runs beside the
//! commands, so a command to a dead PDU fails in its own time limit rather
//! than after a poll's; a poll's answer is dropped for an outlet switched
//! since the poll began, as the switch's read-back is newer.
//!
//! Flash: the outlet goes on, and after the given seconds back to the state
//! it had. The relay guard checks both switches when the flash starts and
//! never refuses the return. A flash of an outlet that is already flashing
//! extends it; any other command ends the flash, and its state stands.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::control::guard::{GuardSettings, RelayGuard};
use crate::control::pdu::{Pdu, PduError};
use crate::control::{Action, Audit, ControlError, OutletState, Source};

pub enum Request {
    Command {
        /// The outlet's place among this worker's outlets.
        slot: usize,
        action: Action,
        source: Source,
        reply: oneshot::Sender<Result<OutletState, ControlError>>,
    },
}

struct Slot {
    name: String,
    /// Place in the list every outlet's state is published in.
    global: usize,
    /// The outlet's index on the PDU.
    index: u32,
    /// `None` until read, and after a failure left it unknown.
    on: Option<bool>,
    error: Option<String>,
    guard: RelayGuard,
    flash: Option<Flash>,
    /// Counts sets, so a poll that began before one is not believed after it.
    sets: u64,
}

struct Flash {
    until: Instant,
    back_to: bool,
    source: Source,
}

/// A poll's answer, with each outlet's set count when it began.
type PollResult = (Vec<u64>, Result<Vec<bool>, PduError>);

pub struct Worker {
    pdu: Arc<Pdu>,
    slots: Vec<Slot>,
    guard: GuardSettings,
    poll: Duration,
    states: std::sync::Arc<watch::Sender<Vec<OutletState>>>,
    audit: Audit,
}

impl Worker {
    /// `outlets`: per outlet, its place in the published list, its name and
    /// its index on the PDU.
    pub(crate) fn new(
        pdu: Pdu,
        outlets: Vec<(usize, String, u32)>,
        guard: GuardSettings,
        poll: Duration,
        states: std::sync::Arc<watch::Sender<Vec<OutletState>>>,
        audit: Audit,
    ) -> Self {
        let slots = outlets
            .into_iter()
            .map(|(global, name, index)| Slot {
                name,
                global,
                index,
                on: None,
                error: None,
                guard: RelayGuard::new(guard),
                flash: None,
                sets: 0,
            })
            .collect();
        Self {
            pdu: Arc::new(pdu),
            slots,
            guard,
            poll,
            states,
            audit,
        }
    }

    /// Serves commands until `token` is cancelled or every handle is gone;
    /// outlets still flashing are put back first.
    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>, token: CancellationToken) {
        if self.slots.is_empty() {
            return;
        }
        let first = self.poll_all().await;
        self.apply_poll(first);
        let mut poll = interval_at(Instant::now() + self.poll, self.poll);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // At most one poll at a time; dropping the set at the end stops it.
        let mut polls: JoinSet<PollResult> = JoinSet::new();
        loop {
            let flash_ends = self
                .slots
                .iter()
                .filter_map(|s| s.flash.as_ref().map(|f| f.until))
                .min();
            tokio::select! {
                () = token.cancelled() => break,
                request = requests.recv() => match request {
                    Some(Request::Command { slot, action, source, reply }) => {
                        let result = self.command(slot, action, source).await;
                        // The asker may have given up; the outlet is switched regardless.
                        let _ = reply.send(result);
                    }
                    None => break,
                },
                _ = poll.tick(), if polls.is_empty() => {
                    polls.spawn(self.poll_all());
                }
                Some(done) = polls.join_next(), if !polls.is_empty() => {
                    if let Ok(result) = done {
                        self.apply_poll(result);
                    }
                }
                () = sleep_until(flash_ends.unwrap_or_else(far_future)), if flash_ends.is_some() => {
                    self.end_flashes(Instant::now()).await;
                }
            }
        }
        // Outlets flashing at shutdown go back now, rather than stay on.
        self.end_flashes(far_future()).await;
    }

    async fn command(
        &mut self,
        s: usize,
        action: Action,
        source: Source,
    ) -> Result<OutletState, ControlError> {
        // Toggle and flash depend on the present state.
        if matches!(action, Action::Toggle | Action::Flash { .. }) && self.slots[s].on.is_none() {
            self.read_one(s).await?;
        }
        let now = Instant::now();
        let slot = &mut self.slots[s];
        let current = slot.on;
        match action {
            Action::Flash { seconds } => {
                let until = now + Duration::from_secs(u64::from(seconds));
                if let Some(flash) = &mut slot.flash {
                    flash.until = flash.until.max(until);
                    return Ok(self.state(s));
                }
                // read_one() succeeded, so the state is known.
                let back_to = current.unwrap_or(false);
                if back_to {
                    // Already on: on for N seconds and back to on switches nothing.
                    return Ok(self.state(s));
                }
                self.check_guard(s, now, 2)?;
                let result = self.switch(s, true, now).await;
                // Even after a failure: the set may have landed before the
                // answer was lost, and the tree must not stay on.
                self.slots[s].flash = Some(Flash {
                    until,
                    back_to,
                    source,
                });
                result
            }
            Action::On | Action::Off | Action::Toggle => {
                let target = match action {
                    Action::On => true,
                    Action::Off => false,
                    _ => !current.unwrap_or(false),
                };
                let needed = u32::from(current != Some(target));
                self.check_guard(s, now, needed)?;
                self.slots[s].flash = None;
                self.switch(s, target, now).await
            }
        }
    }

    fn check_guard(&mut self, s: usize, now: Instant, needed: u32) -> Result<(), ControlError> {
        let window_s = self.guard.window.as_secs();
        let slot = &mut self.slots[s];
        slot.guard
            .check(now.into_std(), needed)
            .map_err(|refusal| ControlError::Guard {
                outlet: slot.name.clone(),
                switches: refusal.switches,
                window_s,
                retry_after_s: refusal.retry_after.as_secs_f64().ceil() as u64,
            })
    }

    /// Sets the outlet and reads it back.
    async fn switch(
        &mut self,
        s: usize,
        on: bool,
        now: Instant,
    ) -> Result<OutletState, ControlError> {
        let index = self.slots[s].index;
        let before = self.slots[s].on;
        self.slots[s].sets += 1;
        if let Err(err) = self.pdu.set(index, on).await {
            // The set may or may not have happened before the failure.
            return Err(self.fail(s, err.to_string()));
        }
        if before != Some(on) {
            self.slots[s].guard.record(now.into_std());
        }
        self.read_one(s).await?;
        Ok(self.state(s))
    }

    async fn read_one(&mut self, s: usize) -> Result<(), ControlError> {
        match self.pdu.read(&[self.slots[s].index]).await {
            Ok(states) => {
                let slot = &mut self.slots[s];
                slot.on = states.first().copied();
                slot.error = None;
                self.publish();
                Ok(())
            }
            Err(err) => Err(self.fail(s, err.to_string())),
        }
    }

    fn fail(&mut self, s: usize, message: String) -> ControlError {
        let slot = &mut self.slots[s];
        slot.on = None;
        slot.error = Some(message.clone());
        let outlet = slot.name.clone();
        self.publish();
        ControlError::Unreachable { outlet, message }
    }

    /// Reads every outlet of the PDU in one request, without holding `self`.
    fn poll_all(&self) -> impl Future<Output = PollResult> + Send + 'static {
        let pdu = Arc::clone(&self.pdu);
        let indexes: Vec<u32> = self.slots.iter().map(|s| s.index).collect();
        let sets: Vec<u64> = self.slots.iter().map(|s| s.sets).collect();
        async move { (sets, pdu.read(&indexes).await) }
    }

    fn apply_poll(&mut self, (sets, result): PollResult) {
        let message = result.as_ref().err().map(ToString::to_string);
        if let Some(message) = &message
            && self.slots.iter().all(|s| s.error.as_ref() != Some(message))
        {
            warn!(cause = %message, "PDU poll failed");
        }
        let states = result.ok();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.sets != sets[i] {
                continue;
            }
            slot.on = states.as_ref().map(|v| v[i]);
            slot.error.clone_from(&message);
        }
        self.publish();
    }

    /// Puts back every outlet whose flash ends by `now`, never refused by the guard.
    async fn end_flashes(&mut self, now: Instant) {
        for s in 0..self.slots.len() {
            let ended = self.slots[s].flash.as_ref().is_some_and(|f| f.until <= now);
            if !ended {
                continue;
            }
            let Some(flash) = self.slots[s].flash.take() else {
                continue;
            };
            let result = self.switch(s, flash.back_to, Instant::now()).await;
            let outcome = match &result {
                Ok(state) if state.on == Some(flash.back_to) => {
                    format!("ok: {}", if flash.back_to { "on" } else { "off" })
                }
                Ok(_) => "the outlet did not go back".to_string(),
                Err(err) => err.to_string(),
            };
            if result.is_err() {
                info!(outlet = %self.slots[s].name, %outcome, "flash could not end");
            }
            let name = self.slots[s].name.clone();
            self.audit
                .record(&flash.source, &name, "flash end", outcome)
                .await;
        }
    }

    fn state(&self, s: usize) -> OutletState {
        let slot = &self.slots[s];
        OutletState {
            name: slot.name.clone(),
            on: slot.on,
            simulated: self.pdu.simulated(),
            error: slot.error.clone(),
        }
    }

    /// Shows this PDU's outlets to everyone; listeners wake only on a change.
    fn publish(&self) {
        self.states.send_if_modified(|all| {
            let mut changed = false;
            for (s, slot) in self.slots.iter().enumerate() {
                let state = self.state(s);
                if let Some(shown) = all.get_mut(slot.global)
                    && *shown != state
                {
                    *shown = state;
                    changed = true;
                }
            }
            changed
        });
    }
}

/// A deadline that never comes, for a `select!` branch that is switched off.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
