use std::path::Path;

use clinker_exec::{Command, Output};

use super::super::commands::{Activation, LvmCommands, mirror_region_size};
use super::super::errors::classify;
use super::super::report::{mirror_free_space, parse_lvm_version, parse_lvs, parse_pvs, parse_vgs};
use super::{MIB, VG};
use crate::DriverError;
use crate::testing::fixture;

// ---- command builders ----------------------------------------------------

#[test]
fn command_builders_match_cinders_argv() {
    let c = LvmCommands::new(VG, None, false, "1M", None);
    let line = |cmd: Command| cmd.command_line();
    assert_eq!(
        line(c.create_thick("volume-a", 1, 0)),
        "env LC_ALL=C lvcreate -n volume-a cinder-volumes -L 1g"
    );
    assert_eq!(
        line(c.create_thick("volume-a", 10, 2)),
        "env LC_ALL=C lvcreate -n volume-a cinder-volumes -L 10g --type=mirror -m 2 --nosync --mirrorlog mirrored"
    );
    assert_eq!(
        line(c.create_thick("volume-a", 2048, 1)),
        "env LC_ALL=C lvcreate -n volume-a cinder-volumes -L 2048g --type=mirror -m 1 --nosync --mirrorlog mirrored -R 2"
    );
    assert_eq!(
        line(c.create_thin_pool("cinder-volumes-pool", 1_019_215_872)),
        "env LC_ALL=C lvcreate -T -L 1019215872b cinder-volumes/cinder-volumes-pool"
    );
    assert_eq!(
        line(c.create_thin("volume-a", 5, "cinder-volumes-pool")),
        "env LC_ALL=C lvcreate -T -V 5g -n volume-a cinder-volumes/cinder-volumes-pool"
    );
    assert_eq!(
        line(c.create_snapshot("_snapshot-s", "volume-a", Some(1 << 30))),
        "env LC_ALL=C lvcreate --name _snapshot-s --snapshot cinder-volumes/volume-a -L 1073741824b"
    );
    assert_eq!(
        line(c.create_snapshot("_snapshot-s", "volume-a", None)),
        "env LC_ALL=C lvcreate --name _snapshot-s --snapshot cinder-volumes/volume-a"
    );
    assert_eq!(
        line(c.extend("volume-a", 3)),
        "env LC_ALL=C lvextend -L 3g cinder-volumes/volume-a"
    );
    assert_eq!(
        line(c.rename("volume-a", "_wipe-volume-a")),
        "env LC_ALL=C lvrename cinder-volumes volume-a _wipe-volume-a"
    );
    // The config argument is one argv entry, trailing space included.
    let remove = c.remove("volume-a", false);
    assert_eq!(
        remove.args,
        [
            "LC_ALL=C",
            "lvremove",
            "--config",
            "activation { retry_deactivation = 1} ",
            "-f",
            "cinder-volumes/volume-a"
        ]
    );
    assert_eq!(
        c.remove("volume-a", true).args[3],
        "activation { retry_deactivation = 1} devices { ignore_suspended_devices = 1}"
    );
    assert_eq!(line(c.udevadm_settle()), "udevadm settle");
    assert_eq!(
        line(c.activate("volume-a", Activation::IgnoreSkip)),
        "env LC_ALL=C lvchange -a y --yes -K cinder-volumes/volume-a"
    );
    assert_eq!(
        line(c.activate("volume-a", Activation::Permanent)),
        "env LC_ALL=C lvchange -a y --yes -k n cinder-volumes/volume-a"
    );
    assert_eq!(
        line(c.deactivate("volume-a")),
        "env LC_ALL=C lvchange -a n cinder-volumes/volume-a"
    );
    assert_eq!(
        line(c.lvs()),
        "env LC_ALL=C lvs --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_size,lv_attr,origin,pool_lv,data_percent cinder-volumes"
    );
    assert_eq!(
        line(c.vgs()),
        "env LC_ALL=C vgs --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_free,lv_count,vg_uuid,vg_extent_size cinder-volumes"
    );
    assert_eq!(
        line(c.pvs()),
        "env LC_ALL=C pvs --reportformat json --units b --nosuffix -o vg_name,pv_name,pv_size,pv_free"
    );
    assert_eq!(line(c.lvm_version()), "env LC_ALL=C lvm version");
    assert_eq!(
        c.mapper_path("volume-1-2"),
        Path::new("/dev/mapper/cinder--volumes-volume--1--2")
    );
    assert_eq!(
        c.cow_path("_snapshot-x"),
        Path::new("/dev/mapper/cinder--volumes-_snapshot--x-cow")
    );
    assert_eq!(
        c.device_path("volume-1"),
        Path::new("/dev/cinder-volumes/volume-1")
    );
    assert_eq!(
        line(c.zero(Path::new("/dev/mapper/x"), 1 << 30)),
        "dd if=/dev/zero of=/dev/mapper/x count=1073741824 bs=1M iflag=count_bytes oflag=direct conv=nocreat"
    );
    assert_eq!(
        line(c.copy(
            Path::new("/dev/mapper/a"),
            Path::new("/dev/mapper/b"),
            1 << 30,
            false
        )),
        "dd if=/dev/mapper/a of=/dev/mapper/b count=1073741824 bs=1M iflag=count_bytes,direct oflag=direct conv=nocreat"
    );
    assert!(
        line(c.copy(Path::new("/a"), Path::new("/b"), 1, true)).ends_with(" conv=sparse,nocreat")
    );

    let c = LvmCommands::new(
        "vg0",
        Some(Path::new("/etc/cinder")),
        true,
        "4M",
        Some("-c3"),
    );
    assert_eq!(
        line(c.create_thick("v", 1, 0)),
        "env LC_ALL=C LVM_SYSTEM_DIR=/etc/cinder LVM_SUPPRESS_FD_WARNINGS=1 lvcreate -n v vg0 -L 1g"
    );
    assert_eq!(
        line(c.zero(Path::new("/d"), 5)),
        "ionice -c3 dd if=/dev/zero of=/d count=5 bs=4M iflag=count_bytes oflag=direct conv=nocreat"
    );
}

