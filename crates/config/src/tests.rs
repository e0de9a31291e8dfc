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
