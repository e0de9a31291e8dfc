//! `/group_types` (3.11): what group types do differently from volume
//! types over HTTP (Cinder's `api/v3/group_types.py` and
//! `api/v3/group_specs.py`); the handlers are [`super::types`]'s.
//! Management is administrator-only; anyone may list and show types, but
//! only administrators see `group_specs`.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use clinker_rpc::RequestContext;
use clinker_types::group::GroupType;
use serde_json::Value;

use super::types::{TypeApi, spec_value, type_name, type_schema};
use crate::ApiState;
use crate::fault::ApiResult;
use crate::microversion as mv;
use crate::policy;
use crate::request::Req;
use crate::services::types::{TypeKind, default_group_type};
use crate::validation::{
    Pattern, Schema, boolean, metadata_allows_null, name_allow_zero_min_length, object,
};
use crate::views::Collection;
use crate::views::types::{self as view, TypeView};

#[async_trait::async_trait]
impl TypeApi for GroupType {
    const CREATED: StatusCode = StatusCode::ACCEPTED;
    const COLLECTION: Collection = view::GROUP_TYPES;

    fn require_version(req: &Req) -> ApiResult<()> {
        mv::require(req.version, mv::GROUP_TYPE)
    }

    /// Cinder's `group_types.create` schema.
    fn create_schema() -> Schema {
        type_schema(Self::WORDS.key, type_name(), |body| {
            body.prop("is_public", boolean())
                .prop("group_specs", metadata_allows_null())
                .required(&["name"])
        })
    }

    /// Cinder's `group_types.update` schema.
    fn update_schema() -> Schema {
        type_schema(Self::WORDS.key, name_allow_zero_min_length(), |body| {
            body.prop("is_public", boolean())
        })
    }

    /// `group_specs_with_no_spaces_key_and_value_null`.
    fn specs_schema() -> Schema {
        object()
            .pattern_props(Pattern::SpecKeyNoSpaces, spec_value(None))
            .closed()
    }

    /// `group:access_group_types_specs`.
    fn privileged(req: &Req) -> bool {
        policy::enforce(&req.context, "group:access_group_types_specs", None).is_ok()
    }

    fn view(&self, privileged: bool, _which: TypeView) -> Value {
        view::group_type(self, privileged)
    }

    fn shown_specs(&self, _req: &Req) -> BTreeMap<String, String> {
        self.group_specs.clone()
    }

    async fn default(state: &ApiState, _ctx: &RequestContext) -> ApiResult<Self> {
        default_group_type(state).await
    }
}
