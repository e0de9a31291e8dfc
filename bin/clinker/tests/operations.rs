//! What an operator sees of a running Clinker: the load balancer's
//! `/healthcheck`, systemd's notifications, the Prometheus endpoint, and
//! request ids that follow a create through every process's JSON log
//! without a secret in any of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;
use std::time::Duration;

use clinker_db::testsuite::{Engine, TestDatabase};
use clinker_testkit::http::Api;
use clinker_testkit::poll::{self, Every};
use clinker_testkit::process::{LogsOnFailure, Proc, Server, free_port, write_file};
use clinker_testkit::rabbit::Vhost;
use clinker_testkit::tls::TestCa;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_clinker");

/// This machine's host name (the default `[DEFAULT] host`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

const FAKE_BACKEND: &str = "enabled_backends = fake\n[fake]\nvolume_driver = fake\n";

/// `GET`/`HEAD` of `url` with `accept`: status, content type, body.
async fn fetch(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    accept: Option<&str>,
) -> (u16, String, String) {
    let mut req = http.request(method, url);
    if let Some(accept) = accept {
        req = req.header("Accept", accept);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.text().await.unwrap())
}

/// Cinder's `api-paste.ini` puts `/healthcheck` outside authentication
/// with oslo.middleware's `disable_by_file` backend: 200 `OK` (204 for
/// `HEAD`) until the file appears, then 503 `DISABLED BY FILE`, while the
/// v3 API still wants credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_answers_like_oslo_middleware_outside_auth() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = write_file(&dir.path().join("htpasswd"), "");
    let disable = dir.path().join("healthcheck_disable");
    let mut server = Server::new(
        BIN,
        &format!(
            "auth_strategy = http_basic\nhttp_basic_auth_user_file = {}",
            htpasswd.display()
        ),
        &format!(
            "{FAKE_BACKEND}[healthcheck]\nbackends = disable_by_file\ndisable_by_file_path = {}\n",
            disable.display()
        ),
    );
    server.serve.start();
    let http = clinker_runtime::http::client();
    let url = format!("http://127.0.0.1:{}/healthcheck", server.port);
    poll::until(Every::ms(50, 30), async || {
        match http.get(&url).send().await {
            Ok(resp) if resp.status().as_u16() == 200 => Ok(()),
            other => Err(format!("not serving yet: {other:?}")),
        }
    })
    .await;

    let get = reqwest::Method::GET;
    let head = reqwest::Method::HEAD;
    assert_eq!(
        fetch(&http, get.clone(), &url, None).await,
        (200, "text/plain; charset=UTF-8".into(), "OK".into())
    );
    let (status, _, body) = fetch(&http, head.clone(), &url, None).await;
    assert_eq!((status, body.as_str()), (204, ""));
    let (status, content_type, body) =
        fetch(&http, get.clone(), &url, Some("application/json")).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"detailed": false, "reasons": ["OK"]})
    );
    let (status, content_type, body) = fetch(&http, get.clone(), &url, Some("text/html")).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("<TD>OK</TD>"), "{body}");

    // The v3 API behind it still demands credentials.
    let (status, _, _) = fetch(
        &http,
        get.clone(),
        &format!("http://127.0.0.1:{}/v3/volumes", server.port),
        None,
    )
    .await;
    assert_eq!(status, 401);

    // An operator drains the node.
    std::fs::write(&disable, "").unwrap();
    assert_eq!(
        fetch(&http, get.clone(), &url, None).await,
        (
            503,
            "text/plain; charset=UTF-8".into(),
            "DISABLED BY FILE".into()
        )
    );
    let (status, _, body) = fetch(&http, head, &url, None).await;
    assert_eq!((status, body.as_str()), (503, ""));
    let (status, _, body) = fetch(&http, get.clone(), &url, Some("application/json")).await;
    assert_eq!(status, 503);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"detailed": false, "reasons": ["DISABLED BY FILE"]})
    );
    std::fs::remove_file(&disable).unwrap();
    assert_eq!(fetch(&http, get, &url, None).await.0, 200);
    assert!(server.serve.terminate().await.success());
}

