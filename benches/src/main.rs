//! `clinker-bench`: measures a `clinker serve` over its HTTP API with the
//! same kind of client an operator would use, and prints the figures the
//! all-in-one milestone sets targets for, next to Cinder 29's on the same
//! kind of machine.
//!
//! By default it starts its own server (`--clinker PATH`) in a temporary
//! state directory on a free port, with quotas lifted, so it can also time
//! start-up and read the process's memory. `--endpoint URL` measures a
//! server that is already running instead (start-up and RSS are then skipped).

#![allow(clippy::cast_precision_loss)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

mod backup;
mod image;
mod scale;

/// Figures for Cinder 29 on the same machine (MariaDB, fake driver), from
/// the milestone's issue, for the ratio column.
const CINDER_CREATE_MS: f64 = 250.0;
const CINDER_DELETE_MS: f64 = 100.0;
const CINDER_CYCLES_PER_S: f64 = 4.5;
const CINDER_LIST_MS: f64 = 500.0;
const CINDER_READY_MS: f64 = 5800.0;
const CINDER_RSS_MB: f64 = 700.0;

#[derive(Debug, Parser)]
#[command(about = "Benchmark a clinker serve over HTTP")]
struct Args {
    /// The clinker binary to start (ignored with --endpoint).
    #[arg(long, default_value = "target/release/clinker")]
    clinker: PathBuf,
    /// Measure an already running server at this v3 endpoint instead.
    #[arg(long)]
    endpoint: Option<String>,
    /// Sequential create/delete samples.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Concurrent clients for the cycle test.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of the cycle test.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Volumes present for the list test.
    #[arg(long, default_value_t = 1000)]
    list_volumes: usize,
    /// Detail-list samples.
    #[arg(long, default_value_t = 50)]
    list_samples: usize,
    /// How often a client polls a volume's status in the concurrent cycle
    /// test (milliseconds). Real clients poll every second or so; the
    /// default keeps 16 clients busy without turning the test into a
    /// GET benchmark.
    #[arg(long, default_value_t = 2.0)]
    cycle_poll_ms: f64,
    /// How often the sequential latency tests poll (milliseconds): short,
    /// so the measured latency is the server's, not the poll interval's.
    #[arg(long, default_value_t = 0.2)]
    latency_poll_ms: f64,
    /// A short run for CI (small counts, same code paths).
    #[arg(long)]
    smoke: bool,
    /// Only the scale test: create this many volumes in one project, then
    /// time every list, count and summary path at that size
    /// (`--clients` create at a time; `--list-samples` GETs per figure).
    #[arg(long)]
    scale: Option<usize>,
    /// With --scale: fail when a target is missed (a release build on an
    /// idle machine), not only when a request fails.
    #[arg(long)]
    enforce_targets: bool,
    /// Only the backup test: back a volume of random data up with the
    /// embedded POSIX backup service (full, then incremental after a 1 %
    /// change), restore it and check its bytes, beside the disk's copy
    /// speed and Cinder 29's POSIX driver on the same file.
    #[arg(long)]
    backup: bool,
    /// With --backup: MiB of random data (the volume is this rounded up
    /// to whole GiB).
    #[arg(long, default_value_t = 1024)]
    backup_size_mib: u64,
    /// Only the image test: start a Glance (`scripts/glance.sh`), create a
    /// volume from a raw image of random data (a download), again (a clone
    /// from the image-volume cache) and upload a volume to an image, beside
    /// the disk's copy speed and Cinder 29's `fetch_to_raw`.
    #[arg(long)]
    image: bool,
    /// With --image: MiB of random image data (the volumes are this rounded
    /// up to whole GiB).
    #[arg(long, default_value_t = 1024)]
    image_size_mib: u64,
}

