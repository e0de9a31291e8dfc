//! What a retype changes, as a driver sees it ([`RetypeDiff`]).

use std::collections::BTreeMap;

/// What differs between a volume's current type and the one it is retyped
/// to (Cinder's `volume_types_diff`, reduced to what a driver acts on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetypeDiff {
    /// Extra specs whose value differs: key → (old, new).
    pub extra_specs: BTreeMap<String, (Option<String>, Option<String>)>,
    /// Whether the QoS specs the backend enforces (consumer `back-end` or
    /// `both`) differ.
    pub backend_qos_changed: bool,
}

/// Extra spec keys that only the API and the scheduler interpret: the
/// scheduler has already checked the volume's pool against the new type's
/// values (unscoped and `capabilities:` keys through `CapabilitiesFilter`,
/// zones through `AvailabilityZoneFilter`) and the API the size limits, so
/// a change of them asks nothing of the backend.
fn is_generic_extra_spec(key: &str) -> bool {
    match key.split_once(':') {
        None => true,
        Some(("capabilities", _)) => true,
        Some(_) => matches!(
            key,
            "RESKEY:availability_zones" | "provisioning:min_vol_size" | "provisioning:max_vol_size"
        ),
    }
}

impl RetypeDiff {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.extra_specs.is_empty() && !self.backend_qos_changed
    }

    /// Whether every difference is one the backend need not act on (see
    /// `is_generic_extra_spec`): the default [`crate::VolumeDriver::retype`]
    /// accepts exactly these.
    pub fn is_backend_neutral(&self) -> bool {
        !self.backend_qos_changed && self.extra_specs.keys().all(|k| is_generic_extra_spec(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(keys: &[&str], qos: bool) -> RetypeDiff {
        RetypeDiff {
            extra_specs: keys
                .iter()
                .map(|k| ((*k).to_owned(), (None, Some("x".to_owned()))))
                .collect(),
            backend_qos_changed: qos,
        }
    }

    #[test]
    fn only_scheduler_and_api_keys_are_backend_neutral() {
        assert!(diff(&[], false).is_empty());
        assert!(diff(&["volume_backend_name", "multiattach"], false).is_backend_neutral());
        assert!(
            diff(
                &[
                    "capabilities:thin_provisioning_support",
                    "RESKEY:availability_zones"
                ],
                false
            )
            .is_backend_neutral()
        );
        assert!(!diff(&["provisioning:type"], false).is_backend_neutral());
        assert!(!diff(&["rbd:exclusive"], false).is_backend_neutral());
        assert!(!diff(&[], true).is_backend_neutral());
    }
}