/// Collects systemd notifications sent to a socket of the test's own.
struct NotifySocket {
    socket: tokio::net::UnixDatagram,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(path: &Path) -> Self {
        Self {
            socket: tokio::net::UnixDatagram::bind(path).unwrap(),
            seen: Vec::new(),
        }
    }

    /// Receives until a datagram carries the line `want`.
    async fn wait_for(&mut self, want: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !self.seen.iter().any(|line| line == want) {
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {want} from the process; got {:?}", self.seen))
                .unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.extend(text.lines().map(str::to_owned));
        }
    }
}

/// `Type=notify`: `READY=1` once the API answers, `WATCHDOG=1` pings when
/// systemd set `WATCHDOG_USEC` for this process, and `STOPPING=1` on
/// SIGTERM before the clean exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_systemd_notify_with_the_watchdog() {
    let mut server = Server::new(BIN, "", FAKE_BACKEND);
    let socket_path = server.dir.path().join("notify.sock");
    let mut notify = NotifySocket::bind(&socket_path);
    // systemd sets WATCHDOG_PID to the service's pid; `exec` keeps the
    // shell's.
    let command = format!(
        "WATCHDOG_PID=$$ exec {BIN} --config-file {} serve",
        server.config.display()
    );
    server.serve = Proc::new(
        Path::new("/bin/sh"),
        "serve",
        &[],
        &["-c", &command],
        server.dir.path(),
    )
    .env("NOTIFY_SOCKET", &socket_path.display().to_string())
    .env("WATCHDOG_USEC", "200000");
    server.serve.start();
    notify.wait_for("READY=1").await;
    // Ready means serving.
    let (status, _) = server.api.get("/").await;
    assert_eq!(status, 200);
    assert!(
        notify.seen.iter().any(|l| l.starts_with("STATUS=serving")),
        "{:?}",
        notify.seen
    );
    notify.wait_for("WATCHDOG=1").await;
    assert!(
        !notify.seen.iter().any(|l| l == "STOPPING=1"),
        "{:?}",
        notify.seen
    );
    assert!(server.serve.terminate().await.success());
    notify.wait_for("STOPPING=1").await;
}

/// The value of the sample `name{labels…}` whose labels include `want`.
fn sample(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let labels = match series.split_once('{') {
                Some((metric, labels)) if metric == name => labels.trim_end_matches('}'),
                None if series == name => "",
                _ => return None,
            };
            want.iter()
                .all(|(k, v)| labels.split(',').any(|pair| pair == format!("{k}=\"{v}\"")))
                .then(|| value.parse().ok())?
        })
}

/// Every sample of `name` as (labels, value).
fn samples<'a>(text: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = series.split_once('{')?;
            let value: f64 = value.parse().ok()?;
            (metric == name).then(|| (labels.trim_end_matches('}'), value))
        })
        .collect()
}

