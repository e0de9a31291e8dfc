//! Shared plumbing of the system tests: gating, tool discovery, running
//! commands (through `HostRunner`, like the drivers) and cleanup that runs
//! even when a test panics.
//!
//! System tests touch the host (loop devices, LVM, a tgtd), so they run only
//! with `CLINKER_SYSTEM_TESTS=1` or `CI=true`, and skip with a message
//! otherwise. Under `CI=true` a missing tool or privilege is a failure, not
//! a skip. `scripts/install-dataplane-tools.sh` installs everything.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use clinker_exec::{Command, CommandRunner, HostRunner, Output};

/// Whether system tests were asked for.
pub fn enabled(test: &str) -> bool {
    let on = std::env::var("CLINKER_SYSTEM_TESTS").is_ok_and(|v| v == "1") || in_ci();
    if !on {
        eprintln!("skipping system test {test}: set CLINKER_SYSTEM_TESTS=1 (or CI=true) to run it");
    }
    on
}

/// `CI=true`: missing prerequisites fail instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (or, under CI, fails) with `reason`; returns false for `?`-style use.
pub fn unmet(test: &str, reason: &str) -> bool {
    assert!(
        !in_ci(),
        "system test {test} cannot run under CI=true: {reason} (see scripts/install-dataplane-tools.sh)"
    );
    eprintln!("skipping system test {test}: {reason} (see scripts/install-dataplane-tools.sh)");
    false
}

/// Finds `program` in `PATH` (and the sbin directories tools live in).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// Checks that every tool exists and that we are root.
pub fn prerequisites(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_program(t).is_none())
        .collect();
    if !missing.is_empty() {
        return unmet(test, &format!("missing tools: {}", missing.join(", ")));
    }
    if !nix_is_root() {
        return unmet(test, "needs root (loop devices, LVM, tgtd)");
    }
    true
}

fn nix_is_root() -> bool {
    // /proc/self/status "Uid:" real effective ...; avoids unsafe getuid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs `cmd` and returns its output.
pub async fn run(cmd: Command) -> Output {
    HostRunner::new()
        .run(&cmd)
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// Runs `cmd`, which must succeed; returns its stdout.
pub async fn run_ok(cmd: Command) -> String {
    let line = cmd.command_line();
    let out = run(cmd).await;
    assert!(out.success(), "{line} exited {}: {}", out.code, out.stderr);
    out.stdout
}

/// Runs commands to completion from a non-async context (cleanup in
/// `Drop`, which may run while a test panics inside the tokio runtime): a
/// fresh thread with its own runtime.
pub fn run_blocking(cmds: Vec<Command>) -> Vec<Output> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let runner = HostRunner::new();
            let mut outs = Vec::new();
            for cmd in cmds {
                match runner.run(&cmd).await {
                    Ok(out) => outs.push(out),
                    Err(e) => outs.push(Output::failed(-1, e.to_string())),
                }
            }
            outs
        })
    })
    .join()
    .unwrap_or_default()
}

/// A random number in `low..high` without a dependency on rand.
pub fn random_in(low: u32, high: u32) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    low + (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % (high - low)
}
