//! Servers a test owns, with TLS on, for the TLS tests: a second RabbitMQ
//! node with only a TLS listener, a PostgreSQL cluster that refuses
//! plain-text TCP, and a MariaDB server with `require_secure_transport`.
//! Each runs from a temporary directory on ports of its own, with
//! certificates from a [`TestCa`], and is stopped when dropped; the
//! machine's shared servers are never touched.
//!
//! `start` returns `None` (after printing why) when the server's programs
//! are missing, except under `CI=true`, where that fails the test
//! (`scripts/install-tls-test-servers.sh` installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::env::{find_program, unmet};
use crate::process::free_port;
use crate::tls::{Issued, TestCa};

const HINT: &str = "scripts/install-tls-test-servers.sh";

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap()
}

fn check(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} not ready after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The first of `candidates` that exists, else `program` from `PATH`.
fn program(candidates: &[&str], program: &str) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| find_program(program))
}

pub(crate) fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}", nanos ^ (u128::from(std::process::id()) << 64))
}

/// A RabbitMQ node of the test's own (`clinker-tls-…@localhost`) whose only
/// AMQP listener is TLS on [`TlsRabbit::port`], user `guest`/`guest`.
#[derive(Debug)]
pub struct TlsRabbit {
    /// The TLS listener's port on 127.0.0.1.
    pub port: u16,
    node: String,
    dir: PathBuf,
    ctl: PathBuf,
}

impl TlsRabbit {
    /// Starts the node with `server`'s certificate; with
    /// `require_client_cert` it refuses clients without a certificate from
    /// `ca`.
    ///
    /// # Panics
    /// When the node does not come up within 90 s.
    pub fn start(
        test: &str,
        dir: &Path,
        ca: &TestCa,
        server: &Issued,
        require_client_cert: bool,
    ) -> Option<Self> {
        // Debian's /usr/sbin wrappers switch to the rabbitmq user and drop
        // the environment; the scripts under /usr/lib/rabbitmq/bin keep it.
        let server_bin = program(
            &["/usr/lib/rabbitmq/bin/rabbitmq-server"],
            "rabbitmq-server",
        );
        let ctl = program(&["/usr/lib/rabbitmq/bin/rabbitmqctl"], "rabbitmqctl");
        let (Some(server_bin), Some(ctl)) = (server_bin, ctl) else {
            unmet(test, "rabbitmq-server is not installed", HINT);
            return None;
        };
        let dir = dir.join("rabbitmq");
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let cookie = home.join(".erlang.cookie");
        std::fs::write(&cookie, format!("CLINKERTLS{}", random_suffix())).unwrap();
        std::fs::set_permissions(&cookie, std::os::unix::fs::PermissionsExt::from_mode(0o400))
            .unwrap();
        let port = free_port();
        let config = dir.join("rabbitmq.conf");
        std::fs::write(
            &config,
            format!(
                "listeners.tcp = none\n\
                 listeners.ssl.default = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_peer\n\
                 ssl_options.fail_if_no_peer_cert = {require_client_cert}\n\
                 log.console = false\n",
                ca.ca_file.display(),
                server.cert_file.display(),
                server.key_file.display(),
            ),
        )
        .unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.join("rabbitmq-env.conf"), "").unwrap();
        let node = format!("clinker-tls-{}@localhost", random_suffix());
        let this = Self {
            port,
            node,
            dir,
            ctl,
        };
        let started = run(this
            .env(&mut Command::new(&server_bin))
            .env("RABBITMQ_NODE_PORT", free_port().to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", this.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", this.dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", &config)
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                this.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_PID_FILE", this.dir.join("pid"))
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .arg("-detached"));
        check("rabbitmq-server -detached", &started);
        wait_until("the test RabbitMQ node", Duration::from_secs(90), || {
            this.ctl(&["await_startup", "--timeout", "5"])
                .status
                .success()
        });
        Some(this)
    }

    fn env<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env("HOME", self.dir.join("home"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("rabbitmq-env.conf"))
    }

