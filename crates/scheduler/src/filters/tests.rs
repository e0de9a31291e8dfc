use super::*;
use serde_json::json;

fn pool(caps: Value) -> PoolState {
    PoolState {
        host: "n1@b#p".into(),
        service_host: "n1@b".into(),
        availability_zone: "nova".into(),
        capabilities: PoolCapabilities(caps.as_object().cloned().unwrap_or_default()),
        allocated_gb: 0,
    }
}

fn request(size: i64) -> FilterRequest {
    FilterRequest {
        size,
        ..Default::default()
    }
}

#[test]
fn availability_zone() {
    let p = pool(json!({}));
    let f = AvailabilityZoneFilter;
    assert!(f.passes(&p, &request(1)));
    assert!(f.passes(
        &p,
        &FilterRequest {
            availability_zone: Some("nova".into()),
            ..request(1)
        }
    ));
    assert!(!f.passes(
        &p,
        &FilterRequest {
            availability_zone: Some("az2".into()),
            ..request(1)
        }
    ));
    // The type's zone list wins over the requested zone.
    let r = FilterRequest {
        availability_zone: Some("az2".into()),
        availability_zones: vec!["nova".into()],
        ..request(1)
    };
    assert!(f.passes(&p, &r));
}

#[test]
fn capacity_thick() {
    let f = CapacityFilter;
    let p = pool(
        json!({"total_capacity_gb": 100, "free_capacity_gb": 30, "reserved_percentage": 10,
                        "thin_provisioning_support": false, "provisioned_capacity_gb": 50}),
    );
    // total_available = 100 - 10 = 90; calculated_free = 40; free 30 wins.
    assert!(f.passes(&p, &request(30)));
    assert!(!f.passes(&p, &request(31)));
    // Claims in the database count even if the report is stale.
    let mut claimed = p.clone();
    claimed.allocated_gb = 80;
    assert!(f.passes(&claimed, &request(10)));
    assert!(!f.passes(&claimed, &request(11)));
}

#[test]
fn capacity_thin_with_over_subscription() {
    let f = CapacityFilter;
    let p = pool(
        json!({"total_capacity_gb": 100, "free_capacity_gb": 5, "reserved_percentage": 0,
                        "thin_provisioning_support": true, "max_over_subscription_ratio": 2.0,
                        "provisioned_capacity_gb": 150}),
    );
    // total_available = 200; virtual_free = 50; ratio (150+50)/200 = 1.0 <= 2.
    assert!(f.passes(&p, &request(50)));
    assert!(!f.passes(&p, &request(51)));
    // The same pool is thick for a type that says so: free 5 limits.
    let thick = FilterRequest {
        extra_specs: BTreeMap::from([("provisioning:type".into(), "thick".into())]),
        ..request(6)
    };
    assert!(!f.passes(&p, &thick));
}

#[test]
fn capacity_words_and_edge_cases() {
    let f = CapacityFilter;
    assert!(f.passes(
        &pool(json!({"total_capacity_gb": "infinite", "free_capacity_gb": "infinite"})),
        &request(1000)
    ));
    assert!(f.passes(
        &pool(json!({"total_capacity_gb": "unknown", "free_capacity_gb": 10})),
        &request(5)
    ));
    assert!(!f.passes(
        &pool(json!({"total_capacity_gb": "unknown", "free_capacity_gb": 10, "reserved_percentage": 5})),
        &request(5)
    ));
    assert!(
        !f.passes(&pool(json!({"total_capacity_gb": 10})), &request(1)),
        "no free capacity reported"
    );
    assert!(!f.passes(
        &pool(json!({"total_capacity_gb": 0, "free_capacity_gb": 0})),
        &request(1)
    ));
    assert!(
        f.passes(
            &pool(json!({"total_capacity_gb": 0, "free_capacity_gb": 0})),
            &request(0)
        ),
        "manage"
    );
}

#[test]
fn capabilities_scopes_and_nesting() {
    let f = CapabilitiesFilter;
    let p = pool(
        json!({"volume_backend_name": "lvm", "multiattach": true, "qos": {"max_iops": 500},
                        "storage_protocol": "iSCSI"}),
    );
    let with = |specs: &[(&str, &str)]| FilterRequest {
        extra_specs: specs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..request(1)
    };
    assert!(f.passes(&p, &with(&[("volume_backend_name", "lvm")])));
    assert!(!f.passes(&p, &with(&[("volume_backend_name", "ceph")])));
    assert!(f.passes(&p, &with(&[("capabilities:storage_protocol", "iSCSI")])));
    assert!(f.passes(&p, &with(&[("multiattach", "<is> True")])));
    assert!(f.passes(&p, &with(&[("capabilities:qos:max_iops", ">= 100")])));
    assert!(!f.passes(&p, &with(&[("capabilities:qos:max_iops", ">= 1000")])));
    assert!(
        f.passes(
            &p,
            &with(&[("RESKEY:availability_zones", "az9"), ("vendor:thing", "x")])
        ),
        "other scopes ignored"
    );
    assert!(!f.passes(&p, &with(&[("missing_capability", "x")])));
    assert!(f.passes(&p, &with(&[("storage_protocol", "<or> FC <or> iSCSI")])));
    let no_online = pool(json!({"online_extend_support": false}));
    assert!(!f.passes(
        &no_online,
        &FilterRequest {
            extend_attached: true,
            ..request(1)
        }
    ));
    assert!(f.passes(&no_online, &request(1)));
}

#[test]
fn factors_match_cinder() {
    assert_eq!(
        capacity_factors(100.0, 30.0, 50.0, false, 1.0, 10.0, true),
        (90.0, 30.0)
    );
    assert_eq!(
        capacity_factors(100.0, 5.0, 150.0, true, 2.0, 0.0, true),
        (200.0, 50.0)
    );
    // floor() of the reserved capacity.
    assert_eq!(
        capacity_factors(10.0, 10.0, 0.0, false, 1.0, 15.0, false),
        (9.0, 9.0)
    );
}

#[test]
fn builds_configured_filters() {
    let names: Vec<String> = [
        "AvailabilityZoneFilter",
        "CapacityFilter",
        "CapabilitiesFilter",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(build_filters(&names).unwrap().len(), 3);
    assert_eq!(
        build_filters(&["JsonFilter".into()]).unwrap_err(),
        "JsonFilter"
    );
}
