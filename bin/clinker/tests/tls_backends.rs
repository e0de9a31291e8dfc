//! TLS towards Clinker's backing services, against real servers the tests
//! start for themselves (`clinker_testkit::tls_servers`): a RabbitMQ node
//! whose only listener is TLS and which wants client certificates, a
//! PostgreSQL cluster that rejects plain-text TCP, a MariaDB with
//! `require_secure_transport`, all with certificates from a throw-away CA.
//! The servers' own views (`rabbitmqctl list_connections ssl`,
//! `pg_stat_ssl`, MariaDB's TLS counters) show that Clinker's connections
//! are encrypted; an untrusted CA is a start-up error naming the peer.
//! Keystone behind TLS (`clinker_testkit::keystone`) validates tokens with
//! `[keystone_authtoken] cafile` or `insecure`, and refuses a wrong CA.
//!
//! Off CI the tests skip with a message when a server's programs are
//! missing (`scripts/install-tls-test-servers.sh`, `scripts/keystone.sh
//! install`); under `CI=true` they fail instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;

use clinker_config::{RabbitSslOptions, TlsVersion};
use clinker_rpc::amqp::{AmqpOptions, AmqpTransport};
use clinker_testkit::http::Api;
use clinker_testkit::keystone::Keystone;
use clinker_testkit::poll::Every;
use clinker_testkit::process::{LogsOnFailure, Proc, Server, free_port, run, write_file};
use clinker_testkit::tls::{Issued, TestCa};
use clinker_testkit::tls_servers::{TlsMariadb, TlsPostgres, TlsRabbit};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_clinker");

/// A CA, a second CA nobody trusts, and certificates for the servers
/// (127.0.0.1 and localhost) and for Clinker as a client.
struct Pki {
    ca: TestCa,
    stranger: TestCa,
    server: Issued,
    client: Issued,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        let ca = TestCa::new(dir, "clinker-test");
        let stranger = TestCa::new(dir, "stranger");
        let server = ca.issue("server", &["127.0.0.1", "localhost"]);
        let client = ca.issue("client", &["clinker"]);
        Self {
            ca,
            stranger,
            server,
            client,
        }
    }

    fn rabbit_ssl(&self, ca: &TestCa, client: bool, version: TlsVersion) -> RabbitSslOptions {
        RabbitSslOptions {
            enabled: false,
            ca_file: Some(ca.ca_file.clone()),
            cert_file: client.then(|| self.client.cert_file.clone()),
            key_file: client.then(|| self.client.key_file.clone()),
            version,
        }
    }
}

