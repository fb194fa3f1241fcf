//! Running cargo and scripts from the workspace root, loudly.

use std::{
    ffi::OsString,
    path::PathBuf,
    process::{Command, ExitStatus},
};

use anyhow::{Context, Result, bail};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The cargo that runs us (so the pinned toolchain is used throughout).
pub fn cargo(args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(root());
    cmd
}

/// Prints the command line, runs it with inherited stdio and returns its
/// exit status.
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    println!("\n==> {}", describe(cmd));
    cmd.status()
        .with_context(|| format!("cannot start {}", describe(cmd)))
}

/// Like [`status`], but a non-zero exit is an error.
pub fn checked(cmd: &mut Command) -> Result<()> {
    let status = status(cmd)?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// `program arg arg …`, for messages.
pub fn describe(cmd: &Command) -> String {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let program = program.rsplit('/').next().unwrap_or(&program).to_string();
    std::iter::once(program)
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cargo xtask setup`: runs scripts/setup.sh (idempotent; a fast no-op
/// once everything is there).
pub fn setup() -> Result<()> {
    let script = root().join("scripts/setup.sh");
    checked(Command::new("bash").arg(&script).current_dir(root()))
        .context("setup failed: see the [setup] lines above")
}
