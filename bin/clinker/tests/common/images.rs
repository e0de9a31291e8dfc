//! Glance images for the image tests: known disk contents and active
//! images made from files.

use std::path::Path;

use clinker_image::glance::UploadData;
use clinker_image::{GlanceClient, ImageContext, ImageMeta};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

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
