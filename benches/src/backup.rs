//! `clinker-bench --backup`: backup and restore throughput of the POSIX
//! backup driver (issue 13), each beside the disk's own copy speed in the
//! same run, and beside Cinder 29's own POSIX driver on the same file when
//! its venv exists (`scripts/install-cinder29.sh`).
//!
//! The bench owns the state directory it configured, so it writes the
//! volume's data straight into the file backend's `volume-<id>` file, as
//! a user's writes would appear, and reads the restored volume's file to
//! check it byte for byte: a restore that is fast but wrong fails the run.
//!
//! Every driver option is Cinder's default on both sides (zlib,
//! `backup_file_size` just under 2 GB, 32 KiB SHA blocks).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::{Rng, RngCore};
use serde_json::{Value, json};

pub(crate) const MIB: u64 = 1024 * 1024;
/// The fill and compare unit.
const CHUNK: usize = 4 * 1024 * 1024;
/// How long one backup or restore may take before the run fails.
const OP_DEADLINE: Duration = Duration::from_secs(3600);
const POLL: Duration = Duration::from_millis(20);
/// The Cinder share of the ratio target: Clinker should be at least this
/// many times faster.
const TARGET_RATIO: f64 = 3.0;
/// An incremental after a 1 % change should take at most this share of
/// the full backup's time.
const TARGET_INCREMENTAL_PCT: f64 = 10.0;

/// Where the bench's server keeps things.
pub struct State<'a> {
    /// The server's `state_path`.
    pub dir: &'a Path,
    /// The file backend's name (`enabled_backends`).
    pub backend: &'a str,
}

impl State<'_> {
    pub(crate) fn volume_file(&self, id: &str) -> PathBuf {
        self.dir
            .join("volumes")
            .join(self.backend)
            .join(format!("volume-{id}"))
    }
}

pub(crate) fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(f64::MIN_POSITIVE)
}

pub(crate) async fn post(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    let resp = http.post(url).json(body).send().await?;
    let status = resp.status();
    let answer: Value = resp.json().await?;
    if status.as_u16() != 202 {
        bail!("POST {url} answered {status}: {answer}");
    }
    Ok(answer)
}

/// Polls `GET {url}` until `body[key].status` is `want`; fails on `error`.
async fn wait_status(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    want: &str,
) -> anyhow::Result<()> {
    wait_status_every(http, url, key, want, POLL).await
}

/// [`wait_status`], polling every `poll`.
pub(crate) async fn wait_status_every(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    want: &str,
    poll: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + OP_DEADLINE;
    loop {
        let body: Value = http.get(url).send().await?.json().await?;
        let status = body[key]["status"].as_str().unwrap_or_default();
        if status == want {
            return Ok(());
        }
        if status.starts_with("error") {
            bail!("{url} went to {status}: {}", body[key]);
        }
        if Instant::now() > deadline {
            bail!("{url} stuck in {status:?}");
        }
        tokio::time::sleep(poll).await;
    }
}

/// Fills the first `bytes` of `path` with random (incompressible) data.
pub(crate) fn fill_random(path: &Path, bytes: u64) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut rng = rand::rng();
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK as u64))?;
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(())
}

/// Random 4 KiB…64 KiB writes (4 KiB aligned) spread over the first
/// `span` bytes until `share` of them were written; returns the bytes
/// written.
fn scribble(path: &Path, span: u64, share: f64) -> anyhow::Result<u64> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut rng = rand::rng();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let goal = (span as f64 * share) as u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0;
    while written < goal {
        let len = rng.random_range(1..=16usize) * 4096;
        let offset = rng.random_range(0..(span - len as u64) / 4096) * 4096;
        rng.fill_bytes(&mut buf[..len]);
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(&buf[..len])?;
        written += len as u64;
    }
    f.sync_all()?;
    Ok(written)
}

