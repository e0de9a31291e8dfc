#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clinker_config::{TargetConfig, TargetHelperKind, TargetProtocol};
use clinker_exec::{FakeRunner, Output};
use clinker_types::VolumeId;
use serde_json::json;

use super::lio::{ConfigFsKind, LioAdm};
use super::tgt::{TgtAdm, parse_show, volume_conf};
use super::*;
use crate::testing::fixture;

const UUID: &str = "0e0e0e0e-0000-4000-8000-00000000000e";
const IQN: &str = "iqn.2010-10.org.openstack:volume-0e0e0e0e-0000-4000-8000-00000000000e";

fn volume() -> VolumeSpec {
    VolumeSpec::new(VolumeId(UUID.parse().unwrap()), 1)
}

fn config(dir: &Path) -> TargetConfig {
    TargetConfig::with_defaults(TargetHelperKind::Tgtadm, dir.to_path_buf())
}

fn connector(initiator: &str) -> Connector {
    json!({"initiator": initiator, "host": "compute1", "ip": "127.0.0.1"})
        .as_object()
        .unwrap()
        .clone()
}

fn chap() -> ChapCredentials {
    ChapCredentials {
        username: "AbCdEfGhJkMnPqRsTuVw".into(),
        password: "s3cr3tPassw0rd42".into(),
    }
}

// ---- CHAP, provider_location, connection_info --------------------------

#[test]
fn generated_chap_credentials_have_cinders_shape() {
    let groups: Vec<Vec<char>> = SYMBOL_GROUPS.iter().map(|g| g.chars().collect()).collect();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let c = ChapCredentials::generate();
        assert_eq!(c.username.len(), 20);
        assert_eq!(c.password.len(), 16);
        for secret in [&c.username, &c.password] {
            assert!(
                secret
                    .chars()
                    .all(|ch| groups.iter().any(|g| g.contains(&ch)))
            );
            for group in &groups {
                assert!(secret.chars().any(|ch| group.contains(&ch)), "{secret}");
            }
            assert!(!secret.contains(['0', '1', 'I', 'O', 'l']));
        }
        assert!(seen.insert(c.password.clone()), "passwords repeat");
    }
    assert!(
        !format!("{:?}", chap()).contains("s3cr3t"),
        "Debug hides the secret"
    );
}

#[test]
fn provider_auth_round_trips() {
    let c = chap();
    assert_eq!(
        c.to_provider_auth(),
        "CHAP AbCdEfGhJkMnPqRsTuVw s3cr3tPassw0rd42"
    );
    assert_eq!(
        ChapCredentials::from_provider_auth(&c.to_provider_auth()),
        Some(c)
    );
    assert_eq!(ChapCredentials::from_provider_auth("CHAP onlyuser"), None);
    assert_eq!(ChapCredentials::from_provider_auth("NONE a b"), None);
    assert_eq!(ChapCredentials::from_provider_auth("CHAP a b c"), None);
}

#[test]
fn provider_location_format_and_parse() {
    let location = ProviderLocation {
        portals: vec!["10.0.0.1:3260".into(), "[fd00::2]:3260".into()],
        tid: "1".into(),
        iqn: IQN.into(),
        lun: 1,
    };
    let text = location.to_string();
    assert_eq!(text, format!("10.0.0.1:3260;[fd00::2]:3260,1 {IQN} 1"));
    assert_eq!(ProviderLocation::parse(&text), Some(location));
    // Cinder reads a missing LUN as 0.
    assert_eq!(
        ProviderLocation::parse(&format!("1.2.3.4:3260,0 {IQN}"))
            .unwrap()
            .lun,
        0
    );
    assert_eq!(ProviderLocation::parse("/var/lib/clinker/volume-x"), None);
    assert_eq!(portal("fd00::2", 3260), "[fd00::2]:3260");
    assert_eq!(portal("192.0.2.1", 3261), "192.0.2.1:3261");
}

