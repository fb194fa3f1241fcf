// SPDX-License-Identifier: MIT OR Apache-2.0
//! `linuxfpd`: accelerate a network namespace with LinuxFP, built only on
//! the library's public API.
//!
//! ```text
//! linuxfpd run      [--netns NAME] [--fpm router,ifcounter] [--hook auto|xdp|tc] [--json-events]
//! linuxfpd topology [--netns NAME] [--json]
//! linuxfpd plan     [--netns NAME] [--fpm ...] [--hook ...] [--json]
//! linuxfpd stats    [--netns NAME] [--json]
//! ```
//!
//! Exit codes: 0 success, 1 other error, 2 usage, 3 not root, 4 BPF
//! unavailable, 5 namespace missing, 6 busy (another instance, or a foreign
//! program in the way).

mod cli;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linuxfpd: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}
