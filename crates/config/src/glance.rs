//! Image service options: how Clinker reaches Glance (`glance_*`, Cinder's
//! `cinder/common/config.py` and `cinder/image/glance.py`), how image data
//! is converted (`image_conversion_*`, `cinder/image/image_utils.py`), the
//! internal tenant (`cinder/context.py`), upload-to-image switches
//! (`cinder/volume/api.py`) and the per-backend image-volume cache options
//! (`cinder/volume/driver.py`), with Cinder's names and defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ConfigError;
use crate::reader::OptionReader;

const D: &str = "DEFAULT";

/// `glance_catalog_info`: which Keystone catalog entry is Glance, when
/// `glance_api_servers` is not set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlanceCatalogInfo {
    /// The service type (`image`).
    pub service_type: String,
    /// The service name (`glance`); Cinder matches on the type only.
    pub service_name: String,
    /// The endpoint interface in Keystone v2 spelling (`publicURL`,
    /// `internalURL`, `adminURL`).
    pub endpoint_type: String,
}

/// `[DEFAULT]` options about images, and the image options of each backend.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageOptions {
    /// `glance_api_servers`: Glance URLs tried in turn; an entry without a
    /// scheme gets `http://`, as Cinder's `get_api_servers` does. `None`
    /// (unset) means the endpoint comes from the caller's service catalog.
    pub glance_api_servers: Option<Vec<String>>,
    /// `glance_num_retries` (default 3): extra attempts after a connection
    /// failure or a 503, each on the next server.
    pub glance_num_retries: u32,
    /// `glance_request_timeout` seconds; `None` means no limit (Cinder
    /// leaves glanceclient's default, which has none).
    pub glance_request_timeout: Option<u64>,
    /// `glance_api_insecure`: https without certificate verification.
    pub glance_api_insecure: bool,
    /// `glance_ca_certificates_file`: CA bundle for an https Glance.
    pub glance_ca_certificates_file: Option<PathBuf>,
    /// `glance_certfile`: client certificate for an https Glance.
    pub glance_certfile: Option<PathBuf>,
    /// `glance_keyfile`: its key.
    pub glance_keyfile: Option<PathBuf>,
    /// `glance_catalog_info` (default `image:glance:publicURL`).
    pub glance_catalog_info: GlanceCatalogInfo,
    /// `[glance] region_name`: the catalog region to take Glance from.
    pub glance_region_name: Option<String>,
    /// `glance_core_properties`: the image fields that are not custom
    /// properties when a volume's image metadata is sent back to Glance.
    pub glance_core_properties: Vec<String>,
    /// `allowed_direct_url_schemes` (default empty): `direct_url` schemes
    /// the image data may be read from directly instead of through Glance.
    pub allowed_direct_url_schemes: Vec<String>,
    /// `verify_glance_signatures` (default enabled).
    pub verify_glance_signatures: bool,
    /// `image_conversion_dir` (default `$state_path/conversion`): where
    /// images that need `qemu-img` are staged.
    pub image_conversion_dir: PathBuf,
    /// `image_conversion_cpu_limit` seconds of CPU (default 60) for
    /// `qemu-img` inspecting untrusted data.
    pub image_conversion_cpu_limit: u64,
    /// `image_conversion_address_space_limit` in GiB (default 1).
    pub image_conversion_address_space_limit_gb: u64,
    /// `image_conversion_disable`: refuse images that need converting.
    pub image_conversion_disable: bool,
    /// `image_compress_on_upload` (default true): compress qcow2 uploads.
    pub image_compress_on_upload: bool,
    /// `allow_compression_on_image_upload` (default false): accept
    /// `container_format=compressed`.
    pub allow_compression_on_image_upload: bool,
    /// `vmdk_allowed_types` (default `streamOptimized, monolithicSparse`):
    /// VMDK create types accepted (others name files outside the image).
    pub vmdk_allowed_types: Vec<String>,
    /// `reserved_image_namespaces`: extra property prefixes never copied to
    /// an uploaded image (besides `os_glance`, `img_signature`,
    /// `signature_verified`).
    pub reserved_image_namespaces: Vec<String>,
    /// `cinder_internal_tenant_project_id`: owner of cached image-volumes.
    pub cinder_internal_tenant_project_id: Option<String>,
    /// `cinder_internal_tenant_user_id`.
    pub cinder_internal_tenant_user_id: Option<String>,
    /// `enable_force_upload` (default false): `force` on upload-to-image of
    /// an in-use volume.
    pub enable_force_upload: bool,
    /// Per-backend options by backend section name; see [`Self::backend`].
    pub backends: BTreeMap<String, BackendImageOptions>,
}