fn amqp(url: String, name: &str, ssl: RabbitSslOptions) -> AmqpOptions {
    let mut options = AmqpOptions::new(url);
    options.connection_name = name.to_owned();
    options.ssl = ssl;
    options
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `amqps://`, `?ssl=1` and `[oslo_messaging_rabbit] ssl` reach a TLS-only
/// broker with a client certificate; the broker lists the connections as
/// TLS. An untrusted CA, a missing client certificate and a plain-text
/// URL all fail to connect, the first naming the broker and the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_over_tls_verifies_the_broker_and_presents_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let Some(broker) =
        TlsRabbit::start("rabbitmq_over_tls", dir.path(), &pki.ca, &pki.server, true)
    else {
        return;
    };
    let port = broker.port;

    let by_scheme = AmqpTransport::connect(amqp(
        broker.url(""),
        "tls-by-scheme",
        pki.rabbit_ssl(&pki.ca, true, TlsVersion::Negotiate),
    ))
    .await
    .unwrap();
    let by_query = AmqpTransport::connect(amqp(
        format!("rabbit://guest:guest@127.0.0.1:{port}/?ssl=1"),
        "tls-by-query",
        pki.rabbit_ssl(&pki.ca, true, TlsVersion::Tls12),
    ))
    .await
    .unwrap();
    let mut by_option = pki.rabbit_ssl(&pki.ca, true, TlsVersion::Tls13);
    by_option.enabled = true;
    let by_option = AmqpTransport::connect(amqp(
        format!("rabbit://guest:guest@127.0.0.1:{port}/"),
        "tls-by-option",
        by_option,
    ))
    .await
    .unwrap();

    let connections = broker.connections();
    for (name, version) in [
        ("tls-by-scheme", None),
        ("tls-by-query", Some("tlsv1.2")),
        ("tls-by-option", Some("tlsv1.3")),
    ] {
        let (_, ssl, protocol) = connections
            .iter()
            .find(|(n, _, _)| n.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in {connections:?}"));
        assert!(*ssl, "{name} is not TLS: {connections:?}");
        if let Some(version) = version {
            assert_eq!(protocol, version, "ssl_version of {name}");
        }
    }
    assert!(
        connections.iter().all(|(_, ssl, _)| *ssl),
        "a plain-text connection: {connections:?}"
    );
    drop((by_scheme, by_query, by_option));

    let untrusted = AmqpTransport::connect(amqp(
        broker.url(""),
        "untrusted",
        pki.rabbit_ssl(&pki.stranger, true, TlsVersion::Negotiate),
    ))
    .await
    .expect_err("a broker whose CA is not trusted");
    let message = untrusted.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{port}")) && message.contains("UnknownIssuer"),
        "{message}"
    );
    assert!(
        message.contains("TLS handshake with the message broker"),
        "{message}"
    );

    // The broker wants a client certificate.
    let anonymous = AmqpTransport::connect(amqp(
        broker.url(""),
        "anonymous",
        pki.rabbit_ssl(&pki.ca, false, TlsVersion::Negotiate),
    ))
    .await;
    assert!(anonymous.is_err(), "connected without a client certificate");

    // Plain text to the TLS listener is no connection, never a downgrade.
    let plain = AmqpTransport::connect(amqp(
        format!("rabbit://guest:guest@127.0.0.1:{port}/?ssl=0"),
        "plain",
        pki.rabbit_ssl(&pki.ca, true, TlsVersion::Negotiate),
    ))
    .await;
    assert!(plain.is_err(), "a plain-text connection to a TLS listener");

    // An unusable file is named at start-up, before any connection.
    let mut missing = pki.rabbit_ssl(&pki.ca, true, TlsVersion::Negotiate);
    missing.ca_file = Some(dir.path().join("no-such-ca.pem"));
    let refused = AmqpTransport::connect(amqp(broker.url(""), "missing", missing))
        .await
        .expect_err("a missing ssl_ca_file");
    assert!(
        refused.to_string().contains("ssl_ca_file") && refused.to_string().contains("no-such-ca"),
        "{refused}"
    );
}

