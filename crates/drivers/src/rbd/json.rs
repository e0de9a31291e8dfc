//! The `--format json` outputs the driver reads, as Ceph 16 (pacific) prints
//! them (real captures under `fixtures/`). Only the fields the driver uses
//! are declared; unknown fields are ignored so newer releases still parse.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{CephError, CephErrorKind};

/// Parses a command's standard output. `ceph` prints an empty line (and,
/// in older releases, "dumped monmap epoch N") before the document, so
/// anything before the first `{` or `[` is skipped.
pub(crate) fn parse<T: DeserializeOwned>(what: &str, stdout: &str) -> Result<T, CephError> {
    let start = stdout.find(['{', '[']).unwrap_or(0);
    serde_json::from_str(&stdout[start..]).map_err(|e| {
        CephError::new(
            CephErrorKind::Other,
            format!("{what}: unexpected output ({e}): {:.200}", stdout.trim()),
        )
    })
}

/// `rbd info --format json <pool>/<image>`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct ImageInfo {
    /// Bytes.
    pub(crate) size: u64,
    /// Bytes per RADOS object.
    pub(crate) object_size: u64,
    /// Present when the image uses fancy striping.
    #[serde(default)]
    pub(crate) stripe_unit: Option<u64>,
    /// Present when the image is a clone.
    #[serde(default)]
    pub(crate) parent: Option<ParentInfo>,
}

impl ImageInfo {
    /// What a clone of this image must at least use as its object size
    /// (Cinder's `_get_stripe_unit`: a clone's stripe unit may not be
    /// smaller than its parent's).
    pub(crate) fn stripe_unit(&self) -> u64 {
        self.stripe_unit
            .unwrap_or(self.object_size)
            .max(self.object_size)
    }
}

/// The `parent` of a clone in `rbd info`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct ParentInfo {
    /// The parent's pool.
    pub(crate) pool: String,
    /// The parent image's current name.
    pub(crate) image: String,
    /// The parent snapshot.
    pub(crate) snapshot: String,
    /// Whether the parent image is in the trash.
    #[serde(default)]
    pub(crate) trash: bool,
}

/// One entry of `rbd snap ls --format json`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct SnapInfo {
    /// The snapshot name.
    pub(crate) name: String,
    /// Bytes.
    pub(crate) size: u64,
}

/// One entry of `rbd children --all --format json`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct ChildInfo {
    /// The child's pool.
    pub(crate) pool: String,
    /// The child image.
    pub(crate) image: String,
    /// Whether the child is in the trash (it cannot be opened by name).
    #[serde(default)]
    pub(crate) trash: bool,
}

/// One entry of `rbd ls --long --format json`: an image, or one of its
/// snapshots (`snapshot` set).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct LongListEntry {
    /// The image name.
    pub(crate) image: String,
    /// Set for a snapshot's entry.
    #[serde(default)]
    pub(crate) snapshot: Option<String>,
    /// Provisioned bytes.
    pub(crate) size: u64,
}

/// `ceph df --format json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub(crate) struct ClusterDf {
    /// Cluster-wide raw figures.
    pub(crate) stats: ClusterStats,
    /// Per-pool figures.
    pub(crate) pools: Vec<PoolDf>,
}

/// `stats` of `ceph df`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub(crate) struct ClusterStats {
    /// The raw size of the cluster.
    pub(crate) total_bytes: u64,
}

/// One pool of `ceph df`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub(crate) struct PoolDf {
    /// The pool name.
    pub(crate) name: String,
    /// Its figures.
    pub(crate) stats: PoolDfStats,
}

/// `stats` of one pool in `ceph df`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub(crate) struct PoolDfStats {
    /// Bytes stored by clients (Nautilus and later).
    #[serde(default)]
    pub(crate) stored: Option<u64>,
    /// Bytes used (before Nautilus: what `stored` is now).
    pub(crate) bytes_used: u64,
    /// What clients can still write, after replication and full ratios.
    pub(crate) max_avail: u64,
}