#[test]
fn connection_info_is_cinders_iscsi_shape() {
    let mut v = volume();
    v.provider_location = Some(format!("192.0.2.1:3260,1 {IQN} 1"));
    v.provider_auth = Some(chap().to_provider_auth());
    let info = iscsi_connection_info(TargetProtocol::Iscsi, &v, &connector("iqn.x")).unwrap();
    assert_eq!(
        info.to_nested_json(),
        json!({
            "driver_volume_type": "iscsi",
            "data": {
                "target_discovered": false,
                "target_portal": "192.0.2.1:3260",
                "target_iqn": IQN,
                "target_lun": 1,
                "volume_id": UUID,
                "auth_method": "CHAP",
                "auth_username": "AbCdEfGhJkMnPqRsTuVw",
                "auth_password": "s3cr3tPassw0rd42",
                "encrypted": false,
            }
        })
    );
    // Multipath connectors and secondary portals get the lists too.
    let mut multipath = connector("iqn.x");
    multipath.insert("multipath".into(), json!(true));
    let info = iscsi_connection_info(TargetProtocol::Iser, &v, &multipath).unwrap();
    assert_eq!(info.driver_volume_type, "iser");
    assert_eq!(info.data["target_portals"], json!(["192.0.2.1:3260"]));
    assert_eq!(info.data["target_iqns"], json!([IQN]));
    assert_eq!(info.data["target_luns"], json!([1]));
    v.provider_location = Some(format!("192.0.2.1:3260;192.0.2.2:3260,1 {IQN} 1"));
    let info = iscsi_connection_info(TargetProtocol::Iscsi, &v, &connector("iqn.x")).unwrap();
    assert_eq!(
        info.data["target_portals"],
        json!(["192.0.2.1:3260", "192.0.2.2:3260"])
    );
    assert_eq!(info.data["target_luns"], json!([1, 1]));
    assert_eq!(info.data["target_portal"], "192.0.2.1:3260");
    v.provider_location = None;
    assert!(matches!(
        iscsi_connection_info(TargetProtocol::Iscsi, &v, &connector("iqn.x")),
        Err(DriverError::InvalidInput(_))
    ));
}

#[test]
fn connector_must_name_its_initiator() {
    assert_eq!(
        connector_initiator(&connector("iqn.1993-08.org.debian:01:abc")).unwrap(),
        "iqn.1993-08.org.debian:01:abc"
    );
    let mut c = connector("x");
    c.remove("initiator");
    assert!(matches!(
        connector_initiator(&c),
        Err(DriverError::InvalidInput(_))
    ));
}

// ---- fake ----------------------------------------------------------------

#[tokio::test]
async fn fake_helper_answers_like_iscsi_with_tid_and_lun_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let helper = fake::FakeTarget::new(&config(tmp.path()));
    let mut v = volume();
    let update = helper
        .create_export(&v, Path::new("/dev/cinder-volumes/x"))
        .await
        .unwrap();
    assert_eq!(
        update.provider_location.as_deref(),
        Some(format!("127.0.0.1:3260,0 {IQN} 0").as_str())
    );
    let auth = update.provider_auth.clone().unwrap();
    assert!(
        auth.starts_with("CHAP ") && auth.len() == 5 + 20 + 1 + 16,
        "{auth}"
    );
    v.provider_location = update.provider_location;
    v.provider_auth = update.provider_auth;
    let info = helper
        .initialize_connection(&v, &connector("iqn.i"))
        .await
        .unwrap();
    assert_eq!(info.data["target_lun"], 0);
    assert_eq!(info.data["auth_method"], "CHAP");
    // Credentials are reused on the next export.
    let again = helper.create_export(&v, Path::new("/x")).await.unwrap();
    assert_eq!(again.provider_auth, v.provider_auth);
    helper.remove_export(&v).await.unwrap();
}

// ---- tgt -------------------------------------------------------------------

#[test]
fn volume_conf_is_byte_for_byte_cinders() {
    assert_eq!(
        volume_conf(
            IQN,
            Path::new("/dev/cinder-volumes/volume-0e0e0e0e-0000-4000-8000-00000000000e"),
            "iscsi",
            &chap(),
            None,
            true,
            "volume-0e0e0e0e-0000-4000-8000-00000000000e",
        ),
        "\n<target iqn.2010-10.org.openstack:volume-0e0e0e0e-0000-4000-8000-00000000000e>\n    backing-store /dev/cinder-volumes/volume-0e0e0e0e-0000-4000-8000-00000000000e\n    driver iscsi\n    incominguser AbCdEfGhJkMnPqRsTuVw s3cr3tPassw0rd42\n    \n    write-cache on\n    scsi_sn volume-0e0e0e0e-0000-4000-8000-00000000000e\n    scsi_id volume-0e0e0e0e-0000-4000-8000-00000000000e\n</target>\n"
    );
    let with_flags = volume_conf(
        IQN,
        Path::new("/f"),
        "iser",
        &chap(),
        Some("direct"),
        false,
        "v",
    );
    assert!(with_flags.contains("\n    driver iser\n"));
    assert!(with_flags.contains("\n    bsoflags direct\n    write-cache off\n"));
}

