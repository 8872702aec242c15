//! The light controller: the tree's lights on the outlets of SNMP PDUs.
//!
//! ```text
//!   admin panel ─┐                                   ┌─▶ worker pdu1 ──SNMP──▶ PDU
//!   schedules ───┼─▶ Lights::command ─(per PDU queue)┼─▶ worker pdu2 ──SNMP──▶ PDU
//!   tweets ──────┘        │                          └─▶ worker simulated ──▶ SQLite
//!                         ▼                                    │
//!                  audit (SQLite + broadcast)      states (watch) ◀┘
//! ```
//!
//! [`Lights`] is the one way in. Each PDU has one worker task that owns its
//! outlets: it switches them, reads them back after every switch and on a
//! slow poll (so the state shown is the hardware's), keeps each outlet's relay
//! guard and ends flashes. A protected outlet (one that powers the camera or
//! the network switch) never flashes and never takes a tweet's command. A PDU that does not answer holds up only its own
//! outlets. The scheduler task switches outlets at their daily transitions,
//! and once at startup to catch up.
//!
//! - [`settings`]: the `[[pdu]]`/`[[outlet]]`/`timezone` config.
//! - [`pdu`]: OIDs and values per PDU model, and the SNMP or simulated backend.
//! - [`snmp`]: get and set with a timeout and retries.
//! - [`snmp_message`]: v2c requests as bytes, and what a datagram back says (pure).
//! - [`guard`]: how often an outlet may switch (pure).
//! - [`outcome`]: what a command did, in the audit's words (pure).
//! - [`schedule`]: what a daily window wants when (pure).
//! - [`worker`], [`scheduler`]: the tasks.
//! - [`store`]: audit log, schedules, simulated states, relay guard switches
//!   and unfinished flashes in SQLite.

pub mod guard;
pub mod outcome;
pub mod pdu;
pub mod schedule;
pub mod scheduler;
pub mod settings;
pub mod snmp;
pub mod snmp_message;
pub mod store;
pub mod worker;

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

pub use outcome::{Change, Outcome};
pub use settings::LightsConfig;
pub use tinsel_frontend::api::{AuditEntry, OutletState, Schedule};

use crate::db::Db;
use schedule::{Window, format_time};
use store::Store;
use worker::{OutletSpec, Request, Worker};

/// The longest flash, in seconds: long enough to notice, short enough that a
/// flood of requests cannot keep the tree on.
pub const MAX_FLASH_S: u32 = 60;
/// The most blinks one flash may have; each is two switches of the relay,
/// and the relay guard must have room for all of them.
pub const MAX_BLINKS: u32 = 10;
/// Audit entries kept for live listeners that fall behind.
const AUDIT_EVENTS: usize = 64;
/// Commands waiting for one PDU.
const QUEUE: usize = 32;

/// What to do with an outlet.
///
/// JSON: `{"action":"on"}`, `{"action":"off"}`, `{"action":"toggle"}`,
/// `{"action":"flash","seconds":5}` (with `"blinks":3` to blink three times),
/// `{"action":"reboot"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    On,
    Off,
    Toggle,
    /// The opposite of the outlet's state for `seconds`, then back: seen
    /// whether the tree was lit or dark. With `blinks` above 1, that many
    /// times, `seconds` apart.
    Flash {
        seconds: u32,
        #[serde(default = "one_blink")]
        blinks: u32,
    },
    /// Off, and on again after the PDU's own delay (APC's `outletReboot`).
    Reboot,
}

fn one_blink() -> u32 {
    1
}

impl Action {
    /// A flash of one blink.
    pub fn flash(seconds: u32) -> Self {
        Action::Flash { seconds, blinks: 1 }
    }

    /// Relay switches the action may make: what the relay guard must allow.
    pub fn switches(&self) -> u32 {
        match self {
            Action::Flash { blinks, .. } => 2 * blinks,
            Action::Reboot => 2,
            Action::On | Action::Off | Action::Toggle => 1,
        }
    }

