//! CI smoke run of the load generator: a few hundred cycles of every
//! workload against the floor server, Postfix's daemon and our daemon,
//! checking correctness only, never speed.
//!
//! A gate, not a courtesy: our daemon must be the binary built next to the
//! load generator (same profile; `.ci/run` builds and runs it in release
//! mode) or `SCACHE_OURS`, and it must be newer than every source it is
//! made of; otherwise the test fails and says how to build it. Postfix's
//! daemon may be left out only outside CI and without
//! `SCACHE_REQUIRE_POSTFIX=1`, and the test then prints a `SKIPPED:` line.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

/// Newest modification time of the files under `dir` (recursively).
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut best = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        best = best.max(t);
    }
    best
}

/// Whether the daemon binary at `bin` was built after every source it is
/// made of was last changed (a stale binary would test old code).
fn is_fresh(bin: &Path) -> bool {
    let Ok(built) = bin.metadata().and_then(|m| m.modified()) else {
        return false;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    ["scache-bin/src", "scache-core/src", "scache-proto/src"]
        .iter()
        .filter_map(|d| newest(&root.join(d)))
        .all(|t| t <= built)
}

#[test]
fn load_generator_smoke() {
    let load = env!("CARGO_BIN_EXE_scache-load");
    let floor = env!("CARGO_BIN_EXE_scache-floor");
    // Our daemon: an explicit SCACHE_OURS, else the one cargo built into
    // the same target directory and profile as the load generator.
    let ours = match std::env::var_os("SCACHE_OURS") {
        Some(p) => {
            let p = std::path::PathBuf::from(p);
            assert!(p.is_file(), "SCACHE_OURS={} is not a file", p.display());
            p
        }
        None => {
            let p = Path::new(load).with_file_name("scache");
            let release = p
                .parent()
                .and_then(|d| d.file_name())
                .is_some_and(|d| d == "release");
            let flag = if release { " --release" } else { "" };
            assert!(
                is_fresh(&p),
                "{} is missing or older than its sources, so the smoke run would not check \
                 our daemon: build it first (cargo build{flag} -p scache-bin -p scache-benches, \
                 then cargo test{flag} -p scache-benches --test smoke), or set SCACHE_OURS",
                p.display()
            );
            p
        }
    };
    let out = Command::new(load)
        .arg("--smoke")
        .arg("--floor")
        .arg(floor)
        .arg("--ours")
        .arg(&ours)
        .output()
        .expect("run scache-load --smoke");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(out.status.success(), "scache-load --smoke failed: {stderr}");
    for daemon in ["floor", "ours"] {
        assert!(
            stderr.contains(&format!("smoke ok: {daemon:8}")),
            "{daemon} was not checked:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("scache-load --smoke: all checks passed"),
        "{stderr}"
    );
    if !stderr.contains("smoke ok: postfix ") {
        let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        eprintln!("SKIPPED: Postfix's daemon was not checked (install Debian's postfix)");
        assert!(
            !in_ci,
            "Postfix's daemon was not checked, and CI must not skip it:\n{stderr}"
        );
    }
}

#[test]
fn floor_io_designs_agree() {
    // The threaded floor runs the same checks (the default design is epoll,
    // covered above).
    let load = env!("CARGO_BIN_EXE_scache-load");
    let floor = env!("CARGO_BIN_EXE_scache-floor");
    for workload in ["endp", "dest", "miss"] {
        let out = Command::new(load)
            .args([
                "--daemon",
                "floor",
                "--floor",
                floor,
                "--floor-io",
                "threads",
            ])
            .args(["--workload", workload, "--clients", "3", "--cycles", "300"])
            .output()
            .expect("run scache-load");
        assert!(
            out.status.success(),
            "{workload}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
