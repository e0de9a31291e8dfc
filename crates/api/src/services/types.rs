//! Volume types and group types: their lookups, lists, management and
//! specs (Cinder's `volume/volume_types.py` and `volume/group_types.py`,
//! and the `types_manage`, `types_extra_specs`, `volume_type_access`,
//! `group_types` and `group_specs` controllers' rules).
//!
//! The two kinds behave alike, so one generic implementation serves both
//! through [`TypeKind`]; what only volume types have (the default type's
//! delete protection, the in-use and `cacheable` checks on extra specs, the
//! access-list API) hangs off the same trait or stays below.
//!
//! A caller sees the public types and the private ones its project was
//! granted; administrators see all.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

use clinker_db::{
    Database, DbError, FilterValue, NewGroupType, NewVolumeType, VolumeColumn, VolumeQuery,
};
use clinker_rpc::RequestContext;
use clinker_types::group::GroupType;
use clinker_types::model::VolumeType;
use clinker_types::{ErrorKind, GroupTypeId, Timestamp, VolumeTypeId};

use super::lookup_error;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::validation::is_uuid_like;

/// The columns every kind of type has, borrowed from its row.
#[derive(Clone, Copy, Debug)]
pub struct TypeRow<'a, Id> {
    /// Type id.
    pub id: Id,
    /// Unique name.
    pub name: &'a str,
    /// Description.
    pub description: Option<&'a str>,
    /// Visible to every project.
    pub is_public: bool,
    /// Extra specs or group specs.
    pub specs: &'a Specs,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Option<Timestamp>,
}

/// Cinder's words for a kind of type, where they differ by kind.
#[derive(Clone, Copy, Debug)]
pub struct TypeWords {
    /// `Volume type` (not-found texts, the empty-name refusal).
    pub noun: &'static str,
    /// `Volume Type` (conflict and missing-spec texts).
    pub title: &'static str,
    /// The body key of one type (`volume_type`).
    pub key: &'static str,
    /// The create body's visibility key.
    pub public_key: &'static str,
    /// What a missing spec is "no … with key" of, on delete and on show.
    pub missing_spec: [&'static str; 2],
    /// The refusal of an update that changes nothing.
    pub nothing_to_update: &'static str,
    /// The policy rules.
    pub rules: TypeRules,
}

/// The policy rules of a kind, as Cinder's policy modules name them:
/// `<types><verb>` for the types (`create`, `update`, `delete` and the
/// reads) and `<specs><verb>` for their specs (`create`, `update`,
/// `delete` and the reads).
#[derive(Clone, Copy, Debug)]
pub struct TypeRules {
    /// The prefix of the type rules (`volume_extension:type_`).
    pub types: &'static str,
    /// The verbs of the list and show rules, where those are checked.
    pub reads: Option<[&'static str; 2]>,
    /// The prefix of the spec rules (`volume_extension:types_extra_specs:`).
    pub specs: &'static str,
    /// The verbs of the spec list and show rules.
    pub spec_reads: [&'static str; 2],
}

/// Specs of a type (extra specs, group specs).
pub type Specs = BTreeMap<String, String>;

type DbResult<T> = Result<T, DbError>;

/// A type to create.
#[derive(Clone, Debug)]
pub struct NewType {
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Visible to every project.
    pub is_public: bool,
    /// Its specs.
    pub specs: Specs,
}

/// Changes of a type (`None`: unchanged).
#[derive(Clone, Debug, Default)]
pub struct TypeChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New visibility.
    pub is_public: Option<bool>,
}

/// Which types a list shows (Cinder's `is_public` list filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeVisibility {
    /// Public types and private ones granted to the caller's project (the
    /// default, and all non-admins get).
    Visible,
    /// Private types only (admin, `is_public=false`).
    PrivateOnly,
    /// Every type (admin, `is_public=none`).
    All,
}

/// A kind of type — volume type or group type: its repository methods,
/// Cinder's words for it, and the checks only one kind makes (no-ops by
/// default).
#[async_trait::async_trait]
pub trait TypeKind: Sized + Send + Sync + 'static {
    /// The id.
    type Id: FromStr + Display + Copy + Ord + Send + Sync;
    /// Cinder's words for the kind.
    const WORDS: TypeWords;
    /// The specs' key in bodies (`extra_specs`, `group_specs`).
    const SPECS_KEY: &'static str;