impl PoolDfStats {
    /// Bytes stored by clients (Cinder's "In Nautilus bytes_used was renamed
    /// to stored").
    pub(crate) fn stored(&self) -> u64 {
        self.stored.unwrap_or(self.bytes_used)
    }
}

/// `ceph osd pool get-quota <pool> --format json`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct PoolQuota {
    /// 0 when the pool has no byte quota.
    pub(crate) quota_max_bytes: u64,
}

/// One entry of `ceph osd pool ls detail --format json`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct PoolDetail {
    /// The pool name.
    pub(crate) pool_name: String,
    /// Comma-separated flags (`full`, `full_quota`, …).
    pub(crate) flags_names: String,
}

impl PoolDetail {
    /// Whether writes to the pool are blocked because it is full.
    pub(crate) fn is_full(&self) -> bool {
        self.flags_names
            .split(',')
            .any(|f| f == "full" || f == "full_quota")
    }
}

/// `ceph mon dump --format json`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct MonMap {
    /// The cluster's fsid.
    pub(crate) fsid: String,
    /// The monitors.
    pub(crate) mons: Vec<Monitor>,
}

/// One monitor of the monmap.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct Monitor {
    /// The legacy address `ip:port/nonce` (the v1 port when the monitor has
    /// one), which is what Cinder reports to clients.
    #[serde(default)]
    pub(crate) addr: Option<String>,
    /// Every address of the monitor.
    #[serde(default)]
    pub(crate) public_addrs: Option<AddrVec>,
}

/// `public_addrs` of a monitor.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct AddrVec {
    /// The addresses, v2 and v1.
    pub(crate) addrvec: Vec<TypedAddr>,
}

/// One address of a monitor.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct TypedAddr {
    /// `v1` or `v2`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// `ip:port`.
    pub(crate) addr: String,
}

impl MonMap {
    /// The monitors' hosts and ports as Cinder's `_get_mon_addrs` returns
    /// them: from each monitor's legacy `addr`, nonce dropped, IPv6
    /// brackets removed, ports as strings.
    pub(crate) fn hosts_and_ports(&self) -> (Vec<String>, Vec<String>) {
        let mut hosts = Vec::with_capacity(self.mons.len());
        let mut ports = Vec::with_capacity(self.mons.len());
        for mon in &self.mons {
            let address = mon.addr.clone().or_else(|| {
                let vec = &mon.public_addrs.as_ref()?.addrvec;
                vec.iter()
                    .find(|a| a.kind == "v1")
                    .or_else(|| vec.first())
                    .map(|a| a.addr.clone())
            });
            let Some(address) = address else { continue };
            let host_port = address
                .rsplit_once('/')
                .map_or(address.as_str(), |(hp, _)| hp);
            let Some((host, port)) = host_port.rsplit_once(':') else {
                continue;
            };
            hosts.push(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            );
            ports.push(port.to_owned());
        }
        (hosts, ports)
    }
}