/// Whether two files hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Whether `volume` holds `image`'s bytes followed by zeros only.
pub(crate) fn holds_image(volume: &Path, image: &Path) -> anyhow::Result<bool> {
    let (mut fv, mut fi) = (std::fs::File::open(volume)?, std::fs::File::open(image)?);
    let (mut bv, mut bi) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    loop {
        let m = read_full(&mut fi, &mut bi)?;
        if m == 0 {
            break;
        }
        let n = read_full(&mut fv, &mut bv[..m])?;
        if n != m || bv[..n] != bi[..m] {
            return Ok(false);
        }
    }
    loop {
        let n = read_full(&mut fv, &mut bv)?;
        if n == 0 {
            return Ok(true);
        }
        if bv[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> anyhow::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let r = f.read(&mut buf[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    Ok(n)
}

/// The disk's own copy speed: `from` copied to `to`, then fsync.
pub(crate) fn disk_copy(from: &Path, to: &Path) -> anyhow::Result<f64> {
    let t = Instant::now();
    std::fs::copy(from, to)?;
    std::fs::File::open(to)?.sync_all()?;
    let secs = t.elapsed().as_secs_f64();
    std::fs::remove_file(to)?;
    Ok(secs)
}

async fn backup(
    http: &reqwest::Client,
    endpoint: &str,
    volume: &str,
    incremental: bool,
) -> anyhow::Result<(String, f64)> {
    let t = Instant::now();
    let answer = post(
        http,
        &format!("{endpoint}/backups"),
        &json!({"backup": {"volume_id": volume, "incremental": incremental,
                           "name": if incremental { "bench-incr" } else { "bench-full" }}}),
    )
    .await?;
    let id = answer["backup"]["id"]
        .as_str()
        .context("no id in the backup response")?
        .to_owned();
    wait_status(
        http,
        &format!("{endpoint}/backups/{id}"),
        "backup",
        "available",
    )
    .await?;
    Ok((id, t.elapsed().as_secs_f64()))
}

/// The Cinder 29 venv's interpreter, when it is installed.
pub(crate) fn cinder_python() -> Option<PathBuf> {
    let venv = std::env::var_os("CLINKER_CINDER_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/clinker-cinder29"))
        })?;
    let python = venv.join("bin/python");
    python.exists().then_some(python)
}

/// Cinder 29's own POSIX driver, driven job by job through
/// `scripts/cinder_backup_driver.py` (its database and notifications
/// stubbed). Each job is a fresh interpreter; its start-up (importing
/// Cinder) is measured once and taken off every figure.
struct Cinder {
    python: PathBuf,
    script: PathBuf,
    dir: PathBuf,
    store: PathBuf,
    rows: Vec<Value>,
    startup: f64,
}

impl Cinder {
    async fn new(python: PathBuf, dir: &Path) -> anyhow::Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scripts/cinder_backup_driver.py")
            .canonicalize()
            .context("scripts/cinder_backup_driver.py")?;
        let dir = dir.join("cinder");
        let store = dir.join("store");
        std::fs::create_dir_all(&store)?;
        let mut cinder = Self {
            python,
            script,
            dir,
            store,
            rows: Vec::new(),
            startup: 0.0,
        };
        // The fixed cost: a backup of a 4 KiB volume into a store of its own.
        let tiny = cinder.dir.join("tiny.img");
        std::fs::write(&tiny, [7u8; 4096])?;
        let store = cinder.dir.join("tiny-store");
        let job = json!({"driver": "posix", "op": "backup", "volume": tiny,
            "options": {"backup_posix_path": store},
            "backups": [row("00000000-0000-0000-0000-0000000000a0", None)]});
        let (_, secs) = cinder.job(&job).await?;
        cinder.startup = secs;
        Ok(cinder)
    }

    async fn job(&self, job: &Value) -> anyhow::Result<(Value, f64)> {
        let path = self.dir.join("job.json");
        std::fs::write(&path, serde_json::to_vec(job)?)?;
        let t = Instant::now();
        #[allow(clippy::disallowed_methods)] // the harness runs the anchor it compares with
        let out = tokio::process::Command::new(&self.python)
            .arg(&self.script)
            .arg(&path)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.python.display()))?;
        let secs = t.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "cinder_backup_driver.py {} failed: {}",
                job["op"],
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok((serde_json::from_slice(&out.stdout)?, secs))
    }

    /// Backs `volume` up (incremental on the last backup when there is
    /// one); the seconds without the interpreter's start-up.
    async fn backup(&mut self, volume: &Path) -> anyhow::Result<f64> {
        let id = format!("00000000-0000-0000-0000-0000000000b{}", self.rows.len());
        let parent = self.rows.last().map(|r| r["id"].clone());
        let mut rows = self.rows.clone();
        rows.push(row(&id, parent));
        let job = json!({"driver": "posix", "op": "backup", "volume": volume,
            "options": {"backup_posix_path": self.store}, "backups": rows});
        let (result, secs) = self.job(&job).await?;
        let mut made = row(&id, self.rows.last().map(|r| r["id"].clone()));
        for key in ["container", "service_metadata", "object_count"] {
            made[key] = result[key].clone();
        }
        self.rows.push(made);
        Ok((secs - self.startup).max(0.0))
    }

    /// Restores the last backup (with its ancestors) into `volume`.
    async fn restore(&self, volume: &Path) -> anyhow::Result<f64> {
        let job = json!({"driver": "posix", "op": "restore", "volume": volume,
            "options": {"backup_posix_path": self.store}, "backups": self.rows});
        let (_, secs) = self.job(&job).await?;
        Ok((secs - self.startup).max(0.0))
    }
}

fn row(id: &str, parent: Option<Value>) -> Value {
    let created = format!("2026-12-07T00:00:0{}+00:00", &id[id.len() - 1..]);
    json!({"id": id, "volume_id": "00000000-0000-0000-0000-00000000b0b0",
           "display_name": "bench", "display_description": "clinker-bench",
           "created_at": created, "parent_id": parent, "size": 1})
}

