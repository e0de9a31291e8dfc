//! The v3 routes and their handlers (Cinder's `api/v3/router.py` and the
//! controllers). Handlers are thin: validate and parse the request, call a
//! service, render a view.
//!
//! Routes are registered once, without a project id; the pipeline strips
//! a `/{project_id}` segment before routing (see
//! `context::strip_project_segment`) and remembers it for links.
//! A first segment is a project id when no route starts with it
//! ([`is_route_segment`]): Cinder takes any string there (noauth's
//! `admin`, a Keystone project name used as an id), so the route table, not
//! the characters, tells the two apart.

pub mod attach_actions;
pub mod attachments;
pub mod backups;
pub mod collection;
pub mod default_types;
pub mod encryption;
pub mod extensions;
pub mod filters;
pub mod group_snapshots;
pub mod group_types;
pub mod groups;
pub mod hosts;
pub mod manageable;
pub mod messages;
pub mod metadata;
pub mod qos_specs;
pub mod quotas;
pub mod services;
pub mod snapshots;
pub mod transfers;
pub mod types;
pub mod versions;
pub mod volume_actions;
pub mod volumes;

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, get, post, put};

use clinker_types::backup::Backup;
use clinker_types::group::{Group, GroupSnapshot, GroupType};
use clinker_types::model::{Snapshot, Volume, VolumeType};

use crate::ApiState;
use crate::fault::{ApiError, RESOURCE_NOT_FOUND};

/// The routes' first segments (`volumes`, `types`, `os-services`, …),
/// recorded as [`routes`] registers them.
static ROUTE_SEGMENTS: std::sync::OnceLock<std::collections::BTreeSet<String>> =
    std::sync::OnceLock::new();

/// Whether some v3 route starts with `segment`; anything else in the first
/// position is a project id.
pub fn is_route_segment(segment: &str) -> bool {
    ROUTE_SEGMENTS
        .get_or_init(|| routes_and_segments().1)
        .contains(segment)
}

/// Registers routes and records each one's first segment, so the route
/// table is written once and serves both routing and [`is_route_segment`].
struct RouteTable {
    router: Router<ApiState>,
    segments: std::collections::BTreeSet<String>,
}

impl RouteTable {
    fn route(mut self, path: &str, method: MethodRouter<ApiState>) -> Self {
        let first = path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        if !first.is_empty() {
            self.segments.insert(first.to_owned());
        }
        self.router = self.router.route(path, method);
        self
    }

    /// The routes of one kind of type under `base`, with its specs under
    /// `base/{id}/specs`.
    fn types<T: types::TypeApi>(self, base: &str, specs: &str) -> Self {
        self.route(base, get(types::index::<T>).post(types::create::<T>))
            .route(
                &format!("{base}/{{type_id}}"),
                get(types::show::<T>)
                    .put(types::update::<T>)
                    .delete(types::delete::<T>),
            )
            .route(
                &format!("{base}/{{type_id}}/{specs}"),
                get(types::specs_index::<T>).post(types::specs_create::<T>),
            )
            .route(
                &format!("{base}/{{type_id}}/{specs}/{{key}}"),
                get(types::specs_show::<T>)
                    .put(types::specs_update::<T>)
                    .delete(types::specs_delete::<T>),
            )
    }

    /// The metadata routes of a kind of row under `base/metadata` (`base`
    /// names the row).
    fn metadata<T: metadata::HasMetadata>(self, base: &str) -> Self {
        self.route(
            &format!("{base}/metadata"),
            get(metadata::index::<T>)
                .post(metadata::create::<T>)
                .put(metadata::update_all::<T>),
        )
        .route(
            &format!("{base}/metadata/{{key}}"),
            get(metadata::show::<T>)
                .put(metadata::update::<T>)
                .delete(metadata::delete::<T>),
        )
    }
}

/// Every v3 route, relative to `/v3` and without the project id.
pub fn routes() -> Router<ApiState> {
    routes_and_segments().0
}