impl ImageOptions {
    /// The image options of backend `name` (Cinder's defaults for a name
    /// that is not an enabled backend).
    pub fn backend(&self, name: &str) -> BackendImageOptions {
        self.backends.get(name).cloned().unwrap_or_default()
    }

    /// `image_conversion_address_space_limit` in bytes.
    pub fn address_space_limit_bytes(&self) -> u64 {
        self.image_conversion_address_space_limit_gb
            .saturating_mul(1 << 30)
    }
}

/// A backend section's image options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendImageOptions {
    /// `image_volume_cache_enabled` (default false).
    pub image_volume_cache_enabled: bool,
    /// `image_volume_cache_max_size_gb` (default 0 = unlimited).
    pub image_volume_cache_max_size_gb: u64,
    /// `image_volume_cache_max_count` (default 0 = unlimited).
    pub image_volume_cache_max_count: u64,
    /// `image_upload_use_cinder_backend` (default false): a raw upload
    /// registers a cloned volume as the image's location instead of
    /// copying data.
    pub image_upload_use_cinder_backend: bool,
    /// `image_upload_use_internal_tenant` (default false).
    pub image_upload_use_internal_tenant: bool,
}

/// Cinder's scheme defaulting: `host:port` means `http://host:port`.
fn with_scheme(server: &str) -> String {
    if server.contains("//") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

fn read_servers(r: &mut OptionReader<'_>) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(text) = r.raw(D, &[], "glance_api_servers")? else {
        return Ok(None);
    };
    let servers: Vec<String> = text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(with_scheme)
        .collect();
    if let Some(bad) = servers
        .iter()
        .find(|s| !(s.starts_with("http://") || s.starts_with("https://")))
    {
        return Err(ConfigError::invalid(
            D,
            "glance_api_servers",
            bad,
            "each server must be [http[s]://]host:port".into(),
        ));
    }
    // An empty list is "unset" for oslo too: Glance then comes from the
    // service catalog.
    Ok((!servers.is_empty()).then_some(servers))
}

fn read_catalog_info(r: &mut OptionReader<'_>) -> Result<GlanceCatalogInfo, ConfigError> {
    let text = r.string(D, &[], "glance_catalog_info", "image:glance:publicURL")?;
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [service_type, service_name, endpoint_type] if !service_type.is_empty() => {
            Ok(GlanceCatalogInfo {
                service_type: (*service_type).to_owned(),
                service_name: (*service_name).to_owned(),
                endpoint_type: (*endpoint_type).to_owned(),
            })
        }
        _ => Err(ConfigError::invalid(
            D,
            "glance_catalog_info",
            &text,
            "must be in the form <service_type>:<service_name>:<endpoint_type>".into(),
        )),
    }
}

fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Reads the image options; `backends` are the enabled backend sections
/// (which fall back to `fallback`, `[backend_defaults]`).
pub(crate) fn read_image_options(
    r: &mut OptionReader<'_>,
    state_path: &Path,
    backends: &[String],
    fallback: &[&str],
) -> Result<ImageOptions, ConfigError> {
    let opt_path = |r: &mut OptionReader<'_>, name: &str| -> Result<_, ConfigError> {
        Ok(r.opt_string(D, &[], name)?.map(PathBuf::from))
    };
    r.accept(D, "glance_api_ssl_compression");
    let mut per_backend = BTreeMap::new();
    for name in backends {
        let section = name.as_str();
        per_backend.insert(
            name.clone(),
            BackendImageOptions {
                image_volume_cache_enabled: r.bool(
                    section,
                    fallback,
                    "image_volume_cache_enabled",
                    false,
                )?,
                image_volume_cache_max_size_gb: non_negative(r.int(
                    section,
                    fallback,
                    "image_volume_cache_max_size_gb",
                    0,
                    0..=i64::MAX,
                )?),
                image_volume_cache_max_count: non_negative(r.int(
                    section,
                    fallback,
                    "image_volume_cache_max_count",
                    0,
                    0..=i64::MAX,
                )?),
                image_upload_use_cinder_backend: r.bool(
                    section,
                    fallback,
                    "image_upload_use_cinder_backend",
                    false,
                )?,
                image_upload_use_internal_tenant: r.bool(
                    section,
                    fallback,
                    "image_upload_use_internal_tenant",
                    false,
                )?,
            },
        );
    }
    Ok(ImageOptions {
        glance_api_servers: read_servers(r)?,
        glance_num_retries: u32::try_from(r.int(D, &[], "glance_num_retries", 3, 0..=100)?)
            .unwrap_or(3),
        // Unset (None) means no limit, which an integer default cannot say.
        glance_request_timeout: match r.opt_string(D, &[], "glance_request_timeout")? {
            None => None,
            Some(_) => Some(non_negative(r.int(
                D,
                &[],
                "glance_request_timeout",
                0,
                1..=86_400,
            )?)),
        },
        glance_api_insecure: r.bool(D, &[], "glance_api_insecure", false)?,
        glance_ca_certificates_file: opt_path(r, "glance_ca_certificates_file")?,
        glance_certfile: opt_path(r, "glance_certfile")?,
        glance_keyfile: opt_path(r, "glance_keyfile")?,
        glance_catalog_info: read_catalog_info(r)?,
        glance_region_name: r.opt_string("glance", &[], "region_name")?,
        glance_core_properties: r.list(
            D,
            &[],
            "glance_core_properties",
            &[
                "checksum",
                "container_format",
                "disk_format",
                "image_name",
                "image_id",
                "min_disk",
                "min_ram",
                "name",
                "size",
            ],
        )?,
        allowed_direct_url_schemes: r.list(D, &[], "allowed_direct_url_schemes", &[])?,
        verify_glance_signatures: r.choice(
            D,
            &[],
            "verify_glance_signatures",
            "enabled",
            &["enabled", "disabled"],
        )? == "enabled",
        image_conversion_dir: r
            .opt_string(D, &[], "image_conversion_dir")?
            .map_or_else(|| state_path.join("conversion"), PathBuf::from),
        image_conversion_cpu_limit: non_negative(r.int(
            D,
            &[],
            "image_conversion_cpu_limit",
            60,
            1..=86_400,
        )?),
        image_conversion_address_space_limit_gb: non_negative(r.int(
            D,
            &[],
            "image_conversion_address_space_limit",
            1,
            1..=1024,
        )?),
        image_conversion_disable: r.bool(D, &[], "image_conversion_disable", false)?,
        image_compress_on_upload: r.bool(D, &[], "image_compress_on_upload", true)?,
        allow_compression_on_image_upload: r.bool(
            D,
            &[],
            "allow_compression_on_image_upload",
            false,
        )?,
        vmdk_allowed_types: r.list(
            D,
            &[],
            "vmdk_allowed_types",
            &["streamOptimized", "monolithicSparse"],
        )?,
        reserved_image_namespaces: r.list(D, &[], "reserved_image_namespaces", &[])?,
        cinder_internal_tenant_project_id: r.opt_string(
            D,
            &[],
            "cinder_internal_tenant_project_id",
        )?,
        cinder_internal_tenant_user_id: r.opt_string(D, &[], "cinder_internal_tenant_user_id")?,
        enable_force_upload: r.bool(D, &[], "enable_force_upload", false)?,
        backends: per_backend,
    })
}

