//! Managing existing backend objects (Cinder's `manage_existing*`,
//! `get_manageable_*` and `unmanage*` driver methods): the reference a
//! request carries, the entries of a manageable list, and Cinder's error
//! texts for them.

use serde_json::{Map, Value, json};

use crate::DriverError;

/// The `ref` of a manage request: a driver-specific reference to a backend
/// object, as the client sent it (an object such as
/// `{"source-name": "volume-…"}`, or a bare string, which Cinder's LVM
/// driver takes as a `source-name`).
#[derive(Clone, Debug, PartialEq)]
pub struct ManageRef(pub Value);

impl ManageRef {
    /// The `source-name` element (a bare string reference is one).
    pub fn source_name(&self) -> Option<&str> {
        match &self.0 {
            Value::String(name) => Some(name),
            Value::Object(map) => map.get("source-name").and_then(Value::as_str),
            _ => None,
        }
    }

    /// The `source-id` element.
    pub fn source_id(&self) -> Option<&str> {
        self.0
            .as_object()
            .and_then(|map| map.get("source-id"))
            .and_then(Value::as_str)
    }

    /// The reference as Cinder prints it in messages (Python's `repr` of
    /// the dict).
    pub fn display(&self) -> String {
        python_repr(&self.0)
    }

    /// Cinder's `ManageExistingInvalidReference` for this reference.
    pub fn invalid(&self, reason: &str) -> DriverError {
        invalid_reference(&self.display(), reason)
    }
}

/// Cinder's `ManageExistingInvalidReference` text.
pub fn invalid_reference(reference: &str, reason: &str) -> DriverError {
    DriverError::InvalidInput(format!(
        "Manage existing volume failed due to invalid backend reference {reference}: {reason}"
    ))
}

/// Cinder's `ManageExistingAlreadyManaged` text.
pub fn already_managed(name: &str) -> DriverError {
    DriverError::InvalidInput(format!(
        "Unable to manage existing volume. Volume {name} already managed."
    ))
}

/// The answer of a driver without manage support.
pub(crate) fn not_supported(driver: &str, what: &str) -> DriverError {
    DriverError::NotSupported(format!(
        "the {driver} driver cannot manage an existing {what}"
    ))
}

fn python_repr(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("'{k}': {}", python_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Bytes rounded up to whole GiB, as Cinder sizes managed objects
/// (`int(math.ceil(size))`); at least 1 so that an empty object still
/// makes a valid volume.
pub fn ceil_gib(bytes: u64) -> i64 {
    let gib = bytes.div_ceil(crate::GIB).max(1);
    i64::try_from(gib).unwrap_or(i64::MAX)
}

/// One entry of a manageable list (Cinder's `ManageableVolume` /
/// `ManageableSnapshot` primitives).
#[derive(Clone, Debug, PartialEq)]
pub struct ManageableObject {
    /// How to name it in a manage request (`{"source-name": …}`).
    pub reference: Value,
    /// Size in GiB, rounded up.
    pub size: i64,
    /// Whether managing it is safe.
    pub safe_to_manage: bool,
    /// Why it is not.
    pub reason_not_safe: Option<String>,
    /// The Clinker id it already belongs to.
    pub cinder_id: Option<String>,
    /// Driver-specific details.
    pub extra_info: Option<String>,
    /// Snapshots: the volume object it was taken of, when known.
    pub source_reference: Option<Value>,
}

impl ManageableObject {
    /// An entry for the object `name` of `size` GiB whose name may carry
    /// the id `potential_id`: unsafe ("already managed") when that id is
    /// one of `managed_ids`.
    pub fn named(
        name: &str,
        size: i64,
        potential_id: Option<&str>,
        managed_ids: &std::collections::HashSet<String>,
    ) -> Self {
        let managed = potential_id.filter(|id| managed_ids.contains(*id));
        Self {
            reference: json!({ "source-name": name }),
            size,
            safe_to_manage: managed.is_none(),
            reason_not_safe: managed.map(|_| "already managed".to_owned()),
            cinder_id: managed.map(str::to_owned),
            extra_info: None,
            source_reference: None,
        }
    }

    /// The entry as the RPC carries it (Cinder's dict keys).
    pub fn to_json(&self, snapshot: bool) -> Value {
        let mut map = Map::new();
        map.insert("reference".into(), self.reference.clone());
        map.insert("size".into(), json!(self.size));
        map.insert("safe_to_manage".into(), json!(self.safe_to_manage));
        map.insert("reason_not_safe".into(), json!(self.reason_not_safe));
        map.insert("cinder_id".into(), json!(self.cinder_id));
        map.insert("extra_info".into(), json!(self.extra_info));
        if snapshot {
            map.insert(
                "source_reference".into(),
                self.source_reference.clone().unwrap_or(Value::Null),
            );
        }
        Value::Object(map)
    }
}

/// The uuid in `prefix<uuid>` (Cinder's `extract_id_from_volume_name`).
pub fn id_in_name<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    name.strip_prefix(prefix)
        .filter(|id| id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_read_like_cinder() {
        let by_name = ManageRef(json!({"source-name": "volume-x"}));
        assert_eq!(by_name.source_name(), Some("volume-x"));
        assert_eq!(by_name.source_id(), None);
        assert_eq!(by_name.display(), "{'source-name': 'volume-x'}");
        let bare = ManageRef(json!("lv1"));
        assert_eq!(bare.source_name(), Some("lv1"));
        let by_id = ManageRef(json!({"source-id": "abc"}));
        assert_eq!(by_id.source_id(), Some("abc"));
        assert_eq!(
            by_id
                .invalid("Reference must contain source-name element.")
                .to_string(),
            "Manage existing volume failed due to invalid backend reference {'source-id': 'abc'}: Reference must contain source-name element."
        );
    }

    #[test]
    fn sizes_round_up_to_gib() {
        assert_eq!(ceil_gib(0), 1);
        assert_eq!(ceil_gib(1), 1);
        assert_eq!(ceil_gib(crate::GIB), 1);
        assert_eq!(ceil_gib(crate::GIB + 1), 2);
    }

    #[test]
    fn entries_mark_managed_ids() {
        let id = "4f2c1e1a-8a4c-4e4b-9a57-0f8cbbd3f0a1";
        let managed = std::collections::HashSet::from([id.to_owned()]);
        let name = format!("volume-{id}");
        let entry = ManageableObject::named(&name, 1, id_in_name(&name, "volume-"), &managed);
        assert!(!entry.safe_to_manage);
        assert_eq!(entry.reason_not_safe.as_deref(), Some("already managed"));
        assert_eq!(entry.cinder_id.as_deref(), Some(id));
        let free = ManageableObject::named("other", 2, id_in_name("other", "volume-"), &managed);
        assert!(free.safe_to_manage);
        assert_eq!(free.to_json(true)["source_reference"], Value::Null);
        assert!(free.to_json(false).get("source_reference").is_none());
    }
}
