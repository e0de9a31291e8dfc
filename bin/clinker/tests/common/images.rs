//! Glance helpers shared by the image tests (`images.rs`,
//! `image_cache.rs`, `rbd_images.rs`): a client of the test's Glance, known
//! disk data, an active image made from a file, an image's data read back.

use std::path::Path;
use std::sync::Arc;

use clinker_image::glance::UploadData;
use clinker_image::{GlanceClient, GlanceSettings, ImageContext, ImageMeta};
use clinker_testkit::glance::Glance;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

pub const MIB: usize = 1 << 20;

pub fn client(glance: &Glance) -> Arc<GlanceClient> {
    Arc::new(GlanceClient::new(GlanceSettings::with_servers(vec![glance.url.clone()])).unwrap())
}

/// `len` bytes of random data with a run of zeros in the middle (so the
/// sparse path is exercised), the same for the same seed.
pub fn disk_data(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; len];
    rng.fill(&mut data[..len / 3]);
    rng.fill(&mut data[2 * len / 3..]);
    data
}

/// An active image with `file`'s content.
pub async fn image_from_file(
    glance: &GlanceClient,
    name: &str,
    disk_format: &str,
    file: &Path,
    extra: Value,
) -> ImageMeta {
    let ctx = ImageContext::default();
    let mut fields: Map<String, Value> = json!({
        "name": name,
        "disk_format": disk_format,
        "container_format": "bare",
    })
    .as_object()
    .unwrap()
    .clone();
    if let Value::Object(extra) = extra {
        fields.extend(extra);
    }
    let image = glance.create_image(&ctx, &fields).await.unwrap();
    glance
        .upload(&ctx, &image.id, UploadData::File(file.to_path_buf()))
        .await
        .unwrap();
    let shown = glance.show_image(&ctx, &image.id).await.unwrap();
    assert_eq!(shown.status, "active");
    shown
}

pub async fn download(glance: &GlanceClient, image: &ImageMeta) -> Vec<u8> {
    let mut data = glance
        .download(&ImageContext::default(), image)
        .await
        .unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = data.chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// The volume file `path` holds `data` then zeros up to `size_gib` GiB.
pub fn assert_file_holds(path: &Path, data: &[u8], size_gib: usize) {
    let content = std::fs::read(path).unwrap();
    assert_eq!(content.len(), size_gib << 30, "a {size_gib} GiB volume");
    assert!(
        content[..data.len()] == *data,
        "the image data, byte for byte"
    );
    assert!(
        content[data.len()..].iter().all(|b| *b == 0),
        "zeros past the image"
    );
}
