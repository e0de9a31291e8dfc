//! Repository checks. `cargo run -p xtask -- check-deps` enforces the crate
//! dependency rule of ARCHITECTURE.md: every arrow points down the layers,
//! `api` never reaches `volume` or `drivers`, `drivers` never reach `db` or
//! `rpc`, `types` depends on no Clinker crate, and the test-support crate
//! is only ever a dev-dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

/// The test-support crate: a dev-dependency only, of any crate.
const TEST_SUPPORT: &str = "clinker-testkit";

/// Which Clinker crates each crate may depend on (normal dependencies;
/// dev-dependencies are free).
fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let rules: &[(&str, &[&str])] = &[
        // Test support may use every crate; nothing may use it outside
        // dev-dependencies (checked separately: see `TEST_SUPPORT`).
        (
            TEST_SUPPORT,
            &[
                "clinker-types",
                "clinker-config",
                "clinker-runtime",
                "clinker-exec",
                "clinker-db",
                "clinker-rpc",
                "clinker-drivers",
                "clinker-scheduler",
                "clinker-volume",
                "clinker-service",
                "clinker-api",
                "clinker-backup",
                "clinker-backup-manager",
                "clinker-image",
            ],
        ),
        ("clinker-types", &[]),
        // The benchmark talks HTTP only.
        ("clinker-bench", &[]),
        ("clinker-config", &["clinker-types"]),
        ("clinker-runtime", &["clinker-types"]),
        ("clinker-exec", &["clinker-types"]),
        (
            "clinker-db",
            &["clinker-types", "clinker-config", "clinker-runtime"],
        ),
        (
            "clinker-rpc",
            &["clinker-types", "clinker-config", "clinker-runtime"],
        ),
        // Glance client, format inspection and qemu-img: used by the
        // volume manager, never by drivers (they hand it a destination).
        (
            "clinker-image",
            &[
                "clinker-types",
                "clinker-config",
                "clinker-exec",
                "clinker-runtime",
            ],
        ),
        // The chunked backup engine and its object stores: no database, RPC
        // or volume code; the backup service above it wires those.
        (
            "clinker-backup",
            &[
                "clinker-types",
                "clinker-config",
                "clinker-exec",
                "clinker-runtime",
            ],
        ),
        (
            "clinker-drivers",
            &["clinker-types", "clinker-config", "clinker-exec"],
        ),
        // The backup service (Cinder's backup/manager.py): rows and quotas
        // through the database, volumes reached over the volume RPC (never
        // the volume crate or its drivers), the data through the backup
        // engine.
        (
            "clinker-backup-manager",
            &[
                "clinker-types",
                "clinker-config",
                "clinker-runtime",
                "clinker-db",
                "clinker-rpc",
                "clinker-backup",
            ],
        ),
        (
            "clinker-scheduler",
            &[
                "clinker-types",
                "clinker-config",
                "clinker-runtime",
                "clinker-db",
                "clinker-rpc",
            ],
        ),
        (
            "clinker-volume",
            &[
                "clinker-types",
                "clinker-config",
                "clinker-runtime",
                "clinker-db",
                "clinker-rpc",
                "clinker-drivers",
                "clinker-exec",
                "clinker-image",
            ],
        ),
        (
            "clinker-service",
            &[
                "clinker-types",
                "clinker-config",
                "clinker-runtime",
                "clinker-db",
                "clinker-rpc",
                "clinker-drivers",
                "clinker-exec",
                "clinker-image",
                "clinker-scheduler",
                "clinker-volume",
                "clinker-backup",
                "clinker-backup-manager",
            ],
        ),
        // The API talks to Glance itself, as Cinder's does (the image a
        // create names is checked, upload-to-image creates the image), and
        // to every other service over RPC.
        (
            "clinker-api",
            &[
                "clinker-types",
                "clinker-config",
                "clinker-runtime",
                "clinker-db",
                "clinker-rpc",
                "clinker-image",
            ],
        ),
    ];
    rules
        .iter()
        .map(|(k, v)| (*k, v.iter().copied().collect()))
        .collect()
}

fn check_deps() -> Result<(), String> {
    #[allow(clippy::disallowed_methods)] // xtask is tooling, not product code
    let output =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("bad cargo metadata: {e}"))?;
    let rules = allowed();
    let mut problems = Vec::new();
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        // The binary may depend on anything, except test support.
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            if dep["name"].as_str() == Some(TEST_SUPPORT) && dep["kind"].as_str() != Some("dev") {
                problems.push(format!(
                    "{name} may take {TEST_SUPPORT} only as a dev-dependency"
                ));
            }
        }
        if !name.starts_with("clinker-") {
            continue;
        }
        let Some(allowed) = rules.get(name) else {
            problems.push(format!(
                "{name} is not in the dependency rule table (xtask/src/main.rs)"
            ));
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let is_dev = dep["kind"].as_str() == Some("dev");
            if dep_name.starts_with("clinker")
                && !is_dev
                && dep_name != name
                && dep_name != TEST_SUPPORT
                && !allowed.contains(dep_name)
            {
                problems.push(format!("{name} must not depend on {dep_name}"));
            }
        }
    }
    if problems.is_empty() {
        println!("dependency rule holds for {} crates", rules.len());
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("check-deps") => match check_deps() {
            Ok(()) => ExitCode::SUCCESS,
            Err(problems) => {
                eprintln!("dependency rule violated:\n{problems}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: cargo run -p xtask -- check-deps");
            ExitCode::from(2)
        }
    }
}
