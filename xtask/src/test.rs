//! `cargo xtask test`: the whole gate, as CI runs it.
//!
//! Every step runs even when an earlier one failed (except the tests after
//! a failed build), so one run shows everything that is wrong; the leak
//! check runs even when tests fail. Any failure makes the exit non-zero.

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
};

use anyhow::{Context, Result, bail};

use crate::{diagnostics, leaks::Snapshot, run};

/// Totals over every `test result:` line of `cargo test`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

pub fn run(cargo_test_args: &[String]) -> Result<()> {
    run::setup()?;
    let root_dir = run::root();
    println!("\n==> disk: {}", diagnostics::disk_line(&root_dir));
    if diagnostics::free_bytes(&root_dir).is_some_and(|b| b < diagnostics::LOW_DISK_BYTES) {
        println!("warning: little free disk; a build from scratch may fail to write");
    }
    let mut failed: Vec<String> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut step = |name: &str, args: &[&str]| -> Result<bool> {
        let (status, kept) = diagnostics::status_keeping_errors(&mut run::cargo(args))?;
        if !status.success() {
            failed.push(format!("{name}: `cargo {}` failed", args.join(" ")));
            errors.extend(kept);
        }
        Ok(status.success())
    };
    step("fmt", &["fmt", "--all", "--check"])?;
    step(
        "clippy",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let built = step("build", &["build", "--workspace", "--all-targets"])?;

    let root = linuxfp_testkit::is_root();
    if !root {
        println!("\nnote: not root: root tests will print SKIPPED and pass without running");
    }
    if root {
        for item in
            linuxfp_testkit::remove_stale().context("removing what killed test runs left")?
        {
            println!("removed a leftover of a killed test run: {item}");
        }
    }
    let before = Snapshot::take().context("recording the host's state before the tests")?;

    let totals = if built {
        let (ok, totals) = cargo_test(cargo_test_args)?;
        if !ok {
            failed.push(format!(
                "tests: {} failed (see above)",
                totals.failed.max(1)
            ));
        }
        Some(totals)
    } else {
        failed.push("tests: not run, the build failed".into());
        None
    };

    println!("\n==> leak check: namespaces, host interfaces, XDP/TC programs, qdiscs, bpffs pins");
    let after = Snapshot::take().context("recording the host's state after the tests")?;
    let (leaked, foreign) = after.changes_since(&before);
    for line in &foreign {
        println!("  (ignored, belongs to another running process) {line}");
    }
    if leaked.is_empty() {
        println!("  nothing leaked");
    } else {
        println!("  the tests left the host changed:");
        for line in &leaked {
            println!("  {line}");
        }
        failed.push(format!(
            "leak check: {} change(s) to the host",
            leaked.len()
        ));
        if root {
            // Clear our own debris so the next run starts clean; the
            // failure above still stands.
            for item in linuxfp_testkit::remove_stale()? {
                println!("  removed {item}");
            }
        }
    }

    println!("\n==> summary");
    if failed.is_empty() {
        println!("  all steps passed: fmt, clippy, build, tests, leak check");
    }
    for f in &failed {
        println!("  FAILED {f}");
    }
    if !errors.is_empty() {
        println!(
            "\n  the failed steps' errors, repeated ({}):",
            diagnostics::disk_line(&root_dir)
        );
        for line in &errors {
            println!("  | {line}");
        }
    }
    if let Some(t) = &totals {
        // A closing line any test-result reader understands.
        println!(
            "xtask: {} passed, {} failed, {} skipped",
            t.passed, t.failed, t.ignored
        );
    }
    if !failed.is_empty() {
        bail!("{} step(s) failed", failed.len());
    }
    Ok(())
}

/// Runs `cargo test --workspace --no-fail-fast`, echoing its output and
/// adding up its result lines.
fn cargo_test(extra: &[String]) -> Result<(bool, Totals)> {
    let mut args = vec!["test", "--workspace", "--no-fail-fast"];
    args.extend(extra.iter().map(String::as_str));
    let mut cmd = run::cargo(&args);
    println!("\n==> {}", run::describe(&cmd));
    let mut child = cmd
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start cargo test")?;
    let mut totals = Totals::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading cargo test's output")?;
            println!("{line}");
            if let Some(t) = parse_result_line(&line) {
                totals.passed += t.passed;
                totals.failed += t.failed;
                totals.ignored += t.ignored;
            }
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    Ok((status.success(), totals))
}

/// `test result: ok. 9 passed; 0 failed; 1 ignored; 0 measured; ...`
fn parse_result_line(line: &str) -> Option<Totals> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_verdict, counts) = rest.split_once(". ")?;
    let mut totals = Totals::default();
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => totals.passed = n,
            "failed" => totals.failed = n,
            "ignored" => totals.ignored = n,
            _ => {}
        }
    }
    Some(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_are_counted() {
        let ok = "test result: ok. 9 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.32s";
        assert_eq!(
            parse_result_line(ok),
            Some(Totals {
                passed: 9,
                failed: 0,
                ignored: 1
            })
        );
        let bad = "test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 6.69s";
        assert_eq!(
            parse_result_line(bad).map(|t| (t.passed, t.failed)),
            Some((4, 1))
        );
        assert_eq!(parse_result_line("test foo ... ok"), None);
    }
}
