//! A Keystone v3 service catalog as a token carries it (`token.catalog`),
//! reduced to what Clinker reads: the services other than Block Storage
//! that it calls for the user (Cinder keeps `identity`, `compute`,
//! `object-store`, `image` and `key-manager` in its `RequestContext` and
//! sends them with every RPC message).

use serde::{Deserialize, Serialize};

/// The catalog types Cinder's `RequestContext` keeps.
pub const KEPT_SERVICE_TYPES: [&str; 5] = [
    "identity",
    "compute",
    "object-store",
    "image",
    "key-manager",
];

/// One service of a catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogService {
    /// The service type (`image`).
    #[serde(rename = "type")]
    pub service_type: String,
    /// The service name (`glance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its endpoints.
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

/// One endpoint of a catalog service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawEndpoint")]
pub struct CatalogEndpoint {
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// The region id.
    #[serde(rename = "region_id", skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The endpoint URL.
    pub url: String,
}

/// An endpoint as Keystone writes it: `region_id` and the older `region`
/// side by side (either may be missing).
#[derive(Deserialize)]
struct RawEndpoint {
    interface: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    url: String,
}

impl From<RawEndpoint> for CatalogEndpoint {
    fn from(raw: RawEndpoint) -> Self {
        Self {
            interface: raw.interface,
            region: raw.region_id.or(raw.region),
            url: raw.url,
        }
    }
}

/// The services of `catalog` whose type Cinder keeps (see
/// [`KEPT_SERVICE_TYPES`]).
#[must_use]
pub fn kept_services(catalog: Vec<CatalogService>) -> Vec<CatalogService> {
    catalog
        .into_iter()
        .filter(|s| KEPT_SERVICE_TYPES.contains(&s.service_type.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keystone_catalog_reads_and_keeps_the_services_cinder_keeps() {
        // The shape of `token.catalog` in Keystone 30's token validation.
        let raw = serde_json::json!([
            {"type": "image", "name": "glance", "id": "a1", "endpoints": [
                {"id": "e1", "interface": "public", "region_id": "RegionOne",
                 "region": "RegionOne", "url": "http://127.0.0.1:9292"}]},
            {"type": "volumev3", "name": "cinderv3", "id": "a2", "endpoints": [
                {"id": "e2", "interface": "public", "region_id": "RegionOne",
                 "region": "RegionOne", "url": "http://127.0.0.1:8776/v3/p"}]},
            {"type": "identity", "name": "keystone", "id": "a3", "endpoints": [
                {"id": "e3", "interface": "admin", "region": "RegionOne",
                 "url": "http://127.0.0.1:5000/v3"}]}
        ]);
        let catalog: Vec<CatalogService> = serde_json::from_value(raw).unwrap();
        let kept = kept_services(catalog);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].service_type, "image");
        assert_eq!(kept[0].name.as_deref(), Some("glance"));
        assert_eq!(kept[0].endpoints[0].region.as_deref(), Some("RegionOne"));
        assert_eq!(kept[0].endpoints[0].url, "http://127.0.0.1:9292");
        assert_eq!(kept[1].service_type, "identity");
        assert_eq!(kept[1].endpoints[0].region.as_deref(), Some("RegionOne"));
        // What goes into an RPC message reads back the same.
        let again: Vec<CatalogService> =
            serde_json::from_value(serde_json::to_value(&kept).unwrap()).unwrap();
        assert_eq!(again, kept);
    }
}
