//! Image properties on volumes: what create-from-image records as the
//! volume's image metadata (`volume_glance_metadata`) and which of a
//! volume's image metadata upload-to-image may send back to Glance.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::glance::ImageMeta;

/// Image fields Cinder copies besides `image_id`, `image_name` and the
/// custom properties (`volume_utils.IMAGE_ATTRIBUTES`).
const IMAGE_ATTRIBUTES: &[&str] = &[
    "checksum",
    "container_format",
    "disk_format",
    "min_disk",
    "min_ram",
    "size",
];

/// Property prefixes Glance reserves for itself, never copied to a new
/// image (Cinder's `GLANCE_RESERVED_NAMESPACES`).
const GLANCE_RESERVED_NAMESPACES: &[&str] = &["os_glance", "img_signature", "signature_verified"];

/// A JSON value as Python's `str()` prints it: Cinder stores
/// `str(value)` in `volume_glance_metadata`, so clients see `True`,
/// `1024` and `['a', 'b']`.
pub fn python_str(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e16 => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    python_repr(&Value::String(k.clone())),
                    python_repr(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `repr()` of a JSON value inside a container.
fn python_repr(value: &Value) -> String {
    match value {
        Value::String(s) if s.contains('\'') && !s.contains('"') => format!("\"{s}\""),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        other => python_str(other),
    }
}

/// The volume's image metadata after a create from `image`, exactly as
/// Cinder's `get_volume_image_metadata` builds it: every custom property
/// that is not null, then `image_id`, `image_name` (when the image has a
/// name) and the non-null `IMAGE_ATTRIBUTES`, all as Python strings.
pub fn volume_glance_metadata(image: &ImageMeta) -> BTreeMap<String, String> {
    let mut metadata: BTreeMap<String, String> = image
        .properties
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), python_str(v)))
        .collect();
    metadata.insert("image_id".into(), image.id.clone());
    if let Some(name) = image.name.as_deref().filter(|n| !n.is_empty()) {
        metadata.insert("image_name".into(), name.to_owned());
    }
    for key in IMAGE_ATTRIBUTES {
        if let Some(value) = image.raw.get(*key).filter(|v| !v.is_null()) {
            metadata.insert((*key).to_owned(), python_str(value));
        }
    }
    metadata
}

/// `metadata` without the keys in Glance's reserved namespaces and the
/// operator's `reserved_image_namespaces` (Cinder's
/// `filter_out_reserved_namespaces_metadata`).
pub fn filter_reserved_namespaces(
    metadata: &BTreeMap<String, String>,
    reserved_image_namespaces: &[String],
) -> BTreeMap<String, String> {
    metadata
        .iter()
        .filter(|(key, _)| {
            !GLANCE_RESERVED_NAMESPACES
                .iter()
                .copied()
                .chain(reserved_image_namespaces.iter().map(String::as_str))
                .any(|prefix| key.starts_with(prefix))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_what_cinder_records() {
        let image = ImageMeta::from_json(serde_json::json!({
            "id": "i1", "name": "cirros", "status": "active", "checksum": "c0ffee",
            "container_format": "bare", "disk_format": "qcow2", "min_disk": 1, "min_ram": 0,
            "size": 1024, "virtual_size": 4096, "hw_disk_bus": "scsi", "nothing": null,
            "hw_qemu_guest_agent": true, "tags": ["t"], "os_hash_algo": "sha512"
        }))
        .unwrap();
        let metadata = volume_glance_metadata(&image);
        let expected: BTreeMap<String, String> = [
            ("image_id", "i1"),
            ("image_name", "cirros"),
            ("checksum", "c0ffee"),
            ("container_format", "bare"),
            ("disk_format", "qcow2"),
            ("min_disk", "1"),
            ("min_ram", "0"),
            ("size", "1024"),
            ("hw_disk_bus", "scsi"),
            ("hw_qemu_guest_agent", "True"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(metadata, expected);
    }

    #[test]
    fn python_strings_of_json() {
        assert_eq!(
            python_str(&serde_json::json!(["a", 1, false])),
            "['a', 1, False]"
        );
        assert_eq!(
            python_str(&serde_json::json!({"k": "it's"})),
            "{'k': \"it's\"}"
        );
        assert_eq!(python_str(&serde_json::json!(2.0)), "2.0");
        assert_eq!(python_str(&serde_json::json!(2.5)), "2.5");
    }

    #[test]
    fn reserved_namespaces_are_not_sent_back() {
        let metadata: BTreeMap<String, String> = [
            "os_glance_importing_to_stores",
            "img_signature",
            "signature_verified",
            "hw_disk_bus",
            "mine_secret",
        ]
        .iter()
        .map(|k| ((*k).to_owned(), "v".to_owned()))
        .collect();
        let kept = filter_reserved_namespaces(&metadata, &["mine".to_owned()]);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["hw_disk_bus"]);
    }
}