    /// A whole flash, blinks and the pause after each: how long before
    /// another flash can be told apart from this one.
    pub fn cycle(&self) -> std::time::Duration {
        match self {
            Action::Flash { seconds, blinks } => {
                std::time::Duration::from_secs(u64::from(*seconds) * u64::from(2 * blinks))
            }
            _ => std::time::Duration::ZERO,
        }
    }

    /// From the first switch of the action to its last.
    pub fn span(&self) -> std::time::Duration {
        match self {
            Action::Flash { seconds, blinks } => {
                std::time::Duration::from_secs(u64::from(*seconds) * u64::from(2 * blinks - 1))
            }
            _ => std::time::Duration::ZERO,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::On => f.write_str("on"),
            Action::Off => f.write_str("off"),
            Action::Toggle => f.write_str("toggle"),
            Action::Flash { seconds, blinks: 1 } => write!(f, "flash {seconds} s"),
            Action::Flash { seconds, blinks } => write!(f, "flash {blinks} × {seconds} s"),
            Action::Reboot => f.write_str("reboot"),
        }
    }
}

/// Who asked, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Admin(String),
    Schedule,
    Tweet(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Admin(name) => write!(f, "admin:{name}"),
            Source::Schedule => f.write_str("schedule"),
            Source::Tweet(id) => write!(f, "tweet:{id}"),
        }
    }
}

impl Source {
    /// Reads what [`Source`]'s `Display` wrote; anything else counts as an
    /// admin of that name, so nothing read back is lost.
    pub fn parse(text: &str) -> Self {
        match text.split_once(':') {
            Some(("admin", name)) => Source::Admin(name.to_string()),
            Some(("tweet", id)) => Source::Tweet(id.to_string()),
            _ if text == "schedule" => Source::Schedule,
            _ => Source::Admin(text.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("there is no outlet named {0:?}; GET /api/lights lists them")]
    UnknownOutlet(String),
    #[error("outlet {0:?} has no schedule")]
    NoSchedule(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "outlet {outlet:?} has switched {switches} times in the last {window_s} s, as often as its relay may; try again in {retry_after_s} s"
    )]
    Guard {
        outlet: String,
        switches: u32,
        window_s: u64,
        retry_after_s: u64,
    },
    #[error("{message}")]
    Unreachable { outlet: String, message: String },
    #[error(
        "outlet {outlet:?} was told to switch {wanted} but reads {read} afterwards; check it at the PDU (a locked outlet or a tripped breaker)"
    )]
    NotSwitched {
        outlet: String,
        wanted: &'static str,
        read: &'static str,
    },
    #[error("outlet {outlet:?} is rebooting; try again once it reads on, in a few seconds")]
    Rebooting { outlet: String },
    #[error(
        "outlet {outlet:?} is protected ([[outlet]] protected = true: it powers something that must stay up), so it {refuses}; an admin can still switch it on or off"
    )]
    Protected {
        outlet: String,
        refuses: &'static str,
    },
    #[error("the lights database failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// Where "now" comes from: the system clock, or a fixed time in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The handle on the light controller; cheap to clone.
#[derive(Clone)]
pub struct Lights {
    inner: Arc<Inner>,
}

/// Where an outlet's commands go.
struct Place {
    name: String,
    /// Its PDU's worker, and its slot among that worker's outlets.
    worker: usize,
    slot: usize,
    protected: bool,
}

struct Inner {
    /// In config order.
    outlets: Vec<Place>,
    workers: Vec<mpsc::Sender<Request>>,
    states: Arc<watch::Sender<Vec<OutletState>>>,
    audit: Audit,
    store: Store,
    timezone: Tz,
    /// Wakes the scheduler when a schedule is set or deleted.
    schedules_changed: Notify,
    clock: Clock,
}

