//! net-snmp's `snmpd` as the tree's PDU, with a `pass_persist` script
//! (`data/apc-outlets.py`) serving APC's sPDUOutletCtl column for four
//! outlets, state in a file. net-snmp's `snmpget` and `snmpset` check and
//! change the outlets from outside, as a person at the PDU would, and the
//! script logs every set it takes, so a test reads what the PDU was told.
//!
//! Needs the Debian packages `snmpd` and `snmp` (`scripts/setup --test`).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{run, signal, wait_exit};

pub const OUTLET_CTL: &str = ".1.3.6.1.4.1.318.1.1.4.4.2.1.3";

/// The outlet table snmpd serves; its header says what it does.
const PASS_PERSIST: &str = include_str!("../data/apc-outlets.py");

/// An `snmpd` on 127.0.0.1 and a free UDP port, with its own config.
pub struct Snmpd {
    child: Child,
    port: u16,
    config: PathBuf,
    /// The outlets' states; the script logs every set to this path + ".sets".
    state: PathBuf,
    dir: tempfile::TempDir,
}

impl Snmpd {
    pub fn start() -> Snmpd {
        Self::start_with("")
    }

    /// With more lines for snmpd.conf (SNMP v3 users).
    pub fn start_with(extra_config: &str) -> Snmpd {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("apc-outlets");
        std::fs::write(&script, PASS_PERSIST).unwrap();
        make_executable(&script);
        let state = dir.path().join("outlets");
        let config = dir.path().join("snmpd.conf");
        std::fs::write(
            &config,
            format!(
                "rocommunity public 127.0.0.1\n\
                 rwcommunity private 127.0.0.1\n\
                 {extra_config}\n\
                 pass_persist {OUTLET_CTL} {} {}\n",
                script.display(),
                state.display()
            ),
        )
        .unwrap();
        let port = free_udp_port();
        let child = spawn_snmpd(&config, port, dir.path());
        let snmpd = Snmpd {
            child,
            port,
            config,
            state,
            dir,
        };
        snmpd.wait_answering();
        snmpd
    }

    /// Starts again after [`Snmpd::stop`], on the same port with the same
    /// outlet states, as a PDU that comes back from a power cut.
    pub fn resume(&mut self) {
        self.child = spawn_snmpd(&self.config, self.port, self.dir.path());
        self.wait_answering();
    }

    /// Every set the agent took, oldest first: (Unix ms, outlet, value).
    pub fn sets(&self) -> Vec<(u64, u32, i64)> {
        let mut name = self.state.clone().into_os_string();
        name.push(".sets");
        std::fs::read_to_string(name)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                )
            })
            .collect()
    }

    /// The sets of `outlet` since the `from`th set, as (ms after the first
    /// of them, value).
    pub fn sets_of(&self, outlet: u32, from: usize) -> Vec<(u64, i64)> {
        let sets: Vec<(u64, i64)> = self.sets()[from..]
            .iter()
            .filter(|(_, o, _)| *o == outlet)
            .map(|(at, _, v)| (*at, *v))
            .collect();
        let first = sets.first().map_or(0, |(at, _)| *at);
        sets.into_iter().map(|(at, v)| (at - first, v)).collect()
    }

    fn wait_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.get(1).is_none() {
            assert!(
                Instant::now() < deadline,
                "snmpd did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The outlet's value as net-snmp's `snmpget` reads it: 1 on, 2 off.
    pub fn get(&self, outlet: u32) -> Option<i64> {
        let (ok, out, _) = run(
            Command::new("snmpget")
                .args(["-v2c", "-c", "public", "-t", "1", "-r", "0", "-Oqv"])
                .arg(self.address())
                .arg(format!("{OUTLET_CTL}.{outlet}"))
                .env("MIBS", ""),
            Duration::from_secs(5),
        );
        if ok { out.trim().parse().ok() } else { None }
    }

    /// Switches an outlet from outside, as a person at the PDU would.
    pub fn set(&self, outlet: u32, value: i64) {
        let (ok, _, err) = run(
            Command::new("snmpset")
                .args(["-v2c", "-c", "private", "-t", "1", "-r", "0"])
                .arg(self.address())
                .arg(format!("{OUTLET_CTL}.{outlet}"))
                .args(["i", &value.to_string()])
                .env("MIBS", ""),
            Duration::from_secs(5),
        );
        assert!(ok, "snmpset: {err}");
    }

    pub fn stop(&mut self) {
        signal(self.child.id(), libc::SIGTERM);
        assert!(
            wait_exit(&mut self.child, Duration::from_secs(10)).is_some(),
            "snmpd did not stop"
        );
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_snmpd(config: &Path, port: u16, dir: &Path) -> Child {
    Command::new(snmpd_binary())
        .args(["-f", "-Lo", "-C", "-c"])
        .arg(config)
        .arg(format!("udp:127.0.0.1:{port}"))
        // Its own state dir, and no MIB files: numeric OIDs only, no noise.
        .env("SNMP_PERSISTENT_DIR", dir.join("persist"))
        .env("MIBS", "")
        .env("MIBDIRS", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start snmpd (install the Debian packages snmpd and snmp)")
}

fn snmpd_binary() -> PathBuf {
    // Debian puts it in /usr/sbin, which is not on every user's PATH.
    ["/usr/sbin/snmpd", "/usr/local/sbin/snmpd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("snmpd"))
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits, with a deadline, until the agent has taken `count` sets of
/// `outlet` since the `from`th set.
pub fn wait_sets(agent: &Snmpd, outlet: u32, from: usize, count: usize) -> Vec<(u64, i64)> {
    super::wait_for(Duration::from_secs(15), "the agent's sets", || {
        let sets = agent.sets_of(outlet, from);
        (sets.len() >= count).then_some(sets)
    })
}

/// A flash as the agent saw it: the two values set, and the time between.
pub fn assert_flash(sets: &[(u64, i64)], away: i64, back: i64, seconds: u64, what: &str) {
    let values: Vec<i64> = sets.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, [away, back], "{what}: the sets the agent took");
    let apart = sets[1].0;
    assert!(
        apart.abs_diff(seconds * 1000) <= 500,
        "{what}: {apart} ms between the two sets, not {seconds} s ± 0.5 s"
    );
    println!("{what}: the agent saw {away} then {back}, {apart} ms apart");
}
