//! The command line as a person meets it: help, no arguments, the man
//! page's synopsis, and master mode typed by hand.

mod common;

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ours;
use scache_testkit::harness::{postfix_scache_for_test, TempDir};

/// The option and subcommand tokens of a synopsis text: words that start
/// with `-`, and the word right after the program name (`stats`, ...).
fn tokens(lines: &[String], program: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for line in lines {
        let words: Vec<String> = line
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        for (i, w) in words.iter().enumerate() {
            if w.starts_with('-') && w.len() > 1 {
                set.insert(w.clone());
            } else if i > 0 && words[i - 1] == program && !w.starts_with('-') {
                set.insert(format!("subcommand {w}"));
            }
        }
    }
    set
}

/// The man page's SYNOPSIS section as text (`\-` unescaped, requests kept
/// as words).
fn man_synopsis() -> Vec<String> {
    let man = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../man/scache.8"))
        .expect("man/scache.8");
    man.lines()
        .skip_while(|l| !l.starts_with(".SH SYNOPSIS"))
        .skip(1)
        .take_while(|l| !l.starts_with(".SH "))
        .filter(|l| !l.starts_with(".SS"))
        .map(|l| {
            l.replace("\\-", "-")
                .replace("\\&", "")
                .trim_start_matches(['.', 'B', 'I', 'R'])
                .to_string()
        })
        .collect()
}

fn help_usage() -> Vec<String> {
    let out = Command::new(ours()).arg("--help").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip_while(|l| !l.starts_with("Usage:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_man_page_synopsis_matches_help() {
    let man = tokens(&man_synopsis(), "scache");
    let help = tokens(&help_usage(), "scache");
    assert!(
        man.contains("--listen") && man.contains("subcommand stats"),
        "{man:?}"
    );
    assert_eq!(man, help, "man page SYNOPSIS vs --help Usage");
}

#[test]
fn dash_h_prints_help() {
    for args in [
        &["-h"][..],
        &["--help"],
        &["stats", "-h"],
        &["--listen=x", "-h"],
    ] {
        let out = Command::new(ours()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("Usage:\n"), "{args:?}: {text}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn no_arguments_serve_standalone_on_scache_sock() {
    let dir = TempDir::new("scache-noargs").unwrap();
    let child = Command::new(ours())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sock = dir.path().join("scache.sock");
    let end = Instant::now() + Duration::from_secs(5);
    while !sock.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let exists = sock.exists();
    let stats = Command::new(ours())
        .args(["stats", "--format", "json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(exists, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stats.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listening on scache.sock (mode 0600)"));
    assert!(out.status.success());
}

/// Runs `program ARGS` with a terminal on stdin (and `MAIL_CONFIG` pointing
/// at a minimal main.cf); returns the exit status and stderr.
fn on_a_terminal(program: &Path, args: &[&str], config: &Path) -> (Option<i32>, String) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave: OwnedFd = pty.slave;
    let out = Command::new(program)
        .args(args)
        .env_clear()
        .env("MAIL_CONFIG", config)
        .stdin(Stdio::from(slave))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    drop(pty.master);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn master_mode_on_a_terminal_is_refused_unless_dash_d() {
    let dir = TempDir::new("scache-tty").unwrap();
    std::fs::write(dir.path().join("main.cf"), "").unwrap();
    let mut programs = vec![ours()];
    programs.extend(postfix_scache_for_test(
        "master_mode_on_a_terminal_is_refused_unless_dash_d",
    ));
    for program in programs {
        let (status, err) = on_a_terminal(&program, &["-l", "-t", "unix"], dir.path());
        let name = program.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            err.lines().next(),
            Some(format!("{name}: fatal: do not run this command by hand").as_str()),
            "{}",
            program.display()
        );
        // Postfix's exit status after msg_fatal is 1 too.
        assert_eq!(status, Some(1), "{}: {err}", program.display());
        // -d: the check is off; it fails later (no master status socket:
        // logged, not printed).
        let (status, err) = on_a_terminal(&program, &["-d", "-l", "-t", "unix"], dir.path());
        assert!(!err.contains("by hand"), "{}: {err}", program.display());
        assert_ne!(status, Some(0));
    }
}
