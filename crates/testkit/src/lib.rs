//! What Clinker's test suites share: the `clinker` process harness
//! ([`process`]), an HTTP client speaking like the OpenStack clients
//! ([`http`]), polling until a state is reached ([`poll`]), the skip-or-fail
//! rule for services and tools a suite needs ([`mod@env`], [`rabbit`],
//! [`dataplane`]), a throw-away Ceph cluster ([`ceph`]), configuration text to typed config ([`config`]), byte
//! checks on backing files ([`files`]), quota checks against a database
//! (`quota`, feature `db`) and the in-process cluster of real scheduler
//! and volume services (`cluster`, feature `cluster`).
//!
//! Test support only: every crate takes it as a dev-dependency, and
//! nothing else may depend on it (`xtask check-deps`). Failures here are
//! test failures, so it panics with a message instead of returning errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::missing_panics_doc
)]

pub mod ceph;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
pub mod dataplane;
pub mod env;
pub mod files;
pub mod glance;
pub mod http;
pub mod poll;
pub mod process;
#[cfg(feature = "db")]
pub mod quota;
pub mod rabbit;
pub mod tls;
pub mod tls_servers;