    /// `rabbitmqctl -n <node> -q args`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        run(self
            .env(&mut Command::new(&self.ctl))
            .args(["-n", &self.node, "-q"])
            .args(args))
    }

    /// `amqps://guest:guest@127.0.0.1:<port>/` with `query` appended.
    pub fn url(&self, query: &str) -> String {
        format!("amqps://guest:guest@127.0.0.1:{}/{query}", self.port)
    }

    /// Each client connection as the broker sees it: the name the client
    /// gave, whether it is TLS, and the TLS version (`rabbitmqctl
    /// list_connections client_properties ssl ssl_protocol`).
    pub fn connections(&self) -> Vec<(String, bool, String)> {
        let listed = self.ctl(&[
            "list_connections",
            "client_properties",
            "ssl",
            "ssl_protocol",
            "--formatter",
            "json",
        ]);
        check("rabbitmqctl list_connections", &listed);
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(&listed.stdout).unwrap_or_default();
        rows.iter()
            .map(|row| {
                let properties = &row["client_properties"];
                // A list of [name, type, value] triples, or an object.
                let name = properties
                    .as_array()
                    .and_then(|triples| {
                        triples.iter().find_map(|t| {
                            let t = t.as_array()?;
                            (t.first()?.as_str()? == "connection_name")
                                .then(|| t.last()?.as_str().map(str::to_owned))?
                        })
                    })
                    .or_else(|| properties["connection_name"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let protocol = match &row["ssl_protocol"] {
                    serde_json::Value::String(p) => p.clone(),
                    other => other.to_string(),
                };
                (name, row["ssl"] == serde_json::Value::Bool(true), protocol)
            })
            .collect()
    }
}

impl Drop for TlsRabbit {
    fn drop(&mut self) {
        let pid = self.dir.join("pid");
        let _ = self.ctl(&["stop", &pid.display().to_string()]);
    }
}

/// The uid and gid of a system user (`postgres`), from `id`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// A PostgreSQL cluster of the test's own: TCP on 127.0.0.1 only with TLS
/// (`hostssl` trusted, `hostnossl` rejected), a Unix socket for the test's
/// own `psql`, database `clinker`.
#[derive(Debug)]
pub struct TlsPostgres {
    /// The port.
    pub port: u16,
    data: PathBuf,
    socket_dir: PathBuf,
    bin: PathBuf,
}

impl TlsPostgres {
    /// initdb, `ssl = on` with `server`'s certificate, start, create the
    /// `clinker` database.
    ///
    /// # Panics
    /// When a step fails.
    pub fn start(test: &str, dir: &Path, server: &Issued) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(Result::ok)
                    .map(|v| v.path().join("bin"))
                    .filter(|b| b.join("initdb").is_file())
                    .max()
            })
            .or_else(|| find_program("initdb").and_then(|p| p.parent().map(Path::to_path_buf)));
        let Some(bin) = bin else {
            unmet(test, "PostgreSQL's initdb is not installed", HINT);
            return None;
        };
        let Some((uid, gid)) = user_ids("postgres") else {
            unmet(test, "there is no postgres user to run PostgreSQL as", HINT);
            return None;
        };
        let root = dir.join("postgres");
        let data = root.join("data");
        std::fs::create_dir_all(&root).unwrap();
        // The server refuses to run as root and wants its key private.
        let key = root.join("server.key");
        let cert = root.join("server.pem");
        std::fs::copy(&server.key_file, &key).unwrap();
        std::fs::copy(&server.cert_file, &cert).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        for path in [&root, &key, &cert] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
        for parent in dir.ancestors() {
            let _ = std::fs::set_permissions(
                parent,
                std::os::unix::fs::PermissionsExt::from_mode(
                    std::fs::metadata(parent).map_or(0o755, |m| {
                        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) | 0o711
                    }),
                ),
            );
            if parent == Path::new("/tmp") || parent == Path::new("/") {
                break;
            }
        }
        let port = free_port();
        let this = Self {
            port,
            data: data.clone(),
            socket_dir: root.clone(),
            bin,
        };
        check(
            "initdb",
            &this.as_postgres(
                "initdb",
                &[
                    "-D",
                    &data.display().to_string(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                ],
            ),
        );
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(
            &mut conf,
            format!(
                "\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
                 unix_socket_directories = '{}'\nssl = on\n\
                 ssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n",
                root.display(),
                cert.display(),
                key.display()
            )
            .as_bytes(),
        )
        .unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostnossl all all 0.0.0.0/0 reject\n\
             hostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        check(
            "pg_ctl start",
            &this.as_postgres(
                "pg_ctl",
                &[
                    "-D",
                    &data.display().to_string(),
                    "-l",
                    &root.join("server.log").display().to_string(),
                    "-w",
                    "start",
                ],
            ),
        );
        check("create database", &this.psql("CREATE DATABASE clinker"));
        Some(this)
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) -> Output {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args))
    }

    /// Runs `sql` as the superuser over the Unix socket; its rows, `|`
    /// between fields.
    pub fn psql(&self, sql: &str) -> Output {
        self.as_postgres(
            "psql",
            &[
                "-h",
                &self.socket_dir.display().to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atc",
                sql,
            ],
        )
    }

    /// `postgresql://postgres@127.0.0.1:<port>/clinker?<query>`.
    pub fn url(&self, query: &str) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/clinker?{query}",
            self.port
        )
    }

    /// Every client connection to database `clinker` as the server sees
    /// it (`pg_stat_ssl`): whether it is TLS, and the version.
    pub fn clinker_connections(&self) -> Vec<(bool, String)> {
        let rows = self.psql(
            "SELECT s.ssl, coalesce(s.version, '') FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.datname = 'clinker' \
             AND a.backend_type = 'client backend'",
        );
        check("pg_stat_ssl", &rows);
        text(&rows)
            .lines()
            .filter_map(|line| line.split_once('|'))
            .map(|(ssl, version)| (ssl == "t", version.to_owned()))
            .collect()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }
}

