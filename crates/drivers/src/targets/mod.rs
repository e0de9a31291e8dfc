//! iSCSI target helpers: how a block driver's volume becomes reachable by a
//! host (Cinder's `cinder/volume/targets/`).
//!
//! A [`TargetHelper`] is composed into a driver at build time from the
//! backend's `target_helper` option. The helper-specific primitives
//! (create/remove/look up one target) are implemented by [`tgt::TgtAdm`],
//! [`lio::LioAdm`] and [`fake::FakeTarget`]; the iSCSI semantics shared by
//! all of them are the trait's provided methods, following Cinder's
//! `ISCSITarget`:
//!
//! * the IQN is `target_prefix + volume.name`;
//! * CHAP is always on: `create_export` reuses the volume's stored
//!   `provider_auth` (`"CHAP <user> <password>"`) or generates a 20-character
//!   user name and a 16-character password from the operating system's
//!   CSPRNG;
//! * `provider_location` is `"<ip>:<port>[;<ip2>:<port>],<tid> <iqn> <lun>"`;
//! * `initialize_connection` answers Cinder's iSCSI `connection_info` shape.

pub mod fake;
pub mod lio;
pub mod tgt;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clinker_config::{TargetConfig, TargetHelperKind, TargetProtocol};
use clinker_exec::CommandRunner;
use clinker_types::capabilities::truthy;
use clinker_types::connection::{ConnectionInfo, Connector};
use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::{Map, Value, json};

use crate::{DriverError, ModelUpdate, VolumeSpec};

/// Symbols for generated CHAP secrets: Cinder's set, without characters that
/// are easy to confuse (0, 1, I, O, l).
const SYMBOL_GROUPS: [&str; 3] = [
    "23456789",
    "ABCDEFGHJKLMNPQRSTUVWXYZ",
    "abcdefghijkmnopqrstuvwxyz",
];

/// Length of a generated CHAP user name (Cinder's `generate_username`).
pub const CHAP_USERNAME_LENGTH: usize = 20;
/// Length of a generated CHAP password (Cinder's `generate_password`).
pub const CHAP_PASSWORD_LENGTH: usize = 16;

/// CHAP credentials of one export. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ChapCredentials {
    /// The user name.
    pub username: String,
    /// The secret.
    pub password: String,
}

impl std::fmt::Debug for ChapCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChapCredentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl ChapCredentials {
    /// Fresh credentials: at least one symbol of each group, shuffled, from
    /// the thread-local CSPRNG (ChaCha seeded by the operating system).
    pub fn generate() -> Self {
        Self {
            username: random_secret(CHAP_USERNAME_LENGTH),
            password: random_secret(CHAP_PASSWORD_LENGTH),
        }
    }

    /// Reads `provider_auth` (`"CHAP <user> <password>"`); `None` for any
    /// other shape.
    pub fn from_provider_auth(provider_auth: &str) -> Option<Self> {
        let mut parts = provider_auth.split_whitespace();
        let (Some(method), Some(username), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        method.eq_ignore_ascii_case("CHAP").then(|| Self {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }

    /// The `provider_auth` text.
    pub fn to_provider_auth(&self) -> String {
        format!("CHAP {} {}", self.username, self.password)
    }
}

fn random_secret(length: usize) -> String {
    let mut rng = rand::rng();
    let all: Vec<char> = SYMBOL_GROUPS.iter().flat_map(|g| g.chars()).collect();
    let mut chars: Vec<char> = SYMBOL_GROUPS
        .iter()
        .filter_map(|g| {
            let group: Vec<char> = g.chars().collect();
            group.get(rng.random_range(0..group.len())).copied()
        })
        .take(length)
        .collect();
    while chars.len() < length {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    chars.into_iter().collect()
}

/// A parsed `provider_location`: `"<portal>[;<portal>…],<tid> <iqn> <lun>"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderLocation {
    /// `ip:port` portals, the primary first.
    pub portals: Vec<String>,
    /// The target id (tgt's tid, `0` for fake, the IQN for LIO).
    pub tid: String,
    /// The target's IQN.
    pub iqn: String,
    /// The LUN (tgt 1, LIO and fake 0).
    pub lun: u32,
}

impl ProviderLocation {
    /// Parses the text Cinder's `_iscsi_location` writes. A missing or
    /// unparsable LUN reads as 0, as Cinder's `_get_iscsi_properties` does.
    pub fn parse(text: &str) -> Option<Self> {
        let mut fields = text.split(' ');
        let (Some(portals_and_tid), Some(iqn)) = (fields.next(), fields.next()) else {
            return None;
        };
        let lun = fields.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let (portals, tid) = portals_and_tid
            .split_once(',')
            .unwrap_or((portals_and_tid, ""));
        let portals: Vec<String> = portals
            .split(';')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        if portals.is_empty() || iqn.is_empty() {
            return None;
        }
        Some(Self {
            portals,
            tid: tid.to_owned(),
            iqn: iqn.to_owned(),
            lun,
        })
    }
}

impl std::fmt::Display for ProviderLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{},{} {} {}",
            self.portals.join(";"),
            self.tid,
            self.iqn,
            self.lun
        )
    }
}

