//! CI smoke run of the load generator: a few hundred cycles of every
//! workload against the floor server, Postfix's daemon (when installed;
//! required when `SCACHE_REQUIRE_POSTFIX=1`) and our daemon (when built),
//! checking correctness only, never speed.

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
    let mut cmd = Command::new(load);
    cmd.arg("--smoke").arg("--floor").arg(floor);
    // Our daemon, when the workspace built it into the same target
    // directory (cargo test --workspace does).
    // An explicit SCACHE_OURS is always used.
    let ours = Path::new(load).with_file_name("scache");
    if std::env::var_os("SCACHE_OURS").is_none() {
        if is_fresh(&ours) {
            cmd.arg("--ours").arg(&ours);
        } else {
            eprintln!(
                "note: {} is missing or older than its sources: our daemon is not checked \
                 (cargo build -p scache-bin, or set SCACHE_OURS)",
                ours.display()
            );
            cmd.arg("--ours").arg("/nonexistent/scache");
        }
    }
    let out = cmd.output().expect("run scache-load --smoke");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(out.status.success(), "scache-load --smoke failed: {stderr}");
    assert!(stderr.contains("smoke ok: floor"), "{stderr}");
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
