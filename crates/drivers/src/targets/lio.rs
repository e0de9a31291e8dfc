//! The `lioadm` target helper: the kernel's LIO target driven through
//! configfs directly (what Cinder does through `cinder-rtstool` and
//! rtslib-fb, `cinder/volume/targets/lio.py`, `cinder/cmd/rtstool.py`).
//!
//! One export is, under the configfs root (`/sys/kernel/config/target`):
//!
//! ```text
//! core/iblock_0/<iqn>/            block device backstore (udev_path, enable)
//! core/fileio_0/<iqn>/            or a file backstore (fd_dev_name, fd_dev_size)
//! iscsi/<iqn>/tpgt_1/             target portal group 1
//!   attrib/authentication = 1     CHAP required
//!   lun/lun_0/clinker -> core/…   LUN 0 on the backstore
//!   np/<ip>:<port>/ [iser = 1]    one portal per target address
//!   acls/<initiator>/             one NodeACL per connected initiator
//!     auth/userid, auth/password  its CHAP credentials
//!     lun_0/clinker -> lun/lun_0  MappedLUN 0
//!   enable = 1
//! ```
//!
//! Unlike tgt, LIO admits initiators one by one: `initialize_connection`
//! adds the connector's ACL and `terminate_connection` drops it. configfs is
//! not persistent, so each export's credentials and initiators are also kept
//! in `<volumes_dir>/<volume name>.lio.json` (mode 0600), from which
//! `ensure_export` rebuilds it after a reboot (Cinder uses rtslib's
//! `saveconfig.json` for the same purpose).
//!
//! The root is injectable: with [`ConfigFsKind::Directory`] the same code
//! drives an ordinary directory tree, which is how it is unit-tested on
//! machines without LIO. Real LIO is tested in a VM with a full kernel:
//! `scripts/nested-vm-test.sh` (the whole service, logged into with
//! open-iscsi) and `tests/lvm_dm_system.rs`.

use std::path::{Path, PathBuf};

use clinker_config::{TargetConfig, TargetProtocol};
use serde::{Deserialize, Serialize};

use super::{ChapCredentials, IscsiSettings, ListedTarget, TargetHelper, portal};
use crate::{DriverError, VolumeSpec};

/// Where the kernel's LIO configfs tree lives.
pub const CONFIGFS_TARGET_ROOT: &str = "/sys/kernel/config/target";

/// Name of the LUN and mapped-LUN symlinks Clinker creates.
const LINK_NAME: &str = "clinker";

/// What kind of tree the helper drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFsKind {
    /// The kernel's configfs: attributes exist once their directory is
    /// made, and directories are removed with `rmdir`.
    Kernel,
    /// A plain directory standing in for configfs (tests): attributes are
    /// created when written, directories are removed with their contents.
    Directory,
}

/// What is kept on disk per export.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ExportState {
    iqn: String,
    path: PathBuf,
    username: String,
    password: String,
    initiators: Vec<String>,
}

/// The LIO helper.
#[derive(Debug)]
pub struct LioAdm {
    settings: IscsiSettings,
    root: PathBuf,
    kind: ConfigFsKind,
    state_dir: PathBuf,
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> DriverError {
    DriverError::Backend(format!("lio: {what} {}: {e}", path.display()))
}

impl LioAdm {
    /// A helper over the configfs tree at `root`.
    pub fn new(config: &TargetConfig, root: PathBuf, kind: ConfigFsKind) -> Self {
        Self {
            settings: IscsiSettings::from_config(config),
            root,
            kind,
            state_dir: config.volumes_dir.clone(),
        }
    }

    /// The target's directory.
    pub fn target_dir(&self, iqn: &str) -> PathBuf {
        self.root.join("iscsi").join(iqn)
    }

    fn tpg_dir(&self, iqn: &str) -> PathBuf {
        self.target_dir(iqn).join("tpgt_1")
    }

    fn state_file(&self, volume_name: &str) -> PathBuf {
        self.state_dir.join(format!("{volume_name}.lio.json"))
    }

    fn mkdir(&self, path: &Path) -> Result<(), DriverError> {
        match std::fs::create_dir(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_error("mkdir", path, &e)),
        }
    }

    fn mkdir_all(&self, path: &Path) -> Result<(), DriverError> {
        std::fs::create_dir_all(path).map_err(|e| io_error("mkdir", path, &e))
    }