/// The multi-node deployment with TLS on every hop: the API over HTTPS,
/// the services over AMQPS (client certificates), PostgreSQL with
/// `sslmode=verify-full`. A volume is created through it; RabbitMQ and
/// PostgreSQL list only TLS connections. A wrong CA for the database, or
/// plain text, stops `manage db sync` with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_node_over_tls_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _logs = LogsOnFailure(d.to_path_buf());
    let pki = Pki::new(d);
    let Some(broker) = TlsRabbit::start("multi_node_over_tls", d, &pki.ca, &pki.server, true)
    else {
        return;
    };
    let Some(postgres) = TlsPostgres::start("multi_node_over_tls", d, &pki.server) else {
        return;
    };
    let ca = pki.ca.ca_file.display().to_string();
    let db_url = postgres.url(&format!("sslmode=verify-full&sslrootcert={ca}"));
    let port = free_port();
    let api_cert = pki.ca.issue("api", &["127.0.0.1"]);
    let common = write_file(
        &d.join("common.conf"),
        &format!(
            "[DEFAULT]\ntransport_url = {transport}\nstate_path = {state}\n\
             report_interval = 1\nperiodic_fuzzy_delay = 0\n\
             [oslo_messaging_rabbit]\nssl_ca_file = {ca}\nssl_cert_file = {cert}\nssl_key_file = {key}\n\
             [database]\nconnection = {db_url}\n",
            transport = broker.url(""),
            state = d.display(),
            cert = pki.client.cert_file.display(),
            key = pki.client.key_file.display(),
        ),
    );
    let sync = run(Path::new(BIN), &[&common], &["manage", "db", "sync"]).await;
    assert!(sync.status.success(), "db sync: {}", stderr(&sync));

    let api_conf = write_file(
        &d.join("api.conf"),
        &format!(
            "[DEFAULT]\nhost = api1\nosapi_volume_listen_port = {port}\n\
             [ssl]\ncert_file = {}\nkey_file = {}\n",
            api_cert.cert_file.display(),
            api_cert.key_file.display()
        ),
    );
    let sched = write_file(&d.join("sched.conf"), "[DEFAULT]\nhost = sched1\n");
    let node = write_file(
        &d.join("node.conf"),
        &format!(
            "[DEFAULT]\nhost = node1\nenabled_backends = file\n[file]\nvolume_driver = file\n\
             file_volumes_dir = {}/node1\n",
            d.display()
        ),
    );
    let mut procs = [
        Proc::new(Path::new(BIN), "node1", &[&common, &node], &["volume"], d),
        Proc::new(
            Path::new(BIN),
            "sched1",
            &[&common, &sched],
            &["scheduler"],
            d,
        ),
        Proc::new(Path::new(BIN), "api", &[&common, &api_conf], &["api"], d),
    ];
    for p in &mut procs {
        p.start();
    }
    let mut api = Api::new(format!("https://127.0.0.1:{port}/v3"));
    api.http = pki.ca.client(None);
    api.wait_ready(Every::ms(100, 30)).await;
    api.wait_services(
        Every::ms(200, 30),
        &[("node1@file", "state", "up"), ("sched1", "state", "up")],
    )
    .await;
    let id = api
        .available_volume(json!({"size": 1, "name": "over-tls"}))
        .await;

    let connections = broker.connections();
    for role in [
        "clinker-api@api1",
        "clinker-scheduler@sched1",
        "clinker-volume@node1",
    ] {
        assert!(
            connections
                .iter()
                .any(|(name, _, _)| name.starts_with(role)),
            "{role} has no broker connection: {connections:?}"
        );
    }
    assert!(
        connections.iter().all(|(_, ssl, _)| *ssl),
        "a plain-text broker connection: {connections:?}"
    );
    let sessions = postgres.clinker_connections();
    assert!(!sessions.is_empty(), "no database connection seen");
    assert!(
        sessions
            .iter()
            .all(|(ssl, version)| *ssl && version.starts_with("TLSv1.")),
        "a plain-text database connection: {sessions:?}"
    );

    let (status, _) = api.delete(&format!("/volumes/{id}")).await;
    assert_eq!(status, 202);
    api.wait_gone(&format!("/volumes/{id}")).await;
    for p in procs.iter_mut().rev() {
        assert!(p.terminate().await.success());
    }

    // A CA that did not sign the server's certificate, and plain text.
    let stranger = pki.stranger.ca_file.display().to_string();
    for (query, expect) in [
        (
            format!("sslmode=verify-full&sslrootcert={stranger}"),
            "UnknownIssuer",
        ),
        ("sslmode=disable".to_owned(), "no encryption"),
    ] {
        let conf = write_file(
            &d.join("wrong.conf"),
            &format!("[database]\nconnection = {}\n", postgres.url(&query)),
        );
        let refused = run(
            Path::new(BIN),
            &[&common, &conf],
            &["manage", "db", "version"],
        )
        .await;
        let message = stderr(&refused);
        assert!(!refused.status.success(), "{query}: {message}");
        assert!(
            message.contains(&format!("127.0.0.1:{}", postgres.port)) && message.contains(expect),
            "{query}: {message}"
        );
    }

    // The same for the broker: a role refuses to start.
    let conf = write_file(
        &d.join("wrong-broker.conf"),
        &format!("[oslo_messaging_rabbit]\nssl_ca_file = {stranger}\n"),
    );
    let missing = write_file(
        &d.join("missing-ca.conf"),
        &format!(
            "[oslo_messaging_rabbit]\nssl_ca_file = {}/no-such-ca.pem\n",
            d.display()
        ),
    );
    let check = run(
        Path::new(BIN),
        &[&common, &sched, &missing],
        &["manage", "config", "check"],
    )
    .await;
    assert!(!check.status.success());
    assert!(
        stderr(&check).contains("ssl_ca_file") && stderr(&check).contains("no-such-ca.pem"),
        "{}",
        stderr(&check)
    );
    let refused = run(Path::new(BIN), &[&common, &sched, &conf], &["scheduler"]).await;
    let message = stderr(&refused);
    assert!(!refused.status.success(), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", broker.port))
            && message.contains("UnknownIssuer"),
        "{message}"
    );
}

