//! One PDU's worker: the task that owns its outlets.
//!
//! Commands for the PDU queue here and run one at a time, so two switches of
//! one PDU never cross; a PDU that does not answer holds up only this queue.
//! A command acts on the PDU's truth: the outlet is read first unless it was
//! read a moment ago, every switch is sent (a set is idempotent at the PDU)
//! and read back. A poll reads all outlets now and then, so a switch made at
//! the PDU itself shows up too. The poll runs beside the commands, so a
//! command to a dead PDU fails in its own time limit rather than after a
//! poll's; a poll's answer is dropped for an outlet switched since the poll
//! began, as the switch's read-back is newer.
//!
//! Flash: the outlet shows the opposite of its state for the given seconds,
//! then goes back, so it is seen whether the tree was lit or dark; with more
//! blinks, it does so that many times, the seconds apart. The relay guard
//! checks every switch of the flash when it starts and never refuses the
//! return. A return the PDU misses is tried again, with growing waits, until
//! the outlet is back or the tries run out (audited either way). A flash of an
//! outlet already flashing joins it; any other command ends the flash, and
//! its state stands.
//!
//! What must outlive the process is in the database: the guard's recent
//! switches, and each flash until it is back, so a process that dies
//! mid-flash puts the outlet back when it starts again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::control::guard::{GuardSettings, RelayGuard};
use crate::control::outcome::{Change, Outcome, read_back, word};
use crate::control::pdu::{Pdu, PduError};
use crate::control::store::Store;
use crate::control::{Action, Audit, ControlError, OutletState, Source};
use crate::db::{instant_at, unix_ms};

/// A read this recent is the PDU's truth; an older one is read again before
/// a command. Short: a switch at the PDU a second before a tweet must count.
const FRESH: Duration = Duration::from_millis(300);
/// Tries to put a flashed outlet back before giving up, and the longest wait
/// between two: 1, 2, 4 … 30 s, about four minutes in all.
const RETURN_TRIES: u32 = 12;
const RETURN_MAX_WAIT: Duration = Duration::from_secs(30);
/// After a reboot, the outlet is read this often until it reads on or off,
/// for at most `REBOOT_WATCH`.
const REBOOT_READ_EVERY: Duration = Duration::from_secs(2);
const REBOOT_WATCH: Duration = Duration::from_secs(120);

pub enum Request {
    Command {
        /// The outlet's place among this worker's outlets.
        slot: usize,
        action: Action,
        source: Source,
        reply: oneshot::Sender<Result<Outcome, ControlError>>,
    },
}

/// One outlet as the worker sees it: `(place in the published list, name,
/// index on the PDU, protected)`.
pub type OutletSpec = (usize, String, u32, bool);

struct Slot {
    name: String,
    /// Place in the list every outlet's state is published in.
    global: usize,
    /// The outlet's index on the PDU.
    index: u32,
    protected: bool,
    /// `None` until read, while it reboots, and after a failure left it unknown.
    on: Option<bool>,
    /// When `on` was last read from the PDU.
    read_at: Option<Instant>,
    error: Option<String>,
    guard: RelayGuard,
    flash: Option<Flash>,
    /// Until when a reboot is watched for its end.
    rebooting_until: Option<Instant>,
    /// Counts sets, so a poll that began before one is not believed after it.
    sets: u64,
}

struct Flash {
    /// The state the outlet goes back to.
    back_to: bool,
    /// How long each blink, and each pause between blinks, lasts.
    length: Duration,
    /// Switches still to make; the last puts the outlet back.
    left: u32,
    /// When the next switch is due.
    next: Instant,
    source: Source,
    /// Tries to put the outlet back that failed.
    failures: u32,
}

impl Flash {
    /// The state the next switch gives: back, or the flashed state again.
    fn target(&self) -> bool {
        if self.left % 2 == 1 {
            self.back_to
        } else {
            !self.back_to
        }
    }
}

/// A poll's answer, with each outlet's set count when it began.
type PollResult = (Vec<u64>, Result<Vec<Option<bool>>, PduError>);

pub struct Worker {
    pdu: Arc<Pdu>,
    slots: Vec<Slot>,
    guard: GuardSettings,
    poll: Duration,
    states: std::sync::Arc<watch::Sender<Vec<OutletState>>>,
    audit: Audit,
    store: Store,
}

