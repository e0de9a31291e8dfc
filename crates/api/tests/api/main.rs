//! API tests: the router driven in-process (`tower::ServiceExt::oneshot`)
//! over a real SQLite database and the in-process bus.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod actions;
mod admin;
mod attachments;
mod common;
mod default_types;
mod encryption;
mod groups;
mod hardening;
mod keystone;
mod manage;
mod members;
mod migration;
mod personas;
mod pipeline;
mod qos;
mod revert_retype;
mod snapshots;
mod surface_support;
mod transfers;
mod volume_lists;
mod volumes;