/// The portal of `address` on `port`; IPv6 addresses are bracketed
/// (Cinder's `sanitize_host`).
pub fn portal(address: &str, port: u16) -> String {
    if address.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// The target options every iSCSI helper uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IscsiSettings {
    /// `target_prefix`.
    pub prefix: String,
    /// `target_ip_address`.
    pub ip_address: String,
    /// `target_secondary_ip_addresses`.
    pub secondary_ip_addresses: Vec<String>,
    /// `target_port`.
    pub port: u16,
    /// `target_protocol`.
    pub protocol: TargetProtocol,
}

impl IscsiSettings {
    /// The settings of a backend's target options.
    pub fn from_config(config: &TargetConfig) -> Self {
        Self {
            prefix: config.target_prefix.clone(),
            ip_address: config.target_ip_address.clone(),
            secondary_ip_addresses: config.target_secondary_ip_addresses.clone(),
            port: config.target_port,
            protocol: config.target_protocol,
        }
    }

    /// The IQN of a volume's target.
    pub fn iqn(&self, volume_name: &str) -> String {
        format!("{}{volume_name}", self.prefix)
    }

    /// The volume name an IQN of ours belongs to.
    pub fn volume_name_of<'a>(&self, iqn: &'a str) -> Option<&'a str> {
        iqn.strip_prefix(self.prefix.as_str())
            .filter(|n| !n.is_empty())
    }

    /// Every address the target listens on, primary first.
    pub fn addresses(&self) -> Vec<String> {
        std::iter::once(self.ip_address.clone())
            .chain(self.secondary_ip_addresses.iter().cloned())
            .collect()
    }

    /// Every portal, primary first.
    pub fn portals(&self) -> Vec<String> {
        self.addresses()
            .iter()
            .map(|a| portal(a, self.port))
            .collect()
    }
}

/// What [`TargetHelper::reconcile_targets`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// IQNs of targets removed because no volume wants them.
    pub removed: Vec<String>,
    /// IQNs of wanted targets that were missing and were created.
    pub created: Vec<String>,
    /// Volume names that could not be re-exported, with the reason.
    pub failed: Vec<(String, String)>,
}

/// One target a helper sees, ours or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedTarget {
    /// Its IQN.
    pub iqn: String,
    /// The device or file behind its volume LUN, when it has one.
    pub backing_store: Option<PathBuf>,
}

/// A volume that should be exported, and the device or file behind it.
#[derive(Clone, Debug)]
pub struct WantedExport {
    /// The volume, with its stored `provider_auth`.
    pub volume: VolumeSpec,
    /// Its backing device or file.
    pub path: PathBuf,
}

/// The CHAP credentials an export uses: the stored ones, else new ones.
fn credentials_for(volume: &VolumeSpec) -> ChapCredentials {
    volume
        .provider_auth
        .as_deref()
        .and_then(ChapCredentials::from_provider_auth)
        .unwrap_or_else(ChapCredentials::generate)
}

/// Reads the connector's `initiator` (Cinder's `validate_connector`).
///
/// # Errors
/// [`DriverError::InvalidInput`] when it is absent or not a string, with
/// the text of Cinder's `InvalidConnectorException` (the API shows it).
pub fn connector_initiator(connector: &Connector) -> Result<&str, DriverError> {
    connector
        .get("initiator")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            DriverError::InvalidInput(
                "Connector doesn't have required information: initiator".into(),
            )
        })
}

