//! `clinker-bench --scale N`: N volumes in one project, then the latency
//! of every list, count and summary path at that size, each beside its
//! target (issue 11: every page <= 30 ms p50, summary <= 10 ms, RSS <=
//! 60 MB after the run, creates sustained >= 500/s).
//!
//! The volumes are created through the API (`POST /volumes`, `clients` at
//! a time), so the create rate is the API's and every row is a real one
//! (placed by the scheduler, created by the `file` driver).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The microversion the reads use (`with_count` needs 3.45, the summary's
/// metadata 3.36).
const MICROVERSION: &str = "volume 3.71";

/// One metadata value is shared by this many volumes' worth of 1/GROUPS
/// of the project (the metadata filter matches 1 %).
const GROUPS: usize = 100;

fn name_of(i: usize) -> String {
    format!("scale-{i:07}")
}

async fn create(http: &reqwest::Client, endpoint: &str, i: usize) -> anyhow::Result<String> {
    let body = json!({"volume": {
        "size": 1,
        "name": name_of(i),
        "metadata": {"group": format!("g{}", i % GROUPS)},
    }});
    // A 503 (the database busy) is an answer to retry, as a client does.
    for attempt in 0..20u64 {
        let resp = http
            .post(format!("{endpoint}/volumes"))
            .json(&body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await?;
        match status {
            202 => {
                return answer["volume"]["id"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no id in the create response");
            }
            503 => tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await,
            _ => bail!("create answered {status}: {answer}"),
        }
    }
    bail!("create of volume {i} answered 503 twenty times")
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<(f64, Value)> {
    let t = Instant::now();
    let resp = http
        .get(url)
        .header("OpenStack-API-Version", MICROVERSION)
        .send()
        .await?;
    let status = resp.status();
    // The server's latency to the last byte; parsing is the client's.
    let bytes = resp.bytes().await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        bail!(
            "GET {url} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok((ms, serde_json::from_slice(&bytes)?))
}

/// p50 of `samples` GETs of `url`, and the last body.
async fn p50(http: &reqwest::Client, url: &str, samples: usize) -> anyhow::Result<(f64, Value)> {
    let mut times = Vec::with_capacity(samples);
    let mut last = Value::Null;
    for _ in 0..samples.max(1) {
        let (ms, body) = get(http, url).await?;
        times.push(ms);
        last = body;
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], last))
}

fn line(name: &str, value: f64, unit: &str, target: f64, lower_is_better: bool) -> bool {
    let met = if lower_is_better {
        value <= target
    } else {
        value >= target
    };
    let op = if lower_is_better { "<=" } else { ">=" };
    println!(
        "{name:<44} {value:>10.2} {unit:<6} target {op} {target:<6} {}",
        if met { "ok" } else { "MISSED" }
    );
    met
}

fn count_of(body: &Value, key: &str) -> usize {
    body[key].as_array().map_or(0, Vec::len)
}

/// Waits until `n` volumes of the project are `available` (the scheduler
/// and the volume service catch up with the accepted creates).
async fn wait_available(http: &reqwest::Client, endpoint: &str, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (_, body) = get(
            http,
            &format!("{endpoint}/volumes?status=available&with_count=true&limit=1"),
        )
        .await?;
        let available = body["count"].as_u64().unwrap_or(0);
        if available >= n as u64 {
            return Ok(());
        }
        let (_, errors) = get(
            http,
            &format!("{endpoint}/volumes?status=error&with_count=true&limit=1"),
        )
        .await?;
        if errors["count"].as_u64().unwrap_or(0) > 0 {
            bail!("volumes went to error: {errors}");
        }
        if Instant::now() > deadline {
            bail!("only {available} of {n} volumes available after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs the scale test; returns whether every target was met.
pub async fn run(
    http: &reqwest::Client,
    endpoint: &str,
    n: usize,
    clients: usize,
    samples: usize,
    rss_mb: impl Fn() -> Option<f64>,
) -> anyhow::Result<bool> {
    println!("scale: {n} volumes in one project, {clients} clients creating");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (http, endpoint, next) = (http.clone(), endpoint.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(made);
                }
                made.push((i, create(&http, &endpoint, i).await?));
            }
        }));
    }
    let mut ids = vec![String::new(); n];
    for t in tasks {
        for (i, id) in t.await?? {
            ids[i] = id;
        }
    }
    let accepted_s = started.elapsed().as_secs_f64();
    wait_available(http, endpoint, n).await?;
    let available_s = started.elapsed().as_secs_f64();
    let mut met = true;
    met &= line(
        "creates accepted per second",
        n as f64 / accepted_s,
        "/s",
        500.0,
        false,
    );
    met &= line(
        "creates available per second",
        n as f64 / available_s,
        "/s",
        500.0,
        false,
    );

    // Markers deep in each order: the volumes created first are the last
    // in the default order (newest first), the names are in creation order.
    let deep_default = &ids[n / 20];
    let deep_name = &ids[n - n / 20 - 1];
    let page = 1000.min(n);
    let pages = [
        (
            "detail, default order, first page",
            "volumes/detail?".to_owned(),
        ),
        (
            "detail, default order, deep page",
            format!("volumes/detail?marker={deep_default}&"),
        ),
        (
            "detail, name order, first page",
            "volumes/detail?sort=name:asc&".to_owned(),
        ),
        (
            "detail, name order, deep page",
            format!("volumes/detail?sort=name:asc&marker={deep_name}&"),
        ),
        ("summary, default order, first page", "volumes?".to_owned()),
        (
            "summary, default order, deep page",
            format!("volumes?marker={deep_default}&"),
        ),
        (
            "summary, name order, first page",
            "volumes?sort=name:asc&".to_owned(),
        ),
        (
            "summary, name order, deep page",
            format!("volumes?sort=name:asc&marker={deep_name}&"),
        ),
        (
            "detail, status=available",
            "volumes/detail?status=available&".to_owned(),
        ),
    ];
    for (name, path) in pages {
        let url = format!("{endpoint}/{path}limit={page}");
        let (ms, body) = p50(http, &url, samples).await?;
        let got = count_of(&body, "volumes");
        if got == 0 {
            bail!("{name}: empty page");
        }
        met &= line(&format!("{name} ({got})"), ms, "ms", 30.0, true);
    }
    let metadata = urlencode(r#"{"group":"g7"}"#);
    let (ms, body) = p50(
        http,
        &format!("{endpoint}/volumes/detail?metadata={metadata}&limit={page}"),
        samples,
    )
    .await?;
    let expected = n / GROUPS + usize::from(n % GROUPS > 7);
    if count_of(&body, "volumes") != expected.min(page) {
        bail!(
            "metadata filter gave {} volumes, expected {}",
            count_of(&body, "volumes"),
            expected.min(page)
        );
    }
    met &= line(
        &format!("detail, metadata filter ({})", count_of(&body, "volumes")),
        ms,
        "ms",
        30.0,
        true,
    );
    let (ms, body) = p50(
        http,
        &format!("{endpoint}/volumes?with_count=true&limit=10"),
        samples,
    )
    .await?;
    if body["count"].as_u64() != Some(n as u64) {
        bail!("with_count said {}, expected {n}", body["count"]);
    }
    met &= line("summary list with_count (10 rows)", ms, "ms", 30.0, true);
    let (ms, body) = p50(http, &format!("{endpoint}/volumes/summary"), samples).await?;
    if body["volume-summary"]["total_count"].as_u64() != Some(n as u64) {
        bail!("summary said {}", body["volume-summary"]);
    }
    met &= line("volumes/summary", ms, "ms", 10.0, true);
    let (ms, _) = p50(http, &format!("{endpoint}/volumes/{}", ids[n / 2]), samples).await?;
    met &= line("show one volume", ms, "ms", 30.0, true);
    if let Some(mb) = rss_mb() {
        met &= line("RSS after the run", mb, "MiB", 60.0, true);
    }
    Ok(met)
}

/// Percent-encodes a query value.
fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