/// MariaDB with TLS required: oslo.db's `mysql+pymysql://…?ssl_ca=…`
/// (verified certificate and host name) and a client certificate work
/// with `clinker serve`; every connection Clinker opened was a TLS one;
/// a wrong CA and plain text are start-up errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _logs = LogsOnFailure(d.to_path_buf());
    let pki = Pki::new(d);
    let Some(mariadb) = TlsMariadb::start("mariadb_over_tls", d, &pki.ca, &pki.server) else {
        return;
    };
    let ca = pki.ca.ca_file.display().to_string();
    let url = mariadb.url(&format!(
        "charset=utf8&ssl_ca={ca}&ssl_cert={}&ssl_key={}",
        pki.client.cert_file.display(),
        pki.client.key_file.display()
    ));
    let port = free_port();
    let conf = write_file(
        &d.join("clinker.conf"),
        &format!(
            "[DEFAULT]\nstate_path = {}\nosapi_volume_listen_port = {port}\nperiodic_fuzzy_delay = 0\n\
             [metrics]\nlisten =\n[database]\nconnection = {url}\n",
            d.display()
        ),
    );
    let handshakes_before = mariadb.status("Ssl_finished_accepts");
    let sync = run(Path::new(BIN), &[&conf], &["manage", "db", "sync"]).await;
    assert!(sync.status.success(), "db sync: {}", stderr(&sync));
    let mut serve = Proc::new(Path::new(BIN), "serve", &[&conf], &["serve"], d);
    serve.start();
    let api = Api::new(format!("http://127.0.0.1:{port}/v3"));
    api.wait_ready(Every::ms(100, 30)).await;
    let id = api.available_volume(json!({"size": 1})).await;
    assert!(!id.is_empty());
    // The server refuses plain text (require_secure_transport) and the
    // user must use TLS (REQUIRE SSL): Clinker's sessions are all TLS,
    // and each of them completed a TLS handshake.
    let handshakes = mariadb.status("Ssl_finished_accepts") - handshakes_before;
    let sessions =
        mariadb.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'clinker'");
    let open: u64 = String::from_utf8_lossy(&sessions.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(open >= 1, "no Clinker session open");
    assert!(
        handshakes >= open,
        "{open} sessions, {handshakes} TLS handshakes"
    );
    assert!(serve.terminate().await.success());

    let stranger = pki.stranger.ca_file.display().to_string();
    // Plain text is refused by the server (REQUIRE SSL answers it with
    // "Access denied", require_secure_transport with its own message).
    for (query, expect) in [
        (format!("ssl_ca={stranger}"), "UnknownIssuer"),
        (String::new(), "Access denied"),
    ] {
        let wrong = write_file(
            &d.join("wrong.conf"),
            &format!("[database]\nconnection = {}\n", mariadb.url(&query)),
        );
        let refused = run(
            Path::new(BIN),
            &[&conf, &wrong],
            &["manage", "db", "version"],
        )
        .await;
        let message = stderr(&refused);
        assert!(!refused.status.success(), "{query}: {message}");
        assert!(
            message.contains(&format!("127.0.0.1:{}", mariadb.port)) && message.contains(expect),
            "{query}: {message}"
        );
    }
}