fn routes_and_segments() -> (Router<ApiState>, std::collections::BTreeSet<String>) {
    let table = RouteTable {
        router: Router::new(),
        segments: std::collections::BTreeSet::new(),
    };
    let table = table
        .types::<VolumeType>("/types", "extra_specs")
        .types::<GroupType>("/group_types", "group_specs")
        .metadata::<Volume>("/volumes/{volume_id}")
        .metadata::<Snapshot>("/snapshots/{snapshot_id}")
        .route("/", get(versions::show))
        .route(
            "/volumes",
            get(collection::index::<Volume>).post(volumes::create),
        )
        .route("/volumes/detail", get(collection::detail::<Volume>))
        .route("/volumes/summary", get(volumes::summary))
        .route(
            "/volumes/{volume_id}",
            get(volumes::show)
                .put(volumes::update)
                .delete(volumes::delete),
        )
        .route("/volumes/{volume_id}/action", post(volume_actions::action))
        .route(
            "/snapshots",
            get(collection::index::<Snapshot>).post(snapshots::create),
        )
        .route("/snapshots/detail", get(collection::detail::<Snapshot>))
        .route(
            "/snapshots/{snapshot_id}",
            get(snapshots::show)
                .put(snapshots::update)
                .delete(snapshots::delete),
        )
        .route("/snapshots/{snapshot_id}/action", post(snapshots::action))
        .route(
            "/backups",
            get(collection::index::<Backup>).post(backups::create),
        )
        .route("/backups/detail", get(collection::detail::<Backup>))
        .route(
            "/backups/{backup_id}",
            get(backups::show)
                .put(backups::update)
                .delete(backups::delete),
        )
        .route("/backups/{backup_id}/restore", post(backups::restore))
        .route(
            "/backups/{backup_id}/export_record",
            get(backups::export_record),
        )
        .route("/backups/import_record", post(backups::import_record))
        .route("/backups/{backup_id}/action", post(backups::action))
        .route("/types/{type_id}/action", post(types::action))
        .route(
            "/types/{type_id}/os-volume-type-access",
            get(types::access_index),
        )
        .route("/os-availability-zone", get(services::availability_zones))
        .route("/limits", get(quotas::limits))
        .route(
            "/os-quota-sets/{project_id}",
            get(quotas::show).put(quotas::update).delete(quotas::delete),
        )
        .route(
            "/os-quota-sets/{project_id}/defaults",
            get(quotas::defaults),
        )
        .route(
            "/os-quota-class-sets/{class_name}",
            get(quotas::class_show).put(quotas::class_update),
        )
        .route("/os-services", get(services::index))
        .route("/os-services/{action}", put(services::update))
        .route("/scheduler-stats/get_pools", get(services::get_pools))
        .route("/capabilities/{host}", get(services::capabilities))
        .route("/messages", get(messages::index))
        .route(
            "/messages/{message_id}",
            get(messages::show).delete(messages::delete),
        )
        .route("/extensions", get(extensions::index))
        .route("/os-hosts", get(hosts::index))
        .route("/os-hosts/{host}", get(hosts::show))
        .route("/resource_filters", get(hosts::resource_filters))
        .route(
            "/attachments",
            get(attachments::index).post(attachments::create),
        )
        .route("/attachments/detail", get(attachments::detail))
        .route(
            "/attachments/{attachment_id}",
            get(attachments::show)
                .put(attachments::update)
                .delete(attachments::delete),
        )
        .route(
            "/attachments/{attachment_id}/action",
            post(attachments::action),
        )
        .route(
            "/groups",
            get(collection::index::<Group>).post(groups::create),
        )
        .route("/groups/detail", get(collection::detail::<Group>))
        .route("/groups/action", post(groups::create_from_source))
        .route("/groups/{group_id}", get(groups::show).put(groups::update))
        .route("/groups/{group_id}/action", post(groups::action))
        .route(
            "/group_snapshots",
            get(collection::index::<GroupSnapshot>).post(group_snapshots::create),
        )
        .route(
            "/group_snapshots/detail",
            get(collection::detail::<GroupSnapshot>),
        )
        .route(
            "/group_snapshots/{group_snapshot_id}",
            get(group_snapshots::show).delete(group_snapshots::delete),
        )
        .route(
            "/group_snapshots/{group_snapshot_id}/action",
            post(group_snapshots::action),
        )
        .route("/qos-specs", get(qos_specs::index).post(qos_specs::create))
        .route(
            "/qos-specs/{qos_id}",
            get(qos_specs::show)
                .put(qos_specs::update)
                .delete(qos_specs::delete),
        )
        .route(
            "/qos-specs/{qos_id}/delete_keys",
            put(qos_specs::delete_keys),
        )
        .route(
            "/qos-specs/{qos_id}/associations",
            get(qos_specs::associations),
        )
        .route("/qos-specs/{qos_id}/associate", get(qos_specs::associate))
        .route(
            "/qos-specs/{qos_id}/disassociate",
            get(qos_specs::disassociate),
        )
        .route(
            "/qos-specs/{qos_id}/disassociate_all",
            get(qos_specs::disassociate_all),
        )
        .route(
            "/os-volume-transfer",
            get(transfers::legacy_index).post(transfers::legacy_create),
        )
        .route("/os-volume-transfer/detail", get(transfers::legacy_detail))
        .route(
            "/os-volume-transfer/{transfer_id}",
            get(transfers::legacy_show).delete(transfers::legacy_delete),
        )
        .route(
            "/os-volume-transfer/{transfer_id}/accept",
            post(transfers::legacy_accept),
        )
        .route(
            "/volume-transfers",
            get(transfers::index).post(transfers::create_v355),
        )
        .route("/volume-transfers/detail", get(transfers::detail))
        .route(
            "/volume-transfers/{transfer_id}",
            get(transfers::show_v355).delete(transfers::delete_v355),
        )
        .route(
            "/volume-transfers/{transfer_id}/accept",
            post(transfers::accept_v355),
        )
        .route(
            "/types/{type_id}/encryption",
            get(encryption::type_index).post(encryption::type_create),
        )
        .route(
            "/types/{type_id}/encryption/{spec}",
            get(encryption::type_show)
                .put(encryption::type_update)
                .delete(encryption::type_delete),
        )
        .route(
            "/volumes/{volume_id}/encryption",
            get(encryption::volume_index),
        )
        .route(
            "/volumes/{volume_id}/encryption/{key}",
            get(encryption::volume_show),
        )
        .route("/default-types", get(default_types::index))
        .route(
            "/default-types/{project_id}",
            put(default_types::set)
                .get(default_types::show)
                .delete(default_types::unset),
        )
        .route(
            "/os-volume-manage",
            get(manageable::volume_manage_index).post(manageable::volume_manage_create),
        )
        .route(
            "/os-volume-manage/detail",
            get(manageable::volume_manage_detail),
        )
        .route(
            "/manageable_volumes",
            get(manageable::manageable_volumes_index).post(manageable::manageable_volumes_create),
        )
        .route(
            "/manageable_volumes/detail",
            get(manageable::manageable_volumes_detail),
        )
        .route(
            "/os-snapshot-manage",
            get(manageable::snapshot_manage_index).post(manageable::snapshot_manage_create),
        )
        .route(
            "/os-snapshot-manage/detail",
            get(manageable::snapshot_manage_detail),
        )
        .route(
            "/manageable_snapshots",
            get(manageable::manageable_snapshots_index)
                .post(manageable::manageable_snapshots_create),
        )
        .route(
            "/manageable_snapshots/detail",
            get(manageable::manageable_snapshots_detail),
        );
    let router = table
        .router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    (router, table.segments)
}

/// An unknown path.
pub async fn not_found() -> ApiError {
    ApiError::not_found(RESOURCE_NOT_FOUND)
}

/// A known path with another method.
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "The method {method} is not allowed for this resource."
    ))
}
