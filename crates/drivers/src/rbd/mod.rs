//! The RBD driver: volumes are Ceph RBD images `volume-<uuid>` in one pool,
//! snapshots are protected RBD snapshots `snapshot-<uuid>` of them, and
//! volumes made from snapshots or other volumes are copy-on-write clones
//! (Cinder's `RBDDriver`, `cinder/volume/drivers/rbd.py`).
//!
//! The driver talks to Ceph through the `rbd` and `ceph` command-line tools
//! with `--format json`, run by the injected `CommandRunner` (see
//! `docs/adr/0001-rbd-through-the-cli.md` for why not librbd):
//!
//! * `cli` builds the command lines and runs them with deadlines,
//! * `error` classifies failures from exit codes (errno) and standard error,
//! * `json` parses the outputs, `capacity` turns them into the report,
//! * `driver` is the behaviour, operation by operation, and `lineage`
//!   the clone chains: protection, flattening at the clone depth, hidden
//!   deletion of volumes that still have clones;
//! * `image` the Glance image paths: copy-on-write clones of an image's
//!   own RBD snapshot, image data into new and existing volumes, volume
//!   data out to an upload.

mod capacity;
mod cli;
mod driver;
mod error;
mod image;
mod json;
mod lineage;
#[cfg(test)]
mod tests;

pub use driver::RbdDriver;
