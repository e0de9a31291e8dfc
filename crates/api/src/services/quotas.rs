//! Quota sets, quota classes and absolute limits (Cinder's `contrib/quotas.py`,
//! `contrib/quota_classes.py`, `v3/limits.py`, `contrib/used_limits.py`).

use std::collections::BTreeMap;

use clinker_rpc::RequestContext;
use serde_json::{Map, Value};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::policy;
use crate::validation::{DB_MAX_INT, check_string_length, validate_integer};

/// The project-wide resources (Cinder's `QUOTAS` plus `GROUP_QUOTAS`).
pub const BASE_RESOURCES: &[&str] = &[
    "volumes",
    "snapshots",
    "gigabytes",
    "backups",
    "backup_gigabytes",
    "per_volume_gigabytes",
    "groups",
];

/// Keys a quota-set body may carry without being resources.
const NON_QUOTA_KEYS: &[&str] = &["tenant_id", "id"];

/// Every quota resource that exists now: the base ones plus
/// `volumes_<type>`, `snapshots_<type>`, `gigabytes_<type>` per type.
///
/// # Errors
/// Database failures.
pub async fn known_resources(state: &ApiState) -> ApiResult<Vec<String>> {
    let mut resources: Vec<String> = BASE_RESOURCES.iter().map(|s| (*s).to_owned()).collect();
    let types = state
        .db
        .list_volume_types(None, None)
        .await
        .map_err(ApiError::from)?;
    for t in types {
        for prefix in ["volumes", "snapshots", "gigabytes"] {
            resources.push(format!("{prefix}_{}", t.name));
        }
    }
    Ok(resources)
}

/// Cinder's quota read rule, targeted at the project whose quotas are
/// read: a reader sees its own project's, an admin any project's.
fn authorize_project(ctx: &RequestContext, project_id: &str) -> ApiResult<()> {
    policy::enforce(ctx, "volume_extension:quotas:show", Some(project_id))
}

/// One resource of a quota set: the limit, or the limit with usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaEntry {
    /// The limit (-1: unlimited).
    pub limit: i64,
    /// Usage (counted with the resource rows, so never stale).
    pub in_use: i64,
}

/// A project's effective limits and usage.
///
/// # Errors
/// 403 for another project's quotas (non-admin), database failures.
pub async fn project_quotas(
    state: &ApiState,
    ctx: &RequestContext,
    project_id: &str,
) -> ApiResult<BTreeMap<String, QuotaEntry>> {
    authorize_project(ctx, project_id)?;
    quota_entries(state, project_id).await
}

/// A project's effective limits and usage, without a policy check (the
/// absolute limits of `/limits` are shown to every caller, as in Cinder).
///
/// # Errors
/// Database failures.
pub async fn quota_entries(
    state: &ApiState,
    project_id: &str,
) -> ApiResult<BTreeMap<String, QuotaEntry>> {
    let limits = state
        .db
        .quota_limits(project_id)
        .await
        .map_err(ApiError::from)?;
    let usages = state
        .db
        .quota_usages(project_id)
        .await
        .map_err(ApiError::from)?;
    let resources = known_resources(state).await?;
    Ok(resources
        .into_iter()
        .map(|r| {
            let entry = QuotaEntry {
                limit: limits.get(&r).copied().unwrap_or(-1),
                in_use: usages.get(&r).copied().unwrap_or(0).max(0),
            };
            (r, entry)
        })
        .collect())
}

/// The defaults a project falls back to (the `default` class, then the
/// configuration).
///
/// # Errors
/// Database failures.
pub async fn default_quotas(
    state: &ApiState,
    ctx: &RequestContext,
    project_id: &str,
) -> ApiResult<BTreeMap<String, i64>> {
    authorize_project(ctx, project_id)?;
    class_quotas(state, "default").await
}

