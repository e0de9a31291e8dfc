//! The one way a Clinker process builds an HTTP client.
//!
//! reqwest is built with rustls and no compiled-in crypto provider (aws-lc-rs
//! would need cmake; ring builds with cc alone), so rustls needs one
//! process-wide provider installed before the first client is built, or
//! reqwest panics. Every client — Keystone, Nova, Glance, object stores, the
//! test kit — starts from [`client_builder`], which installs ring first.

/// Installs ring as the process's rustls crypto provider (idempotent; the
/// first installer wins, and any provider serves reqwest).
pub fn install_crypto_provider() {
    // ring is marked deprecated only for lacking post-quantum key exchange.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A `reqwest::ClientBuilder` that is safe to build: the crypto provider is
/// installed.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    #[allow(clippy::disallowed_methods)] // the one sanctioned call
    reqwest::Client::builder()
}

/// A failed request in one line with its causes (reqwest's own text names
/// only the URL; the reason — a refused connection, a certificate the CA
/// file does not vouch for — is further down the chain).
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A client with reqwest's defaults (see [`client_builder`]).
pub fn client() -> reqwest::Client {
    client_builder()
        .build()
        .expect("a default reqwest client always builds once a provider is installed")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_default_client_builds() {
        let _ = super::client();
    }
}