/// `ceph fsid --format json`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct Fsid {
    /// The cluster's id.
    pub(crate) fsid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("fixtures/", $name))
        };
    }

    const A: &str = "volume-11111111-1111-4111-8111-111111111111";
    const B: &str = "volume-22222222-2222-4222-8222-222222222222";
    const C: &str = "volume-33333333-3333-4333-8333-333333333333";

    #[test]
    fn parses_image_info_of_a_plain_image_and_a_clone() {
        let plain: ImageInfo = parse("info", fixture!("info-plain.json")).unwrap();
        assert_eq!(plain.size, 1 << 30);
        assert_eq!(plain.object_size, 4 << 20);
        assert_eq!(plain.stripe_unit(), 4 << 20);
        assert_eq!(plain.parent, None);
        let clone: ImageInfo = parse("info", fixture!("info-clone.json")).unwrap();
        assert_eq!(
            clone.parent,
            Some(ParentInfo {
                pool: "volumes".into(),
                image: B.into(),
                snapshot: format!("{C}.clone_snap"),
                trash: false,
            })
        );
    }

    #[test]
    fn parses_snapshots_children_and_listings() {
        let snaps: Vec<SnapInfo> = parse("snap ls", fixture!("snap-ls.json")).unwrap();
        assert_eq!(
            snaps,
            vec![SnapInfo {
                name: format!("{C}.clone_snap"),
                size: 1 << 30
            }]
        );
        let children: Vec<ChildInfo> = parse("children", fixture!("children.json")).unwrap();
        assert_eq!(
            children,
            vec![ChildInfo {
                pool: "volumes".into(),
                image: B.into(),
                trash: false
            }]
        );
        let names: Vec<String> = parse("ls", fixture!("ls.json")).unwrap();
        assert_eq!(names, vec![A.to_owned(), B.to_owned(), C.to_owned()]);
        let long: Vec<LongListEntry> = parse("ls -l", fixture!("ls-long.json")).unwrap();
        let heads: u64 = long
            .iter()
            .filter(|e| e.snapshot.is_none())
            .map(|e| e.size)
            .sum();
        assert_eq!(long.len(), 5);
        assert_eq!(heads, 3 << 30);
    }

    #[test]
    fn parses_cluster_and_pool_figures() {
        let df: ClusterDf = parse("df", fixture!("ceph-df.json")).unwrap();
        assert_eq!(df.stats.total_bytes, 4_294_967_296);
        let pool = df.pools.iter().find(|p| p.name == "volumes").unwrap();
        assert_eq!(pool.stats.stored(), 19);
        assert_eq!(pool.stats.max_avail, 4_080_198_400);
        let quota: PoolQuota = parse("get-quota", fixture!("ceph-get-quota.json")).unwrap();
        assert_eq!(quota.quota_max_bytes, 0);
        let pools: Vec<PoolDetail> =
            parse("pool ls", fixture!("ceph-pool-ls-detail.json")).unwrap();
        let full: Vec<(&str, bool)> = pools
            .iter()
            .map(|p| (p.pool_name.as_str(), p.is_full()))
            .collect();
        assert_eq!(
            full,
            vec![
                ("device_health_metrics", false),
                ("volumes", false),
                ("full", true)
            ]
        );
    }

    #[test]
    fn mon_addresses_are_reported_like_cinder() {
        let map: MonMap = parse("mon dump", fixture!("ceph-mon-dump.json")).unwrap();
        assert_eq!(map.fsid, "a917357d-39bd-4232-bca2-b6192def3c59");
        assert_eq!(
            map.hosts_and_ports(),
            (vec!["127.0.0.1".to_owned()], vec!["6789".to_owned()])
        );
        let v6: MonMap = parse(
            "mon dump",
            r#"dumped monmap epoch 3
{"fsid":"f","mons":[{"addr":"[2001:db8::1]:6789/0"},
 {"public_addrs":{"addrvec":[{"type":"v2","addr":"10.0.0.2:3300","nonce":0},
                             {"type":"v1","addr":"10.0.0.2:6789","nonce":0}]}}]}"#,
        )
        .unwrap();
        assert_eq!(
            v6.hosts_and_ports(),
            (
                vec!["2001:db8::1".to_owned(), "10.0.0.2".to_owned()],
                vec!["6789".to_owned(), "6789".to_owned()]
            )
        );
        let fsid: Fsid = parse("fsid", fixture!("ceph-fsid.json")).unwrap();
        assert_eq!(fsid.fsid, map.fsid);
    }

    #[test]
    fn garbage_is_an_error_that_shows_the_output() {
        let err = parse::<ImageInfo>("rbd info x", "rbd: something\n").unwrap_err();
        assert_eq!(err.kind, CephErrorKind::Other);
        assert!(err.message.starts_with("rbd info x: unexpected output"));
        assert!(err.message.contains("rbd: something"));
    }
}
