//! Wiping deleted thick LVs off the control path.
//!
//! `volume_clear = zero` overwrites a deleted thick LV so its blocks cannot
//! leak into the next tenant's volume. Cinder does it inside
//! `delete_volume`, so deleting a 1 TiB volume keeps the manager busy for
//! as long as `dd` takes (hours on spinning disks), with the volume stuck in
//! `deleting`. Clinker splits the delete:
//!
//! 1. On the control path, `delete_volume` renames the LV to
//!    `_wipe-<name>` (`lvrename`, milliseconds) and returns. The volume's
//!    name is free again and the manager can finish the delete; the blocks
//!    are still allocated, so capacity reports stay truthful, and the LV is
//!    not exported or reachable under any volume's name.
//! 2. A single background task per backend takes renamed LVs one at a
//!    time, zeroes them (`dd`, the COW store for snapshots) and removes
//!    them. One at a time so wipes do not starve volume I/O;
//!    `volume_clear_ionice` can lower their priority further.
//! 3. The LV's name is the durable record: nothing else needs to survive a
//!    crash. At start-up the driver re-queues every `_wipe-*` LV it finds, so
//!    an interrupted wipe starts over (zeroing is idempotent).
//!
//! A thick origin is wiped only after its renamed snapshots, because writing
//! to an origin copies its old blocks into every snapshot first.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::commands::Activation;
use super::report::LogicalVolume;
use super::vg::Vg;
use crate::DriverError;

/// Prefix of LVs waiting to be wiped. LV names may not start with
/// `snapshot` or `pvmove`; `_wipe-` is neither and cannot collide with
/// `volume-*` or `_snapshot-*`.
pub const WIPE_PREFIX: &str = "_wipe-";

/// The name an LV is renamed to before its wipe.
pub fn wipe_name(name: &str) -> String {
    format!("{WIPE_PREFIX}{name}")
}

#[derive(Debug)]
struct Shared {
    vg: Vg,
    clear_size_bytes: Option<u64>,
    queue: Mutex<Option<mpsc::UnboundedSender<String>>>,
    pending: watch::Sender<BTreeSet<String>>,
    failures: AtomicU64,
}

/// The background wiper of one backend.
#[derive(Clone, Debug)]
pub struct Wiper {
    shared: Arc<Shared>,
}

impl Wiper {
    /// A wiper over `vg`; `clear_size_bytes` limits each wipe to the first
    /// bytes of the LV (`volume_clear_size`), `None` wipes it all.
    pub fn new(vg: Vg, clear_size_bytes: Option<u64>) -> Self {
        Self {
            shared: Arc::new(Shared {
                vg,
                clear_size_bytes,
                queue: Mutex::new(None),
                pending: watch::Sender::new(BTreeSet::new()),
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// Queues the renamed LV `name` (`_wipe-…`); already queued is a no-op.
    /// Must be called on a tokio runtime (it starts the worker on first use).
    pub fn enqueue(&self, name: &str) {
        let mut inserted = false;
        self.shared
            .pending
            .send_modify(|p| inserted = p.insert(name.to_owned()));
        if !inserted {
            return;
        }
        let Ok(mut queue) = self.shared.queue.lock() else {
            return;
        };
        let sender = match queue.as_ref() {
            Some(tx) if !tx.is_closed() => tx.clone(),
            _ => {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(run_worker(self.shared.clone(), rx));
                *queue = Some(tx.clone());
                tx
            }
        };
        if sender.send(name.to_owned()).is_err() {
            self.shared.pending.send_modify(|p| {
                p.remove(name);
            });
        }
    }

    /// The LVs queued or being wiped.
    pub fn pending(&self) -> Vec<String> {
        self.shared.pending.borrow().iter().cloned().collect()
    }

    /// How many wipes failed since start (they are retried at the next
    /// start-up).
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// Waits until nothing is queued or being wiped.
    pub async fn wait_idle(&self) {
        let mut rx = self.shared.pending.subscribe();
        let _ = rx.wait_for(BTreeSet::is_empty).await;
    }
}

async fn run_worker(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<String>) {
    while let Some(name) = rx.recv().await {
        let started = std::time::Instant::now();
        match wipe_and_remove(&shared.vg, shared.clear_size_bytes, &name).await {
            Ok(()) => tracing::info!(
                lv = %name,
                seconds = started.elapsed().as_secs_f64(),
                "wiped and removed a deleted volume"
            ),
            Err(e) => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    lv = %name,
                    error = %e,
                    "cannot wipe a deleted volume; it stays allocated and is retried at the next start"
                );
            }
        }
        shared.pending.send_modify(|p| {
            p.remove(&name);
        });
    }
}

/// Wipes and removes `name`, after its renamed snapshots.
async fn wipe_and_remove(vg: &Vg, clear: Option<u64>, name: &str) -> Result<(), DriverError> {
    let lvs = vg.lvs().await?;
    let Some(lv) = lvs.iter().find(|lv| lv.name == name) else {
        return Ok(());
    };
    for child in lvs.iter().filter(|c| c.origin.as_deref() == Some(name)) {
        if !child.name.starts_with(WIPE_PREFIX) {
            return Err(DriverError::Busy(format!(
                "{name} still has the snapshot {}",
                child.name
            )));
        }
        wipe_one(vg, clear, child).await?;
        vg.remove(&child.name).await?;
    }
    wipe_one(vg, clear, lv).await?;
    vg.remove(name).await
}

async fn wipe_one(vg: &Vg, clear: Option<u64>, lv: &LogicalVolume) -> Result<(), DriverError> {
    if lv.is_thin() {
        // Thin pools hand out zeroed blocks; nothing to wipe.
        return Ok(());
    }
    vg.activate(&lv.name, Activation::IgnoreSkip).await?;
    let device = if lv.is_thick_snapshot() {
        vg.cmd.cow_path(&lv.name)
    } else {
        vg.cmd.mapper_path(&lv.name)
    };
    let bytes = clear.map_or(lv.size_bytes, |c| c.min(lv.size_bytes));
    vg.zero(&device, bytes).await
}