/// A MariaDB server of the test's own with TLS required for every
/// connection (`require_secure_transport`), user `clinker` (`REQUIRE SSL`)
/// and database `clinker`.
#[derive(Debug)]
pub struct TlsMariadb {
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    socket: PathBuf,
    child: std::process::Child,
}

impl TlsMariadb {
    /// mariadb-install-db, then mariadbd with `server`'s certificate.
    ///
    /// # Panics
    /// When a step fails.
    pub fn start(test: &str, dir: &Path, ca: &TestCa, server: &Issued) -> Option<Self> {
        let install = find_program("mariadb-install-db");
        let daemon = program(&["/usr/sbin/mariadbd"], "mariadbd");
        let (Some(install), Some(daemon)) = (install, daemon) else {
            unmet(
                test,
                "MariaDB (mariadbd, mariadb-install-db) is not installed",
                HINT,
            );
            return None;
        };
        let root = dir.join("mariadb");
        let data = root.join("data");
        std::fs::create_dir_all(&root).unwrap();
        check(
            "mariadb-install-db",
            &run(Command::new(install)
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args(["--user=root", "--auth-root-authentication-method=normal"])
                .arg("--skip-test-db")),
        );
        let port = free_port();
        let socket = root.join("mysqld.sock");
        let child = Command::new(daemon)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", root.join("mysqld.pid").display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-log-bin",
                "--skip-name-resolve",
            ])
            .arg(format!("--ssl-ca={}", ca.ca_file.display()))
            .arg(format!("--ssl-cert={}", server.cert_file.display()))
            .arg(format!("--ssl-key={}", server.key_file.display()))
            .arg("--require-secure-transport=ON")
            .arg(format!("--log-error={}", root.join("error.log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let this = Self {
            port,
            socket,
            child,
        };
        wait_until("the test MariaDB", Duration::from_secs(60), || {
            this.sql("SELECT 1").status.success()
        });
        check(
            "create the clinker user",
            &this.sql(
                "CREATE DATABASE clinker; \
                 CREATE USER 'clinker'@'127.0.0.1' IDENTIFIED BY 'clinker-db-secret' REQUIRE SSL; \
                 GRANT ALL ON clinker.* TO 'clinker'@'127.0.0.1'",
            ),
        );
        Some(this)
    }

    /// Runs `sql` as root over the Unix socket (tab-separated rows).
    pub fn sql(&self, sql: &str) -> Output {
        run(Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-uroot", "-N", "-B", "-e", sql]))
    }

    /// A server status counter (`SHOW GLOBAL STATUS LIKE name`).
    pub fn status(&self, name: &str) -> u64 {
        let out = self.sql(&format!("SHOW GLOBAL STATUS LIKE '{name}'"));
        check("show global status", &out);
        text(&out)
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// `mysql+pymysql://clinker:…@127.0.0.1:<port>/clinker?<query>`.
    pub fn url(&self, query: &str) -> String {
        format!(
            "mysql+pymysql://clinker:clinker-db-secret@127.0.0.1:{}/clinker?{query}",
            self.port
        )
    }
}

impl Drop for TlsMariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