/// The limits of a quota class, with every resource present.
///
/// # Errors
/// Database failures.
pub async fn class_quotas(state: &ApiState, class_name: &str) -> ApiResult<BTreeMap<String, i64>> {
    let limits = state
        .db
        .quota_class_limits(class_name)
        .await
        .map_err(ApiError::from)?;
    let resources = known_resources(state).await?;
    Ok(resources
        .into_iter()
        .map(|r| {
            let limit = limits.get(&r).copied().unwrap_or(-1);
            (r, limit)
        })
        .collect())
}

/// Cinder's `quota_set` format check: every key a resource (or
/// `tenant_id`/`id`), every value an integer in −1..=`DB_MAX_INT`.
fn checked_quota_values(
    set: &Map<String, Value>,
    resources: &[String],
    class: bool,
) -> ApiResult<Vec<(String, i64)>> {
    let mut bad = Vec::new();
    let mut values = Vec::new();
    for (key, value) in set {
        if !resources.iter().any(|r| r == key) {
            if !class && NON_QUOTA_KEYS.contains(&key.as_str()) {
                continue;
            }
            bad.push(key.clone());
            continue;
        }
        values.push((key.clone(), validate_integer(value, key, -1, DB_MAX_INT)?));
    }
    if !bad.is_empty() {
        let what = if class {
            "quota class set"
        } else {
            "quota set"
        };
        return Err(ApiError::invalid_input(format!(
            "Bad key(s) in {what}: {}",
            bad.join(", ")
        )));
    }
    Ok(values)
}

/// Sets a project's limits, refusing limits below current usage.
///
/// # Errors
/// 400 with Cinder's texts, 403 for non-admins.
pub async fn update_project_quotas(
    state: &ApiState,
    ctx: &RequestContext,
    project_id: &str,
    set: &Map<String, Value>,
) -> ApiResult<BTreeMap<String, i64>> {
    let resources = known_resources(state).await?;
    let values = checked_quota_values(set, &resources, false)?;
    policy::enforce(ctx, "volume_extension:quotas:update", Some(project_id))?;
    check_string_length(project_id, "quota_set_name", 1, 255)?;
    let usages = state
        .db
        .quota_usages(project_id)
        .await
        .map_err(ApiError::from)?;
    for (key, limit) in &values {
        if key == "per_volume_gigabytes" || *limit == -1 {
            continue;
        }
        let used = usages.get(key).copied().unwrap_or(0);
        if *limit < used {
            return Err(ApiError::bad_request(format!(
                "Quota {key} limit must be equal or greater than existing resources. Current usage is {used} and the requested limit is {limit}."
            )));
        }
    }
    for (key, limit) in values {
        state
            .db
            .set_project_quota(project_id, &key, limit)
            .await
            .map_err(ApiError::from)?;
    }
    let quotas = project_quotas(state, ctx, project_id).await?;
    Ok(quotas.into_iter().map(|(k, e)| (k, e.limit)).collect())
}

/// Removes a project's own limits.
///
/// # Errors
/// 403 for non-admins, database failures.
pub async fn delete_project_quotas(
    state: &ApiState,
    ctx: &RequestContext,
    project_id: &str,
) -> ApiResult<()> {
    policy::enforce(ctx, "volume_extension:quotas:delete", Some(project_id))?;
    state
        .db
        .delete_project_quotas(project_id)
        .await
        .map_err(ApiError::from)
}

/// Sets a quota class's limits.
///
/// # Errors
/// 400, 403.
pub async fn update_class_quotas(
    state: &ApiState,
    ctx: &RequestContext,
    class_name: &str,
    set: &Map<String, Value>,
) -> ApiResult<BTreeMap<String, i64>> {
    let resources = known_resources(state).await?;
    let values = checked_quota_values(set, &resources, true)?;
    policy::enforce(ctx, "volume_extension:quota_classes:update", None)?;
    check_string_length(class_name, "quota_class_name", 1, 255)?;
    for (key, limit) in values {
        state
            .db
            .set_quota_class(class_name, &key, limit)
            .await
            .map_err(ApiError::from)?;
    }
    class_quotas(state, class_name).await
}