/// What feeds a [`Lights::mirror`]: another node's states and actions.
pub struct Mirror {
    states: Arc<watch::Sender<Vec<OutletState>>>,
    events: broadcast::Sender<AuditEntry>,
}

impl Mirror {
    pub fn states(&self, states: Vec<OutletState>) {
        self.states.send_replace(states);
    }

    pub fn action(&self, entry: AuditEntry) {
        // No listener is fine.
        let _ = self.events.send(entry);
    }
}

/// Writes audit entries to the database and to live listeners.
#[derive(Clone)]
pub(crate) struct Audit {
    store: Store,
    events: broadcast::Sender<AuditEntry>,
    clock: Clock,
}

impl Audit {
    /// Never fails: a database error is logged, and live listeners still hear.
    pub(crate) async fn record(
        &self,
        source: &Source,
        outlet: &str,
        action: &str,
        result: String,
        ok: bool,
    ) {
        let entry = AuditEntry {
            at: (self.clock)().to_rfc3339_opts(SecondsFormat::Millis, true),
            source: source.to_string(),
            outlet: outlet.to_string(),
            action: action.to_string(),
            result,
            ok,
        };
        if let Err(err) = self.store.add_audit(&entry).await {
            warn!(cause = %err, ?entry, "cannot write the lights audit log");
        }
        // No listener is fine.
        let _ = self.events.send(entry);
    }
}

/// How a command's result reads in the audit log, and whether it worked.
fn audit_result(result: &Result<Outcome, ControlError>) -> (String, bool) {
    match result {
        Ok(outcome) => (outcome.describe(), true),
        Err(err) => (err.to_string(), false),
    }
}

impl Lights {
    /// Starts a worker per PDU and the scheduler on `tracker`; they stop when
    /// `token` is cancelled.
    pub fn start(
        config: &LightsConfig,
        db: Db,
        tracker: &TaskTracker,
        token: CancellationToken,
    ) -> Self {
        Self::start_with_clock(config, db, tracker, token, Arc::new(Utc::now))
    }

    /// [`Lights::start`] with the wall clock given, so tests can say what time
    /// it is for the schedules.
    pub fn start_with_clock(
        config: &LightsConfig,
        db: Db,
        tracker: &TaskTracker,
        token: CancellationToken,
        clock: Clock,
    ) -> Self {
        let store = Store::new(db, config.audit_keep);
        let initial: Vec<OutletState> = config
            .outlets
            .iter()
            .map(|o| OutletState {
                name: o.name.clone(),
                on: None,
                simulated: matches!(config.pdus[o.pdu].kind, settings::PduKind::Simulated),
                error: None,
                protected: o.protected,
            })
            .collect();
        let states = Arc::new(watch::Sender::new(initial));
        let audit = Audit {
            store: store.clone(),
            events: broadcast::Sender::new(AUDIT_EVENTS),
            clock: Arc::clone(&clock),
        };
        // Per outlet, its PDU's worker and its place among that worker's outlets.
        let mut places = vec![(0, 0); config.outlets.len()];
        let mut workers = Vec::with_capacity(config.pdus.len());
        for (p, pdu) in config.pdus.iter().enumerate() {
            let mut mine: Vec<OutletSpec> = Vec::new();
            for (g, outlet) in config
                .outlets
                .iter()
                .enumerate()
                .filter(|(_, o)| o.pdu == p)
            {
                places[g] = (p, mine.len());
                mine.push((g, outlet.name.clone(), outlet.index, outlet.protected));
            }
            let (tx, rx) = mpsc::channel(QUEUE);
            let worker = Worker::new(
                pdu::Pdu::new(pdu, store.clone()),
                mine,
                config.guard,
                config.poll,
                Arc::clone(&states),
                audit.clone(),
                store.clone(),
            );
            tracker.spawn(worker.run(rx, token.child_token()));
            workers.push(tx);
        }
        let outlets = config
            .outlets
            .iter()
            .zip(places)
            .map(|(o, (worker, slot))| Place {
                name: o.name.clone(),
                worker,
                slot,
                protected: o.protected,
            })
            .collect();
        let lights = Self {
            inner: Arc::new(Inner {
                outlets,
                workers,
                states,
                audit,
                store,
                timezone: config.timezone,
                schedules_changed: Notify::new(),
                clock,
            }),
        };
        tracker.spawn(scheduler::run(lights.clone(), token.child_token()));
        lights
    }

