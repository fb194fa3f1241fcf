//! `cargo xtask`: the project's two commands for people and CI.
//!
//! - `setup`: install what builds, tests and the demo need (idempotent).
//! - `test`: setup, fmt, clippy, build, every unit and root test, and a
//!   check that the tests left no namespace, program or pin behind.
//! - `demo`: the seed paper's virtual router in namespaces, with traffic.
//! - `bench [--quick]`: every benchmark of `linuxfp-benches`.

mod bench;
mod demo;
mod diagnostics;
mod leaks;
mod run;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "LinuxFP's build, test and demo tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing (Debian packages, rust-src, bpf-linker, bpffs).
    Setup,
    /// Setup, then fmt, clippy, build, unit and root tests, and a leak check.
    Test {
        /// Extra arguments for `cargo test --workspace` (a filter, `-- --nocapture`, ...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_test_args: Vec<String>,
    },
    /// Build the virtual-router testbed and show traffic across it (root).
    Demo,
    /// Run every benchmark of linuxfp-benches (root for the data-plane ones).
    Bench {
        /// Short runs: fewer sizes, pair counts and repeats
        /// (`LINUXFP_BENCH_QUICK=1`), criterion's `--quick`.
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.task {
        Task::Setup => run::setup(),
        Task::Test { cargo_test_args } => test::run(&cargo_test_args),
        Task::Demo => demo::run(),
        Task::Bench { quick } => bench::run(quick),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