/// `promtool check metrics` (Prometheus's own linter) on a scrape: no
/// problem reported. Skips off CI without promtool
/// (`scripts/install-tls-test-servers.sh` installs it).
async fn assert_promtool_accepts(text: &str) {
    use clinker_exec::{Command, CommandRunner, HostRunner};
    let test = "metrics_count_what_the_workload_did (promtool)";
    if clinker_testkit::env::find_program("promtool").is_none() {
        clinker_testkit::env::unmet(
            test,
            "promtool is not installed",
            "scripts/install-tls-test-servers.sh installs Debian's prometheus package",
        );
        return;
    }
    let out = HostRunner::new()
        .run(
            &Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(text.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    assert!(
        out.success(),
        "promtool check metrics: {}{}\n{text}",
        out.stdout,
        out.stderr
    );
}

/// N creates through the API are N `202`s on the route template (no id in
/// any label), N scheduler casts, N volumes `available`, N driver
/// `create_volume`s and at least 3N committed database transactions
/// (the API's insert, the scheduler's claim, the manager's finish); a
/// manage of an object the backend does not have is one failed driver
/// operation; the file backend's pool shows its capacity, and promtool
/// finds nothing wrong with the scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_workload_did() {
    const N: usize = 5;
    let metrics_port = free_port();
    let mut server = Server::new(
        BIN,
        "",
        &format!(
            "enabled_backends = file\n[file]\nvolume_driver = file\nfile_capacity_gb = 10\n\
             [metrics]\nlisten = 127.0.0.1:{metrics_port}\n"
        ),
    );
    server.start().await;
    assert!(
        server
            .serve
            .stdout()
            .contains(&format!("metrics: http://127.0.0.1:{metrics_port}/metrics"))
    );
    let mut ids = Vec::new();
    for i in 0..N {
        let (status, id, body) = server
            .api
            .create_volume(json!({"size": 1, "name": format!("m{i}")}))
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(id.unwrap());
    }
    for id in &ids {
        server.api.wait_volume(id, |s| s == Some("available")).await;
        let (status, _) = server.api.get(&format!("/volumes/{id}")).await;
        assert_eq!(status, 200);
    }
    let pool = format!("{}@file#file", hostname());
    let (status, body) = server
        .api
        .post(
            "/os-volume-manage",
            json!({"volume": {"host": pool, "ref": {"source-name": "no-such-file"}}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let managed = body["volume"]["id"].as_str().unwrap().to_owned();
    server
        .api
        .wait_volume(&managed, |s| matches!(s, Some("error" | "error_managing")))
        .await;
    let http = clinker_runtime::http::client();
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let text = poll::until(Every::ms(250, 40), async || {
        let (status, content_type, text) = fetch(&http, reqwest::Method::GET, &url, None).await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        // The database gauges are read every 10 s.
        match sample(&text, "clinker_volumes", &[("status", "available")]) {
            Some(v) if v == N as f64 => Ok(text),
            other => Err(format!("volumes available: {other:?}")),
        }
    })
    .await;
    let n = N as f64;
    let creates = [
        ("route", "/v3/volumes"),
        ("method", "POST"),
        ("status", "202"),
    ];
    assert_eq!(
        sample(&text, "clinker_api_requests_total", &creates),
        Some(n),
        "{text}"
    );
    // Polling for `available` adds GETs of its own: at least one each.
    let gets = sample(
        &text,
        "clinker_api_requests_total",
        &[
            ("route", "/v3/volumes/{volume_id}"),
            ("method", "GET"),
            ("status", "200"),
        ],
    );
    assert!(gets.is_some_and(|g| g >= n), "{text}");
    assert_eq!(
        sample(
            &text,
            "clinker_api_request_duration_seconds_count",
            &[("route", "/v3/volumes"), ("method", "POST")]
        ),
        Some(n),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "clinker_rpc_messages_total",
            &[
                ("topic", "cinder-scheduler"),
                ("method", "create_volume"),
                ("kind", "cast"),
                ("outcome", "ok")
            ]
        ),
        Some(n),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "clinker_rpc_served_total",
            &[
                ("topic", "cinder-volume"),
                ("method", "create_volume"),
                ("outcome", "ok")
            ]
        ),
        Some(n),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "clinker_service_heartbeat_age_seconds",
            &[("binary", "cinder-volume")]
        )
        .is_some(),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "clinker_driver_operations_total",
            &[("operation", "create_volume"), ("outcome", "ok")]
        ),
        Some(n),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "clinker_driver_operation_duration_seconds_count",
            &[("operation", "create_volume")]
        ),
        Some(n),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "clinker_driver_operations_total",
            &[("operation", "get_volume_stats"), ("outcome", "ok")]
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    let manage_failures: Vec<_> = samples(&text, "clinker_driver_operations_total")
        .into_iter()
        .filter(|(labels, _)| labels.contains("operation=\"manage_existing_get_size\""))
        .collect();
    assert!(
        manage_failures.len() == 1
            && manage_failures[0].1 == 1.0
            && !manage_failures[0].0.contains("outcome=\"ok\""),
        "{manage_failures:?}"
    );
    assert!(
        sample(
            &text,
            "clinker_db_transactions_total",
            &[("outcome", "commit")]
        )
        .is_some_and(|v| v >= 3.0 * n),
        "{text}"
    );
    for pool in ["write", "read"] {
        assert!(
            sample(
                &text,
                "clinker_db_pool_wait_duration_seconds_count",
                &[("pool", pool)]
            )
            .is_some_and(|v| v >= n),
            "{text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "clinker_pool_capacity_bytes",
            &[("pool", pool.as_str()), ("kind", "total")]
        ),
        Some(10.0 * 1_073_741_824.0),
        "{text}"
    );
    // Bounded cardinality: no volume id in any label.
    for id in ids.iter().chain([&managed]) {
        assert!(!text.contains(id.as_str()), "{id} in a label:\n{text}");
    }
    assert_promtool_accepts(&text).await;
    assert!(server.serve.terminate().await.success());
}

