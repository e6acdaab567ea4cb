//! Small system helpers: descriptor limits, file identity, and the CPU time
//! and memory of a process read from `/proc`.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (children
/// started afterwards inherit it) and returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard.max(soft))
}

/// The current soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    Ok(getrlimit(Resource::RLIMIT_NOFILE)?)
}

/// Identity of an open file: `(st_dev, st_ino)`. Two descriptors with the
/// same identity refer to the same socket (sockets have unique inodes).
pub fn file_id(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    // SAFETY: `st` is plain old data; fstat fills it on success and we read
    // it only then.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is a valid open descriptor for the duration of the call
    // and `st` is a valid, writable stat buffer.
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of the times
/// in `/proc/PID/stat`.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// CPU time (user + system, all threads, including exited ones) of process
/// `pid` in seconds, from `/proc/PID/stat`.
pub fn process_cpu_seconds(pid: i32) -> io::Result<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces and parens).
    let rest = s
        .rfind(')')
        .map(|i| &s[i + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let get = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc/PID/stat"))
    };
    let ticks = get(11)? + get(12)?;
    Ok(ticks as f64 / clock_ticks_per_second() as f64)
}

/// Resident set size of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn process_rss_kib(pid: i32) -> io::Result<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS"))
}

/// The CPUs this process was allowed to run on when this function was
/// first called (later calls return the same list, whatever [`set_affinity`]
/// did since).
pub fn allowed_cpus() -> &'static [usize] {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CPUS.get_or_init(|| {
        // SAFETY: cpu_set_t is plain old data, filled by sched_getaffinity.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid cpu set of the given size.
        let rc =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `c` is below CPU_SETSIZE.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    })
}

/// Restricts thread or process `pid` (0: the calling thread) to the CPUs in
/// `cpus`. Threads created afterwards inherit the mask.
pub fn set_affinity(pid: i32, cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain old data; CPU_ZERO/CPU_SET only write
    // inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: `set` is a valid cpu_set_t; CPU_SET bounds-checks `c`.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: valid pid and cpu set of the given size.
    let rc = unsafe { libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Applies [`set_affinity`] to every thread of process `pid`.
pub fn set_process_affinity(pid: i32, cpus: &[usize]) -> io::Result<()> {
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|t| t.parse().ok()) {
            set_affinity(tid, cpus)?;
        }
    }
    Ok(())
}

/// Number of open descriptors of process `pid`.
pub fn process_fd_count(pid: i32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// CPU time (user + system, all threads) used by this process so far, in
/// seconds.
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: `ru` is plain old data filled by getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid `who` and a valid, writable rusage buffer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn proc_readings() {
        let me = std::process::id() as i32;
        assert!(process_rss_kib(me).unwrap() > 0);
        assert!(process_cpu_seconds(me).unwrap() >= 0.0);
        assert!(process_fd_count(me).unwrap() >= 3);
        assert!(self_cpu_seconds() >= 0.0);
    }

    #[test]
    fn file_identity() {
        let (a, b) = UnixStream::pair().unwrap();
        let a2 = a.try_clone().unwrap();
        assert_eq!(file_id(a.as_fd()).unwrap(), file_id(a2.as_fd()).unwrap());
        assert_ne!(file_id(a.as_fd()).unwrap(), file_id(b.as_fd()).unwrap());
    }
}
