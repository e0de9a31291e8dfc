//! A throw-away certificate authority for TLS tests: a CA certificate and
//! server or client certificates it signs, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA whose certificate is in `ca.pem`.
#[derive(Debug)]
pub struct TestCa {
    /// `ca.pem`.
    pub ca_file: PathBuf,
    /// Its PEM text.
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert_file: PathBuf,
    /// The private key (PEM).
    pub key_file: PathBuf,
    /// Certificate then key, as one PEM text (what client identities take).
    pub identity_pem: String,
}

impl TestCa {
    /// A new CA named `name`, its files in `dir`.
    ///
    /// # Panics
    /// When rcgen or the file system fails.
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = cert.pem();
        let ca_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, &ca_pem).unwrap();
        Self {
            ca_file,
            ca_pem,
            issuer: Issuer::new(params, key),
            dir: dir.to_path_buf(),
        }
    }

    /// A certificate for `names` (host names or IP addresses, which
    /// become IP subject alternative names), written as `<file>.pem` and
    /// `<file>.key`.
    ///
    /// # Panics
    /// When rcgen or the file system fails.
    pub fn issue(&self, file: &str, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = self.dir.join(format!("{file}.pem"));
        let key_file = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        Issued {
            cert_file,
            key_file,
            identity_pem: format!("{}{}", cert.pem(), key.serialize_pem()),
        }
    }

    /// An HTTP client that trusts only this CA.
    ///
    /// # Panics
    /// When the client cannot be built.
    pub fn client(&self, identity: Option<&Issued>) -> reqwest::Client {
        let mut builder = clinker_runtime::http::client_builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(self.ca_pem.as_bytes()).unwrap());
        if let Some(identity) = identity {
            builder = builder
                .identity(reqwest::Identity::from_pem(identity.identity_pem.as_bytes()).unwrap());
        }
        builder.build().unwrap()
    }
}