/// The ids a JSON log line runs under (its current span and the spans
/// around it).
fn line_ids(line: &Value, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = line["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&line["span"]))
        .filter_map(|span| span[field].as_str().map(str::to_owned))
        .collect();
    ids.dedup();
    ids
}

/// Multi-node over RabbitMQ with JSON logs: one create's `request_id`
/// (and the caller's `X-OpenStack-Request-ID` as `global_request_id`)
/// appears in the API's, the scheduler's and the volume service's log
/// lines; the broker password and the other configured secrets appear in
/// none of them, even at debug level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_follows_a_create_through_every_process() {
    let Some(pg) = TestDatabase::open(Engine::Postgres).await else {
        return;
    };
    let Some(vhost) = Vhost::create("tracing") else {
        return;
    };
    let broker_password = format!("brk{}", uuid::Uuid::new_v4().simple());
    let keystone_password = format!("ks{}", uuid::Uuid::new_v4().simple());
    let s3_secret = format!("s3{}", uuid::Uuid::new_v4().simple());
    let user = vhost
        .user("tracer", &broker_password)
        .expect("rabbitmqctl adds a user");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _logs = LogsOnFailure(d.to_path_buf());
    let port = free_port();
    let common = write_file(
        &d.join("common.conf"),
        &format!(
            "[DEFAULT]\ntransport_url = {transport}\nstate_path = {state}\nuse_json = true\ndebug = true\n\
             report_interval = 1\nperiodic_fuzzy_delay = 0\nrpc_response_timeout = 10\n\
             backup_s3_store_secret_key = {s3_secret}\n\
             [database]\nconnection = {url}\n\
             [keystone_authtoken]\nusername = cinder\npassword = {keystone_password}\n",
            transport = user.transport_url,
            state = d.display(),
            url = pg.url
        ),
    );
    let api_conf = write_file(
        &d.join("api.conf"),
        &format!("[DEFAULT]\nhost = api1\nosapi_volume_listen_port = {port}\n"),
    );
    let sched_conf = write_file(&d.join("sched.conf"), "[DEFAULT]\nhost = sched1\n");
    let node_conf = write_file(
        &d.join("node.conf"),
        &format!(
            "[DEFAULT]\nhost = node1\nenabled_backends = file\n[file]\nvolume_driver = file\n\
             file_volumes_dir = {}/node1\nfile_capacity_gb = 10\n",
            d.display()
        ),
    );
    let proc = |name: &str, config: &Path, role: &str| {
        Proc::new(Path::new(BIN), name, &[&common, config], &[role], d)
    };
    let mut procs = [
        proc("volume", &node_conf, "volume"),
        proc("scheduler", &sched_conf, "scheduler"),
        proc("api", &api_conf, "api"),
    ];
    for p in &mut procs {
        p.start();
    }
    let api = Api::new(format!("http://127.0.0.1:{port}/v3"));
    api.wait_ready(Every::ms(100, 60)).await;
    api.wait_services(
        Every::ms(200, 60),
        &[("node1@file", "state", "up"), ("sched1", "state", "up")],
    )
    .await;
    // The scheduler knows the backend once it reported.
    let global = format!("req-{}", uuid::Uuid::new_v4());
    let (request_id, volume_id) = poll::until(Every::ms(500, 60), async || {
        let resp = api
            .http
            .post(format!("{}/volumes", api.base))
            .header("X-OpenStack-Request-ID", &global)
            .json(&json!({"volume": {"size": 1, "name": "traced"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        let request_id = resp.headers()["x-openstack-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = resp.json().await.unwrap();
        let id = body["volume"]["id"].as_str().unwrap().to_owned();
        let volume = api
            .wait_volume(&id, |s| matches!(s, Some("available" | "error")))
            .await;
        if volume["status"] == "available" {
            Ok((request_id, id))
        } else {
            api.delete(&format!("/volumes/{id}")).await;
            Err(format!("create went to error: {volume}"))
        }
    })
    .await;
    assert_ne!(request_id, global, "the request gets its own id");
    for p in &mut procs {
        assert!(p.terminate().await.success());
    }

    for p in &procs {
        let log = p.log();
        let mut lines = 0;
        let mut with_request = Vec::new();
        for text in log.lines() {
            let line: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {text}"));
            lines += 1;
            if line_ids(&line, "request_id").contains(&request_id) {
                with_request.push(line);
            }
        }
        assert!(lines > 0);
        assert!(
            !with_request.is_empty(),
            "no line of {:?} carries {request_id}",
            p
        );
        assert!(
            with_request
                .iter()
                .all(|line| line_ids(line, "global_request_id") == [global.clone()]),
            "{with_request:#?}"
        );
        for secret in [&broker_password, &keystone_password, &s3_secret] {
            assert!(!log.contains(secret.as_str()), "a secret in {p:?}'s log");
            assert!(!p.stdout().contains(secret.as_str()));
        }
    }
    let volume_log = procs[0].log();
    assert!(
        volume_log.contains("created volume successfully") && volume_log.contains(&volume_id),
        "the volume service logs the create"
    );
}

/// `[ssl] cert_file` / `key_file`: the API speaks HTTPS with the
/// configured certificate; a client that trusts the CA creates a volume,
/// one that does not is refused, and plain HTTP gets no API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_https_with_the_configured_certificate() {
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new(pki.path(), "clinker-test");
    let cert = ca.issue("api", &["127.0.0.1", "localhost"]);
    let mut server = Server::new(
        BIN,
        "",
        &format!(
            "{FAKE_BACKEND}[ssl]\ncert_file = {}\nkey_file = {}\n",
            cert.cert_file.display(),
            cert.key_file.display()
        ),
    );
    let base = format!("https://127.0.0.1:{}/v3", server.port);
    server.api = Api::new(base.clone());
    server.api.http = ca.client(None);
    server.start().await;
    assert!(
        server.serve.stdout().contains(&base),
        "{}",
        server.serve.stdout()
    );
    let id = server.api.available_volume(json!({"size": 1})).await;
    assert!(!id.is_empty());
    // ALPN: HTTP/2 for a client that offers it.
    let version = server
        .api
        .http
        .get(format!("{base}/volumes/{id}"))
        .send()
        .await
        .unwrap()
        .version();
    assert_eq!(version, reqwest::Version::HTTP_2);
    // Links name the scheme the client used: a client that follows the
    // version document's links (keystoneauth's discovery) stays on HTTPS.
    let (status, versions) = server.api.get("/").await;
    assert_eq!(status, 200);
    let text = versions.to_string();
    assert!(
        text.contains(&format!("https://127.0.0.1:{}/v3", server.port))
            && !text.contains("http://"),
        "{text}"
    );

    let stranger = TestCa::new(pki.path(), "stranger");
    let refused = stranger.client(None).get(format!("{base}/")).send().await;
    let error = format!("{:?}", refused.expect_err("a CA the client does not trust"));
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    let plain = clinker_runtime::http::client()
        .get(format!("http://127.0.0.1:{}/v3/", server.port))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.as_ref().unwrap().status().is_success(),
        "plain HTTP was served: {plain:?}"
    );
    // The server shrugged those off.
    assert_eq!(server.api.get("/").await.0, 200);
    assert!(server.serve.terminate().await.success());
}

/// `[ssl] ca_file`: clients must present a certificate signed by it; a
/// certificate file that cannot be read stops start-up naming the option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_ca_file_requires_client_certificates_and_bad_files_stop_start_up() {
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new(pki.path(), "clinker-test");
    let cert = ca.issue("api", &["127.0.0.1"]);
    let client_cert = ca.issue("client", &["operator"]);
    let mut server = Server::new(
        BIN,
        "",
        &format!(
            "{FAKE_BACKEND}[ssl]\ncert_file = {}\nkey_file = {}\nca_file = {}\n",
            cert.cert_file.display(),
            cert.key_file.display(),
            ca.ca_file.display()
        ),
    );
    let base = format!("https://127.0.0.1:{}/v3", server.port);
    server.api = Api::new(base.clone());
    server.api.http = ca.client(Some(&client_cert));
    server.start().await;
    let anonymous = ca.client(None).get(format!("{base}/")).send().await;
    assert!(
        anonymous.is_err() || !anonymous.as_ref().unwrap().status().is_success(),
        "served without a client certificate: {anonymous:?}"
    );
    assert_eq!(server.api.get("/").await.0, 200);
    assert!(server.serve.terminate().await.success());

    let missing = pki.path().join("missing.pem");
    let bad = write_file(
        &pki.path().join("bad.conf"),
        &format!(
            "[DEFAULT]\nstate_path = {}\nosapi_volume_listen_port = {}\n{FAKE_BACKEND}\
             [ssl]\ncert_file = {}\nkey_file = {}\n",
            pki.path().display(),
            free_port(),
            missing.display(),
            cert.key_file.display()
        ),
    );
    let output = clinker_testkit::process::run(Path::new(BIN), &[&bad], &["serve"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[ssl] cert_file") && stderr.contains("missing.pem"),
        "{stderr}"
    );
}

/// `clinker manage config sample` lists every option with its default;
/// `config check` validates a file set without starting anything, warns
/// about unknown options and names the bad value — without printing a
/// password it was given.
#[tokio::test]
async fn manage_config_sample_and_check() {
    let bin = Path::new(BIN);
    let sample = clinker_testkit::process::run(bin, &[], &["manage", "config", "sample"]).await;
    assert!(sample.status.success());
    let text = String::from_utf8(sample.stdout).unwrap();
    for want in [
        "\n[DEFAULT]\n",
        "#osapi_volume_listen_port = 8776\n",
        "#report_interval = 10\n",
        "\n[healthcheck]\n#disable_by_file_path =\n",
        "\n[metrics]\n#listen =\n",
        "\n[ssl]\n",
        "#cert_file =\n",
        "\n[keystone_authtoken]\n",
        "#cafile =\n",
        "\n[lvm]\n",
        "\n[rbd]\n",
    ] {
        assert!(text.contains(want), "{want:?} not in the sample:\n{text}");
    }

    let dir = tempfile::tempdir().unwrap();
    let secret = format!("pw{}", uuid::Uuid::new_v4().simple());
    let good = write_file(
        &dir.path().join("good.conf"),
        &format!(
            "[DEFAULT]\nstate_path = {}\ntransport_url = rabbit://cinder:{secret}@mq:5672/\n\
             frobnicate = 1\n{FAKE_BACKEND}[database]\nconnection = postgresql://cinder:{secret}@db/cinder\n",
            dir.path().display()
        ),
    );
    let check = clinker_testkit::process::run(bin, &[&good], &["manage", "config", "check"]).await;
    let stdout = String::from_utf8_lossy(&check.stdout);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(stdout.contains("frobnicate"), "{stdout}");
    assert!(!stdout.contains(&secret) && !stderr.contains(&secret));

    let bad = write_file(
        &dir.path().join("bad.conf"),
        "[DEFAULT]\nosapi_volume_listen_port = many\n",
    );
    let check =
        clinker_testkit::process::run(bin, &[&good, &bad], &["manage", "config", "check"]).await;
    assert!(!check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("osapi_volume_listen_port") && stderr.contains("many"),
        "{stderr}"
    );
}