    /// A controller that switches nothing and shows what another node's
    /// controller says: an edge's watch pages show the origin's lights and
    /// actions, which the returned [`Mirror`] is fed with. Commands are
    /// refused with where to send them.
    pub fn mirror(db: Db) -> (Self, Mirror) {
        let store = Store::new(db, 100);
        let states = Arc::new(watch::Sender::new(Vec::new()));
        let events = broadcast::Sender::new(AUDIT_EVENTS);
        let clock: Clock = Arc::new(Utc::now);
        let lights = Self {
            inner: Arc::new(Inner {
                outlets: Vec::new(),
                workers: Vec::new(),
                states: Arc::clone(&states),
                audit: Audit {
                    store: store.clone(),
                    events: events.clone(),
                    clock: Arc::clone(&clock),
                },
                store,
                timezone: Tz::UTC,
                schedules_changed: Notify::new(),
                clock,
            }),
        };
        (lights, Mirror { states, events })
    }

    /// Every outlet's last known state, in config order.
    pub fn outlets(&self) -> Vec<OutletState> {
        self.inner.states.borrow().clone()
    }

    /// Fires on every change of any outlet's state or error.
    pub fn subscribe(&self) -> watch::Receiver<Vec<OutletState>> {
        self.inner.states.subscribe()
    }

    /// The one way to switch an outlet. Audited, also when it fails (but not
    /// for a name that is no outlet).
    ///
    /// # Errors
    /// An unknown outlet, a flash out of range, a protected outlet, the relay
    /// guard, or a PDU that did not do it.
    pub async fn command(
        &self,
        outlet: &str,
        action: Action,
        source: Source,
    ) -> Result<Outcome, ControlError> {
        self.command_labelled(outlet, action, source, &action.to_string())
            .await
    }

    /// [`Lights::command`], with the audit's `action` text given, so it can
    /// say who asked: "flash 5 s for @name" for a tweet.
    ///
    /// # Errors
    /// As [`Lights::command`].
    pub async fn command_labelled(
        &self,
        outlet: &str,
        action: Action,
        source: Source,
        label: &str,
    ) -> Result<Outcome, ControlError> {
        let Some(place) = self.inner.outlets.iter().find(|p| p.name == outlet) else {
            if self.inner.workers.is_empty() {
                return Err(ControlError::Unreachable {
                    outlet: outlet.to_string(),
                    message: "this server is an edge: the lights are switched on the origin".into(),
                });
            }
            return Err(ControlError::UnknownOutlet(outlet.to_string()));
        };
        let name = &place.name;
        let protected = |refuses| {
            Err(ControlError::Protected {
                outlet: name.clone(),
                refuses,
            })
        };
        let result = match action {
            Action::Flash { seconds, .. } if !(1..=MAX_FLASH_S).contains(&seconds) => {
                Err(ControlError::Invalid(format!(
                    "a flash lasts 1 to {MAX_FLASH_S} seconds, not {seconds}"
                )))
            }
            Action::Flash { blinks, .. } if !(1..=MAX_BLINKS).contains(&blinks) => {
                Err(ControlError::Invalid(format!(
                    "a flash has 1 to {MAX_BLINKS} blinks, not {blinks}"
                )))
            }
            _ if place.protected && matches!(source, Source::Tweet(_)) => {
                protected("does not take commands from tweets")
            }
            Action::Flash { .. } if place.protected => protected("does not flash"),
            _ => {
                self.ask(place.worker, place.slot, name, action, source.clone())
                    .await
            }
        };
        let (text, ok) = audit_result(&result);
        self.inner
            .audit
            .record(&source, name, label, text, ok)
            .await;
        result
    }

