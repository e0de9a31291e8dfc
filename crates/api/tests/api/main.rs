//! API tests: the router driven in-process (`tower::ServiceExt::oneshot`)
//! over a real SQLite database and the in-process bus.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod actions;
mod admin;
mod common;
mod groups;
mod members;
mod pipeline;
mod snapshots;
mod volume_lists;
mod volumes;