struct Server {
    child: Option<tokio::process::Child>,
    endpoint: String,
    dir: Option<TempDir>,
    ready_ms: Option<f64>,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether the server under test serves Prometheus metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metrics {
    /// The all-in-one's default (`127.0.0.1:9776`, or off if taken).
    Default,
    /// `[metrics] listen =`: no recorder at all.
    Off,
    /// On a port of its own.
    On,
}

/// Options the server under test gets besides the bench's own:
/// `[DEFAULT]` lines and lines of the `file` backend's section.
#[derive(Clone, Debug, Default)]
struct ExtraOptions {
    default: String,
    backend: String,
}

async fn start_server(
    binary: &PathBuf,
    http: &reqwest::Client,
    metrics: Metrics,
    extra: &ExtraOptions,
) -> anyhow::Result<Server> {
    static SERVERS: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "clinker-bench-{}-{}",
        std::process::id(),
        SERVERS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let conf = dir.join("clinker.conf");
    // The file backend's capacity is the state directory's disk; --scale
    // places far more 1 GB (sparse) volumes than that holds.
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nstate_path = {state}\nosapi_volume_listen_port = {port}\nenabled_backends = file\n\
             quota_volumes = -1\nquota_gigabytes = -1\nquota_snapshots = -1\n{extra_default}\n[file]\nvolume_driver = file\n\
             max_over_subscription_ratio = 100000\n{extra_backend}{metrics}",
            state = dir.display(),
            extra_default = extra.default,
            extra_backend = extra.backend,
            metrics = match metrics {
                Metrics::Default => String::new(),
                Metrics::Off => "[metrics]\nlisten =\n".to_owned(),
                Metrics::On => format!("[metrics]\nlisten = 127.0.0.1:{}\n", free_port()?),
            }
        ),
    )?;
    let endpoint = format!("http://127.0.0.1:{port}/v3");
    let started = Instant::now();
    #[allow(clippy::disallowed_methods)] // the harness launches the product under test
    let child = tokio::process::Command::new(binary)
        .arg("--config-file")
        .arg(&conf)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    loop {
        if started.elapsed() > Duration::from_secs(20) {
            bail!("the server did not answer within 20 s");
        }
        if let Ok(r) = http.get(format!("{endpoint}/")).send().await
            && r.status().is_success()
        {
            break;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Server {
        child: Some(child),
        endpoint,
        dir: Some(TempDir(dir)),
        ready_ms: Some(ready_ms),
    })
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    sorted[rank as usize]
}

async fn create_volume(
    http: &reqwest::Client,
    endpoint: &str,
    name: &str,
) -> anyhow::Result<String> {
    let resp = http
        .post(format!("{endpoint}/volumes"))
        .json(&json!({"volume": {"size": 1, "name": name}}))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if status.as_u16() != 202 {
        bail!("create answered {status}: {body}");
    }
    body["volume"]["id"]
        .as_str()
        .map(str::to_owned)
        .context("no id in the create response")
}

async fn volume_status(
    http: &reqwest::Client,
    endpoint: &str,
    id: &str,
) -> anyhow::Result<Option<String>> {
    let resp = http.get(format!("{endpoint}/volumes/{id}")).send().await?;
    if resp.status().as_u16() == 404 {
        return Ok(None);
    }
    let body: Value = resp.json().await?;
    Ok(body["volume"]["status"].as_str().map(str::to_owned))
}

async fn wait_for(
    http: &reqwest::Client,
    endpoint: &str,
    id: &str,
    want: Option<&str>,
    poll: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut polls = 0;
    loop {
        let status = volume_status(http, endpoint, id).await?;
        polls += 1;
        if status.as_deref() == want {
            return Ok(polls);
        }
        if matches!(status.as_deref(), Some("error" | "error_deleting")) {
            bail!("volume {id} went to {status:?}");
        }
        if Instant::now() > deadline {
            bail!("volume {id} stuck in {status:?}");
        }
        tokio::time::sleep(poll).await;
    }
}

async fn delete_volume(http: &reqwest::Client, endpoint: &str, id: &str) -> anyhow::Result<()> {
    let resp = http
        .delete(format!("{endpoint}/volumes/{id}"))
        .send()
        .await?;
    if resp.status().as_u16() != 202 {
        bail!("delete answered {}", resp.status());
    }
    Ok(())
}

fn report(name: &str, value: f64, unit: &str, target: &str, cinder: f64, lower_is_better: bool) {
    let ratio = if lower_is_better {
        cinder / value
    } else {
        value / cinder
    };
    println!(
        "{name:<36} {value:>10.2} {unit:<9} target {target:<10} Cinder 29: {cinder:>7.1} {unit:<9} ({ratio:.0}x better)"
    );
}

/// Concurrent create→available→delete→gone cycles for `seconds`: cycles
/// per second and status polls per cycle.
async fn cycle_rate(
    http: &reqwest::Client,
    endpoint: &str,
    clients: usize,
    seconds: u64,
    cycle_poll: Duration,
) -> anyhow::Result<(f64, f64)> {
    let cycles = Arc::new(AtomicU64::new(0));
    let polls = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, endpoint, cycles, polls, failures) = (
            http.clone(),
            endpoint.to_owned(),
            cycles.clone(),
            polls.clone(),
            failures.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let result = async {
                    let id = create_volume(&http, &endpoint, &format!("c{client}-{n}")).await?;
                    let created =
                        wait_for(&http, &endpoint, &id, Some("available"), cycle_poll).await?;
                    delete_volume(&http, &endpoint, &id).await?;
                    let gone = wait_for(&http, &endpoint, &id, None, cycle_poll).await?;
                    polls.fetch_add(created + gone, Ordering::Relaxed);
                    anyhow::Ok(())
                }
                .await;
                match result {
                    Ok(()) => cycles.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("cycle failed: {e:#}");
                        failures.fetch_add(1, Ordering::Relaxed)
                    }
                };
                n += 1;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let per_second = cycles.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} cycles failed");
    }
    let done = cycles.load(Ordering::Relaxed).max(1) as f64;
    Ok((per_second, polls.load(Ordering::Relaxed) as f64 / done))
}

