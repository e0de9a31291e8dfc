//! `/types` and `/group_types`: volume types and group types with their
//! specs (Cinder's `api/v3/types.py`, `contrib/types_manage.py`,
//! `contrib/types_extra_specs.py`, `api/v3/group_types.py` and
//! `api/v3/group_specs.py`), one generic set of handlers over
//! [`TypeApi`]; and the volume types' access lists
//! (`contrib/volume_type_access.py`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::SortDir;
use clinker_rpc::RequestContext;
use clinker_types::model::VolumeType;
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::listing::{self, Pagination, Params, invalid_sort_key, literal_eval};
use crate::policy;
use crate::request::{Req, action_name, no_such_action, string_map, text};
use crate::services::types::{
    self as service, NewType, TypeChanges, TypeKind, TypeVisibility, type_not_found,
};
use crate::validation::{
    self, Format, JsonType, Pattern, Schema, body_of, bool_from_str, bool_from_value, boolean,
    description, object, of,
};
use crate::views::types::{self as view, TypeView};
use crate::views::{self, Collection, ViewCtx};

/// What `/types` and `/group_types` do differently over HTTP.
#[async_trait::async_trait]
pub trait TypeApi: TypeKind {
    /// The status of type and spec creates.
    const CREATED: StatusCode;
    /// The list body.
    const COLLECTION: Collection;

    /// The microversion check of every handler.
    ///
    /// # Errors
    /// 404 below the kind's microversion.
    fn require_version(_req: &Req) -> ApiResult<()> {
        Ok(())
    }
    /// The create body schema.
    fn create_schema() -> Schema;
    /// The update body schema.
    fn update_schema() -> Schema;
    /// The schema of a specs object.
    fn specs_schema() -> Schema;
    /// Whether the caller sees the privileged parts of the view.
    fn privileged(req: &Req) -> bool;
    /// One type's view.
    fn view(&self, privileged: bool, which: TypeView) -> Value;
    /// The specs the caller may read.
    fn shown_specs(&self, req: &Req) -> BTreeMap<String, String>;
    /// `GET …/default`.
    async fn default(state: &ApiState, ctx: &RequestContext) -> ApiResult<Self>;
    /// The visibility a list asks for: only administrators choose it,
    /// from `is_public`.
    ///
    /// # Errors
    /// 400 for an `is_public` that is no boolean nor `none`.
    fn visibility(req: &Req, is_public: Option<&str>) -> ApiResult<TypeVisibility> {
        if req.is_admin() {
            visibility(is_public)
        } else {
            Ok(TypeVisibility::Visible)
        }
    }
    /// Narrows a list by the filters left in the query.
    fn filter(_req: &Req, _filters: Vec<(String, String)>, _types: &mut Vec<Self>) {}
}

#[async_trait::async_trait]
impl TypeApi for VolumeType {
    const CREATED: StatusCode = StatusCode::OK;
    const COLLECTION: Collection = view::VOLUME_TYPES;

    fn create_schema() -> Schema {
        type_schema(Self::WORDS.key, type_name(), |body| {
            let specs = object()
                .pattern_props(Pattern::SpecKey, spec_value(None))
                .closed();
            body.prop("extra_specs", specs)
                .prop("os-volume-type-access:is_public", boolean())
                .required(&["name"])
        })
    }

    fn update_schema() -> Schema {
        let name = of(&[JsonType::String, JsonType::Null]).length(Some(1), Some(255));
        type_schema(Self::WORDS.key, name, |body| {
            body.prop("is_public", boolean())
        })
    }

    fn specs_schema() -> Schema {
        object()
            .pattern_props(Pattern::SpecKeyNoSpaces, spec_value(Some(0)))
            .closed()
    }

    fn privileged(req: &Req) -> bool {
        req.is_admin()
    }

    fn view(&self, privileged: bool, which: TypeView) -> Value {
        view::volume_type(self, privileged, which)
    }

    fn shown_specs(&self, req: &Req) -> BTreeMap<String, String> {
        view::visible_specs(&self.extra_specs, req.is_admin())
    }

    /// Everyone's `is_public` is read (and refused when bad); the service
    /// shows non-admins the visible types whatever it says.
    fn visibility(_req: &Req, is_public: Option<&str>) -> ApiResult<TypeVisibility> {
        visibility(is_public)
    }

    async fn default(state: &ApiState, ctx: &RequestContext) -> ApiResult<Self> {
        crate::services::default_types::default_type_for(state, ctx)
            .await
            .map_err(|_| ApiError::not_found("Default volume type can not be found."))
    }