impl Worker {
    pub(crate) fn new(
        pdu: Pdu,
        outlets: Vec<OutletSpec>,
        guard: GuardSettings,
        poll: Duration,
        states: std::sync::Arc<watch::Sender<Vec<OutletState>>>,
        audit: Audit,
        store: Store,
    ) -> Self {
        let slots = outlets
            .into_iter()
            .map(|(global, name, index, protected)| Slot {
                name,
                global,
                index,
                protected,
                on: None,
                read_at: None,
                error: None,
                guard: RelayGuard::new(guard),
                flash: None,
                rebooting_until: None,
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
            store,
        }
    }

    /// Serves commands until `token` is cancelled or every handle is gone;
    /// outlets still flashing are put back first.
    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>, token: CancellationToken) {
        if self.slots.is_empty() {
            return;
        }
        self.recall().await;
        let first = self.poll_all().await;
        self.apply_poll(first);
        let mut poll = interval_at(Instant::now() + self.poll, self.poll);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // At most one poll at a time; dropping the set at the end stops it.
        let mut polls: JoinSet<PollResult> = JoinSet::new();
        loop {
            let due = self.next_due();
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
                () = sleep_until(due.unwrap_or_else(far_future)), if due.is_some() => {
                    self.handle_timeout(Instant::now()).await;
                }
            }
        }
        // Outlets flashing at shutdown go back now, rather than stay flashed.
        // One try each: if it fails, the database still holds the flash and
        // the next start puts the outlet back.
        for s in 0..self.slots.len() {
            let Some(flash) = self.slots[s].flash.take() else {
                continue;
            };
            let name = self.slots[s].name.clone();
            match self.switch(s, flash.back_to, Instant::now()).await {
                Ok(()) => {
                    self.forget_flash(s).await;
                    let result =
                        format!("back {0} at shutdown (read back: {0})", word(flash.back_to));
                    self.audit
                        .record(&flash.source, &name, "flash end", result, true)
                        .await;
                }
                Err(err) => warn!(outlet = %name, cause = %err,
                    "a flash could not end before the stop; the next start puts the outlet back"),
            }
        }
    }

    /// Loads what the last process left: each outlet's recent switches for
    /// its relay guard, and flashes that never ended (due at once).
    async fn recall(&mut self) {
        let window = self.guard.window;
        let since = unix_ms(SystemTime::now() - window);
        let (now, wall_now) = (Instant::now(), unix_ms(SystemTime::now()));
        for slot in &mut self.slots {
            match self.store.switches(&slot.name, since).await {
                Ok(switches) => {
                    for at_ms in switches {
                        slot.guard
                            .record(instant_at(at_ms, wall_now, now.into_std()));
                    }
                }
                Err(err) => warn!(
                    outlet = %slot.name, cause = %err,
                    "cannot read the relay guard's recent switches; the guard starts empty"
                ),
            }
            match self.store.flash(&slot.name).await {
                Ok(Some((back_to, source))) => {
                    info!(outlet = %slot.name, back_to = word(back_to),
                        "a flash did not end before the last stop; putting the outlet back");
                    slot.flash = Some(Flash {
                        back_to,
                        length: Duration::ZERO,
                        left: 1,
                        next: now,
                        source: Source::parse(&source),
                        failures: 0,
                    });
                }
                Ok(None) => {}
                Err(err) => warn!(outlet = %slot.name, cause = %err,
                    "cannot read whether a flash was left unfinished"),
            }
        }
    }

    /// The earliest flash step or reboot read that is due.
    fn next_due(&self) -> Option<Instant> {
        self.slots
            .iter()
            .flat_map(|s| {
                let reboot = s
                    .rebooting_until
                    .map(|_| s.read_at.unwrap_or_else(Instant::now) + REBOOT_READ_EVERY);
                [s.flash.as_ref().map(|f| f.next), reboot]
            })
            .flatten()
            .min()
    }

    async fn handle_timeout(&mut self, now: Instant) {
        for s in 0..self.slots.len() {
            if self.slots[s].flash.as_ref().is_some_and(|f| f.next <= now) {
                self.flash_step(s).await;
            }
            if let Some(until) = self.slots[s].rebooting_until {
                let read_due = self.slots[s]
                    .read_at
                    .is_none_or(|at| at + REBOOT_READ_EVERY <= now);
                if read_due {
                    // A failed read is shown on the outlet; the watch goes on.
                    let _ = self.read_one(s).await;
                    if self.slots[s].on.is_some() || now >= until {
                        self.slots[s].rebooting_until = None;
                    }
                }
            }
        }
    }

    async fn command(
        &mut self,
        s: usize,
        action: Action,
        source: Source,
    ) -> Result<Outcome, ControlError> {
        let now = Instant::now();
        let fresh = self.slots[s]
            .read_at
            .is_some_and(|at| now.saturating_duration_since(at) < FRESH)
            && self.slots[s].error.is_none();
        if !fresh {
            // A PDU that does not answer a read would not answer a set either.
            self.read_one(s).await?;
        }
        let current = self.slots[s].on;
        match action {
            Action::Flash { seconds, blinks } => {
                if self.slots[s].flash.is_some() {
                    return Ok(self.outcome(s, Change::StillFlashing));
                }
                let back_to = current.ok_or_else(|| self.rebooting(s))?;
                self.check_guard(s, now, 2 * blinks)?;
                let length = Duration::from_secs(u64::from(seconds));
                let flash = Flash {
                    back_to,
                    length,
                    left: 2 * blinks - 1,
                    next: now + length,
                    source: source.clone(),
                    failures: 0,
                };
                let name = self.slots[s].name.clone();
                if let Err(err) = self
                    .store
                    .put_flash(&name, back_to, &source.to_string())
                    .await
                {
                    warn!(outlet = %name, cause = %err,
                        "cannot note the flash in the database; a crash mid-flash would leave it flashed");
                }
                let result = self.switch(s, !back_to, now).await;
                // Even after a failure: the set may have landed before the
                // answer was lost, and the tree must not stay flashed.
                self.slots[s].flash = Some(flash);
                if result.is_err()
                    && let Some(flash) = &mut self.slots[s].flash
                {
                    flash.left = 1;
                }
                result?;
                Ok(self.outcome(
                    s,
                    Change::Flashing {
                        to: !back_to,
                        seconds,
                        blinks,
                    },
                ))
            }
            Action::On | Action::Off | Action::Toggle => {
                let target = match action {
                    Action::On => true,
                    Action::Off => false,
                    _ => !current.ok_or_else(|| self.rebooting(s))?,
                };
                let needed = u32::from(current != Some(target));
                self.check_guard(s, now, needed)?;
                self.end_flash(s).await;
                self.switch(s, target, now).await?;
                let change = if current == Some(target) {
                    Change::Already { on: target }
                } else {
                    Change::Switched {
                        on: target,
                        was: current,
                    }
                };
                Ok(self.outcome(s, change))
            }
            Action::Reboot => {
                self.check_guard(s, now, 2)?;
                self.end_flash(s).await;
                let index = self.slots[s].index;
                self.slots[s].sets += 1;
                if let Err(err) = self.pdu.reboot(index).await {
                    return Err(match err {
                        PduError::CannotReboot { .. } => ControlError::Invalid(err.to_string()),
                        other => self.fail(s, other.to_string()),
                    });
                }
                // Off and on again: two switches of the relay.
                self.record_switch(s, now).await;
                self.record_switch(s, now).await;
                self.read_one(s).await?;
                if self.slots[s].on.is_none() {
                    self.slots[s].rebooting_until = Some(now + REBOOT_WATCH);
                }
                Ok(self.outcome(s, Change::Rebooted))
            }
        }
    }

    fn outcome(&self, s: usize, change: Change) -> Outcome {
        Outcome {
            state: self.state(s),
            change,
        }
    }

    fn rebooting(&self, s: usize) -> ControlError {
        ControlError::Rebooting {
            outlet: self.slots[s].name.clone(),
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

    /// Sets the outlet and reads it back; an outlet that reads otherwise than
    /// it was told is an error.
    async fn switch(&mut self, s: usize, on: bool, now: Instant) -> Result<(), ControlError> {
        let index = self.slots[s].index;
        let before = self.slots[s].on;
        self.slots[s].sets += 1;
        if let Err(err) = self.pdu.set(index, on).await {
            // The set may or may not have happened before the failure.
            return Err(self.fail(s, err.to_string()));
        }
        if before != Some(on) {
            self.record_switch(s, now).await;
        }
        self.read_one(s).await?;
        let read = self.slots[s].on;
        if read == Some(on) {
            Ok(())
        } else {
            Err(ControlError::NotSwitched {
                outlet: self.slots[s].name.clone(),
                wanted: word(on),
                read: read_back(read),
            })
        }
    }

    /// Counts a switch in the outlet's relay guard, here and in the database.
    async fn record_switch(&mut self, s: usize, now: Instant) {
        self.slots[s].guard.record(now.into_std());
        let wall = SystemTime::now();
        let name = &self.slots[s].name;
        if let Err(err) = self
            .store
            .add_switch(name, unix_ms(wall), unix_ms(wall - self.guard.window))
            .await
        {
            warn!(outlet = %name, cause = %err,
                "cannot note a switch in the database; a restart now would forget it");
        }
    }

    async fn read_one(&mut self, s: usize) -> Result<(), ControlError> {
        match self.pdu.read(&[self.slots[s].index]).await {
            Ok(states) => {
                let slot = &mut self.slots[s];
                slot.on = states.first().copied().flatten();
                slot.read_at = Some(Instant::now());
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
        slot.read_at = None;
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
        let now = Instant::now();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.sets != sets[i] {
                continue;
            }
            slot.on = states.as_ref().and_then(|v| v[i]);
            slot.read_at = states.as_ref().map(|_| now);
            slot.error.clone_from(&message);
        }
        self.publish();
    }

    /// A command other than a flash ends a flash: its state stands, and the
    /// flash's return is not due any more.
    async fn end_flash(&mut self, s: usize) {
        if self.slots[s].flash.take().is_some() {
            self.forget_flash(s).await;
        }
    }

    async fn forget_flash(&self, s: usize) {
        let name = &self.slots[s].name;
        if let Err(err) = self.store.delete_flash(name).await {
            warn!(outlet = %name, cause = %err,
                "cannot clear the flash from the database; the next start puts the outlet back once more");
        }
    }

    /// Makes the next switch of outlet `s`'s flash, which is due. The return
    /// is never refused by the guard and is tried again until it lands.
    async fn flash_step(&mut self, s: usize) {
        let Some(flash) = &self.slots[s].flash else {
            return;
        };
        let (target, is_return) = (flash.target(), flash.left == 1);
        let result = self.switch(s, target, Instant::now()).await;
        let name = self.slots[s].name.clone();
        let Some(flash) = &mut self.slots[s].flash else {
            return;
        };
        match result {
            Ok(()) if !is_return => {
                flash.left -= 1;
                flash.next = Instant::now() + flash.length;
            }
            Ok(()) => {
                let (source, failures) = (flash.source.clone(), flash.failures);
                self.slots[s].flash = None;
                self.forget_flash(s).await;
                let after = if failures == 0 {
                    String::new()
                } else {
                    format!(", after {} tries", failures + 1)
                };
                let result = format!("back {}{after} (read back: {})", word(target), word(target));
                self.audit
                    .record(&source, &name, "flash end", result, true)
                    .await;
            }
            Err(err) if !is_return => {
                // A blink missed: the rest are dropped and the outlet goes back.
                info!(outlet = %name, cause = %err, "a blink failed; putting the outlet back");
                flash.left = 1;
                flash.next = Instant::now();
            }
            Err(err) => {
                flash.failures += 1;
                let (source, failures, back_to) =
                    (flash.source.clone(), flash.failures, flash.back_to);
                if failures >= RETURN_TRIES {
                    self.slots[s].flash = None;
                    self.forget_flash(s).await;
                    let result = format!(
                        "gave up putting it back {} after {failures} tries: {err}; switch it by hand",
                        word(back_to)
                    );
                    self.flash_end_failed(&source, &name, result).await;
                    return;
                }
                let wait = return_wait(failures);
                flash.next = Instant::now() + wait;
                if failures == 1 {
                    let result = format!(
                        "did not go back {}: {err}; trying again until it does",
                        word(back_to)
                    );
                    self.flash_end_failed(&source, &name, result).await;
                } else {
                    info!(outlet = %name, tries = failures, wait_s = wait.as_secs(), cause = %err,
                        "the flash's return failed again");
                }
            }
        }
    }

    /// Logs and audits a flash that could not end (yet).
    async fn flash_end_failed(&self, source: &Source, name: &str, result: String) {
        warn!(outlet = %name, %result, "a flash could not end");
        self.audit
            .record(source, name, "flash end", result, false)
            .await;
    }

    fn state(&self, s: usize) -> OutletState {
        let slot = &self.slots[s];
        OutletState {
            name: slot.name.clone(),
            on: slot.on,
            simulated: self.pdu.simulated(),
            error: slot.error.clone(),
            protected: slot.protected,
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

/// The wait after the `failures`th failed return: 1, 2, 4 … s, at most
/// `RETURN_MAX_WAIT`.
fn return_wait(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.saturating_sub(1).min(5)).min(RETURN_MAX_WAIT)
}

/// A deadline that never comes, for a `select!` branch that is switched off.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_alternates_and_ends_where_it_began() {
        let mut flash = Flash {
            back_to: true,
            length: Duration::from_secs(1),
            left: 2 * 3 - 1,
            next: Instant::now(),
            source: Source::Schedule,
            failures: 0,
        };
        let mut seen = Vec::new();
        while flash.left > 0 {
            seen.push(flash.target());
            flash.left -= 1;
        }
        // Started dark (the first switch); then lit, dark, lit, dark, lit.
        assert_eq!(seen, [true, false, true, false, true]);
    }

    #[test]
    fn returns_are_retried_for_minutes_not_forever() {
        let waits: Vec<u64> = (1..RETURN_TRIES)
            .map(|f| return_wait(f).as_secs())
            .collect();
        assert_eq!(waits[..6], [1, 2, 4, 8, 16, 30]);
        let total: u64 = waits.iter().sum();
        assert!((120..=400).contains(&total), "{total} s of retries");
    }
}
