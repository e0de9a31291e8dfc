//! An image record as Glance v2 shows it: the base schema's fields typed,
//! every other key kept as a custom property (Cinder's
//! `_translate_from_glance` splits them with the image schema the same way).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Keys of Glance's base image schema (`GET /v2/schemas/image`
/// `properties` that are not additional properties); everything else an
/// image shows is a custom property.
pub const BASE_PROPERTIES: &[&str] = &[
    "checksum",
    "container_format",
    "created_at",
    "direct_url",
    "disk_format",
    "file",
    "id",
    "locations",
    "min_disk",
    "min_ram",
    "name",
    "os_hash_algo",
    "os_hash_value",
    "os_hidden",
    "owner",
    "protected",
    "schema",
    "self",
    "size",
    "status",
    "stores",
    "tags",
    "updated_at",
    "virtual_size",
    "visibility",
];

/// One entry of `locations`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLocation {
    /// The store URL (`file:///…`, `rbd://fsid/pool/image/snap`, …).
    pub url: String,
    /// Its metadata (`store` names the Glance store).
    pub metadata: Map<String, Value>,
}

/// An image as Glance shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageMeta {
    /// The image id.
    pub id: String,
    /// `name` (may be null in Glance).
    pub name: Option<String>,
    /// `status`: `queued`, `saving`, `active`, `killed`, `deleted`, …
    pub status: String,
    /// `disk_format` as claimed (not trusted: see [`crate::inspect`]).
    pub disk_format: Option<String>,
    /// `container_format`.
    pub container_format: Option<String>,
    /// `size` of the data in bytes, once uploaded.
    pub size: Option<u64>,
    /// `virtual_size` when Glance computed it.
    pub virtual_size: Option<u64>,
    /// `checksum`: MD5 of the data, hex.
    pub checksum: Option<String>,
    /// `os_hash_algo` (`sha512` by default).
    pub os_hash_algo: Option<String>,
    /// `os_hash_value`: the data's hash with `os_hash_algo`, hex.
    pub os_hash_value: Option<String>,
    /// `min_disk` GiB.
    pub min_disk: u64,
    /// `min_ram` MiB.
    pub min_ram: u64,
    /// `visibility`: `public`, `private`, `shared`, `community`.
    pub visibility: Option<String>,
    /// `protected`.
    pub protected: bool,
    /// `owner` project id.
    pub owner: Option<String>,
    /// `created_at` as Glance wrote it (ISO 8601).
    pub created_at: Option<String>,
    /// `updated_at` as Glance wrote it: a cache entry made before the image
    /// changed is stale.
    pub updated_at: Option<String>,
    /// `direct_url`, when Glance shows it (`show_image_direct_url`).
    pub direct_url: Option<String>,
    /// `locations`, when Glance shows them (`show_multiple_locations`).
    pub locations: Vec<ImageLocation>,
    /// Every custom property, as Glance returned it.
    pub properties: BTreeMap<String, Value>,
    /// The whole record as received.
    pub raw: Map<String, Value>,
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn number(map: &Map<String, Value>, key: &str) -> Option<u64> {
    map.get(key).and_then(Value::as_u64)
}

impl ImageMeta {
    /// Reads an image record; `None` when it is not an object with an id.
    pub fn from_json(value: Value) -> Option<Self> {
        let Value::Object(map) = value else {
            return None;
        };
        let locations = map
            .get("locations")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|l| {
                        Some(ImageLocation {
                            url: l.get("url")?.as_str()?.to_owned(),
                            metadata: l
                                .get("metadata")
                                .and_then(Value::as_object)
                                .cloned()
                                .unwrap_or_default(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let properties = map
            .iter()
            .filter(|(k, _)| !BASE_PROPERTIES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Some(Self {
            id: text(&map, "id")?,
            name: text(&map, "name"),
            status: text(&map, "status").unwrap_or_default(),
            disk_format: text(&map, "disk_format"),
            container_format: text(&map, "container_format"),
            size: number(&map, "size"),
            virtual_size: number(&map, "virtual_size"),
            checksum: text(&map, "checksum"),
            os_hash_algo: text(&map, "os_hash_algo"),
            os_hash_value: text(&map, "os_hash_value"),
            min_disk: number(&map, "min_disk").unwrap_or(0),
            min_ram: number(&map, "min_ram").unwrap_or(0),
            visibility: text(&map, "visibility"),
            protected: map
                .get("protected")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            owner: text(&map, "owner"),
            created_at: text(&map, "created_at"),
            updated_at: text(&map, "updated_at"),
            direct_url: text(&map, "direct_url"),
            locations,
            properties,
            raw: map,
        })
    }

    /// The URLs the data can be read from directly, `direct_url` first,
    /// whose scheme is in `allowed_schemes` (`allowed_direct_url_schemes`).
    pub fn direct_urls(&self, allowed_schemes: &[String]) -> Vec<&str> {
        self.direct_url
            .as_deref()
            .into_iter()
            .chain(self.locations.iter().map(|l| l.url.as_str()))
            .filter(|url| {
                url.split_once("://")
                    .is_some_and(|(scheme, _)| allowed_schemes.iter().any(|s| s == scheme))
            })
            .collect()
    }
}

/// One JSON-patch operation of `PATCH /v2/images/{id}`
/// (`application/openstack-images-v2.1-json-patch`).
#[derive(Clone, Debug, PartialEq)]
pub enum PatchOp {
    /// Adds a property (or replaces it: Glance treats `add` of an existing
    /// key as a replacement).
    Add(String, Value),
    /// Replaces an existing property.
    Replace(String, Value),
    /// Removes a property.
    Remove(String),
}

impl PatchOp {
    pub(crate) fn to_json(&self) -> Value {
        match self {
            PatchOp::Add(key, value) => {
                serde_json::json!({"op": "add", "path": format!("/{key}"), "value": value})
            }
            PatchOp::Replace(key, value) => {
                serde_json::json!({"op": "replace", "path": format!("/{key}"), "value": value})
            }
            PatchOp::Remove(key) => {
                serde_json::json!({"op": "remove", "path": format!("/{key}")})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_properties_are_everything_outside_the_base_schema() {
        let image = ImageMeta::from_json(serde_json::json!({
            "id": "i1", "name": "cirros", "status": "active", "disk_format": "qcow2",
            "size": 1024, "min_disk": 1, "checksum": "abc", "os_hash_algo": "sha512",
            "hw_disk_bus": "scsi", "os_distro": "cirros", "visibility": "public",
            "direct_url": "rbd://fsid/images/i1/snap",
            "locations": [{"url": "file:///var/lib/glance/i1", "metadata": {"store": "fs"}}],
            "owner": null, "tags": []
        }))
        .unwrap();
        assert_eq!(image.size, Some(1024));
        assert_eq!(image.min_disk, 1);
        assert_eq!(
            image.properties.keys().collect::<Vec<_>>(),
            ["hw_disk_bus", "os_distro"]
        );
        assert_eq!(
            image.direct_urls(&["file".into()]),
            ["file:///var/lib/glance/i1"]
        );
        assert_eq!(
            image.direct_urls(&["rbd".into(), "file".into()]),
            ["rbd://fsid/images/i1/snap", "file:///var/lib/glance/i1"]
        );
        assert!(image.direct_urls(&[]).is_empty());
        assert!(ImageMeta::from_json(serde_json::json!({"name": "no id"})).is_none());
    }
}
