//! `clinker-bench --image`: the image paths of issue 12 on the file
//! backend against a real Glance the bench starts itself
//! (`scripts/glance.sh up`, noauth): create a volume from a raw image of N
//! MiB random data (a download), the same from the image-volume cache (a
//! clone of the cached volume: target <= 50 ms to `available`), and upload
//! a volume to a new image, each beside the disk's own copy speed in the
//! same run. Every volume's bytes are checked against the image: a create
//! that is fast but wrong fails the run.
//!
//! The anchor, when the Cinder 29 venv exists (`scripts/install-cinder29.sh`):
//! Cinder's own download path, `image_utils.fetch_to_raw` (the image
//! downloaded into a temporary file under `image_conversion_dir`, inspected,
//! then `qemu-img convert` into the volume), run by
//! `scripts/cinder_image_fetch.py` against the same Glance and image.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::backup::{
    MIB, State, cinder_python, disk_copy, fill_random, holds_image, line, mb_per_s, post,
    wait_status_every,
};

/// The cache target of issue 12.
const CACHE_TARGET_MS: f64 = 50.0;
/// Polling for the cached create: fine enough for a 50 ms target.
const FINE_POLL: Duration = Duration::from_millis(1);
const POLL: Duration = Duration::from_millis(20);

/// The Glance this run started (`scripts/glance.sh up`); its watchdog
/// stops it when the bench exits.
struct Glance {
    url: String,
}

fn script(name: &str) -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
        .canonicalize()
        .with_context(|| format!("scripts/{name}"))
}

async fn run_tool(cmd: &mut tokio::process::Command, what: &str) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Glance {
    async fn up(dir: &Path, port: u16) -> anyhow::Result<Self> {
        #[allow(clippy::disallowed_methods)]
        // the harness starts the real Glance it measures against
        let url = run_tool(
            tokio::process::Command::new("bash")
                .arg(script("glance.sh")?)
                .args(["up", "--port", &port.to_string()])
                .env("GLANCE_DIR", dir)
                .env("OWNER_PID", std::process::id().to_string())
                .stdout(Stdio::piped()),
            "scripts/glance.sh up",
        )
        .await?;
        Ok(Self { url })
    }

    /// An active public raw image of `file`'s bytes.
    async fn raw_image(&self, http: &reqwest::Client, file: &Path) -> anyhow::Result<String> {
        let resp = http
            .post(format!("{}/v2/images", self.url))
            .json(&json!({"name": "bench-image", "disk_format": "raw",
                          "container_format": "bare", "visibility": "public"}))
            .send()
            .await?;
        let status = resp.status();
        let image: Value = resp.json().await?;
        if !status.is_success() {
            bail!("Glance refused the image: {status} {image}");
        }
        let id = image["id"].as_str().context("no image id")?.to_owned();
        // curl streams the file (the bench's reqwest has no streaming body).
        #[allow(clippy::disallowed_methods)] // a client process of the real Glance
        run_tool(
            tokio::process::Command::new("curl")
                .args(["-sS", "--fail", "-X", "PUT", "-H"])
                .arg("Content-Type: application/octet-stream")
                .arg("--upload-file")
                .arg(file)
                .arg(format!("{}/v2/images/{id}/file", self.url))
                .stdout(Stdio::piped()),
            "curl (image upload)",
        )
        .await?;
        self.wait_active(http, &id).await?;
        Ok(id)
    }

    async fn wait_active(&self, http: &reqwest::Client, id: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            let image: Value = http
                .get(format!("{}/v2/images/{id}", self.url))
                .send()
                .await?
                .json()
                .await?;
            match image["status"].as_str() {
                Some("active") => return Ok(()),
                Some("killed" | "deleted") => bail!("image {id} went {}", image["status"]),
                _ if Instant::now() > deadline => bail!("image {id} never became active"),
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }
}

/// The `[DEFAULT]` and backend options of the bench's server for `--image`
/// (Glance, the internal tenant and the cache on the file backend).
pub fn server_options(glance_url: &str) -> (String, String) {
    (
        format!(
            "glance_api_servers = {glance_url}\ncinder_internal_tenant_project_id = bench-cache\n\
             cinder_internal_tenant_user_id = bench-cache\n"
        ),
        "image_volume_cache_enabled = true\n".to_owned(),
    )
}

/// Starts the bench's Glance in `dir` (before the server, which needs its
/// URL).
pub async fn start_glance(dir: &Path) -> anyhow::Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(Glance::up(dir, port).await?.url)
}

/// Stops the bench's Glance and removes its directory (its watchdog would
/// when the bench exits; this is the orderly way).
pub async fn stop_glance(dir: &Path) {
    let Ok(glance_sh) = script("glance.sh") else {
        return;
    };
    #[allow(clippy::disallowed_methods)] // the harness stops the Glance it started
    let stopped = run_tool(
        tokio::process::Command::new("bash")
            .arg(glance_sh)
            .arg("down")
            .env("GLANCE_DIR", dir)
            .stdout(Stdio::piped()),
        "scripts/glance.sh down",
    )
    .await;
    if let Err(e) = stopped {
        eprintln!("{e}");
    }
}

/// Creates a volume from `image` and waits until it is `available`; the
/// id and the seconds it took.
async fn create_from_image(
    http: &reqwest::Client,
    endpoint: &str,
    image: &str,
    size_gib: u64,
    poll: Duration,
) -> anyhow::Result<(String, f64)> {
    let t = Instant::now();
    let answer = post(
        http,
        &format!("{endpoint}/volumes"),
        &json!({"volume": {"size": size_gib, "imageRef": image, "name": "bench-from-image"}}),
    )
    .await?;
    let id = answer["volume"]["id"]
        .as_str()
        .context("no id in the create response")?
        .to_owned();
    wait_status_every(
        http,
        &format!("{endpoint}/volumes/{id}"),
        "volume",
        "available",
        poll,
    )
    .await?;
    Ok((id, t.elapsed().as_secs_f64()))
}