    fn write_attr(&self, path: &Path, value: &str) -> Result<(), DriverError> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        if self.kind == ConfigFsKind::Directory {
            if let Some(parent) = path.parent() {
                self.mkdir_all(parent)?;
            }
            options.create(true).truncate(true);
        }
        let mut file = options.open(path).map_err(|e| io_error("open", path, &e))?;
        file.write_all(value.as_bytes())
            .map_err(|e| io_error("write", path, &e))
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<(), DriverError> {
        if link.symlink_metadata().is_ok() {
            return Ok(());
        }
        std::os::unix::fs::symlink(target, link).map_err(|e| io_error("link", link, &e))
    }

    fn rmdir(&self, path: &Path) -> Result<(), DriverError> {
        let result = match self.kind {
            ConfigFsKind::Kernel => std::fs::remove_dir(path),
            ConfigFsKind::Directory => std::fs::remove_dir_all(path),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("rmdir", path, &e)),
        }
    }

    fn unlink(&self, path: &Path) -> Result<(), DriverError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("unlink", path, &e)),
        }
    }

    fn subdirs(path: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn links(path: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Finds the storage object named `name` in any backstore.
    fn find_storage_object(&self, name: &str) -> Option<PathBuf> {
        Self::subdirs(&self.root.join("core"))
            .into_iter()
            .map(|hba| hba.join(name))
            .find(|so| so.is_dir())
    }

    /// The device or file behind the storage object named `name` (its
    /// `udev_path`, which both backstore kinds carry).
    fn backing_store_of(&self, name: &str) -> Option<PathBuf> {
        let so = self.find_storage_object(name)?;
        let text = std::fs::read_to_string(so.join("udev_path")).ok()?;
        let path = text.trim();
        (!path.is_empty()).then(|| PathBuf::from(path))
    }

    /// Creates the storage object for `path` (block device or file).
    fn create_storage_object(&self, name: &str, path: &Path) -> Result<PathBuf, DriverError> {
        if let Some(existing) = self.find_storage_object(name) {
            return Ok(existing);
        }
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::metadata(path).map_err(|e| {
            DriverError::NotFound(format!("lio: backing store {}: {e}", path.display()))
        })?;
        let device = path.display().to_string();
        let so = if meta.file_type().is_block_device() {
            let so = self.root.join("core").join("iblock_0").join(name);
            self.mkdir_all(&so)?;
            self.write_attr(&so.join("control"), &format!("udev_path={device}"))?;
            so
        } else {
            let so = self.root.join("core").join("fileio_0").join(name);
            self.mkdir_all(&so)?;
            self.write_attr(
                &so.join("control"),
                &format!("fd_dev_name={device},fd_dev_size={}", meta.len()),
            )?;
            so
        };
        self.write_attr(&so.join("udev_path"), &device)?;
        self.write_attr(&so.join("enable"), "1")?;
        Ok(so)
    }

    /// What `cinder-rtstool create` does; an existing target is kept.
    fn create_target(&self, iqn: &str, path: &Path) -> Result<(), DriverError> {
        let so = self.create_storage_object(iqn, path)?;
        let tpg = self.tpg_dir(iqn);
        if tpg.join("lun").join("lun_0").is_dir() {
            return Ok(());
        }
        self.mkdir_all(&self.root.join("iscsi"))?;
        self.mkdir(&self.target_dir(iqn))?;
        self.mkdir(&tpg)?;
        self.write_attr(&tpg.join("attrib").join("authentication"), "1")?;
        let lun = tpg.join("lun").join("lun_0");
        self.mkdir_all(&lun)?;
        self.symlink(&so, &lun.join(LINK_NAME))?;
        for address in self.settings.addresses() {
            let np = tpg.join("np").join(portal(&address, self.settings.port));
            self.mkdir_all(&np)?;
            if self.settings.protocol == TargetProtocol::Iser {
                self.write_attr(&np.join("iser"), "1")?;
            }
        }
        self.write_attr(&tpg.join("enable"), "1")
    }

    /// What `cinder-rtstool add-initiator` does.
    fn add_acl(
        &self,
        iqn: &str,
        initiator: &str,
        chap: &ChapCredentials,
    ) -> Result<(), DriverError> {
        let tpg = self.tpg_dir(iqn);
        if !tpg.is_dir() {
            return Err(DriverError::NotFound(format!(
                "lio: target {iqn} does not exist"
            )));
        }
        let acl = tpg.join("acls").join(initiator);
        self.mkdir_all(&acl)?;
        self.write_attr(&acl.join("auth").join("userid"), &chap.username)?;
        self.write_attr(&acl.join("auth").join("password"), &chap.password)?;
        let mapped = acl.join("lun_0");
        self.mkdir(&mapped)?;
        self.symlink(&tpg.join("lun").join("lun_0"), &mapped.join(LINK_NAME))
    }

    /// What `cinder-rtstool delete-initiator` does; an absent ACL is fine.
    fn remove_acl(&self, iqn: &str, initiator: &str) -> Result<(), DriverError> {
        let acls = self.tpg_dir(iqn).join("acls");
        // Initiator names compare case-insensitively, as rtstool does.
        for acl in Self::subdirs(&acls) {
            let matches = acl
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.eq_ignore_ascii_case(initiator));
            if matches {
                self.remove_acl_dir(&acl)?;
            }
        }
        Ok(())
    }

    fn remove_acl_dir(&self, acl: &Path) -> Result<(), DriverError> {
        for mapped in Self::subdirs(acl).into_iter().filter(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lun_"))
        }) {
            for link in Self::links(&mapped) {
                self.unlink(&link)?;
            }
            self.rmdir(&mapped)?;
        }
        self.rmdir(acl)
    }

    /// What `cinder-rtstool delete` does: the target, then its backstore.
    fn delete_target(&self, iqn: &str) -> Result<(), DriverError> {
        let tpg = self.tpg_dir(iqn);
        if tpg.is_dir() {
            for acl in Self::subdirs(&tpg.join("acls")) {
                self.remove_acl_dir(&acl)?;
            }
            if tpg.join("enable").exists() {
                self.write_attr(&tpg.join("enable"), "0")?;
            }
            for np in Self::subdirs(&tpg.join("np")) {
                self.rmdir(&np)?;
            }
            for lun in Self::subdirs(&tpg.join("lun")) {
                for link in Self::links(&lun) {
                    self.unlink(&link)?;
                }
                self.rmdir(&lun)?;
            }
            self.rmdir(&tpg)?;
        }
        self.rmdir(&self.target_dir(iqn))?;
        if let Some(so) = self.find_storage_object(iqn) {
            self.rmdir(&so)?;
        }
        Ok(())
    }

    fn read_state(&self, volume_name: &str) -> Option<ExportState> {
        let text = std::fs::read_to_string(self.state_file(volume_name)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn write_state(&self, volume_name: &str, state: &ExportState) -> Result<(), DriverError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        self.mkdir_all(&self.state_dir)?;
        let path = self.state_file(volume_name);
        let temp = self.state_dir.join(format!(".{volume_name}.lio.json.tmp"));
        let text = serde_json::to_vec_pretty(state)
            .map_err(|e| DriverError::Backend(format!("lio: encoding export state: {e}")))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| io_error("create", &temp, &e))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error("write", &temp, &e))?;
        std::fs::rename(&temp, &path).map_err(|e| io_error("rename", &path, &e))
    }

    fn volume_name_for(&self, iqn: &str) -> Option<String> {
        self.settings.volume_name_of(iqn).map(str::to_owned)
    }

    /// Runs configfs work off the async runtime.
    async fn blocking<T, F>(&self, f: F) -> Result<T, DriverError>
    where
        T: Send + 'static,
        F: FnOnce(&LioAdm) -> Result<T, DriverError> + Send + 'static,
    {
        let me = LioAdm {
            settings: self.settings.clone(),
            root: self.root.clone(),
            kind: self.kind,
            state_dir: self.state_dir.clone(),
        };
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| DriverError::Backend(format!("lio: configfs work panicked: {e}")))?
    }
}

