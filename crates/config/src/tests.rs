use super::*;

fn env() -> ConfigEnv {
    ConfigEnv {
        hostname: "node1".into(),
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    let mut ini = Ini::default();
    ini.merge_text(text, "test.conf")?;
    Config::from_ini(&ini, &env())
}

#[test]
fn all_in_one_defaults() {
    let cfg = Config::load(&[], &env()).unwrap();
    assert_eq!(cfg.default.host, "node1");
    assert_eq!(cfg.default.state_path, PathBuf::from("./clinker-data"));
    assert_eq!(cfg.default.osapi_volume_listen, "127.0.0.1");
    assert_eq!(cfg.default.osapi_volume_listen_port, 8776);
    assert_eq!(cfg.default.auth_strategy, AuthStrategy::Noauth);
    assert_eq!(
        cfg.database.connection,
        "sqlite:///./clinker-data/clinker.sqlite"
    );
    assert_eq!(cfg.backends.len(), 1);
    let backend = &cfg.backends[0];
    assert_eq!(backend.name, "file");
    match &backend.driver {
        DriverConfig::File(f) => {
            assert_eq!(f.volumes_dir, PathBuf::from("./clinker-data/volumes/file"))
        }
        other => panic!("{other:?}"),
    }
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn an_all_in_one_file_without_enabled_backends_gets_the_file_backend() {
    let dir = std::env::temp_dir().join(format!("clinker-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("aio.conf");
    std::fs::write(
        &file,
        "[DEFAULT]\nstate_path = /srv/clinker\nosapi_volume_listen_port = 9999\n",
    )
    .unwrap();
    let cfg = Config::load_all_in_one(std::slice::from_ref(&file), &env()).unwrap();
    assert_eq!(cfg.default.osapi_volume_listen_port, 9999);
    assert_eq!(cfg.default.enabled_backends, ["file"]);
    match &cfg.backends[0].driver {
        DriverConfig::File(f) => {
            assert_eq!(f.volumes_dir, PathBuf::from("/srv/clinker/volumes/file"))
        }
        other => panic!("{other:?}"),
    }
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    // The multi-node roles read the same file as it is: no backend.
    assert!(
        Config::load(std::slice::from_ref(&file), &env())
            .unwrap()
            .backends
            .is_empty()
    );
    // An explicit empty list is the operator's choice, kept as written.
    std::fs::write(&file, "[DEFAULT]\nenabled_backends =\n").unwrap();
    let cfg = Config::load_all_in_one(std::slice::from_ref(&file), &env()).unwrap();
    assert!(cfg.backends.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cinder_defaults_for_intervals_and_quotas() {
    let cfg = parse("[DEFAULT]\n").unwrap();
    let d = &cfg.default;
    assert_eq!(
        (
            d.report_interval,
            d.periodic_interval,
            d.periodic_fuzzy_delay,
            d.service_down_time
        ),
        (10, 60, 60, 60)
    );
    assert_eq!(
        (
            d.quota_volumes,
            d.quota_snapshots,
            d.quota_gigabytes,
            d.per_volume_size_limit
        ),
        (10, 10, 1000, -1)
    );
    assert_eq!(d.scheduler_max_attempts, 3);
    assert_eq!(d.default_volume_type, "__DEFAULT__");
    assert_eq!(d.default_group_type, None);
    assert_eq!(d.storage_availability_zone, "nova");
    assert_eq!(d.osapi_max_limit, 1000);
}

#[test]
fn service_down_time_is_raised_like_cinder() {
    let cfg = parse("[DEFAULT]\nreport_interval = 30\nservice_down_time = 20\n").unwrap();
    assert_eq!(cfg.default.service_down_time, 75);
}

#[test]
fn interpolates_state_path() {
    let cfg = parse(
        "[DEFAULT]\nstate_path = /srv/c\nenabled_backends = f\n[f]\nvolume_driver = file\nfile_volumes_dir = $state_path/vols\n[database]\nconnection = sqlite:///${state_path}/db.sqlite\n",
    )
    .unwrap();
    assert_eq!(cfg.database.connection, "sqlite:////srv/c/db.sqlite");
    assert_eq!(cfg.sqlite_path(), Some(Path::new("/srv/c/db.sqlite")));
    match &cfg.backends[0].driver {
        DriverConfig::File(f) => assert_eq!(f.volumes_dir, PathBuf::from("/srv/c/vols")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn accepts_cinder_class_paths_and_backend_defaults() {
    let cfg = parse(
        "[DEFAULT]\nenabled_backends = a, b\n[backend_defaults]\nreserved_percentage = 5\n[a]\nvolume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver\nvolume_backend_name = fake\n[b]\nvolume_driver = file\nreserved_percentage = 7\nmax_over_subscription_ratio = auto\n",
    )
    .unwrap();
    assert_eq!(cfg.backends[0].driver.short_name(), "fake");
    assert_eq!(cfg.backends[0].volume_backend_name, "fake");
    assert_eq!(cfg.backends[0].reserved_percentage, 5);
    assert_eq!(cfg.backends[1].reserved_percentage, 7);
    assert_eq!(
        cfg.backends[1].max_over_subscription_ratio,
        OverSubscription::Auto
    );
    assert_eq!(
        cfg.backends[0].max_over_subscription_ratio,
        OverSubscription::Ratio(20.0)
    );
}

#[test]
fn unknown_options_and_sections_are_warnings_that_name_them() {
    let cfg = parse(
        "[DEFAULT]\nhost = x\nfrobnicate = 1\ndebug = true\nlog_dir = /tmp\n[stray]\na = b\n",
    )
    .unwrap();
    assert!(cfg.default.debug);
    assert_eq!(
        cfg.warnings,
        vec![
            "unknown option frobnicate in section [DEFAULT] is ignored".to_owned(),
            "section [stray] is not used (not in enabled_backends)".to_owned()
        ]
    );
}

#[test]
fn invalid_values_name_section_option_and_value() {
    let err = parse("[DEFAULT]\nreport_interval = soon\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value \"soon\" for option report_interval in section [DEFAULT]: not an integer"
    );
    let err = parse(
        "[DEFAULT]\nenabled_backends = a\n[a]\nvolume_driver = file\nreserved_percentage = 101\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("reserved_percentage in section [a]"),
        "{err}"
    );
    let err =
        parse("[DEFAULT]\nenabled_backends = a\n[a]\nvolume_driver = cinder.volume.drivers.Nope\n")
            .unwrap_err();
    assert!(
        err.to_string().contains("volume_driver in section [a]"),
        "{err}"
    );
    let err = parse("[DEFAULT]\nauth_strategy = magic\n").unwrap_err();
    assert!(err.to_string().contains("must be one of"), "{err}");
    let err = parse("[DEFAULT]\nenabled_backends = a/b\n").unwrap_err();
    assert!(err.to_string().contains("enabled_backends"), "{err}");
    let err = parse("[DEFAULT]\nenabled_backends = missing\n").unwrap_err();
    assert!(err.to_string().contains("no such section"), "{err}");
    let err = parse("[DEFAULT]\nhost = a@b\n").unwrap_err();
    assert!(err.to_string().contains("option host"), "{err}");
}

#[test]
fn unresolvable_interpolation_is_an_error() {
    let err = parse("[DEFAULT]\nenabled_backends = a\n[a]\nvolume_driver = file\nfile_volumes_dir = $nowhere/x\n").unwrap_err();
    assert!(err.to_string().contains("file_volumes_dir"), "{err}");
}

fn lvm_backend(extra: &str) -> Result<BackendConfig, ConfigError> {
    let cfg = parse(&format!(
        "[DEFAULT]\nstate_path = /srv/c\nmy_ip = 192.0.2.10\nenabled_backends = lvm\n[lvm]\nvolume_driver = cinder.volume.drivers.lvm.LVMVolumeDriver\n{extra}"
    ))?;
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    Ok(cfg.backends.into_iter().next().unwrap())
}

#[test]
fn lvm_options_have_cinders_defaults() {
    let backend = lvm_backend("").unwrap();
    let DriverConfig::Lvm(lvm) = &backend.driver else {
        panic!("{:?}", backend.driver)
    };
    assert_eq!(
        lvm,
        &LvmDriverOptions {
            volume_group: "cinder-volumes".into(),
            lvm_type: LvmType::Auto,
            lvm_mirrors: 0,
            lvm_conf_file: Some(PathBuf::from("/etc/cinder/lvm.conf")),
            lvm_suppress_fd_warnings: false,
            lvm_share_target: false,
            volume_clear: VolumeClear::Zero,
            volume_clear_size_mib: 0,
            volume_clear_ionice: None,
            volume_dd_blocksize: "1M".into(),
        }
    );
    assert_eq!(
        backend.target,
        TargetConfig {
            target_helper: TargetHelperKind::Tgtadm,
            target_prefix: "iqn.2010-10.org.openstack:".into(),
            target_ip_address: "192.0.2.10".into(),
            target_secondary_ip_addresses: vec![],
            target_port: 3260,
            target_protocol: TargetProtocol::Iscsi,
            volumes_dir: PathBuf::from("/srv/c/volumes"),
            iscsi_write_cache: true,
            iscsi_target_flags: None,
            tgt_conf_file: None,
            tgt_control_port: None,
        }
    );
}

#[test]
fn lvm_driver_names_and_every_option() {
    for name in [
        "lvm",
        "cinder.volume.drivers.lvm.LVMVolumeDriver",
        "cinder.volume.drivers.lvm.LVMISCSIDriver",
    ] {
        let cfg = parse(&format!(
            "[DEFAULT]\nenabled_backends = b\n[b]\nvolume_driver = {name}\n"
        ))
        .unwrap();
        assert_eq!(cfg.backends[0].driver.short_name(), "lvm");
    }
    let backend = lvm_backend(
        "volume_group = stack-vg\nlvm_type = default\nlvm_mirrors = 2\nlvm_conf_file = None\n\
         lvm_suppress_fd_warnings = true\nvolume_clear = none\nvolume_clear_size = 100\n\
         volume_clear_ionice = -c3\nvolume_dd_blocksize = 4M\nlvm_share_target = false\n\
         target_helper = lioadm\ntarget_prefix = iqn.2004-01.example:\ntarget_ip_address = 10.0.0.1\n\
         iscsi_secondary_ip_addresses = 10.0.0.2, 10.0.0.3\ntarget_port = 3261\ntarget_protocol = iser\n\
         volumes_dir = $state_path/targets\niscsi_write_cache = off\niscsi_target_flags = direct\n\
         tgt_conf_file = /etc/tgt/clinker.conf\ntgt_control_port = 7\n",
    )
    .unwrap();
    let DriverConfig::Lvm(lvm) = &backend.driver else {
        panic!()
    };
    assert_eq!(lvm.volume_group, "stack-vg");
    assert_eq!(lvm.lvm_type, LvmType::Default);
    assert_eq!(lvm.lvm_mirrors, 2);
    assert_eq!(lvm.lvm_conf_file, None);
    assert!(lvm.lvm_suppress_fd_warnings);
    assert_eq!(lvm.volume_clear, VolumeClear::None);
    assert_eq!(lvm.volume_clear_size_mib, 100);
    assert_eq!(lvm.volume_clear_ionice.as_deref(), Some("-c3"));
    assert_eq!(lvm.volume_dd_blocksize, "4M");
    let t = &backend.target;
    assert_eq!(t.target_helper, TargetHelperKind::Lioadm);
    assert_eq!(t.target_prefix, "iqn.2004-01.example:");
    assert_eq!(t.target_ip_address, "10.0.0.1");
    assert_eq!(t.target_secondary_ip_addresses, ["10.0.0.2", "10.0.0.3"]);
    assert_eq!(t.target_port, 3261);
    assert_eq!(t.target_protocol, TargetProtocol::Iser);
    assert_eq!(t.volumes_dir, PathBuf::from("/srv/c/targets"));
    assert!(!t.iscsi_write_cache);
    assert_eq!(t.iscsi_target_flags.as_deref(), Some("direct"));
    assert_eq!(
        t.tgt_conf_file,
        Some(PathBuf::from("/etc/tgt/clinker.conf"))
    );
    assert_eq!(t.tgt_control_port, Some(7));
}

#[test]
fn target_options_come_from_backend_defaults_too() {
    let cfg = parse(
        "[DEFAULT]\nenabled_backends = a, f\n[backend_defaults]\ntarget_helper = fake\ntarget_port = 3300\n\
         [a]\nvolume_driver = lvm\n[f]\nvolume_driver = file\ntarget_helper = tgtadm\n",
    )
    .unwrap();
    assert_eq!(cfg.backends[0].target.target_helper, TargetHelperKind::Fake);
    assert_eq!(cfg.backends[0].target.target_port, 3300);
    assert_eq!(
        cfg.backends[1].target.target_helper,
        TargetHelperKind::Tgtadm
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn file_backends_export_locally_unless_told() {
    let cfg = parse("[DEFAULT]\nenabled_backends = f\n[f]\nvolume_driver = file\n").unwrap();
    assert_eq!(cfg.backends[0].target.target_helper, TargetHelperKind::None);
    assert_eq!(cfg.backends[0].target.target_ip_address, "127.0.0.1");
}

#[test]
fn invalid_lvm_and_target_values_stop_start_up() {
    let cases = [
        (
            "lvm_type = thick\n",
            "invalid value \"thick\" for option lvm_type in section [lvm]: must be one of: default, thin, auto",
        ),
        (
            "volume_clear = shred\n",
            "invalid value \"shred\" for option volume_clear in section [lvm]: must be one of: zero, none",
        ),
        (
            "volume_clear_size = 2048\n",
            "invalid value \"2048\" for option volume_clear_size in section [lvm]: must be between 0 and 1024",
        ),
        (
            "volume_dd_blocksize = 0M\n",
            "invalid value \"0M\" for option volume_dd_blocksize in section [lvm]: must be a positive block size such as 512, 64K, 1M or 1G",
        ),
        (
            "volume_dd_blocksize = 1.5M\n",
            "option volume_dd_blocksize in section [lvm]",
        ),
        ("lvm_mirrors = -1\n", "option lvm_mirrors in section [lvm]"),
        (
            "lvm_type = thin\nlvm_mirrors = 1\n",
            "invalid value \"1\" for option lvm_mirrors in section [lvm]: mirrors need thick LVs; set lvm_type = default",
        ),
        (
            "lvm_share_target = true\n",
            "option lvm_share_target in section [lvm]",
        ),
        (
            "volume_group = bad/vg\n",
            "invalid value \"bad/vg\" for option volume_group in section [lvm]",
        ),
        (
            "target_helper = iet\n",
            "invalid value \"iet\" for option target_helper in section [lvm]: must be one of: tgtadm, lioadm, fake, none",
        ),
        (
            "target_helper = none\n",
            "invalid value \"none\" for option target_helper in section [lvm]: the lvm driver exports",
        ),
        (
            "target_port = 70000\n",
            "invalid value \"70000\" for option target_port in section [lvm]: must be between 1 and 65535",
        ),
        (
            "target_protocol = nvmet_tcp\n",
            "option target_protocol in section [lvm]",
        ),
        (
            "iscsi_write_cache = maybe\n",
            "option iscsi_write_cache in section [lvm]",
        ),
        (
            "target_prefix = iqn.x: y\n",
            "option target_prefix in section [lvm]",
        ),
        (
            "target_secondary_ip_addresses = 10.0.0.1;10.0.0.2\n",
            "option target_secondary_ip_addresses in section [lvm]",
        ),
        (
            "tgt_control_port = x\n",
            "option tgt_control_port in section [lvm]: not an integer",
        ),
        (
            "tgt_control_port = 40000\n",
            "option tgt_control_port in section [lvm]: must be between 0 and 32767",
        ),
        (
            "lvm_suppress_fd_warnings = sometimes\n",
            "option lvm_suppress_fd_warnings in section [lvm]",
        ),
    ];
    for (extra, expected) in cases {
        let err = lvm_backend(extra).unwrap_err().to_string();
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
}

#[test]
fn unknown_lvm_options_are_warnings() {
    let cfg =
        parse("[DEFAULT]\nenabled_backends = lvm\n[lvm]\nvolume_driver = lvm\nlvm_mirorrs = 1\n")
            .unwrap();
    assert_eq!(
        cfg.warnings,
        ["unknown option lvm_mirorrs in section [lvm] is ignored"]
    );
}