/// A target helper (Cinder's `ISCSITarget` subclasses).
#[async_trait::async_trait]
pub trait TargetHelper: Send + Sync + std::fmt::Debug {
    /// `tgtadm`, `lioadm` or `fake`.
    fn helper_name(&self) -> &'static str;

    /// The shared iSCSI options.
    fn settings(&self) -> &IscsiSettings;

    /// The LUN volumes appear at (tgt 1: LUN 0 is its controller; LIO and
    /// fake 0).
    fn lun(&self) -> u32;

    /// The report's `storage_protocol`.
    fn storage_protocol(&self) -> &'static str {
        "iSCSI"
    }

    /// One-time set-up (directories).
    async fn do_setup(&self) -> Result<(), DriverError> {
        Ok(())
    }

    /// Verifies the target can work here.
    async fn check_for_setup_error(&self) -> Result<(), DriverError> {
        Ok(())
    }

    /// Creates the target for `iqn` backed by `path` with CHAP, or refreshes
    /// an existing one; returns the tid for `provider_location`.
    async fn create_iscsi_target(
        &self,
        volume: &VolumeSpec,
        iqn: &str,
        path: &Path,
        chap: &ChapCredentials,
    ) -> Result<String, DriverError>;

    /// Removes the target of `volume_name` (absent is success).
    async fn remove_iscsi_target(&self, volume_name: &str, iqn: &str) -> Result<(), DriverError>;

    /// Every target the helper sees, ours or not, with its backing store.
    async fn list_targets(&self) -> Result<Vec<ListedTarget>, DriverError>;

    /// Whether the target exists and exports its LUN.
    async fn target_is_complete(&self, iqn: &str) -> Result<bool, DriverError>;

    /// Whether exports admit initiators one by one (LIO), so
    /// `initialize_connection` needs the connector's `initiator`.
    fn needs_initiator_acl(&self) -> bool {
        false
    }

    /// Lets `initiator` in (LIO's per-initiator ACL; tgt admits any
    /// initiator with the CHAP credentials).
    async fn allow_initiator(
        &self,
        _iqn: &str,
        _initiator: &str,
        _chap: &ChapCredentials,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    /// Removes `initiator`'s ACL.
    async fn deny_initiator(&self, _iqn: &str, _initiator: &str) -> Result<(), DriverError> {
        Ok(())
    }

    /// Makes an exported target see its backing store's new size (tgt:
    /// `tgt-admin --update <iqn> -f`, which disrupts I/O, only when the
    /// target exists).
    async fn extend_target(&self, _volume: &VolumeSpec) -> Result<(), DriverError> {
        Ok(())
    }

    /// Exports `volume` (creates its target) and returns the
    /// `provider_location` and `provider_auth` to store.
    async fn create_export(
        &self,
        volume: &VolumeSpec,
        path: &Path,
    ) -> Result<ModelUpdate, DriverError> {
        let iqn = self.settings().iqn(&volume.name);
        let chap = credentials_for(volume);
        let tid = self.create_iscsi_target(volume, &iqn, path, &chap).await?;
        let location = ProviderLocation {
            portals: self.settings().portals(),
            tid,
            iqn,
            lun: self.lun(),
        };
        tracing::debug!(volume_id = %volume.id, provider_location = %location, "exported volume");
        Ok(ModelUpdate {
            provider_location: Some(location.to_string()),
            provider_auth: Some(chap.to_provider_auth()),
            provider_id: None,
        })
    }

    /// Re-creates an export after a restart with the stored credentials.
    /// A volume that never got credentials was never exported: nothing to
    /// do. Cinder ignores failures here (`check_exit_code=False`); Clinker
    /// reports them so the manager can flag the volume.
    async fn ensure_export(&self, volume: &VolumeSpec, path: &Path) -> Result<(), DriverError> {
        let Some(chap) = volume
            .provider_auth
            .as_deref()
            .and_then(ChapCredentials::from_provider_auth)
        else {
            tracing::warn!(volume_id = %volume.id, "no CHAP credentials stored; not re-exporting");
            return Ok(());
        };
        let iqn = self.settings().iqn(&volume.name);
        self.create_iscsi_target(volume, &iqn, path, &chap)
            .await
            .map(|_| ())
    }

    /// Removes the export. The IQN comes from `provider_location` when it
    /// holds one, else from the name.
    async fn remove_export(&self, volume: &VolumeSpec) -> Result<(), DriverError> {
        let iqn = volume
            .provider_location
            .as_deref()
            .and_then(ProviderLocation::parse)
            .map(|l| l.iqn)
            .unwrap_or_else(|| self.settings().iqn(&volume.name));
        self.remove_iscsi_target(&volume.name, &iqn).await
    }

    /// Cinder's iSCSI `connection_info` for `volume`'s stored export.
    async fn initialize_connection(
        &self,
        volume: &VolumeSpec,
        connector: &Connector,
    ) -> Result<ConnectionInfo, DriverError> {
        let info = iscsi_connection_info(self.settings().protocol, volume, connector)?;
        if self.needs_initiator_acl() {
            let initiator = connector_initiator(connector)?;
            let chap = volume
                .provider_auth
                .as_deref()
                .and_then(ChapCredentials::from_provider_auth)
                .ok_or_else(|| {
                    DriverError::InvalidInput(format!(
                        "volume {} has no CHAP credentials (provider_auth)",
                        volume.id
                    ))
                })?;
            let iqn = info
                .data
                .get("target_iqn")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.allow_initiator(iqn, initiator, &chap).await?;
        }
        Ok(info)
    }

    /// Ends one host's connection (LIO drops its ACL).
    async fn terminate_connection(
        &self,
        volume: &VolumeSpec,
        connector: Option<&Connector>,
    ) -> Result<(), DriverError> {
        let (Some(location), Some(connector)) = (
            volume
                .provider_location
                .as_deref()
                .and_then(ProviderLocation::parse),
            connector,
        ) else {
            return Ok(());
        };
        match connector_initiator(connector) {
            Ok(initiator) => self.deny_initiator(&location.iqn, initiator).await,
            Err(_) => Ok(()),
        }
    }

    /// Makes the backend's targets match `wanted`: removes targets of this
    /// backend that no wanted volume owns, and creates wanted ones that are
    /// missing or lack their LUN. A target is this backend's when its IQN
    /// has our prefix and its backing store lies under `backing_root` (the
    /// backend's `/dev/<vg>` or volumes directory): several backends on one
    /// host share one tgtd or LIO, and one backend's start-up must not take
    /// the others' exports away. Other targets are never touched.
    async fn reconcile_targets(
        &self,
        wanted: &[WantedExport],
        backing_root: &Path,
    ) -> Result<ReconcileReport, DriverError> {
        reconcile_exports(self, wanted, backing_root).await
    }
}