#[test]
fn mirror_region_size_is_the_next_power_of_two_from_1_5_tib() {
    assert_eq!(mirror_region_size(1), None);
    assert_eq!(mirror_region_size(1535), None);
    assert_eq!(mirror_region_size(1536), Some(2));
    assert_eq!(mirror_region_size(2048), Some(2));
    assert_eq!(mirror_region_size(2049), Some(4));
    assert_eq!(mirror_region_size(4096), Some(4));
    assert_eq!(mirror_region_size(5000), Some(8));
}

// ---- parsers and classification on real output ---------------------------

#[test]
fn parses_real_reports() {
    let lvs = parse_lvs(&fixture("lvm/nodm/lvs").stdout).unwrap();
    assert_eq!(lvs.len(), 2);
    assert_eq!(lvs[1].name, "volume-0a0a0a0a-0000-4000-8000-00000000000a");
    assert_eq!(lvs[1].size_bytes, 2 << 30);
    assert_eq!(lvs[1].attr, "-wi-XX----");
    assert_eq!(lvs[1].origin, None);
    assert!(!lvs[1].is_thin() && !lvs[1].is_snapshot_origin() && !lvs[1].is_open());
    assert!(
        parse_lvs(&fixture("lvm/nodm/lvs-empty").stdout)
            .unwrap()
            .is_empty()
    );

    let lvs = parse_lvs(&fixture("lvm/dm/lvs").stdout).unwrap();
    let by_name = |n: &str| lvs.iter().find(|lv| lv.name == n).unwrap();
    let pool = by_name("cinder-fixture-pool");
    assert!(pool.is_thin_pool());
    assert_eq!(pool.data_percent, Some(0.0));
    assert_eq!(pool.size_bytes, 256 * MIB);
    let thin = by_name("volume-thin");
    assert!(thin.is_thin());
    assert_eq!(thin.pool_lv.as_deref(), Some("cinder-fixture-pool"));
    let thin_snapshot = by_name("_snapshot-0d0d0d0d-0000-4000-8000-00000000000d");
    assert_eq!(thin_snapshot.origin.as_deref(), Some("volume-thin"));
    assert!(thin_snapshot.is_thin() && !thin_snapshot.is_thick_snapshot());
    let thick_snapshot = by_name("_snapshot-0c0c0c0c-0000-4000-8000-00000000000c");
    assert!(thick_snapshot.is_thick_snapshot());
    assert_eq!(
        thick_snapshot.size_bytes,
        100 * MIB,
        "a thick snapshot's size is its COW"
    );
    let origin = by_name("_wipe-volume-0b0b0b0b-0000-4000-8000-00000000000b");
    assert!(origin.is_snapshot_origin());

    let vgs = parse_vgs(&fixture("lvm/nodm/vgs").stdout).unwrap();
    assert_eq!(vgs[0].name, "cinder-fixture");
    assert_eq!(vgs[0].size_bytes, 3_212_836_864);
    assert_eq!(vgs[0].free_bytes, 960_495_616);
    assert_eq!(vgs[0].lv_count, 2);
    assert_eq!(vgs[0].extent_size_bytes, 4 * MIB);
    assert!(
        parse_vgs(&fixture("lvm/nodm/vgs-missing-vg").stdout)
            .unwrap()
            .is_empty()
    );
    let pvs = parse_pvs(&fixture("lvm/nodm/pvs").stdout).unwrap();
    assert_eq!(pvs.len(), 2);
    assert_eq!(pvs[1].free_bytes, 960_495_616);
    assert_eq!(
        parse_lvm_version(&fixture("lvm/nodm/lvm-version").stdout),
        Some((2, 3, 16))
    );
    assert!(parse_lvs("not json").is_err());
}