#[test]
fn parses_real_tgt_admin_show_output() {
    let targets = parse_show(&fixture("tgt/tgt-admin-show").stdout);
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0].tid, "1");
    assert_eq!(targets[0].iqn, IQN);
    assert_eq!(targets[0].luns, [0, 1]);
    assert_eq!(targets[0].sessions, 0);
    assert_eq!(targets[0].backing_stores, ["/srv/clinker/vol1.img"]);
    assert_eq!(targets[0].accounts, ["AbCdEfGhJkMnPqRsTuVw"]);
    // The target whose backing store could not be opened has no LUN 1.
    assert_eq!(targets[1].tid, "2");
    assert_eq!(targets[1].luns, [0]);
    let with_session = parse_show(&fixture("tgt/tgt-admin-show-session").stdout);
    assert_eq!(with_session[0].sessions, 1);
    // `--delete` without -f left the in-use target in place.
    let after = parse_show(&fixture("tgt/tgt-admin-show-after-delete-in-use").stdout);
    assert!(after.iter().any(|t| t.iqn == IQN));
    assert_eq!(fixture("tgt/tgt-admin-delete-in-use").code, 0);
    assert!(parse_show("").is_empty());
}

fn tgt(dir: &Path, fake: &FakeRunner) -> TgtAdm {
    TgtAdm::new(&config(dir), Arc::new(fake.clone())).with_timings(Duration::ZERO, Duration::ZERO)
}

/// `tgt-admin --show` answering with `text` the next `times` calls.
fn show(fake: &FakeRunner, times: usize, text: &str) {
    fake.on_times("tgt-admin --show", times, Output::ok(text));
}

/// `tgt-admin --show` text; LUNs other than 0 (the controller) are backed
/// by `/srv/<the IQN's volume name>`.
fn show_text(targets: &[(&str, &str, &[u32])]) -> String {
    targets
        .iter()
        .map(|(tid, iqn, luns)| {
            let name = iqn.rsplit(':').next().unwrap_or_default();
            let luns: String = luns
                .iter()
                .map(|l| {
                    let store = if *l == 0 {
                        "None".to_owned()
                    } else {
                        format!("/srv/{name}")
                    };
                    format!(
                        "        LUN: {l}\n            Type: disk\n            Backing store path: {store}\n"
                    )
                })
                .collect();
            format!(
                "Target {tid}: {iqn}\n    System information:\n        Driver: iscsi\n    I_T nexus information:\n    LUN information:\n{luns}    Account information:\n    ACL information:\n        ALL\n"
            )
        })
        .collect()
}

#[tokio::test]
async fn tgt_create_export_writes_the_file_updates_and_finds_the_tid() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new();
    show(&fake, 1, &show_text(&[("3", IQN, &[0, 1])]));
    let helper = tgt(tmp.path(), &fake);
    let mut v = volume();
    v.provider_auth = Some(chap().to_provider_auth());
    let path = PathBuf::from("/dev/cinder-volumes/volume-0e0e0e0e-0000-4000-8000-00000000000e");
    let update = helper.create_export(&v, &path).await.unwrap();
    assert_eq!(
        fake.calls(),
        [
            format!("tgt-admin --update {IQN}"),
            "tgt-admin --show".to_owned()
        ]
    );
    assert_eq!(
        update.provider_location.as_deref(),
        Some(format!("127.0.0.1:3260,3 {IQN} 1").as_str())
    );
    assert_eq!(update.provider_auth, v.provider_auth, "stored CHAP reused");
    let file = tmp.path().join(&v.name);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        volume_conf(IQN, &path, "iscsi", &chap(), None, true, &v.name)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn tgt_commands_reach_a_private_tgtd() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new();
    let mut cfg = config(tmp.path());
    cfg.tgt_control_port = Some(7);
    cfg.tgt_conf_file = Some(PathBuf::from("/etc/tgt/clinker.conf"));
    let helper = TgtAdm::new(&cfg, Arc::new(fake.clone()));
    assert_eq!(
        helper.update_command(IQN, true).command_line(),
        format!("tgt-admin -C 7 -c /etc/tgt/clinker.conf --update {IQN} -f")
    );
    assert_eq!(
        helper.show_command().command_line(),
        "tgt-admin -C 7 -c /etc/tgt/clinker.conf --show"
    );
    assert_eq!(
        helper.delete_command(IQN, false).command_line(),
        format!("tgt-admin -C 7 -c /etc/tgt/clinker.conf --delete {IQN}")
    );
    assert_eq!(
        helper
            .new_lun_command("4", Path::new("/srv/v.img"))
            .command_line(),
        "tgtadm -C 7 --lld iscsi --op new --mode logicalunit --tid 4 --lun 1 -b /srv/v.img"
    );
}