    /// The common columns.
    fn row(&self) -> TypeRow<'_, Self::Id>;
    /// One type by id.
    async fn get(db: &dyn Database, id: Self::Id) -> DbResult<Self>;
    /// One type by exact name.
    async fn get_by_name(db: &dyn Database, name: &str) -> DbResult<Self>;
    /// The types of a visibility; `project` is the caller's.
    async fn list(db: &dyn Database, shown: TypeVisibility, project: &str) -> DbResult<Vec<Self>>;
    /// Projects granted a private type.
    async fn access(db: &dyn Database, id: Self::Id) -> DbResult<Vec<String>>;
    /// Creates a type.
    async fn create(db: &dyn Database, new: NewType) -> DbResult<Self>;
    /// Updates name / description / visibility.
    async fn update(db: &dyn Database, id: Self::Id, changes: TypeChanges) -> DbResult<Self>;
    /// Deletes an unused type.
    async fn delete(db: &dyn Database, id: Self::Id) -> DbResult<()>;
    /// Merges specs; all of the type's specs after.
    async fn set_specs(db: &dyn Database, id: Self::Id, specs: &Specs) -> DbResult<Specs>;
    /// Deletes one spec.
    async fn delete_spec(db: &dyn Database, id: Self::Id, key: &str) -> DbResult<()>;

    /// The refusal of a delete while the type is used.
    fn in_use(&self) -> ApiError;
    /// Refusals of a delete the database cannot see.
    async fn check_deletable(_state: &ApiState, _found: &Self, _id: &str) -> ApiResult<()> {
        Ok(())
    }
    /// Refusals of any spec change, by the type id as given (made before
    /// the type is looked up on create and update, as Cinder does).
    async fn guard_specs(_state: &ApiState, _type_id: &str) -> ApiResult<()> {
        Ok(())
    }
    /// Refusals of new specs given the type's current ones.
    fn check_specs(&self, _new: &BTreeMap<String, String>) -> ApiResult<()> {
        Ok(())
    }
}

/// Implements [`TypeKind`]'s repository half for a model: its id type, the
/// field holding its specs, its `New*` struct, the
/// `is_public` argument that lists the visible types, its words, and the nine
/// repository methods in the trait's order; then the kind's own items.
macro_rules! type_kind {
    (
        $model:ty, $id:ty, $specs:ident, $new:ident, $visible:expr,
        $words:expr,
        [$get:ident, $by_name:ident, $list:ident, $access:ident, $create:ident,
         $update:ident, $delete:ident, $set:ident, $unset:ident],
        $($own:tt)*
    ) => {
        #[async_trait::async_trait]
        impl TypeKind for $model {
            type Id = $id;
            const WORDS: TypeWords = $words;
            const SPECS_KEY: &'static str = stringify!($specs);

            fn row(&self) -> TypeRow<'_, $id> {
                TypeRow {
                    id: self.id,
                    name: &self.name,
                    description: self.description.as_deref(),
                    is_public: self.is_public,
                    specs: &self.$specs,
                    created_at: self.created_at,
                    updated_at: self.updated_at,
                }
            }
            async fn get(db: &dyn Database, id: $id) -> DbResult<Self> {
                db.$get(id).await
            }
            async fn get_by_name(db: &dyn Database, name: &str) -> DbResult<Self> {
                db.$by_name(name).await
            }
            async fn list(
                db: &dyn Database,
                shown: TypeVisibility,
                project: &str,
            ) -> DbResult<Vec<Self>> {
                match shown {
                    TypeVisibility::Visible => db.$list($visible, Some(project)).await,
                    TypeVisibility::PrivateOnly => db.$list(Some(false), None).await,
                    TypeVisibility::All => db.$list(None, None).await,
                }
            }
            async fn access(db: &dyn Database, id: $id) -> DbResult<Vec<String>> {
                db.$access(id).await
            }
            async fn create(db: &dyn Database, new: NewType) -> DbResult<Self> {
                let NewType { name, description, is_public, specs } = new;
                db.$create($new { name, description, is_public, $specs: specs }).await
            }
            async fn update(db: &dyn Database, id: $id, changes: TypeChanges) -> DbResult<Self> {
                let TypeChanges { name, description, is_public } = changes;
                db.$update(id, name, description.map(Some), is_public).await
            }
            async fn delete(db: &dyn Database, id: $id) -> DbResult<()> {
                db.$delete(id).await
            }
            async fn set_specs(db: &dyn Database, id: $id, specs: &Specs) -> DbResult<Specs> {
                db.$set(id, specs).await
            }
            async fn delete_spec(db: &dyn Database, id: $id, key: &str) -> DbResult<()> {
                db.$unset(id, key).await
            }
            $($own)*
        }
    };
}