    async fn ask(
        &self,
        worker: usize,
        slot: usize,
        name: &str,
        action: Action,
        source: Source,
    ) -> Result<Outcome, ControlError> {
        let stopped = || ControlError::Unreachable {
            outlet: name.to_string(),
            message: "the light controller is shutting down".into(),
        };
        let (reply, answer) = oneshot::channel();
        self.inner.workers[worker]
            .send(Request::Command {
                slot,
                action,
                source,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Newest first.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, ControlError> {
        Ok(self.inner.store.audit(limit).await?)
    }

    /// Every new audit entry, live.
    pub fn audit_events(&self) -> broadcast::Receiver<AuditEntry> {
        self.inner.audit.events.subscribe()
    }

    /// # Errors
    /// The database cannot be read.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, ControlError> {
        Ok(self.inner.store.schedules().await?)
    }

    /// Creates or replaces the outlet's daily schedule, and gives the outlet
    /// the state that is due now. The schedule stands whatever the switch
    /// did; the switch's own result comes back beside it.
    ///
    /// # Errors
    /// An unknown outlet, a time that does not parse, or the database failing.
    pub async fn set_schedule(
        &self,
        schedule: Schedule,
        source: Source,
    ) -> Result<(Schedule, Result<Outcome, ControlError>), ControlError> {
        self.check_outlet(&schedule.outlet)?;
        let window = Window::parse(&schedule.on, &schedule.off).map_err(ControlError::Invalid)?;
        let schedule = Schedule {
            on: format_time(window.on),
            off: format_time(window.off),
            ..schedule
        };
        let action = format!("schedule {}-{}", schedule.on, schedule.off);
        let stored = self.inner.store.put_schedule(&schedule).await;
        let (result, ok) = match &stored {
            Ok(()) => ("saved".to_string(), true),
            Err(err) => (format!("the lights database failed: {err}"), false),
        };
        self.inner
            .audit
            .record(&source, &schedule.outlet, &action, result, ok)
            .await;
        stored?;
        self.inner.schedules_changed.notify_one();
        let due = window.due(self.inner.timezone, self.now());
        let switched = self
            .command(
                &schedule.outlet,
                if due { Action::On } else { Action::Off },
                Source::Schedule,
            )
            .await;
        Ok((schedule, switched))
    }

    /// # Errors
    /// An unknown outlet, no schedule for it, or the database failing.
    pub async fn delete_schedule(&self, outlet: &str, source: Source) -> Result<(), ControlError> {
        self.check_outlet(outlet)?;
        let deleted = self.inner.store.delete_schedule(outlet).await;
        let (result, ok) = match &deleted {
            Ok(true) => ("removed".to_string(), true),
            Ok(false) => (
                ControlError::NoSchedule(outlet.to_string()).to_string(),
                false,
            ),
            Err(err) => (format!("the lights database failed: {err}"), false),
        };
        self.inner
            .audit
            .record(&source, outlet, "schedule removed", result, ok)
            .await;
        if !deleted? {
            return Err(ControlError::NoSchedule(outlet.to_string()));
        }
        self.inner.schedules_changed.notify_one();
        Ok(())
    }

    /// The IANA time zone schedules run in.
    pub fn timezone(&self) -> String {
        self.inner.timezone.name().to_string()
    }

    fn check_outlet(&self, outlet: &str) -> Result<(), ControlError> {
        if self.inner.outlets.iter().any(|p| p.name == outlet) {
            Ok(())
        } else {
            Err(ControlError::UnknownOutlet(outlet.to_string()))
        }
    }

    fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }
}
