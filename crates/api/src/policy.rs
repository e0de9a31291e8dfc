//! Policy: whether a caller may perform an action (Cinder's `policies/*.py`).
//!
//! Every handler asks [`enforce`] with Cinder's rule name (`volume:create`,
//! `volume_extension:volume_admin_actions:reset_status`, …) and, when the
//! action targets one resource, that resource's project. This first engine
//! knows Cinder's defaults in their simplest form: administrators may do
//! everything; the rules in [`ADMIN_ONLY`] are administrator-only; everything
//! else is allowed to a caller acting in the target's project. Project
//! isolation itself (another project's resources are *not found*) is done by
//! the services' scoped lookups, not here.

use clinker_rpc::RequestContext;

use crate::fault::{ApiError, ApiResult};

/// Rules Cinder's defaults reserve to administrators.
pub const ADMIN_ONLY: &[&str] = &[
    "volume_extension:volume_admin_actions:reset_status",
    "volume_extension:volume_admin_actions:force_delete",
    "volume_extension:volume_admin_actions:force_detach",
    "volume_extension:snapshot_admin_actions:reset_status",
    "volume_extension:snapshot_admin_actions:force_delete",
    "volume_extension:types_manage",
    "volume_extension:types_extra_specs:create",
    "volume_extension:types_extra_specs:update",
    "volume_extension:types_extra_specs:delete",
    "volume_extension:volume_type_access:addProjectAccess",
    "volume_extension:volume_type_access:removeProjectAccess",
    "volume_extension:services:index",
    "volume_extension:services:update",
    "volume_extension:hosts",
    "volume_extension:capabilities",
    "scheduler_extension:scheduler_stats:get_pools",
    "volume_extension:quotas:update",
    "volume_extension:quotas:delete",
    "volume_extension:quota_classes",
    "volume_extension:quota_classes:update",
    "volume:force_delete",
    "volume_extension:volume_host_attribute",
    "volume_extension:volume_mig_status_attribute",
    "message:delete",
    "volume_extension:qos_specs_manage:create",
    "volume_extension:qos_specs_manage:get",
    "volume_extension:qos_specs_manage:get_all",
    "volume_extension:qos_specs_manage:update",
    "volume_extension:qos_specs_manage:delete",
    "volume_extension:volume_type_encryption:create",
    "volume_extension:volume_type_encryption:get",
    "volume_extension:volume_type_encryption:update",
    "volume_extension:volume_type_encryption:delete",
    "volume_extension:access_types_qos_specs_id",
    "volume_extension:default_set_or_update",
    "volume_extension:default_get",
    "volume_extension:default_get_all",
    "volume_extension:default_unset",
];

/// Allows or refuses `rule` for `ctx` on a resource of `target_project_id`.
///
/// # Errors
/// 403 `forbidden` with Cinder's text "Policy doesn't allow <rule> to be
/// performed.".
pub fn enforce(ctx: &RequestContext, rule: &str, target_project_id: Option<&str>) -> ApiResult<()> {
    if ctx.is_admin {
        return Ok(());
    }
    let own_project = target_project_id.is_none_or(|p| p == ctx.project_id);
    if ADMIN_ONLY.contains(&rule) || !own_project {
        return Err(ApiError::forbidden(format!(
            "Policy doesn't allow {rule} to be performed."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(admin: bool) -> RequestContext {
        RequestContext {
            project_id: "p1".into(),
            user_id: "u1".into(),
            is_admin: admin,
            ..Default::default()
        }
    }

    #[test]
    fn admins_everywhere_members_in_their_project() {
        assert!(enforce(&ctx(true), "volume_extension:types_manage", None).is_ok());
        assert!(enforce(&ctx(false), "volume_extension:types_manage", None).is_err());
        assert!(enforce(&ctx(false), "volume:create", Some("p1")).is_ok());
        assert!(enforce(&ctx(false), "volume:create", Some("p2")).is_err());
        let err = enforce(&ctx(false), "volume:force_delete", Some("p1")).unwrap_err();
        assert!(
            err.to_string()
                .contains("Policy doesn't allow volume:force_delete to be performed."),
            "{err}"
        );
    }
}
