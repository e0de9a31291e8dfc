//! The API's listener: plain HTTP, or TLS with rustls when `[ssl]
//! cert_file` and `key_file` are set (oslo.service's option names), with
//! client certificates required when `ca_file` is set, as oslo.service's
//! `sslutils` does. Over TLS, HTTP/2 is offered by ALPN beside HTTP/1.1.
//!
//! TLS handshakes run on their own tasks, so a slow or hostile client
//! never holds up the accept loop; a connection whose handshake fails is
//! logged and dropped, never served in plain text.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clinker_config::SslOptions;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `[ssl]` cannot be used: the start-up error names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("[ssl] {option} = {}: {reason}", path.display())]
    File {
        /// The option.
        option: &'static str,
        /// Its value.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificate, key or CA set.
    #[error("[ssl] cannot be used: {0}")]
    Rustls(String),
}

fn read_certs(
    option: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let error = |reason: String| TlsSetupError::File {
        option,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// The acceptor `[ssl]` describes, or `None` for plain HTTP.
///
/// # Errors
/// Unreadable or unusable certificate, key or CA files.
pub fn tls_acceptor(ssl: &SslOptions) -> Result<Option<TlsAcceptor>, TlsSetupError> {
    let (Some(cert_file), Some(key_file)) = (&ssl.cert_file, &ssl.key_file) else {
        return Ok(None);
    };
    clinker_runtime::http::install_crypto_provider();
    let certs = read_certs("cert_file", cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsSetupError::File {
        option: "key_file",
        path: key_file.clone(),
        reason: e.to_string(),
    })?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &ssl.ca_file {
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs("ca_file", ca_file)? {
                roots.add(cert).map_err(|e| TlsSetupError::File {
                    option: "ca_file",
                    path: ca_file.clone(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    // HTTP/2 when the client offers it, HTTP/1.1 otherwise.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// A TLS listener for `axum::serve`: accepts TCP, runs each handshake on
/// its own task, and hands over the connections that completed one.
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener`.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and the like: wait, retry
                        // (what axum does for plain listeners).
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            local_addr,
            ready,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// Serves `app` on `listener` (with TLS when `tls` is given) until
/// `shutdown` resolves, then lets in-flight requests finish.
///
/// # Errors
/// The server failed.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(acceptor) => {
            axum::serve(TlsListener::new(listener, acceptor)?, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
