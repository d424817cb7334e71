//! What `/proc` says about the processes and threads of a measurement: CPU seconds, resident set
//! size, and which process is a control plane's API server or etcd.

use std::path::Path;

/// Ticks per second of `/proc/<pid>/stat`'s CPU times (USER_HZ, 100 on every Linux we run on).
const TICKS_PER_SECOND: f64 = 100.0;

/// Resident set size of a process, from `/proc/<pid>/status`: (VmRSS, VmHWM) in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(Path::new(&format!("/proc/{pid}/stat")))
}

/// CPU seconds the threads of this process named `name` have used (a tokio runtime built with
/// `thread_name(name)`; names longer than 15 bytes are cut by the kernel). Threads that ended
/// take their time with them; a runtime's workers live as long as it does.
pub fn thread_cpu_seconds(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let short = &name[..name.len().min(15)];
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == short)
        })
        .filter_map(|t| stat_cpu_seconds(&t.path().join("stat")))
        .sum()
}

fn stat_cpu_seconds(path: &Path) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// The pid of the process running `binary` (matched on the file name of `argv[0]`) with an
/// argument equal to `arg`: envtest starts every component with flags naming its own port or
/// folder, so one argument tells this control plane's process from another test's.
pub fn find_process(binary: &str, arg: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let mut args = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned());
            let program = args.next()?;
            let name_matches = Path::new(&program).file_name().is_some_and(|n| n == binary);
            (name_matches && args.any(|a| a == arg)).then_some(pid)
        })
}

/// The machine's load averages (1, 5, 15 minutes): other work on the machine skews every number.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU seconds of a process between two readings, if both were taken.
pub fn used(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}