pub(crate) fn line(name: &str, secs: f64, bytes: u64, note: &str) {
    println!(
        "{name:<40} {secs:>9.2} s {:>9.1} MB/s  {note}",
        mb_per_s(bytes, secs)
    );
}

/// Runs the backup benchmark against the bench's own server.
pub async fn run(
    http: &reqwest::Client,
    endpoint: &str,
    state: &State<'_>,
    size_mib: u64,
) -> anyhow::Result<()> {
    if size_mib == 0 {
        bail!("--backup-size-mib must be at least 1");
    }
    let size_gib = size_mib.div_ceil(1024);
    let data = size_mib * MIB;
    let answer = post(
        http,
        &format!("{endpoint}/volumes"),
        &json!({"volume": {"size": size_gib, "name": "bench-backup"}}),
    )
    .await?;
    let volume = answer["volume"]["id"]
        .as_str()
        .context("no id in the create response")?
        .to_owned();
    wait_status(
        http,
        &format!("{endpoint}/volumes/{volume}"),
        "volume",
        "available",
    )
    .await?;
    let file = state.volume_file(&volume);
    let bytes = std::fs::metadata(&file)
        .with_context(|| format!("the file backend's {}", file.display()))?
        .len();
    fill_random(&file, data)?;
    println!(
        "backup of a {size_gib} GiB volume, {size_mib} MiB of it random data (POSIX driver, Cinder's defaults: zlib, 32 KiB SHA blocks); MB = 10^6 bytes of the volume"
    );

    let copy = disk_copy(&file, &state.dir.join("disk-copy.img"))?;
    line("disk copy (std::fs::copy + fsync)", copy, bytes, "");

    let mut cinder = match cinder_python() {
        Some(python) => Some(Cinder::new(python, state.dir).await?),
        None => None,
    };

    let (_, full) = backup(http, endpoint, &volume, false).await?;
    line(
        "full backup",
        full,
        bytes,
        &format!("({:.0} % of the disk copy's speed)", copy / full * 100.0),
    );
    let cinder_full = match &mut cinder {
        Some(c) => Some(c.backup(&file).await?),
        None => None,
    };

    let changed = scribble(&file, data, 0.01)?;
    let (incr_id, incr) = backup(http, endpoint, &volume, true).await?;
    let pct = incr / full * 100.0;
    println!(
        "{:<40} {incr:>9.2} s {:>9.1} % of the full backup's time (target <= {TARGET_INCREMENTAL_PCT} %: {}); {:.1} MiB changed",
        "incremental after a 1 % change",
        pct,
        if pct <= TARGET_INCREMENTAL_PCT {
            "ok"
        } else {
            "MISSED"
        },
        changed as f64 / MIB as f64
    );
    let cinder_incr = match &mut cinder {
        Some(c) => Some(c.backup(&file).await?),
        None => None,
    };

    let t = Instant::now();
    let answer = post(
        http,
        &format!("{endpoint}/backups/{incr_id}/restore"),
        &json!({"restore": {"name": "bench-restored"}}),
    )
    .await?;
    let restored = answer["restore"]["volume_id"]
        .as_str()
        .context("no volume_id in the restore response")?
        .to_owned();
    wait_status(
        http,
        &format!("{endpoint}/volumes/{restored}"),
        "volume",
        "available",
    )
    .await?;
    let restore = t.elapsed().as_secs_f64();
    if !same_bytes(&file, &state.volume_file(&restored))? {
        bail!("the restored volume {restored} differs from the data at backup time");
    }
    line(
        "restore (full + incremental) to a new volume",
        restore,
        bytes,
        "(bytes verified)",
    );

    let Some(cinder) = cinder else {
        println!("anchor: skipped (no Cinder 29 venv)");
        return Ok(());
    };
    let target = state.dir.join("cinder-restored.img");
    std::fs::File::create(&target)?.set_len(bytes)?;
    let cinder_restore = cinder.restore(&target).await?;
    if !same_bytes(&file, &target)? {
        bail!("Cinder's restore differs from the data at backup time");
    }
    println!(
        "anchor: Cinder 29's POSIX driver on the same file (interpreter start-up, {:.2} s, taken off)",
        cinder.startup
    );
    let mut met = true;
    for (name, clinker, theirs) in [
        ("  full backup", full, cinder_full.unwrap_or_default()),
        ("  incremental", incr, cinder_incr.unwrap_or_default()),
        ("  restore (bytes verified)", restore, cinder_restore),
    ] {
        let ratio = theirs / clinker;
        met &= ratio >= TARGET_RATIO;
        println!(
            "{name:<40} {theirs:>9.2} s {:>9.1} MB/s  Clinker at {ratio:.2}x its speed (target >= {TARGET_RATIO}x: {})",
            mb_per_s(bytes, theirs),
            if ratio >= TARGET_RATIO {
                "ok"
            } else {
                "MISSED"
            }
        );
    }
    if !met {
        println!(
            "(a target missed; figures from a debug build or a loaded machine are not the release's)"
        );
    }
    Ok(())
}
