//! What the benchmarks read about server processes from /proc (proc(5)):
//! CPU time, resident memory (now and at its peak), and the tree of
//! processes a server started. Parsing is pure and tested on sample text.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProcfsError {
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not parse {path}")]
    Parse { path: PathBuf },
}

/// The fields of /proc/PID/stat the benchmarks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

/// Parses /proc/PID/stat. The command name, field 2, is in parentheses and
/// may itself hold spaces and parentheses, so fields are counted from the
/// last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        cpu_ticks: utime + stime,
    })
}

/// The command name in /proc/PID/stat (field 2, in parentheses): for a
/// thread, its name.
pub fn parse_comm(text: &str) -> Option<&str> {
    let start = text.find('(')? + 1;
    let end = text.rfind(')')?;
    text.get(start..end)
}

/// `VmHWM` (peak resident memory) from /proc/PID/status, in KiB.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    parse_status_kib(status, "VmHWM:")
}

/// `VmRSS` (resident memory now) from /proc/PID/status, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    parse_status_kib(status, "VmRSS:")
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

fn read(path: String) -> Result<(PathBuf, String), ProcfsError> {
    let path = PathBuf::from(path);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(source) => Err(ProcfsError::Read { path, source }),
    }
}

fn stat(pid: i32) -> Result<Stat, ProcfsError> {
    let (path, text) = read(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or(ProcfsError::Parse { path })
}

/// True while `pid` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    stat(pid).is_ok_and(|stat| stat.state != 'Z')
}

/// All processes below `root`, found by their parent ids.
pub fn descendants(root: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(i32, i32)> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat(pid).ok()?.ppid)))
        .collect();
    descendants_in(root, &parents)
}

/// `(pid, ppid)` pairs to the pids below `root`.
pub fn descendants_in(root: i32, parents: &[(i32, i32)]) -> Vec<i32> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    // Bounded: each pid is added at most once, as pids are unique.
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in parents {
            if ppid == parent && pid != root && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// CPU seconds used so far by one process (all its threads).
///
/// # Errors
///
/// When the process is gone or its stat file cannot be parsed.
pub fn process_cpu_seconds(pid: i32) -> Result<f64, ProcfsError> {
    Ok(stat(pid)?.cpu_ticks as f64 / clock_ticks_per_second())
}

/// CPU seconds used so far by `root` and every process below it.
///
/// # Errors
///
/// When `root` is gone; children that exit in between count as zero.
pub fn tree_cpu_seconds(root: i32) -> Result<f64, ProcfsError> {
    let mut total = process_cpu_seconds(root)?;
    for pid in descendants(root) {
        total += process_cpu_seconds(pid).unwrap_or(0.0);
    }
    Ok(total)
}

/// The whole machine's CPU time so far, from the first line of /proc/stat:
/// busy (everything but idle and iowait) and in all, in clock ticks summed
/// over the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineCpu {
    pub busy_ticks: u64,
    pub total_ticks: u64,
}

impl MachineCpu {
    /// The share of all cores that was busy from `earlier` to `self`.
    pub fn busy_share_since(&self, earlier: &MachineCpu) -> Option<f64> {
        let total = self.total_ticks.checked_sub(earlier.total_ticks)?;
        let busy = self.busy_ticks.checked_sub(earlier.busy_ticks)?;
        (total > 0).then(|| busy as f64 / total as f64)
    }
}

/// Parses the `cpu` line of /proc/stat: user nice system idle iowait irq
/// softirq steal (guest time is already in user and nice).
pub fn parse_machine_cpu(stat: &str) -> Option<MachineCpu> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 5 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields[4];
    Some(MachineCpu {
        busy_ticks: total - idle,
        total_ticks: total,
    })
}

/// The machine's CPU time so far.
///
/// # Errors
///
/// When /proc/stat cannot be read or parsed.
pub fn machine_cpu() -> Result<MachineCpu, ProcfsError> {
    let (path, text) = read("/proc/stat".to_string())?;
    parse_machine_cpu(&text).ok_or(ProcfsError::Parse { path })
}

/// One thread's name and CPU time so far.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadCpu {
    pub tid: i32,
    pub name: String,
    pub cpu_s: f64,
}