/// The cycle rate of two fresh servers, metrics off and on, measured in
/// the same run: the price of the Prometheus recorder.
async fn metrics_overhead(
    args: &Args,
    http: &reqwest::Client,
    cycle_poll: Duration,
) -> anyhow::Result<()> {
    let mut rates = Vec::new();
    for metrics in [Metrics::Off, Metrics::On] {
        let mut server =
            start_server(&args.clinker, http, metrics, &ExtraOptions::default()).await?;
        let (rate, _) = cycle_rate(
            http,
            &server.endpoint,
            args.clients,
            args.seconds,
            cycle_poll,
        )
        .await?;
        if let Some(mut child) = server.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        rates.push(rate);
    }
    let (off, on) = (rates[0], rates[1]);
    println!("{:<36} {:>10.1} cycles/s", "cycles/s, metrics off", off);
    println!(
        "{:<36} {:>10.1} cycles/s  ({:+.1} % against off; target within 5 %)",
        "cycles/s, metrics on",
        on,
        (on / off.max(f64::MIN_POSITIVE) - 1.0) * 100.0
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.samples = 20;
        args.seconds = 2;
        args.list_volumes = 100;
        args.list_samples = 5;
    }
    // reqwest's rustls has no built-in crypto provider in this workspace
    // (the bench talks HTTP only and depends on no Clinker crate).
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    #[allow(clippy::disallowed_methods)] // provider installed just above
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let mut glance_dir: Option<PathBuf> = None;
    let mut glance_url: Option<String> = None;
    let mut server = match &args.endpoint {
        Some(url) => Server {
            child: None,
            endpoint: url.trim_end_matches('/').to_owned(),
            dir: None,
            ready_ms: None,
        },
        None if args.image => {
            // The server needs the Glance's URL in its configuration.
            let dir =
                std::env::temp_dir().join(format!("clinker-bench-glance-{}", std::process::id()));
            let url = image::start_glance(&dir).await?;
            glance_dir = Some(dir);
            let (default, backend) = image::server_options(&url);
            glance_url = Some(url);
            let extra = ExtraOptions { default, backend };
            start_server(&args.clinker, &http, Metrics::Default, &extra).await?
        }
        None => {
            start_server(
                &args.clinker,
                &http,
                Metrics::Default,
                &ExtraOptions::default(),
            )
            .await?
        }
    };
    let endpoint = server.endpoint.clone();
    println!(
        "clinker-bench against {endpoint}{}",
        if args.smoke { " (smoke run)" } else { "" }
    );
    if let Some(ms) = server.ready_ms {
        report(
            "start to first successful request",
            ms,
            "ms",
            "<= 200 ms",
            CINDER_READY_MS,
            true,
        );
    }
    let pid = server.child.as_ref().and_then(tokio::process::Child::id);
    if args.backup {
        let Some(dir) = &server.dir else {
            bail!("--backup writes the volume's file: it needs its own server, not --endpoint");
        };
        let state = backup::State {
            dir: &dir.0,
            backend: "file",
        };
        let result = backup::run(&http, &endpoint, &state, args.backup_size_mib).await;
        if let Some(mut child) = server.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        return result;
    }
    if args.image {
        let (Some(dir), Some(glance)) = (&server.dir, &glance_url) else {
            bail!(
                "--image writes and reads the volumes' files: it needs its own server, not --endpoint"
            );
        };
        let state = backup::State {
            dir: &dir.0,
            backend: "file",
        };
        let result = image::run(&http, &endpoint, &state, glance, args.image_size_mib).await;
        if let Some(mut child) = server.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        if let Some(dir) = glance_dir {
            image::stop_glance(&dir).await;
        }
        return result;
    }
    if let Some(n) = args.scale {
        let samples = if args.smoke { 5 } else { args.list_samples };
        let met = scale::run(&http, &endpoint, n, args.clients.max(32), samples, || {
            pid.and_then(rss_mb)
        })
        .await?;
        if let Some(mut child) = server.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        if !met && args.enforce_targets {
            bail!("a scale target was missed");
        }
        return Ok(());
    }
    if let Some(pid) = pid {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(mb) = rss_mb(pid) {
            report(
                "idle RSS after start",
                mb,
                "MiB",
                "<= 30 MB",
                CINDER_RSS_MB,
                true,
            );
        }
    }

    let latency_poll = Duration::from_secs_f64(args.latency_poll_ms / 1000.0);
    let cycle_poll = Duration::from_secs_f64(args.cycle_poll_ms / 1000.0);
    // Sequential latencies.
    let mut create_ms = Vec::with_capacity(args.samples);
    let mut delete_ms = Vec::with_capacity(args.samples);
    for i in 0..args.samples {
        let t = Instant::now();
        let id = create_volume(&http, &endpoint, &format!("seq-{i}")).await?;
        wait_for(&http, &endpoint, &id, Some("available"), latency_poll).await?;
        create_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        delete_volume(&http, &endpoint, &id).await?;
        wait_for(&http, &endpoint, &id, None, latency_poll).await?;
        delete_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    create_ms.sort_by(f64::total_cmp);
    delete_ms.sort_by(f64::total_cmp);
    report(
        "create -> available p50",
        percentile(&create_ms, 50.0),
        "ms",
        "<= 5 ms",
        CINDER_CREATE_MS,
        true,
    );
    println!(
        "{:<36} {:>10.2} ms  p99 {:.2} ms",
        "create -> available p95",
        percentile(&create_ms, 95.0),
        percentile(&create_ms, 99.0)
    );
    report(
        "delete -> gone p50",
        percentile(&delete_ms, 50.0),
        "ms",
        "<= 5 ms",
        CINDER_DELETE_MS,
        true,
    );
    println!(
        "{:<36} {:>10.2} ms  p99 {:.2} ms",
        "delete -> gone p95",
        percentile(&delete_ms, 95.0),
        percentile(&delete_ms, 99.0)
    );

    // Concurrent create+delete cycles.
    let (per_second, polls_per_cycle) =
        cycle_rate(&http, &endpoint, args.clients, args.seconds, cycle_poll).await?;
    report(
        &format!(
            "create+delete cycles/s ({} clients, poll {} ms)",
            args.clients, args.cycle_poll_ms
        ),
        per_second,
        "cycles/s",
        ">= 500/s",
        CINDER_CYCLES_PER_S,
        false,
    );
    println!(
        "{:<36} {:>10.1} GETs     (status polls per cycle, besides its POST and DELETE)",
        "status polls per cycle", polls_per_cycle
    );

    // Detail list with many volumes present.
    let semaphore = Arc::new(tokio::sync::Semaphore::new(32));
    let mut creates = Vec::new();
    for i in 0..args.list_volumes {
        let (http, endpoint, semaphore) = (http.clone(), endpoint.clone(), semaphore.clone());
        creates.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await;
            create_volume(&http, &endpoint, &format!("list-{i}")).await
        }));
    }
    let mut ids = Vec::new();
    for c in creates {
        ids.push(c.await??);
    }
    for id in &ids {
        wait_for(&http, &endpoint, id, Some("available"), cycle_poll).await?;
    }
    let mut list_ms = Vec::new();
    for _ in 0..args.list_samples {
        let t = Instant::now();
        let resp = http
            .get(format!(
                "{endpoint}/volumes/detail?limit={}",
                args.list_volumes
            ))
            .send()
            .await?;
        // The server's latency to the last byte; the client's own JSON
        // parsing of the ~800 kB body is not the server's time.
        let bytes = resp.bytes().await?;
        list_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let body: Value = serde_json::from_slice(&bytes)?;
        let n = body["volumes"].as_array().map_or(0, Vec::len);
        if n < args.list_volumes {
            bail!(
                "detail list returned {n} volumes, expected {}",
                args.list_volumes
            );
        }
    }
    list_ms.sort_by(f64::total_cmp);
    report(
        &format!("GET volumes/detail ({} volumes) p50", args.list_volumes),
        percentile(&list_ms, 50.0),
        "ms",
        "<= 20 ms",
        CINDER_LIST_MS,
        true,
    );
    if let Some(pid) = pid
        && let Some(mb) = rss_mb(pid)
    {
        println!(
            "{:<36} {:>10.2} MiB",
            format!("RSS with {} volumes", args.list_volumes),
            mb
        );
    }
    let own_server = server.child.is_some();
    if let Some(mut child) = server.child.take() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    if own_server {
        metrics_overhead(&args, &http, cycle_poll).await?;
    }
    Ok(())
}