/// Cinder 29's `fetch_to_raw` of `image` into `dest`: the seconds it took
/// (interpreter start-up excluded: the script times the call itself).
async fn cinder_fetch(
    python: &Path,
    glance: &str,
    image: &str,
    dest: &Path,
    conversion_dir: &Path,
) -> anyhow::Result<f64> {
    std::fs::create_dir_all(conversion_dir)?;
    #[allow(clippy::disallowed_methods)] // the harness runs the anchor it compares with
    let out = run_tool(
        tokio::process::Command::new(python)
            .arg(script("cinder_image_fetch.py")?)
            .args([glance, image])
            .arg(dest)
            .arg(conversion_dir)
            .stdout(Stdio::piped()),
        "scripts/cinder_image_fetch.py",
    )
    .await?;
    let result: Value = serde_json::from_str(&out)
        .with_context(|| format!("cinder_image_fetch.py printed {out:?}"))?;
    result["seconds"]
        .as_f64()
        .context("no seconds in cinder_image_fetch.py's answer")
}

/// Runs the image benchmark against the bench's own server, whose Glance
/// is at `glance`.
pub async fn run(
    http: &reqwest::Client,
    endpoint: &str,
    state: &State<'_>,
    glance: &str,
    size_mib: u64,
) -> anyhow::Result<()> {
    if size_mib == 0 {
        bail!("--image-size-mib must be at least 1");
    }
    let glance = Glance {
        url: glance.to_owned(),
    };
    let size_gib = size_mib.div_ceil(1024);
    let data = size_mib * MIB;
    let image_file = state.dir.join("bench-image.raw");
    std::fs::File::create(&image_file)?.set_len(data)?;
    fill_random(&image_file, data)?;
    let image = glance.raw_image(http, &image_file).await?;
    println!(
        "image paths on the file backend: a raw image of {size_mib} MiB random data into {size_gib} GiB volumes, Glance {} (noauth, file store); MB = 10^6 bytes of image data",
        glance.url
    );
    let copy = disk_copy(&image_file, &state.dir.join("disk-copy.img"))?;
    line("disk copy (std::fs::copy + fsync)", copy, data, "");

    let (first, download) = create_from_image(http, endpoint, &image, size_gib, POLL).await?;
    if !holds_image(&state.volume_file(&first), &image_file)? {
        bail!("volume {first} does not hold the image's bytes");
    }
    line(
        "create from image (download), to available",
        download,
        data,
        &format!(
            "({:.0} % of the disk copy's speed; bytes verified)",
            copy / download * 100.0
        ),
    );

    let (cached, from_cache) =
        create_from_image(http, endpoint, &image, size_gib, FINE_POLL).await?;
    if !holds_image(&state.volume_file(&cached), &image_file)? {
        bail!("volume {cached} (from the cache) does not hold the image's bytes");
    }
    let ms = from_cache * 1000.0;
    println!(
        "{:<40} {ms:>9.1} ms to available (target <= {CACHE_TARGET_MS} ms: {}; bytes verified)",
        "create from the image-volume cache",
        if ms <= CACHE_TARGET_MS {
            "ok"
        } else {
            "MISSED"
        }
    );

    let volume_bytes = size_gib * 1024 * MIB;
    let t = Instant::now();
    let answer = post(
        http,
        &format!("{endpoint}/volumes/{first}/action"),
        &json!({"os-volume_upload_image": {"image_name": "bench-upload",
                "disk_format": "raw", "container_format": "bare"}}),
    )
    .await;
    // os-volume_upload_image answers 202 (`post` checks for it).
    let answer = answer?;
    let uploaded = answer["os-volume_upload_image"]["image_id"]
        .as_str()
        .context("no image_id in the upload response")?
        .to_owned();
    glance.wait_active(http, &uploaded).await?;
    wait_status_every(
        http,
        &format!("{endpoint}/volumes/{first}"),
        "volume",
        "available",
        POLL,
    )
    .await?;
    let upload = t.elapsed().as_secs_f64();
    line(
        "upload a volume to a new image",
        upload,
        volume_bytes,
        &format!(
            "(the whole {size_gib} GiB volume; {:.0} % of the disk copy's speed)",
            mb_per_s(volume_bytes, upload) / mb_per_s(data, copy) * 100.0
        ),
    );

    let Some(python) = cinder_python() else {
        println!("anchor: skipped (no Cinder 29 venv)");
        return Ok(());
    };
    let dest = state.dir.join("cinder-volume.img");
    std::fs::File::create(&dest)?.set_len(volume_bytes)?;
    let theirs = cinder_fetch(
        &python,
        &glance.url,
        &image,
        &dest,
        &state.dir.join("cinder-conversion"),
    )
    .await?;
    if !holds_image(&dest, &image_file)? {
        bail!("Cinder's fetch_to_raw did not write the image's bytes");
    }
    println!(
        "anchor: Cinder 29's image_utils.fetch_to_raw (download to a temporary file, qemu-img convert) from the same Glance"
    );
    line(
        "  create from image (download + convert)",
        theirs,
        data,
        &format!(
            "Clinker's download at {:.2}x its speed; from the cache at {:.0}x",
            theirs / download,
            theirs / from_cache
        ),
    );
    Ok(())
}
