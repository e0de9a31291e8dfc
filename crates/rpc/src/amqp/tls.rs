//! TLS towards the broker (`amqps`), by rustls with ring.
//!
//! The rustls client configuration is built once, when the transport
//! connects, so an unreadable or unusable `ssl_*` file stops start-up naming
//! the option. Each connection then does a plain TCP connect followed by the
//! handshake (lapin's connector hook); a handshake that fails is an error
//! naming the broker and rustls's reason (`invalid peer certificate:
//! UnknownIssuer`), and nothing is ever sent in plain text instead.
//!
//! Trust: `ssl_ca_file` alone when set (as Python's `ssl` does with
//! `ca_certs`), the system's roots otherwise. The broker's certificate must
//! name the host of the `transport_url` (a DNS name or an IP address).

use std::path::Path;
use std::sync::Arc;

use clinker_config::{RabbitSslOptions, TlsVersion};
use lapin::tcp::RustlsConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

const SECTION: &str = "[oslo_messaging_rabbit]";

/// The connector every connection of one transport shares.
pub(crate) fn connector(ssl: &RabbitSslOptions) -> Result<RustlsConnector, String> {
    // ring, as every rustls user in Clinker (see clinker_runtime::http);
    // deprecated only for lacking post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match ssl.version {
        TlsVersion::Negotiate => rustls::ALL_VERSIONS,
        TlsVersion::Tls12 => &[&rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let roots = match &ssl.ca_file {
        Some(path) => roots_from_file(path)?,
        None => system_roots()?,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("{SECTION} ssl_version: {e}"))?
        .with_root_certificates(roots);
    let config = match (&ssl.cert_file, &ssl.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = certificates(cert_file, "ssl_cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                format!(
                    "{SECTION} ssl_key_file {}: no usable private key: {e}",
                    key_file.display()
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "{SECTION} ssl_cert_file {} and ssl_key_file {} do not make a client certificate: {e}",
                    cert_file.display(),
                    key_file.display()
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(RustlsConnector::from(Arc::new(config)))
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, "ssl_ca_file")? {
        roots.add(cert).map_err(|e| {
            format!(
                "{SECTION} ssl_ca_file {}: unusable CA certificate: {e}",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "TLS to the message broker: no system CA certificates could be loaded; set {SECTION} ssl_ca_file"
        ));
    }
    Ok(roots)
}

fn certificates(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{SECTION} {option} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{SECTION} {option} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}