    /// Non-admins may filter on `extra_specs` only; Cinder matches nothing
    /// for filters that are not columns.
    fn filter(req: &Req, mut filters: Vec<(String, String)>, types: &mut Vec<Self>) {
        if !req.is_admin() {
            filters.retain(|(k, _)| k == "extra_specs");
        }
        for (key, value) in &filters {
            let wanted = match literal_eval(value) {
                Some(Value::Object(wanted)) if key == "extra_specs" => wanted,
                _ => {
                    types.clear();
                    continue;
                }
            };
            types.retain(|t| {
                wanted
                    .iter()
                    .all(|(k, v)| t.extra_specs.get(k).map(String::as_str) == v.as_str())
            });
        }
    }
}

/// `{key: {"name": …, "description": …, more…}}`, both objects closed.
pub(crate) fn type_schema(
    key: &'static str,
    name: Schema,
    more: impl FnOnce(Schema) -> Schema,
) -> Schema {
    let body = object()
        .prop("name", name)
        .prop("description", description());
    object()
        .prop(key, more(body).closed())
        .required(&[key])
        .closed()
}

/// A type name on create.
pub(crate) fn type_name() -> Schema {
    of(&[JsonType::String])
        .length(Some(1), Some(255))
        .format(Format::Name)
}

/// A spec value: a string of at most 255 characters, or null.
pub(crate) fn spec_value(min_length: Option<usize>) -> Schema {
    of(&[JsonType::String, JsonType::Null]).length(min_length, Some(255))
}

/// `{T::WORDS.key: view}`.
fn wrapped<T: TypeApi>(view: Value) -> Value {
    let mut body = Map::new();
    body.insert(T::WORDS.key.into(), view);
    Value::Object(body)
}

/// Cinder's `_parse_is_public`: absent means the visible types, `none`
/// means all.
fn visibility(value: Option<&str>) -> ApiResult<TypeVisibility> {
    match value {
        None => Ok(TypeVisibility::Visible),
        Some(v) if v.eq_ignore_ascii_case("none") => Ok(TypeVisibility::All),
        Some(v) => match bool_from_str(v) {
            Some(true) => Ok(TypeVisibility::Visible),
            Some(false) => Ok(TypeVisibility::PrivateOnly),
            None => Err(ApiError::bad_request(format!(
                "Invalid is_public filter [{v}]"
            ))),
        },
    }
}