/// CPU seconds used so far by each thread of a process
/// (/proc/PID/task/TID/stat); threads that exit while being read are left
/// out.
///
/// # Errors
///
/// When the process is gone.
pub fn thread_cpu_seconds(pid: i32) -> Result<Vec<ThreadCpu>, ProcfsError> {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    let entries = std::fs::read_dir(&dir).map_err(|source| ProcfsError::Read {
        path: dir.clone(),
        source,
    })?;
    let ticks = clock_ticks_per_second();
    Ok(entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|tid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            Some(ThreadCpu {
                tid,
                name: parse_comm(&text)?.to_string(),
                cpu_s: parse_stat(&text)?.cpu_ticks as f64 / ticks,
            })
        })
        .collect())
}

/// Peak resident memory of one process, in KiB.
///
/// # Errors
///
/// When the process is gone or its status has no `VmHWM` (kernel threads).
pub fn peak_rss_kib(pid: i32) -> Result<u64, ProcfsError> {
    let (path, text) = read(format!("/proc/{pid}/status"))?;
    parse_vm_hwm(&text).ok_or(ProcfsError::Parse { path })
}

/// Resident memory of one process now, in KiB.
///
/// # Errors
///
/// When the process is gone or its status has no `VmRSS` (kernel threads).
pub fn rss_kib(pid: i32) -> Result<u64, ProcfsError> {
    let (path, text) = read(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&text).ok_or(ProcfsError::Parse { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_the_name() {
        let text = "4242 (nginx: (worker) process) S 4241 4241 4241 0 -1 4194624 120 0 0 0 \
                    731 205 0 0 20 0 1 0 12345 12345678 1234 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                state: 'S',
                ppid: 4241,
                cpu_ticks: 936
            })
        );
    }

    #[test]
    fn machine_cpu_from_proc_stat() {
        let stat = "cpu  100 20 30 800 50 5 5 0 0 0\ncpu0 50 10 15 400 25 2 3 0 0 0\n";
        let earlier = parse_machine_cpu(stat).unwrap();
        assert_eq!(
            earlier,
            MachineCpu {
                busy_ticks: 160,
                total_ticks: 1010
            }
        );
        let later = parse_machine_cpu("cpu  200 20 30 850 50 5 5 0 0 0\n").unwrap();
        assert_eq!(later.busy_share_since(&earlier), Some(100.0 / 150.0));
        assert_eq!(earlier.busy_share_since(&earlier), None);
        assert_eq!(parse_machine_cpu("cpu0 1 2 3 4 5\n"), None);
        assert_eq!(parse_machine_cpu("cpu  1 2 x 4 5\n"), None);
        assert!(machine_cpu().unwrap().total_ticks > 0);
    }

    #[test]
    fn comm_with_parens() {
        let text = "4242 (nginx: (worker) process) S 4241 4241";
        assert_eq!(parse_comm(text), Some("nginx: (worker) process"));
        assert_eq!(
            parse_comm("7 (tokio-rt-worker) R 1"),
            Some("tokio-rt-worker")
        );
        assert_eq!(parse_comm("garbage"), None);
    }

    #[test]
    fn stat_truncated_is_none() {
        assert_eq!(parse_stat("1 (init) S 0 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn vm_hwm_in_kib() {
        let status =
            "Name:\tnginx\nVmPeak:\t  20000 kB\nVmHWM:\t    5120 kB\nVmRSS:\t    4000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(5120));
        assert_eq!(parse_vm_rss(status), Some(4000));
        assert_eq!(parse_vm_hwm("Name:\tkthreadd\n"), None);
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn descendants_follow_parent_ids() {
        let parents = [(1, 0), (10, 1), (11, 10), (12, 10), (13, 12), (20, 1)];
        let mut found = descendants_in(10, &parents);
        found.sort_unstable();
        assert_eq!(found, vec![11, 12, 13]);
        assert!(descendants_in(13, &parents).is_empty());
    }

    #[test]
    fn this_process_has_a_cpu_time_and_peak_rss() {
        let pid = std::process::id() as i32;
        assert!(process_cpu_seconds(pid).unwrap() >= 0.0);
        assert!(peak_rss_kib(pid).unwrap() > 0);
        assert!(rss_kib(pid).unwrap() > 0);
        let threads = thread_cpu_seconds(pid).unwrap();
        assert!(threads.iter().any(|t| t.tid == pid), "{threads:?}");
        assert!(is_alive(pid));
    }
}