#[test]
fn classifies_real_lvm_failures() {
    let class = |name: &str| {
        let out = fixture(name);
        assert_ne!(out.code, 0, "{name} is a failure");
        classify("op", &out)
    };
    assert!(matches!(
        class("lvm/nodm/lvcreate-exists"),
        DriverError::AlreadyExists(_)
    ));
    assert!(matches!(
        class("lvm/nodm/lvrename-exists"),
        DriverError::AlreadyExists(_)
    ));
    assert!(matches!(
        class("lvm/nodm/lvcreate-no-space"),
        DriverError::NoSpace(_)
    ));
    assert!(matches!(
        class("lvm/nodm/lvextend-no-space"),
        DriverError::NoSpace(_)
    ));
    assert!(matches!(
        class("lvm/dm/lvcreate-no-space"),
        DriverError::NoSpace(_)
    ));
    assert!(matches!(
        class("lvm/nodm/lvcreate-missing-vg"),
        DriverError::NotFound(_)
    ));
    assert!(matches!(
        class("lvm/nodm/lvextend-missing"),
        DriverError::NotFound(_)
    ));
    assert!(matches!(
        class("lvm/nodm/lvrename-missing"),
        DriverError::NotFound(_)
    ));
    assert!(matches!(
        class("lvm/nodm/lvremove-missing"),
        DriverError::NotFound(_)
    ));
    assert!(matches!(
        class("lvm/nodm/lvs-missing-lv"),
        DriverError::NotFound(_)
    ));
    assert!(matches!(
        class("lvm/nodm/vgs-missing-vg"),
        DriverError::NotFound(_)
    ));
    assert!(matches!(
        class("lvm/dm/lvextend-snapshot-origin"),
        DriverError::Busy(_)
    ));
    assert!(matches!(
        class("lvm/nodm/lvextend-smaller"),
        DriverError::InvalidInput(_)
    ));
    // No device-mapper: snapshots, thin pools and mirrors cannot work here.
    for name in [
        "lvm/nodm/lvcreate-snapshot",
        "lvm/nodm/lvcreate-thin-pool",
        "lvm/nodm/lvcreate-mirror",
        "lvm/dm/lvcreate-mirror",
    ] {
        assert!(matches!(class(name), DriverError::Unavailable(_)), "{name}");
    }
    match class("lvm/nodm/lvextend-same-size") {
        DriverError::Backend(m) => assert!(m.contains("matches existing size"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Warnings are dropped from messages.
    let DriverError::NoSpace(message) = class("lvm/nodm/lvcreate-no-space") else {
        panic!()
    };
    assert_eq!(
        message,
        "op: Volume group \"cinder-fixture\" has insufficient free space (485 extents): 2048 required."
    );
    assert!(matches!(
        classify(
            "op",
            &Output::failed(127, "env: 'lvcreate': No such file or directory")
        ),
        DriverError::Unavailable(_)
    ));
}

#[test]
fn mirror_free_space_pairs_extents_across_pvs() {
    assert_eq!(mirror_free_space(&[10, 10, 5], 1), 10);
    assert_eq!(mirror_free_space(&[10, 10], 1), 10);
    assert_eq!(mirror_free_space(&[10], 1), 0);
    // Legs of one extent range sit on three different PVs.
    assert_eq!(mirror_free_space(&[8, 4, 4, 4], 2), 4);
    assert_eq!(mirror_free_space(&[8, 8, 8], 2), 8);
    assert_eq!(mirror_free_space(&[0, 0, 9], 1), 0);
}