#[tokio::test]
async fn tgt_re_adds_a_missing_lun_with_tgtadm() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new();
    show(&fake, 1, &show_text(&[("2", IQN, &[0])]));
    show(&fake, 1, &show_text(&[("2", IQN, &[0, 1])]));
    let helper = tgt(tmp.path(), &fake);
    let update = helper
        .create_export(&volume(), Path::new("/srv/v.img"))
        .await
        .unwrap();
    assert_eq!(
        fake.calls(),
        [
            format!("tgt-admin --update {IQN}"),
            "tgt-admin --show".to_owned(),
            "tgtadm --lld iscsi --op new --mode logicalunit --tid 2 --lun 1 -b /srv/v.img"
                .to_owned(),
            "tgt-admin --show".to_owned(),
        ]
    );
    assert!(
        update
            .provider_location
            .unwrap()
            .starts_with("127.0.0.1:3260,2 ")
    );
}

#[tokio::test]
async fn tgt_retries_the_lun_while_tgtd_still_holds_the_old_one() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new();
    show(&fake, 1, &show_text(&[("1", IQN, &[0])]));
    show(&fake, 1, &show_text(&[("1", IQN, &[0, 1])]));
    fake.on_times("tgtadm", 2, Output::failed(22, "tgtadm: invalid request\n"));
    let helper = tgt(tmp.path(), &fake);
    helper
        .create_export(&volume(), Path::new("/srv/v.img"))
        .await
        .unwrap();
    let lun_adds = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("tgtadm"))
        .count();
    assert_eq!(lun_adds, 3, "{:?}", fake.calls());
}

#[tokio::test]
async fn tgt_leaves_an_unchanged_complete_target_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new();
    show(&fake, 2, &show_text(&[("4", IQN, &[0, 1])]));
    let helper = tgt(tmp.path(), &fake);
    let mut v = volume();
    v.provider_auth = Some(chap().to_provider_auth());
    helper
        .create_export(&v, Path::new("/srv/v.img"))
        .await
        .unwrap();
    fake.clear_calls();
    // Same credentials, same path: no tgt-admin --update (it would delete
    // and re-create the target).
    let again = helper
        .create_export(&v, Path::new("/srv/v.img"))
        .await
        .unwrap();
    assert_eq!(fake.calls(), ["tgt-admin --show"]);
    assert!(again.provider_location.unwrap().contains(",4 "));
    // A different backing store is an update.
    fake.clear_calls();
    show(&fake, 1, &show_text(&[("4", IQN, &[0, 1])]));
    helper
        .create_export(&v, Path::new("/srv/other.img"))
        .await
        .unwrap();
    assert_eq!(fake.calls()[0], format!("tgt-admin --update {IQN}"));
}

#[tokio::test]
async fn tgt_fails_and_cleans_up_when_the_lun_cannot_be_added() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new();
    show(&fake, 2, &show_text(&[("2", IQN, &[0])]));
    fake.on("tgtadm", fixture("tgt/tgtadm-new-lun-exists"));
    let helper = tgt(tmp.path(), &fake);
    let err = helper
        .create_export(&volume(), Path::new("/srv/v.img"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DriverError::Backend(ref m) if m.contains("no LUN 1")),
        "{err}"
    );
    assert!(
        !tmp.path().join(volume().name).exists(),
        "target file removed"
    );
}

#[tokio::test]
async fn tgt_update_is_retried_then_fails_without_leaving_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new();
    fake.on(
        "tgt-admin --update",
        fixture("tgt/tgt-admin-update-unconfigured"),
    );
    let helper = tgt(tmp.path(), &fake);
    let err = helper
        .create_export(&volume(), Path::new("/srv/v.img"))
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::Backend(_)), "{err:?}");
    assert_eq!(fake.calls().len(), 3, "three attempts: {:?}", fake.calls());
    assert!(!tmp.path().join(volume().name).exists());
}

