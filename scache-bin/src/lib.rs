//! The `scache` daemon as a library: start-up, configuration, logging and
//! the event loop. The binary (`src/main.rs`) only dispatches on the
//! command line; integration tests start the binary.

pub mod backend;
pub mod config;
pub mod daemon;
pub mod listcmd;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod options;
pub mod run;
pub mod statscmd;
pub mod statslog;
pub mod status;
pub mod tokens;
pub mod watch;
pub mod watchdog;

/// README.md's Rust examples, compiled as doctests (`cargo test --doc`);
/// not part of the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
