//! What an import read, wrote and left behind, as the operator reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use clinker_types::Timestamp;

/// A row left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The kind (`volume`, `snapshot`, …).
    pub kind: &'static str,
    /// Its id (or key).
    pub id: String,
    /// Why.
    pub reason: String,
}

/// How an import ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `--dry-run`: nothing written.
    DryRun,
    /// Written, in one transaction.
    Imported,
    /// The target already holds an import; nothing written.
    AlreadyImported {
        /// The source recorded then.
        source: String,
        /// When.
        at: Timestamp,
    },
}

/// What an import read, wrote and left behind.
#[derive(Clone, Debug)]
pub struct ImportReport {
    /// The source's alembic revision.
    pub revision: String,
    /// Rows imported (or to import, in a dry run) per kind.
    pub imported: BTreeMap<&'static str, u64>,
    /// Soft-deleted rows per Cinder table (never imported).
    pub soft_deleted: BTreeMap<&'static str, u64>,
    /// Live rows of tables Clinker does not model, with the reason.
    pub not_carried: BTreeMap<&'static str, (u64, &'static str)>,
    /// Live rows left out.
    pub skipped: Vec<Skipped>,
    /// `enabled_backends` sections the volumes' hosts name.
    pub backends_needed: BTreeSet<String>,
    /// Of those, the ones Clinker's configuration lacks.
    pub backends_missing: BTreeSet<String>,
    /// Cinder services whose heartbeat is younger than `service_down_time`.
    pub live_services: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::DryRun => writeln!(f, "dry run: nothing was written")?,
            Outcome::Imported => writeln!(f, "imported in one transaction")?,
            Outcome::AlreadyImported { source, at } => {
                return writeln!(
                    f,
                    "this database already holds an import from {source} (at {}); nothing changed \
                     (--replace starts over)",
                    at.to_iso8601()
                );
            }
        }
        writeln!(f, "Cinder schema revision {}", self.revision)?;
        writeln!(f, "rows imported:")?;
        for (kind, n) in &self.imported {
            writeln!(f, "  {kind:<28} {n}")?;
        }
        if !self.soft_deleted.is_empty() {
            writeln!(f, "soft-deleted rows skipped:")?;
            for (table, n) in &self.soft_deleted {
                writeln!(f, "  {table:<28} {n}")?;
            }
        }
        if !self.not_carried.is_empty() {
            writeln!(f, "live rows not carried:")?;
            for (table, (n, why)) in &self.not_carried {
                writeln!(f, "  {table:<28} {n}  ({why})")?;
            }
        }
        if !self.skipped.is_empty() {
            writeln!(f, "rows skipped:")?;
            for s in &self.skipped {
                writeln!(f, "  {} {}: {}", s.kind, s.id, s.reason)?;
            }
        }
        writeln!(
            f,
            "enabled_backends sections the volumes need: {}",
            join(&self.backends_needed)
        )?;
        if !self.backends_missing.is_empty() {
            writeln!(
                f,
                "missing from Clinker's enabled_backends: {} (add these sections, with the \
                 driver options Cinder used, before starting Clinker)",
                join(&self.backends_missing)
            )?;
        }
        if !self.live_services.is_empty() {
            writeln!(
                f,
                "Cinder services still reporting: {}",
                self.live_services.join(", ")
            )?;
        }
        Ok(())
    }
}

fn join(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "(none)".into()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}