#[async_trait::async_trait]
impl TargetHelper for LioAdm {
    fn helper_name(&self) -> &'static str {
        "lioadm"
    }

    fn settings(&self) -> &IscsiSettings {
        &self.settings
    }

    fn lun(&self) -> u32 {
        0
    }

    fn needs_initiator_acl(&self) -> bool {
        true
    }

    async fn do_setup(&self) -> Result<(), DriverError> {
        tokio::fs::create_dir_all(&self.state_dir)
            .await
            .map_err(|e| {
                DriverError::Unavailable(format!(
                    "cannot create volumes_dir {}: {e}",
                    self.state_dir.display()
                ))
            })
    }

    async fn check_for_setup_error(&self) -> Result<(), DriverError> {
        if tokio::fs::metadata(&self.root)
            .await
            .is_ok_and(|m| m.is_dir())
        {
            Ok(())
        } else {
            Err(DriverError::Unavailable(format!(
                "LIO is not available: {} does not exist (configfs not mounted or target_core_mod not loaded)",
                self.root.display()
            )))
        }
    }

    async fn create_iscsi_target(
        &self,
        volume: &VolumeSpec,
        iqn: &str,
        path: &Path,
        chap: &ChapCredentials,
    ) -> Result<String, DriverError> {
        let (name, iqn_owned, path) = (volume.name.clone(), iqn.to_owned(), path.to_path_buf());
        let chap = chap.clone();
        self.blocking(move |lio| {
            lio.create_target(&iqn_owned, &path)?;
            let mut state = lio.read_state(&name).unwrap_or_default();
            let credentials_changed =
                state.username != chap.username || state.password != chap.password;
            state.iqn.clone_from(&iqn_owned);
            state.path.clone_from(&path);
            state.username.clone_from(&chap.username);
            state.password.clone_from(&chap.password);
            // Rebuild the ACLs of a re-created target (after a reboot).
            for initiator in &state.initiators {
                if credentials_changed
                    || !lio
                        .tpg_dir(&iqn_owned)
                        .join("acls")
                        .join(initiator)
                        .is_dir()
                {
                    lio.add_acl(&iqn_owned, initiator, &chap)?;
                }
            }
            lio.write_state(&name, &state)?;
            // Cinder's LioAdm returns the `get-targets` line, i.e. the IQN.
            Ok(iqn_owned)
        })
        .await
    }

    async fn remove_iscsi_target(&self, volume_name: &str, iqn: &str) -> Result<(), DriverError> {
        let (name, iqn) = (volume_name.to_owned(), iqn.to_owned());
        self.blocking(move |lio| {
            lio.delete_target(&iqn)?;
            lio.unlink(&lio.state_file(&name))
        })
        .await
    }

    async fn list_targets(&self) -> Result<Vec<ListedTarget>, DriverError> {
        self.blocking(|lio| {
            let mut iqns: Vec<String> = LioAdm::subdirs(&lio.root.join("iscsi"))
                .iter()
                .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .filter(|n| n.starts_with("iqn.") || n.starts_with("eui.") || n.starts_with("naa."))
                .collect();
            iqns.sort();
            Ok(iqns
                .into_iter()
                .map(|iqn| ListedTarget {
                    backing_store: lio.backing_store_of(&iqn),
                    iqn,
                })
                .collect())
        })
        .await
    }

    async fn target_is_complete(&self, iqn: &str) -> Result<bool, DriverError> {
        Ok(self.tpg_dir(iqn).join("lun").join("lun_0").is_dir())
    }

    async fn allow_initiator(
        &self,
        iqn: &str,
        initiator: &str,
        chap: &ChapCredentials,
    ) -> Result<(), DriverError> {
        let (iqn, initiator, chap) = (iqn.to_owned(), initiator.to_owned(), chap.clone());
        self.blocking(move |lio| {
            lio.add_acl(&iqn, &initiator, &chap)?;
            if let Some(name) = lio.volume_name_for(&iqn)
                && let Some(mut state) = lio.read_state(&name)
                && !state
                    .initiators
                    .iter()
                    .any(|i| i.eq_ignore_ascii_case(&initiator))
            {
                state.initiators.push(initiator);
                lio.write_state(&name, &state)?;
            }
            Ok(())
        })
        .await
    }

    async fn deny_initiator(&self, iqn: &str, initiator: &str) -> Result<(), DriverError> {
        let (iqn, initiator) = (iqn.to_owned(), initiator.to_owned());
        self.blocking(move |lio| {
            lio.remove_acl(&iqn, &initiator)?;
            if let Some(name) = lio.volume_name_for(&iqn)
                && let Some(mut state) = lio.read_state(&name)
            {
                state
                    .initiators
                    .retain(|i| !i.eq_ignore_ascii_case(&initiator));
                lio.write_state(&name, &state)?;
            }
            Ok(())
        })
        .await
    }
}