#[tokio::test]
async fn tgt_target_already_exists_is_accepted_when_the_target_is_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new();
    fake.on(
        "tgt-admin --update",
        Output::failed(22, "tgtadm: this target already exists\n"),
    );
    show(&fake, 1, &show_text(&[("5", IQN, &[0, 1])]));
    let helper = tgt(tmp.path(), &fake);
    let update = helper
        .create_export(&volume(), Path::new("/srv/v.img"))
        .await
        .unwrap();
    assert!(update.provider_location.unwrap().contains(",5 "));
    assert!(tmp.path().join(volume().name).exists());
}

#[tokio::test]
async fn tgt_without_a_daemon_is_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new();
    fake.on("tgt-admin", fixture("tgt/tgt-admin-show-no-daemon"));
    let helper = tgt(tmp.path(), &fake);
    let err = helper
        .create_export(&volume(), Path::new("/srv/v.img"))
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::Unavailable(_)), "{err:?}");
    assert_eq!(fake.calls().len(), 1, "no retry against a missing daemon");
    // A stopped tgtd does not fail the backend's set-up check; missing tools do.
    helper.check_for_setup_error().await.unwrap();
    let fake = FakeRunner::new();
    fake.fail_spawn_once("tgt-admin");
    let helper = tgt(tmp.path(), &fake);
    assert!(matches!(
        helper.check_for_setup_error().await,
        Err(DriverError::Unavailable(_))
    ));
}

#[tokio::test]
async fn tgt_remove_export_force_deletes_verifies_and_removes_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let v = volume();
    std::fs::write(tmp.path().join(&v.name), "x").unwrap();
    let fake = FakeRunner::new();
    show(&fake, 1, &show_text(&[("1", IQN, &[0, 1])]));
    show(&fake, 1, "");
    let helper = tgt(tmp.path(), &fake);
    helper.remove_export(&v).await.unwrap();
    assert_eq!(
        fake.calls(),
        [
            "tgt-admin --show".to_owned(),
            format!("tgt-admin --delete {IQN} -f"),
            "tgt-admin --show".to_owned(),
        ]
    );
    assert!(!tmp.path().join(&v.name).exists());
}

#[tokio::test]
async fn tgt_remove_export_retries_without_force_after_a_silent_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new();
    let listed = show_text(&[("1", IQN, &[0, 1])]);
    show(&fake, 2, &listed);
    show(&fake, 1, "");
    let helper = tgt(tmp.path(), &fake);
    helper.remove_export(&volume()).await.unwrap();
    assert_eq!(
        fake.calls(),
        [
            "tgt-admin --show".to_owned(),
            format!("tgt-admin --delete {IQN} -f"),
            "tgt-admin --show".to_owned(),
            format!("tgt-admin --delete {IQN}"),
            "tgt-admin --show".to_owned(),
        ]
    );
    // Still there after both: the target is busy.
    let fake = FakeRunner::new();
    show(&fake, 3, &listed);
    let helper = tgt(tmp.path(), &fake);
    assert!(matches!(
        helper.remove_export(&volume()).await,
        Err(DriverError::Busy(_))
    ));
}

#[tokio::test]
async fn tgt_remove_export_of_an_absent_target_only_removes_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let v = volume();
    std::fs::write(tmp.path().join(&v.name), "x").unwrap();
    let fake = FakeRunner::new();
    let helper = tgt(tmp.path(), &fake);
    helper.remove_export(&v).await.unwrap();
    assert_eq!(fake.calls(), ["tgt-admin --show"]);
    assert!(!tmp.path().join(&v.name).exists());
    // A delete that finds nothing is not an error either (Cinder's
    // non-fatal messages).
    let fake = FakeRunner::new();
    show(&fake, 1, &show_text(&[("1", IQN, &[0, 1])]));
    fake.on(
        "tgt-admin --delete",
        Output::failed(22, "tgtadm: can't find the target\n"),
    );
    let helper = tgt(tmp.path(), &fake);
    helper.remove_export(&v).await.unwrap();
}