/// The reconcile every helper shares (see [`TargetHelper::reconcile_targets`]);
/// helpers that keep more state than their targets call it from their own
/// override.
///
/// # Errors
/// The helper cannot list its targets.
pub async fn reconcile_exports<H: TargetHelper + ?Sized>(
    helper: &H,
    wanted: &[WantedExport],
    backing_root: &Path,
) -> Result<ReconcileReport, DriverError> {
    let mut report = ReconcileReport::default();
    let listed = helper.list_targets().await?;
    let existing: Vec<String> = listed.iter().map(|t| t.iqn.clone()).collect();
    let wanted_iqns: std::collections::BTreeSet<String> = wanted
        .iter()
        .map(|w| helper.settings().iqn(&w.volume.name))
        .collect();
    for target in &listed {
        let iqn = &target.iqn;
        let Some(volume_name) = helper.settings().volume_name_of(iqn) else {
            continue;
        };
        if wanted_iqns.contains(iqn) {
            continue;
        }
        if !is_under(target.backing_store.as_deref(), backing_root) {
            tracing::debug!(iqn, backing_store = ?target.backing_store, "not this backend's target; left alone");
            continue;
        }
        match helper.remove_iscsi_target(volume_name, iqn).await {
            Ok(()) => report.removed.push(iqn.clone()),
            Err(e) => report.failed.push((volume_name.to_owned(), e.to_string())),
        }
    }
    for export in wanted {
        let iqn = helper.settings().iqn(&export.volume.name);
        if existing.contains(&iqn) && helper.target_is_complete(&iqn).await? {
            continue;
        }
        let Some(chap) = export
            .volume
            .provider_auth
            .as_deref()
            .and_then(ChapCredentials::from_provider_auth)
        else {
            report.failed.push((
                export.volume.name.clone(),
                "no CHAP credentials stored (provider_auth)".into(),
            ));
            continue;
        };
        match helper
            .create_iscsi_target(&export.volume, &iqn, &export.path, &chap)
            .await
        {
            Ok(_) => report.created.push(iqn),
            Err(e) => report
                .failed
                .push((export.volume.name.clone(), e.to_string())),
        }
    }
    Ok(report)
}

