//! The volume group: typed LVM operations over [`LvmCommands`] and
//! [`LvmRunner`] (Cinder's `cinder/brick/local_dev/lvm.py`).

use std::path::Path;

use super::commands::{Activation, LvmCommands};
use super::errors::LvmRunner;
use super::report::{self, LogicalVolume, PhysicalVolume, VolumeGroup};
use crate::DriverError;

/// One volume group and the commands on it.
#[derive(Clone, Debug)]
pub struct Vg {
    /// The command builders.
    pub cmd: LvmCommands,
    /// The runner.
    pub run: LvmRunner,
}

impl Vg {
    /// The `(major, minor, patch)` of the installed LVM.
    ///
    /// # Errors
    /// LVM is not installed, or its version cannot be read.
    pub async fn lvm_version(&self) -> Result<(u32, u32, u32), DriverError> {
        let out = self
            .run
            .output(&self.cmd.lvm_version())
            .await
            .map_err(|e| DriverError::Unavailable(format!("LVM is not installed: {e}")))?;
        // `lvm version` exits non-zero when it cannot reach device-mapper,
        // but still prints the version.
        report::parse_lvm_version(&out.stdout).ok_or_else(|| {
            DriverError::Unavailable(format!(
                "cannot read the LVM version: {}",
                super::errors::error_text(&out.stderr)
            ))
        })
    }

    /// The VG, or `None` when it does not exist.
    ///
    /// # Errors
    /// LVM failed for another reason.
    pub async fn info(&self) -> Result<Option<VolumeGroup>, DriverError> {
        let cmd = self.cmd.vgs();
        let out = self.run.output(&cmd).await?;
        if !out.success() {
            return match super::errors::classify(
                &format!("read volume group {}", self.cmd.vg()),
                &out,
            ) {
                DriverError::NotFound(_) => Ok(None),
                other => Err(other),
            };
        }
        Ok(report::parse_vgs(&out.stdout)?
            .into_iter()
            .find(|vg| vg.name == self.cmd.vg()))
    }

    /// The VG, which must exist.
    ///
    /// # Errors
    /// [`DriverError::Unavailable`] when it does not.
    pub async fn require(&self) -> Result<VolumeGroup, DriverError> {
        self.info().await?.ok_or_else(|| {
            DriverError::Unavailable(format!("volume group {} does not exist", self.cmd.vg()))
        })
    }

    /// Every LV of the VG.
    ///
    /// # Errors
    /// A missing VG is [`DriverError::Unavailable`].
    pub async fn lvs(&self) -> Result<Vec<LogicalVolume>, DriverError> {
        let out = self
            .run
            .run(
                &format!("list volume group {}", self.cmd.vg()),
                &self.cmd.lvs(),
            )
            .await
            .map_err(|e| match e {
                DriverError::NotFound(m) => DriverError::Unavailable(m),
                other => other,
            })?;
        report::parse_lvs(&out.stdout)
    }

    /// One LV by name.
    ///
    /// # Errors
    /// As [`Vg::lvs`].
    pub async fn lv(&self, name: &str) -> Result<Option<LogicalVolume>, DriverError> {
        Ok(self.lvs().await?.into_iter().find(|lv| lv.name == name))
    }

    /// The PVs of the VG.
    ///
    /// # Errors
    /// LVM failed.
    pub async fn pvs(&self) -> Result<Vec<PhysicalVolume>, DriverError> {
        let out = self
            .run
            .run("list physical volumes", &self.cmd.pvs())
            .await?;
        Ok(report::parse_pvs(&out.stdout)?
            .into_iter()
            .filter(|pv| pv.vg_name == self.cmd.vg())
            .collect())
    }

    /// `lvchange -a y --yes …`.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn activate(&self, name: &str, activation: Activation) -> Result<(), DriverError> {
        self.run
            .run(
                &format!("activate {name}"),
                &self.cmd.activate(name, activation),
            )
            .await
            .map(|_| ())
    }

    /// `lvrename`.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn rename(&self, old: &str, new: &str) -> Result<(), DriverError> {
        self.run
            .run(
                &format!("rename {old} to {new}"),
                &self.cmd.rename(old, new),
            )
            .await
            .map(|_| ())
    }

    /// Removes an LV (absent is success): `lvremove` with retried
    /// deactivation; on failure `udevadm settle` and once more ignoring
    /// suspended devices (Cinder's brick `delete`).
    ///
    /// # Errors
    /// The second attempt's classified failure.
    pub async fn remove(&self, name: &str) -> Result<(), DriverError> {
        let what = format!("remove {name}");
        match self.run.run(&what, &self.cmd.remove(name, false)).await {
            Ok(_) | Err(DriverError::NotFound(_)) => return Ok(()),
            Err(DriverError::Unavailable(m)) if m.contains("cannot run") => {
                return Err(DriverError::Unavailable(m));
            }
            Err(e) => {
                tracing::debug!(lv = name, error = %e, "lvremove failed; settling udev and retrying")
            }
        }
        // udevadm may be absent (containers); the retry is what matters.
        let _ = self.run.output(&self.cmd.udevadm_settle()).await;
        match self.run.run(&what, &self.cmd.remove(name, true)).await {
            Ok(_) | Err(DriverError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Zeroes the first `bytes` of `device`.
    ///
    /// # Errors
    /// dd failed.
    pub async fn zero(&self, device: &Path, bytes: u64) -> Result<(), DriverError> {
        let cmd = self.cmd.zero(device, bytes);
        let out = self.run.output(&cmd).await?;
        if out.success() {
            Ok(())
        } else {
            Err(DriverError::Backend(format!(
                "zeroing {}: {}",
                device.display(),
                out.stderr.trim()
            )))
        }
    }

    /// Copies `bytes` from `src` to `dst` with dd.
    ///
    /// # Errors
    /// dd failed (a full destination is [`DriverError::NoSpace`]).
    pub async fn copy(
        &self,
        src: &Path,
        dst: &Path,
        bytes: u64,
        sparse: bool,
    ) -> Result<(), DriverError> {
        let cmd = self.cmd.copy(src, dst, bytes, sparse);
        let started = std::time::Instant::now();
        let out = self.run.output(&cmd).await?;
        if !out.success() {
            let text = out.stderr.trim();
            let message = format!("copying {} to {}: {text}", src.display(), dst.display());
            return Err(if text.contains("No space left") {
                DriverError::NoSpace(message)
            } else if text.contains("No such file") {
                DriverError::NotFound(message)
            } else {
                DriverError::Backend(message)
            });
        }
        tracing::info!(
            src = %src.display(),
            dst = %dst.display(),
            bytes,
            seconds = started.elapsed().as_secs_f64(),
            "volume copy finished"
        );
        Ok(())
    }
}