#[tokio::test]
async fn tgt_extend_target_updates_only_an_existing_target() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new();
    let helper = tgt(tmp.path(), &fake);
    helper.extend_target(&volume()).await.unwrap();
    assert_eq!(fake.calls(), ["tgt-admin --show"]);
    fake.clear_calls();
    show(&fake, 1, &show_text(&[("1", IQN, &[0, 1])]));
    helper.extend_target(&volume()).await.unwrap();
    assert_eq!(
        fake.calls(),
        [
            "tgt-admin --show".to_owned(),
            format!("tgt-admin --update {IQN} -f")
        ]
    );
}

#[tokio::test]
async fn tgt_reconcile_removes_stale_targets_and_recreates_missing_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let stale = "iqn.2010-10.org.openstack:volume-11111111-0000-4000-8000-000000000001";
    let foreign = "iqn.2001-04.com.example:storage.disk1";
    for name in [
        "volume-11111111-0000-4000-8000-000000000001",
        "volume-22222222-0000-4000-8000-000000000002",
    ] {
        let conf = volume_conf(
            &format!("iqn.2010-10.org.openstack:{name}"),
            &Path::new("/srv").join(name),
            "iscsi",
            &chap(),
            None,
            true,
            name,
        );
        std::fs::write(tmp.path().join(name), conf).unwrap();
    }
    let fake = FakeRunner::new();
    // list, then remove_iscsi_target (find, verify), then create (find).
    show(
        &fake,
        2,
        &show_text(&[("1", stale, &[0, 1]), ("2", foreign, &[0, 1])]),
    );
    show(&fake, 1, &show_text(&[("2", foreign, &[0, 1])]));
    show(
        &fake,
        1,
        &show_text(&[("1", IQN, &[0, 1]), ("2", foreign, &[0, 1])]),
    );
    let helper = tgt(tmp.path(), &fake);
    let mut v = volume();
    v.provider_auth = Some(chap().to_provider_auth());
    let mut no_auth = VolumeSpec::new(VolumeId::new_random(), 1);
    no_auth.provider_auth = None;
    let report = helper
        .reconcile_targets(
            &[
                WantedExport {
                    volume: v.clone(),
                    path: PathBuf::from("/srv/v.img"),
                },
                WantedExport {
                    volume: no_auth.clone(),
                    path: PathBuf::from("/srv/w.img"),
                },
            ],
            Path::new("/srv"),
        )
        .await
        .unwrap();
    assert_eq!(report.removed, [stale]);
    assert_eq!(report.created, [IQN]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, no_auth.name);
    assert!(
        fake.calls()
            .contains(&format!("tgt-admin --delete {stale} -f"))
    );
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c.contains(foreign) && c.contains("--delete"))
    );
    assert!(tmp.path().join(&v.name).exists());
    assert!(
        !tmp.path()
            .join("volume-11111111-0000-4000-8000-000000000001")
            .exists()
    );
    assert!(
        !tmp.path()
            .join("volume-22222222-0000-4000-8000-000000000002")
            .exists()
    );
}

#[tokio::test]
async fn tgt_reconcile_leaves_other_backends_targets_and_files_alone() {
    // Two LVM backends on one host share tgtd and the default volumes_dir.
    // This backend's LVs are under /srv; the other's under /dev/other-vg.
    let tmp = tempfile::tempdir().unwrap();
    let other_name = "volume-33333333-0000-4000-8000-000000000003";
    let other_iqn = format!("iqn.2010-10.org.openstack:{other_name}");
    let other_conf = volume_conf(
        &other_iqn,
        &Path::new("/dev/other-vg").join(other_name),
        "iscsi",
        &chap(),
        None,
        true,
        other_name,
    );
    std::fs::write(tmp.path().join(other_name), &other_conf).unwrap();
    // An LIO backend's state file in the same directory is not a target
    // file either.
    std::fs::write(tmp.path().join(format!("{other_name}.lio.json")), "{}").unwrap();
    let fake = FakeRunner::new();
    let show_other = show_text(&[("1", &other_iqn, &[0, 1])]).replace(
        &format!("/srv/{other_name}"),
        &format!("/dev/other-vg/{other_name}"),
    );
    show(&fake, 1, &show_other);
    let helper = tgt(tmp.path(), &fake);
    let report = helper
        .reconcile_targets(&[], Path::new("/srv"))
        .await
        .unwrap();
    assert_eq!(report, ReconcileReport::default());
    assert_eq!(fake.calls(), ["tgt-admin --show"], "nothing deleted");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(other_name)).unwrap(),
        other_conf
    );
    assert!(tmp.path().join(format!("{other_name}.lio.json")).exists());
    // A root is matched by whole components: /dev/other-vg is not under
    // /dev/other.
    assert!(!is_under(
        Some(Path::new("/dev/other-vg/volume-x")),
        Path::new("/dev/other")
    ));
    assert!(is_under(
        Some(Path::new("/dev/other-vg/volume-x")),
        Path::new("/dev/other-vg")
    ));
    assert!(!is_under(None, Path::new("/")));
}