/// Whether `path` is `root` or lies under it (component-wise, so
/// `/dev/vg-a` is not under `/dev/vg`). No path is under nothing.
pub fn is_under(path: Option<&Path>, root: &Path) -> bool {
    path.is_some_and(|p| p.starts_with(root))
}

/// Cinder's `ISCSITarget._get_iscsi_properties` over the stored
/// `provider_location` and `provider_auth`. `target_portals`,
/// `target_iqns` and `target_luns` appear when there is more than one portal
/// or the connector asks for multipath.
///
/// # Errors
/// [`DriverError::InvalidInput`] when the volume has no (parsable) export.
pub fn iscsi_connection_info(
    protocol: TargetProtocol,
    volume: &VolumeSpec,
    connector: &Connector,
) -> Result<ConnectionInfo, DriverError> {
    let location = volume
        .provider_location
        .as_deref()
        .and_then(ProviderLocation::parse)
        .ok_or_else(|| {
            DriverError::InvalidInput(format!(
                "volume {} has no iSCSI export (provider_location {:?})",
                volume.id, volume.provider_location
            ))
        })?;
    let multipath = connector.get("multipath").is_some_and(truthy);
    let mut data = Map::new();
    data.insert("target_discovered".into(), json!(false));
    if location.portals.len() > 1 || multipath {
        let n = location.portals.len();
        data.insert("target_portals".into(), json!(location.portals));
        data.insert("target_iqns".into(), json!(vec![location.iqn.clone(); n]));
        data.insert("target_luns".into(), json!(vec![location.lun; n]));
    }
    data.insert("target_portal".into(), json!(location.portals[0]));
    data.insert("target_iqn".into(), json!(location.iqn));
    data.insert("target_lun".into(), json!(location.lun));
    data.insert("volume_id".into(), json!(volume.id.to_string()));
    if let Some(auth) = volume.provider_auth.as_deref() {
        let mut parts = auth.split_whitespace();
        if let (Some(method), Some(user), Some(secret)) = (parts.next(), parts.next(), parts.next())
        {
            data.insert("auth_method".into(), json!(method));
            data.insert("auth_username".into(), json!(user));
            data.insert("auth_password".into(), json!(secret));
        }
    }
    data.insert("encrypted".into(), json!(false));
    Ok(ConnectionInfo {
        driver_volume_type: protocol.as_str().to_owned(),
        data,
    })
}

/// Builds the helper `target_helper` names; `None` for `none` (a local
/// export).
///
/// # Errors
/// None today; kept fallible for helpers that validate their host.
pub fn build_target_helper(
    config: &TargetConfig,
    runner: Arc<dyn CommandRunner>,
) -> Result<Option<Arc<dyn TargetHelper>>, DriverError> {
    Ok(match config.target_helper {
        TargetHelperKind::None => None,
        TargetHelperKind::Tgtadm => Some(Arc::new(tgt::TgtAdm::new(config, runner))),
        TargetHelperKind::Lioadm => Some(Arc::new(lio::LioAdm::new(
            config,
            PathBuf::from(lio::CONFIGFS_TARGET_ROOT),
            lio::ConfigFsKind::Kernel,
        ))),
        TargetHelperKind::Fake => Some(Arc::new(fake::FakeTarget::new(config))),
    })
}

#[cfg(test)]
mod tests;
