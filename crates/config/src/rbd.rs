//! The RBD (Ceph) driver's options: Cinder's `RBD_OPTS` names and defaults
//! (`cinder/volume/drivers/rbd.py`), validated when the configuration is read
//! so a typo stops start-up instead of failing the first volume create.

use std::path::PathBuf;

use crate::ConfigError;
use crate::reader::OptionReader;

/// The RBD driver's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbdDriverOptions {
    /// `rbd_cluster_name` (default `ceph`): passed as `--cluster`, and the
    /// `cluster_name` of the connection info.
    pub cluster_name: String,
    /// `rbd_pool` (default `rbd`): the pool holding the volume images.
    pub pool: String,
    /// `rbd_user`: the cephx id (without `client.`); `None` means the Ceph
    /// tools' default (`admin`) and `auth_enabled: false` in the connection
    /// info, as in Cinder.
    pub user: Option<String>,
    /// `rbd_ceph_conf` (default empty: the Ceph tools look for
    /// `/etc/ceph/$cluster.conf`).
    pub ceph_conf: Option<PathBuf>,
    /// `rbd_keyring_conf`: a keyring file passed as `--keyring`, for a
    /// keyring outside the standard `/etc/ceph/$cluster.client.$id.keyring`.
    /// Its secret never goes into the connection info (OSSN-0085).
    pub keyring_conf: Option<PathBuf>,
    /// `rbd_secret_uuid`: the libvirt secret holding the user's key;
    /// defaults to the cluster's fsid, as in Cinder.
    pub secret_uuid: Option<String>,
    /// `rbd_flatten_volume_from_snapshot` (default false): make volumes
    /// created from snapshots independent of them.
    pub flatten_volume_from_snapshot: bool,
    /// `rbd_max_clone_depth` (default 5): the longest chain of clones before
    /// a new volume is flattened; 0 disables copy-on-write clones.
    pub max_clone_depth: u32,
    /// `rbd_store_chunk_size` (default 4): the RADOS object size in MiB, a
    /// power of two from 1 to 32.
    pub store_chunk_size_mb: u32,
    /// `rados_connect_timeout` (default -1): seconds librados waits for the
    /// monitors and for each operation; `None` (negative) keeps the librados
    /// defaults. Clinker also bounds every command with its own deadline.
    pub rados_connect_timeout: Option<u32>,
    /// `rados_connection_retries` (default 3): extra attempts when the
    /// cluster cannot be reached at all.
    pub rados_connection_retries: u32,
    /// `rados_connection_interval` (default 5): seconds between them.
    pub rados_connection_interval: u32,
    /// `rbd_exclusive_cinder_pool` (default true): the pool holds only this
    /// backend's volumes, so the provisioned capacity need not be queried
    /// (the scheduler uses `allocated_capacity_gb`).
    pub exclusive_cinder_pool: bool,
    /// `report_dynamic_total_capacity` (default true): report the total as
    /// used plus free instead of the quota or the raw cluster size.
    pub report_dynamic_total_capacity: bool,
    /// `rbd_concurrent_flatten_operations` (default 3; 0 = unlimited): the
    /// flattens this backend runs at once.
    pub concurrent_flatten_operations: u32,
}

impl Default for RbdDriverOptions {
    fn default() -> Self {
        Self {
            cluster_name: "ceph".into(),
            pool: "rbd".into(),
            user: None,
            ceph_conf: None,
            keyring_conf: None,
            secret_uuid: None,
            flatten_volume_from_snapshot: false,
            max_clone_depth: 5,
            store_chunk_size_mb: 4,
            rados_connect_timeout: None,
            rados_connection_retries: 3,
            rados_connection_interval: 5,
            exclusive_cinder_pool: true,
            report_dynamic_total_capacity: true,
            concurrent_flatten_operations: 3,
        }
    }
}

