//! The light controller against a real SNMP agent: net-snmp's `snmpd`, with a
//! `pass_persist` script serving APC's sPDUOutletCtl column for four outlets
//! (`common::snmpd`). net-snmp's `snmpget` and `snmpset` check and change the
//! outlets from outside, as a person at the PDU would.
//!
//! Needs the Debian packages `snmpd` and `snmp` (`scripts/setup --test`).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use tinsel::config::Secret;
use tinsel::control::settings::{LightsConfig, RawLights, RawOutlet, RawPdu};
use tinsel::control::{Action, AuditEntry, ControlError, Lights, OutletState, Schedule, Source};
use tinsel::db::Db;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use common::snmpd::{Snmpd, assert_flash, wait_sets};
use common::{run, signal};

fn snmp_pdu(name: &str, address: &str) -> RawPdu {
    RawPdu {
        name: name.into(),
        address: Some(address.into()),
        community: Some(Secret::new("private")),
        ..RawPdu::default()
    }
}

fn outlet(name: &str, pdu: &str, index: u32) -> RawOutlet {
    RawOutlet {
        name: name.into(),
        pdu: pdu.into(),
        index,
        protected: false,
    }
}

/// A running controller and what it needs to stop.
struct Running {
    lights: Lights,
    tracker: TaskTracker,
    token: CancellationToken,
}

impl Running {
    fn start(raw: RawLights, db: Db, clock: Option<DateTime<Utc>>) -> Running {
        let config = LightsConfig::check(raw).expect("the config checks out");
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        let lights = match clock {
            Some(at) => {
                Lights::start_with_clock(&config, db, &tracker, token.clone(), Arc::new(move || at))
            }
            None => Lights::start(&config, db, &tracker, token.clone()),
        };
        Running {
            lights,
            tracker,
            token,
        }
    }

    async fn stop(self) {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .expect("the controller stops within 10 s");
    }

    /// Waits, with a deadline, for the newest audit entry to pass `check`.
    async fn wait_audit(&self, check: impl Fn(&AuditEntry) -> bool) -> AuditEntry {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let latest = self.lights.audit(1).await.unwrap().pop();
            if let Some(entry) = latest.filter(|e| check(e)) {
                return entry;
            }
            assert!(
                Instant::now() < deadline,
                "gave up after 10 s waiting for an audit entry"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn outlet(&self, name: &str) -> OutletState {
        self.lights
            .outlets()
            .into_iter()
            .find(|o| o.name == name)
            .expect("the outlet is listed")
    }

    /// Waits, with a deadline, for an outlet's shown state to pass `check`.
    async fn wait_outlet(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&OutletState) -> bool,
    ) -> OutletState {
        let mut changes = self.lights.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let state = self.outlet(name);
            if check(&state) {
                return state;
            }
            let waited = tokio::time::timeout_at(deadline, changes.changed()).await;
            assert!(
                waited.is_ok(),
                "gave up after 10 s waiting for {name} to be {what}; it is {state:?}"
            );
        }
    }
}