/// An all-in-one Clinker with `auth_strategy = keystone` against
/// `keystone`, `extra` added to its `[keystone_authtoken]`.
async fn clinker_with_keystone(keystone: &Keystone, extra: &str) -> Server {
    let mut server = Server::new(
        BIN,
        "auth_strategy = keystone",
        &format!(
            "enabled_backends = fake\n[fake]\nvolume_driver = fake\n{}",
            keystone.authtoken(extra)
        ),
    );
    server.serve.start();
    // `/v3/` wants a token here: any answer means the API is up.
    clinker_testkit::poll::until(Every::ms(50, 30), async || {
        match server.api.get("/").await {
            (0, body) => Err(format!("not serving yet: {body}")),
            _ => Ok(()),
        }
    })
    .await;
    server
}

/// Keystone behind TLS (gunicorn's `certfile`/`keyfile`, through
/// `scripts/keystone.sh`): with `[keystone_authtoken] cafile` naming the
/// CA, Clinker validates a user's token over HTTPS; with a CA that did not
/// sign Keystone's certificate every request is Cinder's 503 envelope, the
/// log names Keystone's URL and the certificate problem, and Keystone
/// answers nothing meanwhile (no plain-text fallback); `insecure = true`
/// validates without any CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_over_https_with_cafile_a_wrong_ca_and_insecure() {
    let test = "keystone_over_https_with_cafile_a_wrong_ca_and_insecure";
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let Some(keystone) = Keystone::start(
        test,
        &dir.path().join("keystone"),
        Some((&pki.server, &pki.ca)),
    ) else {
        return;
    };
    assert!(keystone.url.starts_with("https://"), "{}", keystone.url);
    let (token, project) = keystone.token(&pki.ca.client(None), "demo", "demo").await;
    let volumes = format!("/{project}/volumes");

    let mut trusted =
        clinker_with_keystone(&keystone, &format!("cafile = {}", pki.ca.ca_file.display())).await;
    let (status, body) = trusted.api.as_token(&token).get(&volumes).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"volumes": []}));
    let (status, _) = trusted.api.as_token("not-a-token").get(&volumes).await;
    assert_eq!(status, 401);
    assert!(trusted.serve.terminate().await.success());

    let mut stranger = clinker_with_keystone(
        &keystone,
        &format!("cafile = {}", pki.stranger.ca_file.display()),
    )
    .await;
    let answered = keystone.requests_answered();
    let (status, body) = stranger.api.as_token(&token).get(&volumes).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({"serviceUnavailable": {
            "code": 503,
            "message": clinker_api::auth::keystone::KEYSTONE_UNAVAILABLE,
        }})
    );
    assert_eq!(
        keystone.requests_answered(),
        answered,
        "Keystone answered a request from a client that does not trust it"
    );
    assert!(stranger.serve.terminate().await.success());
    let log = stranger.serve.log();
    let line = log
        .lines()
        .find(|l| l.contains("cannot validate a token with keystone"))
        .unwrap_or_else(|| panic!("no error logged:\n{log}"));
    assert!(
        line.contains(&format!("{}/v3/auth/tokens", keystone.url))
            && line.to_lowercase().contains("certificate"),
        "{line}"
    );
    assert!(!log.contains(&token) && !log.contains(&keystone.password));

    let mut insecure = clinker_with_keystone(&keystone, "insecure = true").await;
    let (status, body) = insecure.api.as_token(&token).get(&volumes).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        insecure.serve.log().contains("insecure = true"),
        "insecure is warned about"
    );
    assert!(insecure.serve.terminate().await.success());
}