/// A Ceph name (pool, cluster, cephx id): non-empty, no separators of an
/// image spec (`/`, `@`), no whitespace, and not starting with `-` (it is
/// passed as a command-line argument).
fn is_ceph_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@'))
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn checked_name(section: &str, option: &str, value: String) -> Result<String, ConfigError> {
    if is_ceph_name(&value) {
        Ok(value)
    } else {
        Err(ConfigError::invalid(
            section,
            option,
            &value,
            "must be a non-empty Ceph name without /, @ or spaces".into(),
        ))
    }
}

fn small(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Reads the `rbd_*` options of one backend section.
pub(crate) fn read_rbd_options(
    r: &mut OptionReader<'_>,
    section: &str,
    fallback: &[&str],
) -> Result<RbdDriverOptions, ConfigError> {
    let defaults = RbdDriverOptions::default();
    let cluster_name = checked_name(
        section,
        "rbd_cluster_name",
        r.string(
            section,
            fallback,
            "rbd_cluster_name",
            &defaults.cluster_name,
        )?,
    )?;
    let pool = checked_name(
        section,
        "rbd_pool",
        r.string(section, fallback, "rbd_pool", &defaults.pool)?,
    )?;
    let user = match r.opt_string(section, fallback, "rbd_user")? {
        Some(user) if user.starts_with("client.") => {
            return Err(ConfigError::invalid(
                section,
                "rbd_user",
                &user,
                "give the cephx id without the client. prefix (rbd_user = cinder)".into(),
            ));
        }
        Some(user) => Some(checked_name(section, "rbd_user", user)?),
        None => None,
    };
    let secret_uuid = match r.opt_string(section, fallback, "rbd_secret_uuid")? {
        Some(uuid) if !is_uuid(&uuid) => {
            return Err(ConfigError::invalid(
                section,
                "rbd_secret_uuid",
                &uuid,
                "must be a UUID (the libvirt secret holding the rbd_user key)".into(),
            ));
        }
        other => other,
    };
    let store_chunk_size_mb = r.int(section, fallback, "rbd_store_chunk_size", 4, 1..=32)?;
    if !u64::try_from(store_chunk_size_mb).is_ok_and(u64::is_power_of_two) {
        return Err(ConfigError::invalid(
            section,
            "rbd_store_chunk_size",
            &store_chunk_size_mb.to_string(),
            "must be a power of two (1, 2, 4, 8, 16 or 32 MiB): RADOS object sizes are".into(),
        ));
    }
    let connect_timeout = r.int(
        section,
        fallback,
        "rados_connect_timeout",
        -1,
        i64::from(i32::MIN)..=86_400,
    )?;
    Ok(RbdDriverOptions {
        cluster_name,
        pool,
        user,
        ceph_conf: r
            .opt_string(section, fallback, "rbd_ceph_conf")?
            .map(PathBuf::from),
        keyring_conf: r
            .opt_string(section, fallback, "rbd_keyring_conf")?
            .map(PathBuf::from),
        secret_uuid,
        flatten_volume_from_snapshot: r.bool(
            section,
            fallback,
            "rbd_flatten_volume_from_snapshot",
            defaults.flatten_volume_from_snapshot,
        )?,
        max_clone_depth: small(r.int(
            section,
            fallback,
            "rbd_max_clone_depth",
            5,
            0..=i64::from(i32::MAX),
        )?),
        store_chunk_size_mb: small(store_chunk_size_mb),
        rados_connect_timeout: u32::try_from(connect_timeout).ok(),
        rados_connection_retries: small(r.int(
            section,
            fallback,
            "rados_connection_retries",
            3,
            0..=100,
        )?),
        rados_connection_interval: small(r.int(
            section,
            fallback,
            "rados_connection_interval",
            5,
            0..=3600,
        )?),
        exclusive_cinder_pool: r.bool(
            section,
            fallback,
            "rbd_exclusive_cinder_pool",
            defaults.exclusive_cinder_pool,
        )?,
        report_dynamic_total_capacity: r.bool(
            section,
            fallback,
            "report_dynamic_total_capacity",
            defaults.report_dynamic_total_capacity,
        )?,
        concurrent_flatten_operations: small(r.int(
            section,
            fallback,
            "rbd_concurrent_flatten_operations",
            3,
            0..=1000,
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, ConfigEnv, DriverConfig, Ini};

    fn parse(backend: &str) -> Result<Config, ConfigError> {
        let mut ini = Ini::default();
        ini.merge_text(
            &format!("[DEFAULT]\nenabled_backends = ceph\n[ceph]\n{backend}"),
            "test.conf",
        )?;
        Config::from_ini(
            &ini,
            &ConfigEnv {
                hostname: "node1".into(),
            },
        )
    }

    fn rbd(backend: &str) -> RbdDriverOptions {
        let cfg = parse(backend).unwrap();
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        match &cfg.backends[0].driver {
            DriverConfig::Rbd(options) => options.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_name_and_cinder_class_path_select_the_rbd_driver_with_cinder_defaults() {
        let by_name = rbd("volume_driver = rbd\n");
        let by_class = rbd("volume_driver = cinder.volume.drivers.rbd.RBDDriver\n");
        assert_eq!(by_name, by_class);
        assert_eq!(by_name, RbdDriverOptions::default());
        assert_eq!(by_name.pool, "rbd");
        assert_eq!(by_name.cluster_name, "ceph");
        assert_eq!(by_name.user, None);
        assert_eq!(by_name.ceph_conf, None);
        assert_eq!(by_name.secret_uuid, None);
        assert!(!by_name.flatten_volume_from_snapshot);
        assert_eq!(by_name.max_clone_depth, 5);
        assert_eq!(by_name.store_chunk_size_mb, 4);
        assert_eq!(by_name.rados_connect_timeout, None);
        assert_eq!(
            (
                by_name.rados_connection_retries,
                by_name.rados_connection_interval
            ),
            (3, 5)
        );
        assert!(by_name.exclusive_cinder_pool);
        assert!(by_name.report_dynamic_total_capacity);
        assert_eq!(by_name.concurrent_flatten_operations, 3);
        let cfg = parse("volume_driver = rbd\n").unwrap();
        assert_eq!(cfg.backends[0].driver.short_name(), "rbd");
    }

    #[test]
    fn reads_a_typical_cinder_rbd_section() {
        let options = rbd("volume_driver = cinder.volume.drivers.rbd.RBDDriver
rbd_pool = volumes
rbd_user = cinder
rbd_ceph_conf = /etc/ceph/ceph.conf
rbd_keyring_conf = /etc/ceph/ceph.client.cinder.keyring
rbd_secret_uuid = 457eb676-33da-42ec-9a8c-9293d545c337
rbd_cluster_name = prod
rbd_flatten_volume_from_snapshot = true
rbd_max_clone_depth = 0
rbd_store_chunk_size = 8
rados_connect_timeout = 5
rados_connection_retries = 0
rados_connection_interval = 1
rbd_exclusive_cinder_pool = false
report_dynamic_total_capacity = false
rbd_concurrent_flatten_operations = 0
");
        assert_eq!(
            options,
            RbdDriverOptions {
                cluster_name: "prod".into(),
                pool: "volumes".into(),
                user: Some("cinder".into()),
                ceph_conf: Some("/etc/ceph/ceph.conf".into()),
                keyring_conf: Some("/etc/ceph/ceph.client.cinder.keyring".into()),
                secret_uuid: Some("457eb676-33da-42ec-9a8c-9293d545c337".into()),
                flatten_volume_from_snapshot: true,
                max_clone_depth: 0,
                store_chunk_size_mb: 8,
                rados_connect_timeout: Some(5),
                rados_connection_retries: 0,
                rados_connection_interval: 1,
                exclusive_cinder_pool: false,
                report_dynamic_total_capacity: false,
                concurrent_flatten_operations: 0,
            }
        );
    }

    #[test]
    fn empty_values_and_negative_timeouts_mean_the_defaults() {
        let options =
            rbd("volume_driver = rbd\nrbd_ceph_conf =\nrbd_user =\nrados_connect_timeout = -5\n");
        assert_eq!(options.ceph_conf, None);
        assert_eq!(options.user, None);
        assert_eq!(options.rados_connect_timeout, None);
        assert_eq!(
            rbd("volume_driver = rbd\nrados_connect_timeout = 0\n").rados_connect_timeout,
            Some(0)
        );
    }

    #[test]
    fn rbd_options_fall_back_to_backend_defaults() {
        let mut ini = Ini::default();
        ini.merge_text(
            "[DEFAULT]\nenabled_backends = ceph\n[backend_defaults]\nrbd_pool = shared\n[ceph]\nvolume_driver = rbd\n",
            "t",
        )
        .unwrap();
        let cfg = Config::from_ini(
            &ini,
            &ConfigEnv {
                hostname: "n".into(),
            },
        )
        .unwrap();
        match &cfg.backends[0].driver {
            DriverConfig::Rbd(o) => assert_eq!(o.pool, "shared"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_values_name_the_option() {
        for (line, option, reason) in [
            ("rbd_pool =", "rbd_pool", "Ceph name"),
            ("rbd_pool = a/b", "rbd_pool", "Ceph name"),
            ("rbd_pool = -x", "rbd_pool", "Ceph name"),
            (
                "rbd_cluster_name = my cluster",
                "rbd_cluster_name",
                "Ceph name",
            ),
            (
                "rbd_user = client.cinder",
                "rbd_user",
                "without the client. prefix",
            ),
            ("rbd_user = ci nder", "rbd_user", "Ceph name"),
            (
                "rbd_secret_uuid = not-a-uuid",
                "rbd_secret_uuid",
                "must be a UUID",
            ),
            (
                "rbd_store_chunk_size = 3",
                "rbd_store_chunk_size",
                "power of two",
            ),
            (
                "rbd_store_chunk_size = 64",
                "rbd_store_chunk_size",
                "between 1 and 32",
            ),
            (
                "rbd_store_chunk_size = 0",
                "rbd_store_chunk_size",
                "between 1 and 32",
            ),
            ("rbd_max_clone_depth = -1", "rbd_max_clone_depth", "between"),
            (
                "rbd_max_clone_depth = deep",
                "rbd_max_clone_depth",
                "not an integer",
            ),
            (
                "rados_connect_timeout = soon",
                "rados_connect_timeout",
                "not an integer",
            ),
            (
                "rbd_flatten_volume_from_snapshot = maybe",
                "rbd_flatten_volume_from_snapshot",
                "not a boolean",
            ),
            (
                "rbd_exclusive_cinder_pool = 2",
                "rbd_exclusive_cinder_pool",
                "not a boolean",
            ),
            (
                "report_dynamic_total_capacity = yesno",
                "report_dynamic_total_capacity",
                "not a boolean",
            ),
            (
                "rbd_concurrent_flatten_operations = -1",
                "rbd_concurrent_flatten_operations",
                "between",
            ),
        ] {
            let err = parse(&format!("volume_driver = rbd\n{line}\n")).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&format!("option {option} in section [ceph]"))
                    && text.contains(reason),
                "{line}: {text}"
            );
        }
    }

    #[test]
    fn unknown_rbd_options_are_warnings_that_name_them() {
        let cfg = parse("volume_driver = rbd\nenable_deferred_deletion = true\n").unwrap();
        assert_eq!(
            cfg.warnings,
            vec!["unknown option enable_deferred_deletion in section [ceph] is ignored".to_owned()]
        );
    }

    #[test]
    fn rbd_options_on_another_driver_are_unknown() {
        let cfg = parse("volume_driver = file\nrbd_pool = volumes\n").unwrap();
        assert_eq!(
            cfg.warnings,
            vec!["unknown option rbd_pool in section [ceph] is ignored".to_owned()]
        );
    }
}