fn admin() -> Source {
    Source::Admin("alice".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_real_outlets_reads_them_back_and_survives_a_dead_pdu() {
    let mut agent = Snmpd::start();
    let data = tempfile::tempdir().unwrap();
    let db = Db::open(data.path()).await.unwrap();
    let ctl = Running::start(
        RawLights {
            poll_s: Some(1),
            pdus: vec![
                snmp_pdu("pdu1", &agent.address()),
                RawPdu {
                    name: "bench".into(),
                    model: Some("simulated".into()),
                    ..RawPdu::default()
                },
            ],
            outlets: vec![
                outlet("tree-lights", "pdu1", 1),
                outlet("star", "pdu1", 3),
                outlet("spare", "bench", 1),
            ],
            ..RawLights::default()
        },
        db,
        None,
    );
    let mut audit_events = ctl.lights.audit_events();

    ctl.wait_outlet("tree-lights", "read as off", |o| o.on == Some(false))
        .await;
    assert!(!ctl.outlet("tree-lights").simulated);
    assert!(ctl.outlet("spare").simulated);

    // On and off, each read back from the PDU, and seen by snmpget.
    let state = ctl
        .lights
        .command("tree-lights", Action::On, admin())
        .await
        .unwrap()
        .state;
    assert_eq!((state.on, state.error.as_deref()), (Some(true), None));
    assert_eq!(agent.get(1), Some(1), "snmpget sees outlet 1 on");
    let state = ctl
        .lights
        .command("star", Action::Toggle, admin())
        .await
        .unwrap()
        .state;
    assert_eq!(state.on, Some(true));
    assert_eq!(agent.get(3), Some(1), "snmpget sees outlet 3 on");
    let state = ctl
        .lights
        .command("tree-lights", Action::Off, admin())
        .await
        .unwrap()
        .state;
    assert_eq!(state.on, Some(false));
    assert_eq!(agent.get(1), Some(2), "snmpget sees outlet 1 off");
    assert_eq!(agent.get(2), Some(2), "outlet 2 was never touched");

    // Switched at the PDU itself: the poll brings the real state.
    agent.set(1, 1);
    ctl.wait_outlet("tree-lights", "on after the poll", |o| o.on == Some(true))
        .await;

    // The agent stops. A command fails within the SNMP time limit (3 tries of
    // 1 s), and meanwhile the simulated PDU's outlet keeps switching.
    agent.stop();
    let started = Instant::now();
    let dead = {
        let lights = ctl.lights.clone();
        tokio::spawn(async move { lights.command("tree-lights", Action::Off, admin()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = ctl
        .lights
        .command("spare", Action::On, admin())
        .await
        .unwrap()
        .state;
    let other_took = started.elapsed();
    assert_eq!(other.on, Some(true));
    assert!(
        !dead.is_finished(),
        "the dead PDU's command is still waiting"
    );
    assert!(
        other_took < Duration::from_secs(1),
        "the other PDU's outlet switched in {other_took:?}, not held up by the dead one"
    );
    let err = dead.await.unwrap().unwrap_err();
    let took = started.elapsed();
    println!("a command to the stopped agent failed after {took:?}: {err}");
    let message = err.to_string();
    assert!(matches!(err, ControlError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        message,
        format!(
            "PDU pdu1 ({}) did not answer in 3 s (3 tries of 1 s); check that it is on and reachable, and that the community is right",
            agent.address()
        )
    );
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(4),
        "the failure came after {took:?}, expected 3 s"
    );
    let shown = ctl.outlet("tree-lights");
    assert_eq!(
        (shown.on, shown.error.as_deref()),
        (None, Some(message.as_str()))
    );

    // The audit log has every command, the failure too, newest first.
    let audit = ctl.lights.audit(10).await.unwrap();
    let rows: Vec<(&str, &str, &str, &str)> = audit
        .iter()
        .map(|e| {
            (
                e.source.as_str(),
                e.outlet.as_str(),
                e.action.as_str(),
                e.result.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("admin:alice", "tree-lights", "off", message.as_str()),
            ("admin:alice", "spare", "on", "switched on (was off)"),
            ("admin:alice", "tree-lights", "off", "switched off (was on)"),
            ("admin:alice", "star", "toggle", "switched on (was off)"),
            ("admin:alice", "tree-lights", "on", "switched on (was off)"),
        ]
    );
    let mut live = Vec::new();
    while let Ok(entry) = audit_events.try_recv() {
        live.push(entry);
    }
    assert_eq!(live.len(), 5, "every entry was pushed live: {live:?}");
    assert!(
        DateTime::parse_from_rfc3339(&live[0].at).is_ok(),
        "{}",
        live[0].at
    );

    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_comes_back_and_the_relay_guard_says_no_plainly() {
    let data = tempfile::tempdir().unwrap();
    let db = Db::open(data.path()).await.unwrap();
    let ctl = Running::start(
        RawLights {
            guard_switches: Some(3),
            guard_window_s: Some(60),
            ..RawLights::default()
        },
        db,
        None,
    );
    ctl.wait_outlet("outlet-1", "read", |o| o.on.is_some())
        .await;

    let started = Instant::now();
    let state = ctl
        .lights
        .command("outlet-1", Action::flash(1), Source::Tweet("1234".into()))
        .await
        .unwrap()
        .state;
    assert_eq!(state.on, Some(true));
    ctl.wait_outlet("outlet-1", "off again", |o| o.on == Some(false))
        .await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "the flash lasted {took:?}");

    // Two switches used by the flash, one more allowed, then a refusal.
    ctl.lights
        .command("outlet-1", Action::On, admin())
        .await
        .unwrap();
    let err = ctl
        .lights
        .command("outlet-1", Action::Off, admin())
        .await
        .unwrap_err();
    let ControlError::Guard { retry_after_s, .. } = &err else {
        panic!("expected a guard refusal, got {err:?}");
    };
    let retry_after_s = *retry_after_s;
    assert!((58..=60).contains(&retry_after_s), "{retry_after_s}");
    assert_eq!(err.to_string(), guard_refusal(retry_after_s));
    // "On" for an outlet that is on switches nothing, so the guard lets it be.
    ctl.lights
        .command("outlet-1", Action::On, admin())
        .await
        .unwrap();
    assert_eq!(ctl.outlet("outlet-1").on, Some(true));
    let err = ctl
        .lights
        .command("outlet-1", Action::flash(0), admin())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "a flash lasts 1 to 60 seconds, not 0");

    let audit = ctl.lights.audit(10).await.unwrap();
    let rows: Vec<(&str, &str, &str)> = audit
        .iter()
        .rev()
        .map(|e| (e.source.as_str(), e.action.as_str(), e.result.as_str()))
        .collect();
    assert_eq!(
        rows[0],
        (
            "tweet:1234",
            "flash 1 s",
            "flashed on for 1 s (read back: on)"
        )
    );
    assert_eq!(
        rows[1],
        ("tweet:1234", "flash end", "back off (read back: off)")
    );
    assert_eq!(rows[3].2, guard_refusal(retry_after_s));
    ctl.stop().await;
}

fn guard_refusal(retry_after_s: u64) -> String {
    format!(
        "outlet \"outlet-1\" has switched 3 times in the last 60 s, as often as its relay may; try again in {retry_after_s} s"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_and_simulated_states_survive_a_restart_and_catch_up() {
    let data = tempfile::tempdir().unwrap();
    let amsterdam = || RawLights {
        timezone: Some("Europe/Amsterdam".into()),
        ..RawLights::default()
    };
    let at = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    };

    // 13:00 in Amsterdam: the 17:00-23:00 window is not due, so outlet-1 is off.
    let ctl = Running::start(
        amsterdam(),
        Db::open(data.path()).await.unwrap(),
        Some(at("2026-11-27T12:00:00Z")),
    );
    assert_eq!(ctl.lights.timezone(), "Europe/Amsterdam");
    ctl.wait_outlet("outlet-1", "read", |o| o.on.is_some())
        .await;
    let schedule = Schedule {
        outlet: "outlet-1".into(),
        on: "17:00".into(),
        off: "23:00:00".into(),
    };
    ctl.lights
        .set_schedule(schedule, admin())
        .await
        .unwrap()
        .1
        .expect("the outlet takes the state due now");
    assert_eq!(ctl.outlet("outlet-1").on, Some(false));
    ctl.lights
        .command("outlet-2", Action::On, admin())
        .await
        .unwrap();
    let err = ctl
        .lights
        .set_schedule(
            Schedule {
                outlet: "outlet-3".into(),
                on: "7:00".into(),
                off: "08:00".into(),
            },
            admin(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "\"7:00\" is not a time like \"07:30\" or \"07:30:15\" (24-hour clock)"
    );
    ctl.stop().await;

    // Back at 18:30 in Amsterdam: the window is due, so outlet-1 is switched
    // on by the schedule; outlet-2 kept its state.
    let ctl = Running::start(
        amsterdam(),
        Db::open(data.path()).await.unwrap(),
        Some(at("2026-11-27T17:30:00Z")),
    );
    ctl.wait_outlet("outlet-1", "on by the schedule", |o| o.on == Some(true))
        .await;
    assert_eq!(
        ctl.outlet("outlet-2").on,
        Some(true),
        "the simulated state survived"
    );
    let schedules = ctl.lights.schedules().await.unwrap();
    assert_eq!(
        schedules,
        vec![Schedule {
            outlet: "outlet-1".into(),
            on: "17:00".into(),
            off: "23:00".into(),
        }]
    );
    // The switch is audited just after it shows.
    let latest = ctl.wait_audit(|e| e.source == "schedule").await;
    assert_eq!(
        (
            latest.source.as_str(),
            latest.outlet.as_str(),
            latest.action.as_str(),
            latest.result.as_str()
        ),
        ("schedule", "outlet-1", "on", "switched on (was off)")
    );
    assert!(
        latest.at.starts_with("2026-11-27T17:30:00"),
        "{}",
        latest.at
    );
    ctl.lights
        .delete_schedule("outlet-1", admin())
        .await
        .unwrap();
    assert!(ctl.lights.schedules().await.unwrap().is_empty());
    let err = ctl
        .lights
        .delete_schedule("outlet-1", admin())
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::NoSchedule(_)), "{err:?}");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snmp_v3_with_authentication_and_privacy() {
    let agent = Snmpd::start_with(
        "createUser tinsel SHA \"auth-pass-123\" AES \"priv-pass-123\"\n\
         rwuser tinsel priv",
    );
    let v3_pdu = |name: &str, auth_password: &str, priv_password: &str| RawPdu {
        name: name.into(),
        address: Some(agent.address()),
        version: Some("3".into()),
        user: Some("tinsel".into()),
        auth_protocol: Some("sha1".into()),
        auth_password: Some(Secret::new(auth_password)),
        priv_protocol: Some("aes128".into()),
        priv_password: Some(Secret::new(priv_password)),
        retries: Some(0),
        ..RawPdu::default()
    };
    let data = tempfile::tempdir().unwrap();
    let ctl = Running::start(
        RawLights {
            pdus: vec![
                v3_pdu("pdu1", "auth-pass-123", "priv-pass-123"),
                v3_pdu("wrong-priv", "auth-pass-123", "not-the-password"),
                v3_pdu("wrong-auth", "not-the-password", "priv-pass-123"),
            ],
            outlets: vec![
                outlet("tree-lights", "pdu1", 2),
                outlet("other", "wrong-priv", 2),
                outlet("third", "wrong-auth", 2),
            ],
            ..RawLights::default()
        },
        Db::open(data.path()).await.unwrap(),
        None,
    );
    ctl.wait_outlet("tree-lights", "read as off", |o| o.on == Some(false))
        .await;
    let state = ctl
        .lights
        .command("tree-lights", Action::On, admin())
        .await
        .unwrap()
        .state;
    assert_eq!(state.on, Some(true));
    assert_eq!(agent.get(2), Some(1), "snmpget sees outlet 2 on");
    let state = ctl
        .lights
        .command("tree-lights", Action::Off, admin())
        .await
        .unwrap()
        .state;
    assert_eq!(state.on, Some(false));
    assert_eq!(agent.get(2), Some(2), "snmpget sees outlet 2 off");

    // A wrong privacy password makes replies undecryptable: no answer. A
    // wrong authentication password gets a report back: turned down.
    for (outlet, what, says) in [
        (
            "other",
            "privacy",
            "and that the user and passwords are right",
        ),
        (
            "third",
            "authentication",
            "turned down the SNMP v3 credentials",
        ),
    ] {
        let err = ctl
            .lights
            .command(outlet, Action::On, admin())
            .await
            .unwrap_err();
        println!("wrong {what} password: {err}");
        assert!(matches!(err, ControlError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains(says), "{err}");
    }
    assert_eq!(
        agent.get(2),
        Some(2),
        "nothing switched with the wrong password"
    );
    ctl.stop().await;
}

#[test]
fn the_server_shows_a_real_pdu_and_refuses_a_bad_lights_config() {
    let agent = Snmpd::start();
    agent.set(1, 1);
    let dir = common::temp_dir("lights");
    let config = dir.join("tinsel.toml");
    std::fs::write(
        &config,
        format!(
            "timezone = \"Europe/Amsterdam\"\n\
             [[pdu]]\nname = \"pdu1\"\naddress = \"{}\"\ncommunity = \"private\"\n\
             [[outlet]]\nname = \"tree-lights\"\npdu = \"pdu1\"\nindex = 1\n\
             [[outlet]]\nname = \"star\"\npdu = \"pdu1\"\nindex = 2\n",
            agent.address()
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let server = common::Server::start(&["--config", config_arg, "--lights-poll-s", "1"]);
    let lights = |server: &common::Server| {
        let (status, body) = server.get("/api/lights");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON")
    };
    let want = |tree: bool, star: bool| {
        serde_json::json!([
            {"name": "tree-lights", "on": tree, "simulated": false, "error": null, "protected": false},
            {"name": "star", "on": star, "simulated": false, "error": null, "protected": false},
        ])
    };
    common::wait_for(Duration::from_secs(10), "the PDU's outlets read", || {
        (lights(&server) == want(true, false)).then_some(())
    });
    agent.set(2, 1);
    common::wait_for(Duration::from_secs(10), "star on after a poll", || {
        (lights(&server) == want(true, true)).then_some(())
    });
    let (_, body) = server.get("/api/lights");
    assert!(
        !body.contains("private") && !body.contains("127.0.0.1"),
        "no PDU details leak: {body}"
    );
    drop(server);

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[outlet]]\nname = \"tree-lights\"\npdu = \"nope\"\nindex = 1\n",
    )
    .unwrap();
    for (args, reason) in [
        (
            vec!["--config", bad.to_str().unwrap()],
            "outlet \"tree-lights\" names pdu \"nope\", but no [[pdu]] has that name",
        ),
        (
            vec!["--timezone", "Mars/Olympus"],
            "timezone = \"Mars/Olympus\" is not an IANA time zone name like \"Europe/Amsterdam\" or \"UTC\"",
        ),
    ] {
        let (ok, _, err) = run(
            Command::new(env!("CARGO_BIN_EXE_tinsel"))
                .arg("serve")
                .args(&args)
                .arg("--data-dir")
                .arg(&dir),
            Duration::from_secs(10),
        );
        assert!(!ok, "tinsel {args:?} should not start");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("tinsel:")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].ends_with(reason), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_switches_at_its_transition() {
    let data = tempfile::tempdir().unwrap();
    let ctl = Running::start(
        RawLights::default(),
        Db::open(data.path()).await.unwrap(),
        None,
    );
    ctl.wait_outlet("outlet-4", "read", |o| o.on.is_some())
        .await;
    // On two seconds from now (UTC, to the second), off a minute later.
    let on_at = (Utc::now() + chrono::Duration::seconds(2))
        .with_nanosecond(0)
        .unwrap();
    let off_at = on_at + chrono::Duration::seconds(60);
    let schedule = Schedule {
        outlet: "outlet-4".into(),
        on: on_at.format("%H:%M:%S").to_string(),
        off: off_at.format("%H:%M:%S").to_string(),
    };
    ctl.lights
        .set_schedule(schedule, admin())
        .await
        .unwrap()
        .1
        .expect("the outlet takes the state due now");
    assert_eq!(ctl.outlet("outlet-4").on, Some(false), "not due yet");
    let state = ctl
        .wait_outlet("outlet-4", "on at the transition", |o| o.on == Some(true))
        .await;
    let late = Utc::now() - on_at;
    assert!(
        late >= chrono::Duration::zero() && late < chrono::Duration::seconds(2),
        "switched {late:?} after the transition"
    );
    assert_eq!(state.error, None);
    let entry = ctl
        .wait_audit(|e| e.source == "schedule" && e.action == "on")
        .await;
    assert_eq!(
        (entry.outlet.as_str(), entry.result.as_str()),
        ("outlet-4", "switched on (was off)")
    );
    ctl.stop().await;
}

fn tweet(id: &str) -> Source {
    Source::Tweet(id.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tweet_flash_is_seen_lit_or_dark_and_ends_where_the_agent_left_it() {
    let agent = Snmpd::start();
    let data = tempfile::tempdir().unwrap();
    let ctl = Running::start(
        RawLights {
            pdus: vec![snmp_pdu("pdu1", &agent.address())],
            outlets: vec![outlet("tree-lights", "pdu1", 1)],
            ..RawLights::default()
        },
        Db::open(data.path()).await.unwrap(),
        None,
    );
    ctl.wait_outlet("tree-lights", "read", |o| o.on.is_some())
        .await;
    let flash = |id: &'static str| {
        let lights = ctl.lights.clone();
        async move {
            lights
                .command_labelled(
                    "tree-lights",
                    Action::flash(2),
                    tweet(id),
                    "flash 2 s for @alice",
                )
                .await
        }
    };
    let wait_end = |id: &'static str| {
        let ctl = &ctl;
        async move {
            ctl.wait_audit(|e| e.action == "flash end" && e.source == format!("tweet:{id}"))
                .await
        }
    };

    // The tree lit, as on any evening: the flash darkens it for 2 s.
    let on = ctl
        .lights
        .command("tree-lights", Action::On, admin())
        .await
        .unwrap();
    assert_eq!(on.describe(), "switched on (was off)");
    let from = agent.sets().len();
    let started = flash("1").await.unwrap();
    assert_eq!(started.describe(), "flashed off for 2 s (read back: off)");
    let end = wait_end("1").await;
    assert_flash(&wait_sets(&agent, 1, from, 2), 2, 1, 2, "a lit tree");
    assert_eq!(
        (end.result.as_str(), end.ok),
        ("back on (read back: on)", true)
    );
    assert_eq!(agent.get(1), Some(1));

    // An "on" for a lit tree is sent all the same, and says nothing changed.
    let from = agent.sets().len();
    let again = ctl
        .lights
        .command("tree-lights", Action::On, admin())
        .await
        .unwrap();
    assert_eq!(again.describe(), "already on");
    assert_eq!(agent.sets_of(1, from), [(0, 1)], "the set went to the PDU");

    // A dark tree: the flash lights it for 2 s.
    ctl.lights
        .command("tree-lights", Action::Off, admin())
        .await
        .unwrap();
    let from = agent.sets().len();
    let started = flash("2").await.unwrap();
    assert_eq!(started.describe(), "flashed on for 2 s (read back: on)");
    wait_end("2").await;
    assert_flash(&wait_sets(&agent, 1, from, 2), 1, 2, 2, "a dark tree");

    // Someone lights the tree at the PDU a second before a tweet: the flash
    // acts on what the PDU says, not on what the controller last believed.
    assert_eq!(ctl.outlet("tree-lights").on, Some(false));
    agent.set(1, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let from = agent.sets().len();
    let started = flash("3").await.unwrap();
    assert_eq!(started.describe(), "flashed off for 2 s (read back: off)");
    wait_end("3").await;
    assert_flash(
        &wait_sets(&agent, 1, from, 2),
        2,
        1,
        2,
        "switched at the PDU 1 s before",
    );
    assert_eq!(agent.get(1), Some(1), "it ends as the agent had it: lit");

    // The audit of the tweets, oldest first, as the admin panel shows it.
    let audit = ctl.lights.audit(20).await.unwrap();
    let tweets: Vec<(&str, &str, bool)> = audit
        .iter()
        .rev()
        .filter(|e| e.source.starts_with("tweet:"))
        .map(|e| (e.action.as_str(), e.result.as_str(), e.ok))
        .collect();
    assert_eq!(
        tweets,
        [
            (
                "flash 2 s for @alice",
                "flashed off for 2 s (read back: off)",
                true
            ),
            ("flash end", "back on (read back: on)", true),
            (
                "flash 2 s for @alice",
                "flashed on for 2 s (read back: on)",
                true
            ),
            ("flash end", "back off (read back: off)", true),
            (
                "flash 2 s for @alice",
                "flashed off for 2 s (read back: off)",
                true
            ),
            ("flash end", "back on (read back: on)", true),
        ]
    );
    // The watch page's line for it.
    let line = tinsel_frontend::lights::describe(&audit[1]).unwrap();
    assert_eq!(line, "@alice made the tree blink");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blinks_stay_within_the_guard_and_a_missed_return_is_tried_until_it_lands() {
    let mut agent = Snmpd::start();
    let data = tempfile::tempdir().unwrap();
    let ctl = Running::start(
        RawLights {
            guard_switches: Some(6),
            guard_window_s: Some(60),
            pdus: vec![RawPdu {
                // One try of 300 ms: the dead PDU's failures come quickly.
                timeout_ms: Some(300),
                retries: Some(0),
                ..snmp_pdu("pdu1", &agent.address())
            }],
            outlets: vec![outlet("tree-lights", "pdu1", 1), outlet("star", "pdu1", 2)],
            ..RawLights::default()
        },
        Db::open(data.path()).await.unwrap(),
        None,
    );
    ctl.wait_outlet("star", "read", |o| o.on.is_some()).await;

    // Three blinks of a dark outlet: six switches, a second apart.
    let from = agent.sets().len();
    let blinks = Action::Flash {
        seconds: 1,
        blinks: 3,
    };
    let started = ctl.lights.command("star", blinks, admin()).await.unwrap();
    assert_eq!(
        started.describe(),
        "blinking on 3 times, 1 s each (read back: on)"
    );
    ctl.wait_audit(|e| e.action == "flash end").await;
    let sets = wait_sets(&agent, 2, from, 6);
    let values: Vec<i64> = sets.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, [1, 2, 1, 2, 1, 2]);
    for pair in sets.windows(2) {
        let apart = pair[1].0 - pair[0].0;
        assert!(apart.abs_diff(1000) <= 500, "{apart} ms between blinks");
    }
    // The guard had room for exactly those six: another flash waits.
    let err = ctl
        .lights
        .command("star", Action::flash(1), admin())
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::Guard { .. }), "{err}");
    // A flash that would not fit whole is refused before it starts.
    let err = ctl
        .lights
        .command(
            "tree-lights",
            Action::Flash {
                seconds: 1,
                blinks: 4,
            },
            admin(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::Guard { .. }), "{err}");

    // The PDU goes away mid-flash and comes back 5 s later: the return is
    // tried again until the outlet is back where it belongs.
    ctl.wait_outlet("tree-lights", "read", |o| o.on == Some(false))
        .await;
    ctl.lights
        .command("tree-lights", Action::flash(1), tweet("7"))
        .await
        .unwrap();
    agent.stop();
    let failed = ctl.wait_audit(|e| e.action == "flash end" && !e.ok).await;
    assert!(
        failed.result.starts_with("did not go back off: ")
            && failed.result.ends_with("; trying again until it does"),
        "{}",
        failed.result
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    agent.resume();
    let back = ctl.wait_audit(|e| e.action == "flash end" && e.ok).await;
    println!("after the PDU came back: {}", back.result);
    assert!(
        back.result.starts_with("back off, after ")
            && back.result.ends_with(" tries (read back: off)"),
        "{}",
        back.result
    );
    assert_eq!(agent.get(1), Some(2), "the agent has the tree dark again");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_guard_and_an_unfinished_flash_outlive_a_restart() {
    let agent = Snmpd::start();
    let data = tempfile::tempdir().unwrap();
    let raw = || RawLights {
        guard_switches: Some(3),
        guard_window_s: Some(60),
        pdus: vec![snmp_pdu("pdu1", &agent.address())],
        outlets: vec![outlet("tree-lights", "pdu1", 1), outlet("star", "pdu1", 2)],
        ..RawLights::default()
    };
    let ctl = Running::start(raw(), Db::open(data.path()).await.unwrap(), None);
    ctl.wait_outlet("tree-lights", "read", |o| o.on.is_some())
        .await;
    for action in [Action::On, Action::Off, Action::On] {
        ctl.lights
            .command("tree-lights", action, admin())
            .await
            .unwrap();
    }
    let before = ctl
        .lights
        .command("tree-lights", Action::Off, admin())
        .await
        .unwrap_err();
    let ControlError::Guard {
        retry_after_s: wait_before,
        ..
    } = before
    else {
        panic!("expected a guard refusal, got {before:?}");
    };
    ctl.stop().await;

    // A new controller on the same database: the guard still says no.
    let ctl = Running::start(raw(), Db::open(data.path()).await.unwrap(), None);
    ctl.wait_outlet("tree-lights", "read", |o| o.on.is_some())
        .await;
    let after = ctl
        .lights
        .command("tree-lights", Action::Off, admin())
        .await
        .unwrap_err();
    let ControlError::Guard {
        switches,
        retry_after_s: wait_after,
        ..
    } = after
    else {
        panic!("after a restart, expected a guard refusal, got {after:?}");
    };
    println!(
        "guard before the restart: wait {wait_before} s; after: {switches} switches, wait {wait_after} s"
    );
    assert_eq!(switches, 3);
    assert!(wait_after <= wait_before && wait_before - wait_after <= 5);
    assert_eq!(agent.get(1), Some(1), "the tree stayed lit");

    ctl.stop().await;
}

#[test]
fn a_server_killed_mid_flash_puts_the_outlet_back_when_it_starts_again() {
    let agent = Snmpd::start();
    let dir = common::temp_dir("crash-flash");
    let config = dir.join("tinsel.toml");
    std::fs::write(
        &config,
        format!(
            "[[pdu]]\nname = \"pdu1\"\naddress = \"{}\"\ncommunity = \"private\"\n\
             [[outlet]]\nname = \"star\"\npdu = \"pdu1\"\nindex = 2\n",
            agent.address()
        ),
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let mut server = common::Server::start_in(dir.join("data"), &args);
    let (status, body) =
        server.admin_post("/api/lights/star", r#"{"action":"flash","seconds":60}"#);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["result"], "flashed on for 60 s (read back: on)");
    assert_eq!(answer["on"], true);
    assert_eq!(agent.get(2), Some(1));
    // Killed, as by the OOM killer or a power cut of the host: no chance to
    // put the outlet back.
    signal(server.pid(), libc::SIGKILL);
    server.terminate();
    assert_eq!(agent.get(2), Some(1), "the star is left lit");
    let from = agent.sets().len();
    let started = Instant::now();
    let server = common::Server::start_in(dir.join("data"), &args);
    let sets = wait_sets(&agent, 2, from, 1);
    println!(
        "the restarted server put the star back in {:?}",
        started.elapsed()
    );
    assert_eq!(sets[0].1, 2, "the restarted server put the star back off");
    let (status, body) = server.admin_get("/api/audit?limit=1");
    assert_eq!(status, 200, "{body}");
    let audit: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(audit[0]["action"], "flash end");
    assert_eq!(audit[0]["result"], "back off (read back: off)");
    assert_eq!(audit[0]["source"], format!("admin:{}", common::ADMIN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_outlet_refuses_flashes_and_tweets_but_not_an_admin() {
    let agent = Snmpd::start();
    let data = tempfile::tempdir().unwrap();
    let ctl = Running::start(
        RawLights {
            pdus: vec![snmp_pdu("pdu1", &agent.address())],
            outlets: vec![RawOutlet {
                protected: true,
                ..outlet("camera", "pdu1", 4)
            }],
            ..RawLights::default()
        },
        Db::open(data.path()).await.unwrap(),
        None,
    );
    ctl.wait_outlet("camera", "read", |o| o.on.is_some()).await;
    assert!(ctl.outlet("camera").protected);
    let on = ctl
        .lights
        .command("camera", Action::On, admin())
        .await
        .unwrap();
    assert_eq!(on.describe(), "switched on (was off)");
    let from = agent.sets().len();
    let refused = ctl
        .lights
        .command("camera", Action::flash(5), admin())
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "outlet \"camera\" is protected ([[outlet]] protected = true: it powers something that must stay up), so it does not flash; an admin can still switch it on or off"
    );
    let refused = ctl
        .lights
        .command_labelled("camera", Action::Off, tweet("9"), "off for @mallory")
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("so it does not take commands from tweets"),
        "{refused}"
    );
    assert_eq!(agent.sets_of(4, from), [], "the agent was told nothing");
    let audit = ctl.lights.audit(2).await.unwrap();
    assert!(
        audit
            .iter()
            .all(|e| !e.ok && e.result.contains("is protected"))
    );

    // A reboot: the agent reads "rebooting", then on by itself.
    let rebooted = ctl
        .lights
        .command("camera", Action::Reboot, admin())
        .await
        .unwrap();
    assert_eq!(rebooted.describe(), "rebooting (read back: rebooting)");
    assert_eq!(agent.sets_of(4, from), [(0, 3)]);
    ctl.wait_outlet("camera", "back on after the reboot", |o| o.on == Some(true))
        .await;
    // And off, by an admin, works.
    let off = ctl
        .lights
        .command("camera", Action::Off, admin())
        .await
        .unwrap();
    assert_eq!(off.describe(), "switched off (was on)");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_saved_while_the_pdu_is_down_answers_with_the_failure() {
    let mut agent = Snmpd::start();
    let data = tempfile::tempdir().unwrap();
    let ctl = Running::start(
        RawLights {
            pdus: vec![RawPdu {
                timeout_ms: Some(300),
                retries: Some(0),
                ..snmp_pdu("pdu1", &agent.address())
            }],
            outlets: vec![outlet("tree-lights", "pdu1", 1)],
            ..RawLights::default()
        },
        Db::open(data.path()).await.unwrap(),
        None,
    );
    ctl.wait_outlet("tree-lights", "read", |o| o.on.is_some())
        .await;
    agent.stop();
    let schedule = Schedule {
        outlet: "tree-lights".into(),
        on: "00:00".into(),
        off: "23:59:59".into(),
    };
    let (saved, switched) = ctl.lights.set_schedule(schedule, admin()).await.unwrap();
    assert_eq!(saved.on, "00:00");
    let err = switched.unwrap_err();
    assert!(matches!(err, ControlError::Unreachable { .. }), "{err}");
    assert_eq!(
        ctl.lights.schedules().await.unwrap().len(),
        1,
        "the schedule stands"
    );
    ctl.stop().await;
}