type_kind! {
    VolumeType, VolumeTypeId, extra_specs, NewVolumeType, None,
    TypeWords {
        noun: "Volume type", title: "Volume Type", key: "volume_type",
        public_key: "os-volume-type-access:is_public", missing_spec: ["extra specs"; 2],
        nothing_to_update:
            "Specify volume type name, description, is_public or a combination thereof.",
        rules: TypeRules {
            types: "volume_extension:type_", reads: Some(["get_all", "get"]),
            specs: "volume_extension:types_extra_specs:", spec_reads: ["index", "show"],
        },
    },
    [get_volume_type, get_volume_type_by_name, list_volume_types, list_type_access,
     create_volume_type, update_volume_type, delete_volume_type, set_extra_specs,
     delete_extra_spec],
    fn in_use(&self) -> ApiError {
        ApiError::bad_request("Target volume type is still in use.")
    }
    /// The configured default and the projects' defaults cannot go.
    async fn check_deletable(state: &ApiState, found: &Self, id: &str) -> ApiResult<()> {
        let configured = default_type(state).await.ok().map(|t| t.id);
        // Cinder's `get_all_projects_with_default_type` check follows.
        if configured == Some(found.id)
            || !state
                .db
                .projects_with_default_type(found.id)
                .await
                .map_err(ApiError::from)?
                .is_empty()
        {
            return Err(ApiError::bad_request(format!(
                "The volume type {id} is a default volume type and cannot be deleted."
            )));
        }
        Ok(())
    }
    async fn guard_specs(state: &ApiState, type_id: &str) -> ApiResult<()> {
        match type_id.parse() {
            Ok(id) => ensure_type_unused(state, id).await,
            Err(_) => Ok(()),
        }
    }
    fn check_specs(&self, new: &BTreeMap<String, String>) -> ApiResult<()> {
        check_cacheable(new, &self.extra_specs)
    }
}

// Cinder's `_process_group_types_filters`: asking the repository for public
// group types with a project also yields the private ones granted to it.
type_kind! {
    GroupType, GroupTypeId, group_specs, NewGroupType, Some(true),
    TypeWords {
        noun: "Group type", title: "Group Type", key: "group_type", public_key: "is_public",
        missing_spec: ["specs", "extra spec"],
        nothing_to_update: "Specify group type name, description or a combination thereof.",
        rules: TypeRules {
            types: "group:group_types:", reads: None, specs: "group:group_types_specs:",
            spec_reads: ["get_all", "get"],
        },
    },
    [get_group_type, get_group_type_by_name, list_group_types, list_group_type_access,
     create_group_type, update_group_type, delete_group_type, set_group_specs,
     delete_group_spec],
    fn in_use(&self) -> ApiError {
        ApiError::bad_request(format!(
            "Target group type is still in use. Group Type {} deletion is not allowed with groups present with the type.",
            self.id
        ))
    }
}

/// Cinder's `VolumeTypeNotFound` / `GroupTypeNotFound` text.
pub fn type_not_found<T: TypeKind>(id: &str) -> ApiError {
    ApiError::not_found(format!("{} {id} could not be found.", T::WORDS.noun))
}

fn type_name_not_found<T: TypeKind>(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "{} with name {name} could not be found.",
        T::WORDS.noun
    ))
}

/// A looked-up type if the caller may use it (public, admin, or granted
/// access), else `not_found`.
async fn usable<T: TypeKind>(
    state: &ApiState,
    ctx: &RequestContext,
    found: Result<T, DbError>,
    not_found: impl Fn() -> ApiError,
) -> ApiResult<T> {
    let found = found.map_err(|e| lookup_error(e, &not_found))?;
    let row = found.row();
    if row.is_public || ctx.is_admin {
        return Ok(found);
    }
    let projects = T::access(state.db.as_ref(), row.id)
        .await
        .map_err(ApiError::from)?;
    if projects.contains(&ctx.project_id) {
        Ok(found)
    } else {
        Err(not_found())
    }
}