// ---- lio -------------------------------------------------------------------

struct Lio {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    backing: PathBuf,
    helper: LioAdm,
}

fn lio(protocol: TargetProtocol) -> Lio {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("configfs/target");
    std::fs::create_dir_all(&root).unwrap();
    let state = tmp.path().join("volumes");
    let backing = tmp.path().join("volume.img");
    std::fs::write(&backing, vec![0u8; 4096]).unwrap();
    let mut cfg = TargetConfig::with_defaults(TargetHelperKind::Lioadm, state.clone());
    cfg.target_secondary_ip_addresses = vec!["fd00::2".into()];
    cfg.target_protocol = protocol;
    let helper = LioAdm::new(&cfg, root.clone(), ConfigFsKind::Directory);
    Lio {
        _tmp: tmp,
        root,
        state,
        backing,
        helper,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn lio_export_builds_the_configfs_tree_rtstool_would() {
    let l = lio(TargetProtocol::Iscsi);
    let mut v = volume();
    v.provider_auth = Some(chap().to_provider_auth());
    let update = l.helper.create_export(&v, &l.backing).await.unwrap();
    // Cinder's LioAdm: tid is the IQN line of get-targets, LUN 0.
    assert_eq!(
        update.provider_location.as_deref(),
        Some(format!("127.0.0.1:3260;[fd00::2]:3260,{IQN} {IQN} 0").as_str())
    );
    let so = l.root.join("core/fileio_0").join(IQN);
    assert_eq!(
        read(&so.join("control")),
        format!("fd_dev_name={},fd_dev_size=4096", l.backing.display())
    );
    assert_eq!(read(&so.join("udev_path")), l.backing.display().to_string());
    assert_eq!(read(&so.join("enable")), "1");
    let tpg = l.root.join("iscsi").join(IQN).join("tpgt_1");
    assert_eq!(read(&tpg.join("attrib/authentication")), "1");
    assert_eq!(read(&tpg.join("enable")), "1");
    assert_eq!(
        std::fs::read_link(tpg.join("lun/lun_0/clinker")).unwrap(),
        so
    );
    assert!(tpg.join("np/127.0.0.1:3260").is_dir());
    assert!(tpg.join("np/[fd00::2]:3260").is_dir());
    assert!(!tpg.join("np/127.0.0.1:3260/iser").exists());
    assert!(!tpg.join("acls").exists(), "no initiator admitted yet");
    assert_eq!(
        l.helper.list_targets().await.unwrap(),
        [ListedTarget {
            iqn: IQN.into(),
            backing_store: Some(l.backing.clone()),
        }]
    );

    // initialize_connection admits the initiator with the volume's CHAP.
    v.provider_location = update.provider_location;
    let initiator = "iqn.1993-08.org.debian:01:compute1";
    let info = l
        .helper
        .initialize_connection(&v, &connector(initiator))
        .await
        .unwrap();
    assert_eq!(info.data["target_lun"], 0);
    assert_eq!(info.data["target_portals"].as_array().unwrap().len(), 2);
    let acl = tpg.join("acls").join(initiator);
    assert_eq!(read(&acl.join("auth/userid")), "AbCdEfGhJkMnPqRsTuVw");
    assert_eq!(read(&acl.join("auth/password")), "s3cr3tPassw0rd42");
    assert_eq!(
        std::fs::read_link(acl.join("lun_0/clinker")).unwrap(),
        tpg.join("lun/lun_0")
    );
    let mut no_initiator = connector("x");
    no_initiator.remove("initiator");
    assert!(matches!(
        l.helper.initialize_connection(&v, &no_initiator).await,
        Err(DriverError::InvalidInput(_))
    ));

    // A reboot loses configfs; ensure_export rebuilds target and ACL.
    std::fs::remove_dir_all(&l.root).unwrap();
    std::fs::create_dir_all(&l.root).unwrap();
    l.helper.ensure_export(&v, &l.backing).await.unwrap();
    assert_eq!(read(&acl.join("auth/userid")), "AbCdEfGhJkMnPqRsTuVw");

    // terminate_connection drops the ACL; remove_export everything.
    l.helper
        .terminate_connection(&v, Some(&connector(initiator)))
        .await
        .unwrap();
    assert!(!acl.exists());
    l.helper.remove_export(&v).await.unwrap();
    assert!(!l.root.join("iscsi").join(IQN).exists());
    assert!(!so.exists());
    assert!(l.helper.list_targets().await.unwrap().is_empty());
    assert!(!l.state.join(format!("{}.lio.json", v.name)).exists());
    // Removing again is fine.
    l.helper.remove_export(&v).await.unwrap();
}

#[tokio::test]
async fn lio_iser_portals_and_missing_configfs() {
    let l = lio(TargetProtocol::Iser);
    l.helper.create_export(&volume(), &l.backing).await.unwrap();
    let np = l
        .root
        .join("iscsi")
        .join(IQN)
        .join("tpgt_1/np/127.0.0.1:3260");
    assert_eq!(read(&np.join("iser")), "1");
    l.helper.check_for_setup_error().await.unwrap();
    let cfg = TargetConfig::with_defaults(TargetHelperKind::Lioadm, l.state.clone());
    let missing = LioAdm::new(
        &cfg,
        l.state.join("no-configfs/target"),
        ConfigFsKind::Kernel,
    );
    let err = missing.check_for_setup_error().await.unwrap_err();
    assert!(matches!(err, DriverError::Unavailable(ref m) if m.contains("LIO is not available")));
    assert!(matches!(
        l.helper
            .create_export(
                &VolumeSpec::new(VolumeId::new_random(), 1),
                &l.state.join("missing.img")
            )
            .await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test]
async fn lio_reconcile_removes_only_this_backends_stale_targets() {
    // Two backends share the kernel's LIO: the stale target backed by this
    // backend's file goes, the other backend's target (its backing store
    // elsewhere) stays, as does a wanted one.
    let l = lio(TargetProtocol::Iscsi);
    let mine = l.backing.parent().unwrap().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    let stale = VolumeSpec::new(VolumeId::new_random(), 1);
    let stale_path = mine.join(&stale.name);
    std::fs::write(&stale_path, vec![0u8; 4096]).unwrap();
    let wanted = VolumeSpec::new(VolumeId::new_random(), 1);
    let wanted_path = mine.join(&wanted.name);
    std::fs::write(&wanted_path, vec![0u8; 4096]).unwrap();
    let other = volume();
    for (v, path) in [
        (&stale, &stale_path),
        (&wanted, &wanted_path),
        (&other, &l.backing),
    ] {
        l.helper.create_export(v, path).await.unwrap();
    }
    let mut wanted_spec = wanted.clone();
    wanted_spec.provider_auth = Some(chap().to_provider_auth());
    let report = l
        .helper
        .reconcile_targets(
            &[WantedExport {
                volume: wanted_spec,
                path: wanted_path,
            }],
            &mine,
        )
        .await
        .unwrap();
    let iqn = |v: &VolumeSpec| format!("iqn.2010-10.org.openstack:{}", v.name);
    assert_eq!(report.removed, [iqn(&stale)]);
    assert!(report.created.is_empty() && report.failed.is_empty());
    let left: Vec<String> = l
        .helper
        .list_targets()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.iqn)
        .collect();
    let mut expected = vec![IQN.to_owned(), iqn(&wanted)];
    expected.sort();
    assert_eq!(left, expected);
}

#[tokio::test]
async fn build_target_helper_follows_target_helper() {
    let tmp = tempfile::tempdir().unwrap();
    let runner: Arc<dyn clinker_exec::CommandRunner> = Arc::new(FakeRunner::new());
    let mut cfg = config(tmp.path());
    for (kind, name) in [
        (TargetHelperKind::Tgtadm, Some("tgtadm")),
        (TargetHelperKind::Lioadm, Some("lioadm")),
        (TargetHelperKind::Fake, Some("fake")),
        (TargetHelperKind::None, None),
    ] {
        cfg.target_helper = kind;
        let helper = build_target_helper(&cfg, runner.clone()).unwrap();
        assert_eq!(helper.as_ref().map(|h| h.helper_name()), name);
    }
}
