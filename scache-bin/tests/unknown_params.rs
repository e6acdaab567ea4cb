//! A parameter name the daemon does not know is a warning with a
//! suggestion, never fatal: under master(8) (logged through the harness's
//! postlog socket) and standalone (logged on stderr).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use scache_testkit::harness::{HarnessBuilder, TempDir};

const T: Duration = Duration::from_secs(10);

#[test]
fn master_mode_warns_about_unknown_parameters_and_starts() {
    let h = HarnessBuilder::new(ours())
        .main_cf("scache_sesion_limit", "5")
        .main_cf("scache_nonsense", "1")
        // Postfix's parameters for other programs stay silent.
        .main_cf("smtpd_banner", "$myhostname ESMTP")
        .main_cf("smtp_tls_security_level", "may")
        .args(["-o", "scache_fd_reserv=3", "-o", "smtpd_tls_loglevel=1"])
        .spawn()
        .unwrap();
    // It serves.
    let mut peer = Peer::connect(&h);
    let reply = peer.ask(&find_endp_req(b"x"));
    assert_eq!(show(&reply), "status\\02\\0property\\0\\0\\0");
    assert!(
        h.wait_for_log("smtpd_tls_loglevel", T),
        "{:?}",
        h.log_lines()
    );
    let warnings: Vec<String> = h
        .log_messages()
        .into_iter()
        .filter(|m| m.contains("unknown parameter"))
        .collect();
    let main_cf = h.config_dir().join("main.cf");
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    let has = |text: &str| warnings.iter().any(|w| w == text);
    for want in [
        format!(
            "warning: unknown parameter scache_sesion_limit ({}, line ",
            main_cf.display()
        ),
        format!(
            "warning: unknown parameter scache_nonsense ({}, line ",
            main_cf.display()
        ),
    ] {
        assert!(
            warnings.iter().any(|w| w.starts_with(&want)),
            "{want}: {warnings:?}"
        );
    }
    assert!(warnings
        .iter()
        .any(|w| w.ends_with("; did you mean scache_session_limit?")));
    assert!(has(
        "warning: unknown parameter scache_fd_reserv (-o option); did you mean scache_fd_reserve?"
    ));
    assert!(has(
        "warning: unknown parameter smtpd_tls_loglevel (-o option)"
    ));
    assert!(!h.log_lines().iter().any(|l| l.contains("smtpd_banner")));
}

#[test]
fn standalone_warns_about_unknown_parameters_and_starts() {
    let dir = TempDir::new("scache-unknown").unwrap();
    std::fs::write(
        dir.path().join("main.cf"),
        "scache_label_lenght_limit = 100\nrelayhost = [mx]\n",
    )
    .unwrap();
    let sock = dir.path().join("s.sock");
    let mut child = Command::new(ours())
        .arg("--listen")
        .arg(&sock)
        .arg("--config-dir")
        .arg(dir.path())
        .args(["-o", "max_idel=5s"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + T;
    while !sock.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sock.exists(), "the daemon starts");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("unknown parameter"))
        .collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].ends_with(&format!(
        "warning: unknown parameter scache_label_lenght_limit ({}, line 1); \
         did you mean scache_label_length_limit?",
        dir.path().join("main.cf").display()
    )));
    assert!(lines[1]
        .ends_with("warning: unknown parameter max_idel (-o option); did you mean max_idle?"));
    assert!(!err.contains("relayhost"));
}
