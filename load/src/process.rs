//! The child processes a benchmark starts (servers, the ffmpeg publisher, the
//! load generator) and what they need: a log file each, loopback ports, a
//! temporary directory, and a stop on every exit path. A benchmark that dies
//! takes its children with it (`PR_SET_PDEATHSIG`), one that returns or is
//! interrupted stops them through [`Guarded`]'s `Drop`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::procfs::{descendants, is_alive};

/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Bytes of a log shown when a process fails.
const LOG_TAIL: u64 = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("could not create {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not start {name}")]
    Spawn {
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("could not check on {name}")]
    Wait {
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{name} exited ({status}){log_tail}")]
    Exited {
        name: &'static str,
        status: ExitStatus,
        log_tail: String,
    },
    #[error("{name} did not listen on port {port} within {timeout:?}{log_tail}")]
    NotListening {
        name: &'static str,
        port: u16,
        timeout: Duration,
        log_tail: String,
    },
    #[error("could not find a free port")]
    NoFreePort(#[source] io::Error),
}

/// Makes the child get SIGKILL when the thread that spawned it ends, so a
/// benchmark killed outright leaves nothing behind. Spawn from the main
/// thread, or the child dies with whichever worker thread spawned it.
pub fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only
    // makes one async-signal-safe system call.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A child process that is stopped when the guard goes, whatever the path.
pub struct Guarded {
    name: &'static str,
    child: Child,
    /// Its stdout and stderr, quoted when it fails.
    log: PathBuf,
    stopped: bool,
}

impl Guarded {
    /// Starts `command` with stdin closed and stdout and stderr in `log`.
    ///
    /// # Errors
    ///
    /// When the log cannot be created or the program cannot be started.
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        log: PathBuf,
    ) -> Result<Guarded, ProcessError> {
        let create = |source| ProcessError::Create {
            path: log.clone(),
            source,
        };
        let out = File::create(&log).map_err(create)?;
        let err = out.try_clone().map_err(create)?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .map_err(|source| ProcessError::Spawn { name, source })?;
        Ok(Guarded {
            name,
            child,
            log,
            stopped: false,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn pid(&self) -> i32 {
        // Linux pids fit in i32 (pid_max is at most 2^22).
        self.child.id() as i32
    }

    /// Fails, with the end of the process's log, if it has exited.
    ///
    /// # Errors
    ///
    /// [`ProcessError::Exited`] once the process has gone.
    pub fn check_running(&mut self) -> Result<(), ProcessError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(ProcessError::Exited {
                name: self.name,
                status,
                log_tail: self.log_tail(),
            }),
            Err(source) => Err(ProcessError::Wait {
                name: self.name,
                source,
            }),
        }
    }

    /// The end of the process's log, as a suffix for an error message; empty
    /// when the log is.
    pub fn log_tail(&self) -> String {
        read_tail(&self.log, LOG_TAIL)
            .map(|text| format!("; end of its log:\n{}", text.trim_end()))
            .unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL for the process and everything it started if
    /// it has not gone within [`STOP_GRACE`]. Bounded; idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.pid();
        // Taken before the parent goes: orphans are re-parented and could
        // not be found afterwards.
        let family = descendants(pid);
        // SAFETY: plain system call on a pid we spawned and have not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if !wait_exit(&mut self.child, STOP_GRACE) {
            let _ = self.child.kill();
            wait_exit(&mut self.child, STOP_GRACE);
        }
        for pid in family {
            if is_alive(pid) {
                // SAFETY: as above; a pid reused in these few seconds would
                // have to be one of ours to be hit, and is checked as alive.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls for the child's exit for at most `limit`; true once it is reaped.
fn wait_exit(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until something accepts on loopback `port`, or the process exits,
/// or `timeout` passes.
///
/// # Errors
///
/// [`ProcessError::Exited`] or [`ProcessError::NotListening`], with the
/// end of the process's log.
pub async fn wait_listening(
    process: &mut Guarded,
    port: u16,
    timeout: Duration,
) -> Result<(), ProcessError> {
    let deadline = Instant::now() + timeout;
    loop {
        process.check_running()?;
        if TcpStream::connect_timeout(
            &(Ipv4Addr::LOCALHOST, port).into(),
            Duration::from_millis(200),
        )
        .is_ok()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ProcessError::NotListening {
                name: process.name,
                port,
                timeout,
                log_tail: process.log_tail(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes a synthetic stream the way OBS would: x264 720p30 with a 2 s
/// GOP, no B-frames, constant 2.5 Mbit/s, and AAC audio, in real time. The
/// log goes to `ffmpeg.log` in `log_dir`.
///
/// # Errors
///
/// When ffmpeg cannot be started.
pub fn start_publisher(binary: &Path, log_dir: &Path, url: &str) -> Result<Guarded, ProcessError> {
    let mut command = Command::new(binary);
    command.args(["-hide_banner", "-nostdin", "-loglevel", "warning"]);
    command.args(["-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"]);
    command.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    command.args([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "60",
        "-bf",
        "0",
    ]);
    command.args([
        "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "2500k", "-pix_fmt", "yuv420p",
    ]);
    command.args(["-c:a", "aac", "-b:a", "128k", "-f", "flv", url]);
    Guarded::spawn("ffmpeg", command, log_dir.join("ffmpeg.log"))
}

/// A temporary directory for configs, logs and data, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `TMP/TOOL-PID-LABEL`.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created.
    pub fn create(tool: &str, label: &str) -> Result<TempDir, ProcessError> {
        let path = std::env::temp_dir().join(format!("{tool}-{}-{label}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|source| ProcessError::Create {
            path: path.clone(),
            source,
        })?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asks the kernel for a free loopback port. Another process could take it
/// before the server binds; on a bench machine that is unlikely enough.
///
/// # Errors
///
/// When no loopback socket can be bound.
pub fn free_port() -> Result<u16, ProcessError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(ProcessError::NoFreePort)?;
    Ok(listener
        .local_addr()
        .map_err(ProcessError::NoFreePort)?
        .port())
}

/// Resolves on Ctrl-C or SIGTERM, naming which; never, if the handlers
/// cannot be installed.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "interrupted",
        _ = terminate.recv() => "terminated",
    }
}

/// The last `bytes` of a file, or `None` when it is missing or blank.
pub fn read_tail(path: &Path, bytes: u64) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(bytes))).ok()?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    (!text.trim().is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_of_a_log() {
        let dir = TempDir::create("tinsel-load-test", "tail").unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, "first line\nlast line\n").unwrap();
        assert_eq!(read_tail(&log, 10).as_deref(), Some("last line\n"));
        std::fs::write(&log, "  \n").unwrap();
        assert_eq!(read_tail(&log, 10), None);
        assert_eq!(read_tail(&dir.path().join("missing.log"), 10), None);
    }

    #[test]
    fn a_process_that_exits_says_so_with_its_log() {
        let dir = TempDir::create("tinsel-load-test", "exit").unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "echo goodbye; exit 3"]);
        let mut child = Guarded::spawn("sh", command, dir.path().join("sh.log")).unwrap();
        assert!(wait_exit(&mut child.child, Duration::from_secs(5)));
        let err = child.check_running().unwrap_err().to_string();
        assert!(err.starts_with("sh exited (exit status: 3)"), "{err}");
        assert!(err.ends_with("goodbye"), "{err}");
    }

    #[test]
    fn stop_ends_a_running_process() {
        let dir = TempDir::create("tinsel-load-test", "stop").unwrap();
        let mut command = Command::new("sleep");
        command.arg("30");
        let mut child = Guarded::spawn("sleep", command, dir.path().join("sleep.log")).unwrap();
        child.check_running().unwrap();
        let started = Instant::now();
        child.stop();
        assert!(
            started.elapsed() < STOP_GRACE,
            "took {:?}",
            started.elapsed()
        );
        assert!(child.check_running().is_err());
    }
}
