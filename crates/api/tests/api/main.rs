//! API tests: the router driven in-process (`tower::ServiceExt::oneshot`)
//! over a real SQLite database and the in-process bus.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod actions;
mod admin;
mod attachments;
mod common;
mod groups;
mod keystone;
mod members;
mod personas;
mod pipeline;
mod snapshots;
mod volume_lists;
mod volumes;