/// A type by id (Cinder's `get_volume_type`); 404 "Volume type X could not
/// be found." for unknown ids, non-UUIDs and private types of others.
///
/// # Errors
/// 404.
pub async fn get_type<T: TypeKind>(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> ApiResult<T> {
    let Ok(type_id) = id.parse::<T::Id>() else {
        return Err(type_not_found::<T>(id));
    };
    let found = T::get(state.db.as_ref(), type_id).await;
    usable(state, ctx, found, || type_not_found::<T>(id)).await
}

/// A type by name (`…NotFoundByName` when missing).
async fn get_type_by_name<T: TypeKind>(
    state: &ApiState,
    ctx: &RequestContext,
    name: &str,
) -> ApiResult<T> {
    let found = T::get_by_name(state.db.as_ref(), name).await;
    usable(state, ctx, found, || type_name_not_found::<T>(name)).await
}

/// Cinder's `get_by_name_or_id`: a UUID is tried as an id, then as a name
/// (whose 404 names the id); anything else is a name.
///
/// # Errors
/// 404 with the id or the name text.
pub async fn find_type<T: TypeKind>(
    state: &ApiState,
    ctx: &RequestContext,
    identity: &str,
) -> ApiResult<T> {
    if !is_uuid_like(identity) {
        return get_type_by_name(state, ctx, identity).await;
    }
    match get_type(state, ctx, identity).await {
        Err(err) if err.kind() == Some(clinker_types::ErrorKind::NotFound) => {
            get_type_by_name(state, ctx, identity)
                .await
                .map_err(|_| type_not_found::<T>(identity))
        }
        found => found,
    }
}

/// Types of the requested visibility (non-admins always get
/// [`TypeVisibility::Visible`]).
///
/// # Errors
/// Database failures.
pub async fn list_types<T: TypeKind>(
    state: &ApiState,
    ctx: &RequestContext,
    visibility: TypeVisibility,
) -> ApiResult<Vec<T>> {
    let visibility = if ctx.is_admin {
        visibility
    } else {
        TypeVisibility::Visible
    };
    T::list(state.db.as_ref(), visibility, &ctx.project_id)
        .await
        .map_err(ApiError::from)
}

fn already_exists<T: TypeKind>(name: &str) -> ApiError {
    ApiError::conflict(format!("{} {name} already exists.", T::WORDS.title))
}

/// Creates a type.
///
/// # Errors
/// 409 "Volume Type X already exists.".
pub async fn create_type<T: TypeKind>(state: &ApiState, new: NewType) -> ApiResult<T> {
    let name = new.name.clone();
    T::create(state.db.as_ref(), new)
        .await
        .map_err(|e| match e {
            DbError::Conflict(_) => already_exists::<T>(&name),
            other => other.into(),
        })
}

/// Updates name / description / visibility.
///
/// # Errors
/// 404, 409 for a name another type has.
pub async fn update_type<T: TypeKind>(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
    changes: TypeChanges,
) -> ApiResult<T> {
    let existing: T = get_type(state, ctx, id).await?;
    let clash = changes.name.clone().unwrap_or_default();
    T::update(state.db.as_ref(), existing.row().id, changes)
        .await
        .map_err(|e| match e {
            DbError::Conflict(_) => already_exists::<T>(&clash),
            other => lookup_error(other, || type_not_found::<T>(id)),
        })
}

/// Deletes a type that is not in use (nor, for volume types, a default).
///
/// # Errors
/// 404, 400 for a default type or a type in use.
pub async fn delete_type<T: TypeKind>(
    state: &ApiState,
    ctx: &RequestContext,
    id: &str,
) -> ApiResult<()> {
    let existing: T = get_type(state, ctx, id).await?;
    T::check_deletable(state, &existing, id).await?;
    T::delete(state.db.as_ref(), existing.row().id)
        .await
        .map_err(|e| match e {
            DbError::InvalidState(_) => existing.in_use(),
            other => lookup_error(other, || type_not_found::<T>(id)),
        })
}

/// Sets specs (after the kind's checks).
///
/// # Errors
/// 404, 400.
pub async fn set_specs<T: TypeKind>(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
    specs: &BTreeMap<String, String>,
) -> ApiResult<BTreeMap<String, String>> {
    T::guard_specs(state, type_id).await?;
    let existing: T = get_type(state, ctx, type_id).await?;
    existing.check_specs(specs)?;
    T::set_specs(state.db.as_ref(), existing.row().id, specs)
        .await
        .map_err(|e| lookup_error(e, || type_not_found::<T>(type_id)))
}

/// Deletes one spec.
///
/// # Errors
/// 404 for the type or the key, 400 when the kind refuses.
pub async fn delete_spec<T: TypeKind>(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
    key: &str,
) -> ApiResult<()> {
    let existing: T = get_type(state, ctx, type_id).await?;
    let id = existing.row().id;
    T::guard_specs(state, &id.to_string()).await?;
    T::delete_spec(state.db.as_ref(), id, key)
        .await
        .map_err(|e| {
            lookup_error(e, || {
                ApiError::not_found(format!(
                    "{} {type_id} has no {} with key {key}.",
                    T::WORDS.title,
                    T::WORDS.missing_spec[0]
                ))
            })
        })
}

/// The configured default volume type (`[DEFAULT] default_volume_type`).
///
/// # Errors
/// 500 when it does not exist (Cinder's
/// `VolumeTypeDefaultMisconfiguredError`).
pub async fn default_type(state: &ApiState) -> ApiResult<VolumeType> {
    let name = &state.config.default.default_volume_type;
    state.db.get_volume_type_by_name(name).await.map_err(|e| {
        // Only a missing type is a misconfiguration; a database that cannot
        // answer now stays a 503.
        if e.kind() != ErrorKind::NotFound {
            return ApiError::from(e);
        }
        ApiError::internal(format!(
            "The request cannot be fulfilled as the default volume type {name} cannot be found. ({e})"
        ))
    })
}

/// `[DEFAULT] default_group_type` (unset by default, as in Cinder).
///
/// # Errors
/// 404 "Default group type can not be found." when unset or missing.
pub async fn default_group_type(state: &ApiState) -> ApiResult<GroupType> {
    let missing = || ApiError::not_found("Default group type can not be found.");
    let Some(name) = state.config.default.default_group_type.as_deref() else {
        return Err(missing());
    };
    match state.db.get_group_type_by_name(name).await {
        Ok(found) => Ok(found),
        Err(DbError::NotFound { .. }) => {
            tracing::warn!(default_group_type = %name, "default group type is not found; check default_group_type");
            Err(missing())
        }
        Err(e) => Err(e.into()),
    }
}

/// Refuses extra spec changes while volumes use the type (Cinder's
/// `_allow_update`).
///
/// # Errors
/// 400 "Volume Type is currently in use.".
pub async fn ensure_type_unused(state: &ApiState, id: VolumeTypeId) -> ApiResult<()> {
    let query = VolumeQuery {
        project_id: None,
        filters: vec![(VolumeColumn::VolumeTypeId, FilterValue::Eq(id.to_string()))],
        ..VolumeQuery::default()
    };
    let in_use = state
        .db
        .count_volumes(&query)
        .await
        .map_err(ApiError::from)?;
    if in_use > 0 {
        return Err(ApiError::bad_request("Volume Type is currently in use."));
    }
    Ok(())
}

/// Cinder's refusal of `multiattach` together with `cacheable`.
///
/// # Errors
/// 400 "cacheable cannot be set with multiattach.".
pub fn check_cacheable(
    new: &BTreeMap<String, String>,
    existing: &BTreeMap<String, String>,
) -> ApiResult<()> {
    let is_true = |v: Option<&String>| v.is_some_and(|v| v == "<is> True");
    let multiattach = is_true(new.get("multiattach"));
    let cacheable = is_true(new.get("cacheable"));
    if (multiattach && is_true(existing.get("cacheable")))
        || (cacheable && is_true(existing.get("multiattach")))
        || (cacheable && multiattach)
    {
        return Err(ApiError::bad_request(
            "cacheable cannot be set with multiattach.",
        ));
    }
    Ok(())
}

/// The projects granted a private volume type.
///
/// # Errors
/// 404 for unknown or public types.
pub async fn list_access(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
) -> ApiResult<(VolumeTypeId, Vec<String>)> {
    let existing: VolumeType = get_type(state, ctx, type_id).await?;
    if existing.is_public {
        return Err(ApiError::not_found(
            "Access list not available for public volume types.",
        ));
    }
    let projects = state
        .db
        .list_type_access(existing.id)
        .await
        .map_err(|e| lookup_error(e, || type_not_found::<VolumeType>(type_id)))?;
    Ok((existing.id, projects))
}

/// Grants (`add = true`) or revokes a project's access to a private
/// volume type.
///
/// # Errors
/// 404, 409 when already granted, 400 on public types.
pub async fn change_access(
    state: &ApiState,
    ctx: &RequestContext,
    type_id: &str,
    project: &str,
    add: bool,
) -> ApiResult<()> {
    let existing: VolumeType = get_type(state, ctx, type_id).await?;
    if existing.is_public {
        return Err(ApiError::bad_request(
            "Invalid volume type: Type access modification is not applicable to public volume type.",
        ));
    }
    let id = existing.id;
    if add {
        state
            .db
            .add_type_access(id, project)
            .await
            .map_err(|e| match e {
                DbError::Conflict(_) => ApiError::conflict(format!(
                    "Volume type access for {id} / {project} combination already exists."
                )),
                other => lookup_error(other, || type_not_found::<VolumeType>(type_id)),
            })
    } else {
        state.db.remove_type_access(id, project).await.map_err(|e| {
            lookup_error(e, || {
                ApiError::not_found(format!(
                    "Volume type access not found for {id} / {project} combination."
                ))
            })
        })
    }
}