#[cfg(test)]
mod tests {
    use crate::{Config, ConfigEnv, ConfigError, Ini};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut ini = Ini::default();
        ini.merge_text(text, "test.conf")?;
        Config::from_ini(
            &ini,
            &ConfigEnv {
                hostname: "node1".into(),
            },
        )
    }

    #[test]
    fn defaults_are_cinders() {
        let cfg = parse(
            "[DEFAULT]\nstate_path = /srv/c\nenabled_backends = f\n[f]\nvolume_driver = file\n",
        )
        .unwrap();
        let image = &cfg.image;
        assert_eq!(image.glance_api_servers, None);
        assert_eq!(image.glance_num_retries, 3);
        assert_eq!(image.glance_request_timeout, None);
        assert!(!image.glance_api_insecure);
        assert_eq!(image.glance_catalog_info.service_type, "image");
        assert_eq!(image.glance_catalog_info.endpoint_type, "publicURL");
        assert_eq!(
            image.image_conversion_dir,
            std::path::PathBuf::from("/srv/c/conversion")
        );
        assert_eq!(image.image_conversion_cpu_limit, 60);
        assert_eq!(image.address_space_limit_bytes(), 1 << 30);
        assert_eq!(
            image.vmdk_allowed_types,
            vec!["streamOptimized".to_owned(), "monolithicSparse".to_owned()]
        );
        assert!(image.image_compress_on_upload);
        assert!(!image.enable_force_upload);
        assert_eq!(image.backend("f"), super::BackendImageOptions::default());
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn servers_get_a_scheme_and_backends_their_cache_options() {
        let cfg = parse(
            "[DEFAULT]\nglance_api_servers = g1:9292, https://g2/image\nglance_num_retries = 0\n\
             glance_request_timeout = 30\nimage_conversion_dir = $state_path/tmp\nstate_path = /s\n\
             enabled_backends = a,b\ncinder_internal_tenant_project_id = p\n\
             [backend_defaults]\nimage_volume_cache_max_count = 7\n\
             [a]\nvolume_driver = file\nimage_volume_cache_enabled = true\nimage_volume_cache_max_size_gb = 50\n\
             [b]\nvolume_driver = file\n",
        )
        .unwrap();
        let image = &cfg.image;
        assert_eq!(
            image.glance_api_servers,
            Some(vec![
                "http://g1:9292".to_owned(),
                "https://g2/image".to_owned()
            ])
        );
        assert_eq!(image.glance_num_retries, 0);
        assert_eq!(image.glance_request_timeout, Some(30));
        assert_eq!(
            image.image_conversion_dir,
            std::path::PathBuf::from("/s/tmp")
        );
        assert_eq!(
            image.cinder_internal_tenant_project_id.as_deref(),
            Some("p")
        );
        let a = image.backend("a");
        assert!(a.image_volume_cache_enabled);
        assert_eq!(a.image_volume_cache_max_size_gb, 50);
        assert_eq!(a.image_volume_cache_max_count, 7);
        let b = image.backend("b");
        assert!(!b.image_volume_cache_enabled);
        assert_eq!(b.image_volume_cache_max_count, 7);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn bad_values_name_the_option() {
        for (text, option) in [
            ("glance_catalog_info = image:glance", "glance_catalog_info"),
            ("glance_api_servers = ftp://g", "glance_api_servers"),
            ("glance_num_retries = -1", "glance_num_retries"),
            (
                "image_conversion_cpu_limit = 0",
                "image_conversion_cpu_limit",
            ),
            (
                "verify_glance_signatures = maybe",
                "verify_glance_signatures",
            ),
        ] {
            let err = parse(&format!("[DEFAULT]\n{text}\n")).unwrap_err();
            assert!(err.to_string().contains(option), "{text}: {err}");
        }
    }
}
