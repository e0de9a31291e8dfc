//! Running LVM commands, and classifying their failures at the edge.
//!
//! LVM exits 5 for nearly every failure and 3 for bad arguments, so the
//! class comes from its (English, `LC_ALL=C`) messages. The patterns below
//! are the ones LVM 2.03 prints (see `fixtures/lvm/`); anything else is a
//! [`DriverError::Backend`] carrying the message.

use std::sync::Arc;
use std::time::Duration;

use clinker_exec::{Command, CommandRunner, Output};

use crate::DriverError;

/// LVM crashes with SIGSEGV under some races (exit 139); Cinder retries
/// those (LP #1901783, #1932188).
const EXIT_SEGFAULT: i32 = 139;

/// The message lines worth showing: LVM's warnings about activation being
/// off, leaked descriptors and the like are noise in an error.
pub fn error_text(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("WARNING:")
                && !l.starts_with("File descriptor ")
                && !l.starts_with("Run `")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Classifies a failed LVM command. `what` says what was being done
/// (`create volume-…`), for the message.
pub fn classify(what: &str, out: &Output) -> DriverError {
    let text = error_text(&out.stderr);
    let lower = text.to_ascii_lowercase();
    let message = format!("{what}: {text}");
    if out.code == 127 {
        // `env` could not find the program.
        DriverError::Unavailable(format!("{what}: the LVM tools are not installed: {text}"))
    } else if lower.contains("insufficient free space")
        || lower.contains("insufficient suitable")
        || lower.contains("free space in thin pool")
        || (lower.contains("thin pool") && lower.contains("full"))
    {
        DriverError::NoSpace(message)
    } else if lower.contains("already exists") {
        DriverError::AlreadyExists(message)
    } else if lower.contains("in use")
        || lower.contains("open logical volume")
        || lower.contains("only while inactive")
        || lower.contains("device or resource busy")
    {
        DriverError::Busy(message)
    } else if lower.contains("device-mapper") {
        // No dm driver (or no dm target for snapshots, thin pools, mirrors):
        // the host cannot do this at all.
        DriverError::Unavailable(message)
    } else if lower.contains("not found") || lower.contains("failed to find") {
        DriverError::NotFound(message)
    } else if lower.contains("not larger than existing size") {
        DriverError::InvalidInput(message)
    } else {
        DriverError::Backend(format!("{message} (exit {})", out.code))
    }
}

/// Runs LVM (and dd) commands for the driver.
#[derive(Clone, Debug)]
pub struct LvmRunner {
    runner: Arc<dyn CommandRunner>,
    segfault_retry_interval: Duration,
}

impl LvmRunner {
    /// Runs through `runner`.
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Self {
            runner,
            segfault_retry_interval: Duration::from_millis(500),
        }
    }

    /// Runs `cmd`, retrying an LVM crash twice; any exit code is an `Ok`.
    ///
    /// # Errors
    /// The program could not be started ([`DriverError::Unavailable`]).
    pub async fn output(&self, cmd: &Command) -> Result<Output, DriverError> {
        let mut attempt = 1;
        loop {
            let out = self.runner.run(cmd).await?;
            if out.code != EXIT_SEGFAULT || attempt == 3 {
                return Ok(out);
            }
            tracing::warn!(command = %cmd, "lvm crashed (exit 139); retrying");
            tokio::time::sleep(self.segfault_retry_interval).await;
            attempt += 1;
        }
    }

    /// Runs `cmd`; a non-zero exit is classified with [`classify`].
    ///
    /// # Errors
    /// A missing program, or the classified failure.
    pub async fn run(&self, what: &str, cmd: &Command) -> Result<Output, DriverError> {
        let out = self.output(cmd).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(classify(what, &out))
        }
    }
}
