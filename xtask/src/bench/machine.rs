//! The machine: a child's peak memory (`wait4`), the load average and the CPU's name.

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::table::{Row, Samples, Target, Unit};

/// Peak resident set size (bytes) and wall seconds of a child process.
#[cfg(target_os = "linux")]
pub(super) fn peak_rss(cmd: &mut Command) -> Result<(u64, f64)> {
    let started = Instant::now();
    let child = cmd.spawn().context("starting the child")?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped (std reaps only in
        // `wait`/`try_wait`, which are never called on it); the pointers are
        // to live locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waiting for the child");
        }
    }
    drop(child);
    let secs = started.elapsed().as_secs_f64();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("the child failed (wait status {status:#x})");
    }
    // Linux reports ru_maxrss in KiB.
    Ok((usage.ru_maxrss.max(0) as u64 * 1024, secs))
}

pub(super) fn memory_row(quick: bool) -> Result<Row> {
    let target = Target::Below { value: 1.0 };
    let work = format!(
        "peak memory of `train-all{}`",
        if quick { " --quick" } else { "" }
    );
    #[cfg(target_os = "linux")]
    {
        let exe = std::env::current_exe().context("finding the xtask binary")?;
        let dir = tempfile::tempdir().context("creating a temporary folder")?;
        let mut cmd = Command::new(exe);
        cmd.arg("train-all")
            .arg("--out")
            .arg(dir.path().join("runs"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if quick {
            cmd.arg("--quick");
        }
        tracing::info!(
            "bench: running train-all{} as a child",
            if quick { " --quick" } else { "" }
        );
        let (bytes, secs) = peak_rss(&mut cmd).context("measuring train-all's peak memory")?;
        Ok(Row {
            work,
            unit: Unit::Gib,
            ours: Samples::new(vec![bytes as f64 / (1u64 << 30) as f64]),
            peer: None,
            target,
            note: format!(
                "maximum resident set size of the child process (`wait4`), one run of {secs:.0} s \
                 (training, evaluation, pictures and report)"
            ),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = quick;
        Ok(Row {
            work,
            unit: Unit::Gib,
            ours: Samples::default(),
            peer: None,
            target,
            note: "not measured: the peak-memory row reads `wait4` and runs on Linux only".into(),
        })
    }
}

pub(super) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub(super) fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
