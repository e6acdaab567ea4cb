//! The `scache` daemon: Postfix's shared connection cache, as a drop-in
//! replacement for `scache(8)` under `master(8)`, or standalone.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use scache_bin::options::{self, Command};
use scache_bin::{listcmd, logging, run, statscmd};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let program = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scache".to_string());
    // (No arguments at all select standalone mode on the default socket:
    // see options::parse.)
    let master_style = args.get(1).is_some_and(|a| {
        !a.to_string_lossy().starts_with("--") && a != "stats" && a != "list" && a != "-h"
    });
    let command = match options::parse(args) {
        Ok(c) => c,
        Err(e) => {
            if master_style {
                // Under master(8) the error belongs in the mail log, as
                // Postfix's daemons put it there.
                let env = |k: &str| std::env::var_os(k);
                let _ = logging::init_master(logging::LogSettings {
                    tag: logging::initial_tag(env, &program),
                    destination: logging::Destination::from_env(env),
                    stderr: true,
                    verbose: 0,
                });
            }
            logging::fatal(e)
        }
    };
    match command {
        Command::Help => {
            print!("{}", options::help_text(&program));
            ExitCode::SUCCESS
        }
        Command::Version => {
            print!("{}", options::version_text());
            ExitCode::SUCCESS
        }
        Command::PrintDefaults => {
            let config = scache_bin::config::Config::new(std::path::Path::new("/etc/postfix"));
            print!("{}", scache_bin::config::print_defaults(&config));
            let _ = std::io::stdout().flush();
            ExitCode::SUCCESS
        }
        Command::Stats(o) => statscmd::run(&o),
        Command::List(o) => listcmd::run(&o),
        Command::Master(o) => run::master(o),
        Command::Standalone(o) => run::standalone(o),
    }
}