/// Sorts by the requested keys, then `created_at` and `id` in the first
/// key's direction (Cinder's `process_sort_params`).
fn sort_types<T: TypeKind>(types: &mut [T], sort: &[(String, SortDir)]) -> ApiResult<()> {
    for (key, _) in sort {
        if !matches!(
            key.as_str(),
            "id" | "name" | "description" | "is_public" | "created_at" | "updated_at"
        ) {
            return Err(invalid_sort_key());
        }
    }
    let mut keys: Vec<(String, SortDir)> = sort.to_vec();
    let default_dir = keys.first().map_or(SortDir::Desc, |(_, d)| *d);
    for key in ["created_at", "id"] {
        if !keys.iter().any(|(k, _)| k == key) {
            keys.push((key.to_owned(), default_dir));
        }
    }
    types.sort_by(|a, b| {
        let (a, b) = (a.row(), b.row());
        for (key, dir) in &keys {
            let ordering = match key.as_str() {
                "id" => a.id.cmp(&b.id),
                "name" => a.name.cmp(b.name),
                "description" => a.description.cmp(&b.description),
                "is_public" => a.is_public.cmp(&b.is_public),
                "updated_at" => a.updated_at.cmp(&b.updated_at),
                _ => a.created_at.cmp(&b.created_at),
            };
            let ordering = if *dir == SortDir::Desc {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering.is_ne() {
                return ordering;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

/// The page after the marker, `offset` and `limit` applied.
fn page_of<T: TypeKind>(mut types: Vec<T>, page: &Pagination) -> ApiResult<Vec<T>> {
    if let Some(marker) = &page.marker {
        let position = types
            .iter()
            .position(|t| t.row().id.to_string() == *marker)
            .ok_or_else(|| type_not_found::<T>(marker))?;
        types.drain(..=position);
    }
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    Ok(types.into_iter().skip(offset).take(limit).collect())
}

/// Enforces `<prefix><verb>`.
fn enforce(req: &Req, prefix: &str, verb: &str) -> ApiResult<()> {
    policy::enforce(&req.context, &format!("{prefix}{verb}"), None)
}

/// Enforces the list (`0`) or show (`1`) rule of the types, where the kind
/// has one.
fn enforce_read<T: TypeApi>(req: &Req, which: usize) -> ApiResult<()> {
    match T::WORDS.rules.reads {
        Some(verbs) => enforce(req, T::WORDS.rules.types, verbs[which]),
        None => Ok(()),
    }
}

/// `GET /types`, `GET /group_types`.
pub async fn index<T: TypeApi>(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    T::require_version(&req)?;
    enforce_read::<T>(&req, 0)?;
    let mut params = Params::new(&req.query);
    let page = listing::pagination(&mut params, state.config.default.osapi_max_limit)?;
    let sort = listing::sort_params(&mut params)?;
    let visibility = T::visibility(&req, params.pop("is_public").as_deref())?;
    let mut types = service::list_types::<T>(&state, &req.context, visibility).await?;
    T::filter(&req, params.into_filters(), &mut types);
    sort_types(&mut types, &sort)?;
    let types = page_of(types, &page)?;
    let privileged = T::privileged(&req);
    let items: Vec<Value> = types
        .iter()
        .map(|t| t.view(privileged, TypeView::Read))
        .collect();
    let links = T::COLLECTION.links(
        &ViewCtx::of(&req),
        false,
        types.last().map(|t| t.row().id.to_string()),
        types.len(),
        None,
        page.limit,
    );
    Ok(views::ok(
        &T::COLLECTION.page(items, links, None).into_value(),
    ))
}

/// `GET /types/{id}`, `GET /group_types/{id}` (also `…/default`).
pub async fn show<T: TypeApi>(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    T::require_version(&req)?;
    let found = if type_id == "default" {
        T::default(&state, &req.context).await?
    } else {
        service::get_type::<T>(&state, &req.context, &type_id).await?
    };
    enforce_read::<T>(&req, 1)?;
    let view = found.view(T::privileged(&req), TypeView::Read);
    Ok(views::ok(&wrapped::<T>(view)))
}

/// `POST /types` (200), `POST /group_types` (202).
pub async fn create<T: TypeApi>(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    T::require_version(&req)?;
    validation::validate(&T::create_schema(), &req.body_value())?;
    enforce(&req, T::WORDS.rules.types, "create")?;
    let body = req.body_object(T::WORDS.key);
    let new = NewType {
        name: text(&body, "name").unwrap_or_default(),
        description: text(&body, "description"),
        is_public: body
            .get(T::WORDS.public_key)
            .and_then(bool_from_value)
            .unwrap_or(true),
        specs: string_map(body.get(T::SPECS_KEY)),
    };
    let created: T = service::create_type(&state, new).await?;
    let view = created.view(T::privileged(&req), TypeView::Created);
    Ok(views::json(T::CREATED, &wrapped::<T>(view)))
}

/// `PUT /types/{id}`, `PUT /group_types/{id}`.
pub async fn update<T: TypeApi>(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    T::require_version(&req)?;
    validation::validate(&T::update_schema(), &req.body_value())?;
    enforce(&req, T::WORDS.rules.types, "update")?;
    let body = req.body_object(T::WORDS.key);
    let changes = TypeChanges {
        name: text(&body, "name"),
        description: text(&body, "description"),
        is_public: body.get("is_public").and_then(bool_from_value),
    };
    if changes
        .name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n.trim().is_empty())
    {
        return Err(ApiError::bad_request(format!(
            "{} name can not be empty.",
            T::WORDS.noun
        )));
    }
    if changes.name.is_none() && changes.description.is_none() && changes.is_public.is_none() {
        return Err(ApiError::bad_request(T::WORDS.nothing_to_update));
    }
    let updated: T = service::update_type(&state, &req.context, &type_id, changes).await?;
    let view = updated.view(T::privileged(&req), TypeView::Updated);
    Ok(views::ok(&wrapped::<T>(view)))
}

/// `DELETE /types/{id}`, `DELETE /group_types/{id}` (202).
pub async fn delete<T: TypeApi>(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    T::require_version(&req)?;
    enforce(&req, T::WORDS.rules.types, "delete")?;
    service::delete_type::<T>(&state, &req.context, &type_id).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `GET /types/{id}/extra_specs`, `GET /group_types/{id}/group_specs`.
pub async fn specs_index<T: TypeApi>(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    T::require_version(&req)?;
    enforce(&req, T::WORDS.rules.specs, T::WORDS.rules.spec_reads[0])?;
    let found: T = service::get_type(&state, &req.context, &type_id).await?;
    let mut body = Map::new();
    body.insert(T::SPECS_KEY.into(), json!(found.shown_specs(&req)));
    Ok(views::ok(&Value::Object(body)))
}

/// `POST …/extra_specs`, `POST …/group_specs`: merge; echoes the body.
pub async fn specs_create<T: TypeApi>(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    T::require_version(&req)?;
    let schema = object()
        .prop(T::SPECS_KEY, T::specs_schema())
        .required(&[T::SPECS_KEY])
        .closed();
    let body = req.body_value();
    validation::validate(&schema, &body)?;
    enforce(&req, T::WORDS.rules.specs, "create")?;
    let specs = string_map(body.get(T::SPECS_KEY));
    service::set_specs::<T>(&state, &req.context, &type_id, &specs).await?;
    Ok(views::json(T::CREATED, &body))
}

/// `GET …/extra_specs/{key}`, `GET …/group_specs/{key}`.
pub async fn specs_show<T: TypeApi>(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    T::require_version(&req)?;
    enforce(&req, T::WORDS.rules.specs, T::WORDS.rules.spec_reads[1])?;
    let found: T = service::get_type(&state, &req.context, &type_id).await?;
    match found.shown_specs(&req).get(&key) {
        Some(value) => Ok(views::ok(&json!({ key.clone(): value }))),
        None => Err(ApiError::not_found(format!(
            "{} {type_id} has no {} with key {key}.",
            T::WORDS.title,
            T::WORDS.missing_spec[1]
        ))),
    }
}

/// `PUT …/extra_specs/{key}`, `PUT …/group_specs/{key}`: one spec; echoes
/// the body.
pub async fn specs_update<T: TypeApi>(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    T::require_version(&req)?;
    let schema = T::specs_schema().properties_count(Some(1), Some(1));
    let body = req.body_value();
    validation::validate(&schema, &body)?;
    enforce(&req, T::WORDS.rules.specs, "update")?;
    if !body.as_object().is_some_and(|m| m.contains_key(&key)) {
        T::guard_specs(&state, &type_id).await?;
        service::get_type::<T>(&state, &req.context, &type_id).await?;
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    }
    let specs = string_map(Some(&body));
    service::set_specs::<T>(&state, &req.context, &type_id, &specs).await?;
    Ok(views::ok(&body))
}

/// `DELETE …/extra_specs/{key}`, `DELETE …/group_specs/{key}` (202).
pub async fn specs_delete<T: TypeApi>(
    State(state): State<ApiState>,
    req: Req,
    Path((type_id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    T::require_version(&req)?;
    enforce(&req, T::WORDS.rules.specs, "delete")?;
    service::delete_spec::<T>(&state, &req.context, &type_id, &key).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `POST /types/{id}/action`: `addProjectAccess` / `removeProjectAccess`.
pub async fn action(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    let (name, args) = action_name(req.body.as_ref())?;
    let (key, add): (&'static str, bool) = match name.as_str() {
        "addProjectAccess" => ("addProjectAccess", true),
        "removeProjectAccess" => ("removeProjectAccess", false),
        other => return Err(no_such_action(other)),
    };
    let schema = object()
        .prop(
            key,
            body_of(
                "project",
                of(&[JsonType::String]).length(Some(1), Some(255)),
            ),
        )
        .required(&[key])
        .closed();
    validation::validate(&schema, &req.body_value())?;
    let rule = format!("volume_extension:volume_type_access:{key}");
    policy::enforce(&req.context, &rule, None)?;
    let project = args
        .get("project")
        .and_then(Value::as_str)
        .unwrap_or_default();
    service::change_access(&state, &req.context, &type_id, project, add).await?;
    Ok(views::empty(StatusCode::ACCEPTED))
}

/// `GET /types/{id}/os-volume-type-access`.
pub async fn access_index(
    State(state): State<ApiState>,
    req: Req,
    Path(type_id): Path<String>,
) -> ApiResult<Response> {
    policy::enforce(
        &req.context,
        "volume_extension:volume_type_access:get_all_for_type",
        None,
    )?;
    let (id, projects) = service::list_access(&state, &req.context, &type_id).await?;
    let items: Vec<Value> = projects
        .iter()
        .map(|p| json!({"volume_type_id": id.to_string(), "project_id": p}))
        .collect();
    Ok(views::ok(&json!({ "volume_type_access": items })))
}
