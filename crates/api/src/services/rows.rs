//! Rows that belong to a project — volumes, snapshots, groups, group
//! snapshots, and backups next — bound to their repository once: the
//! lookup a caller may make of one (its id parsed, the row read, other
//! projects' rows hidden), and the list and count the list path
//! ([`crate::v3::collection`]) uses.

use std::str::FromStr;

use clinker_db::{Database, DbError};
use clinker_rpc::RequestContext;

use super::{lookup_error, visible};
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};

/// A project's row and its repository: made by `rows!` for each model.
#[async_trait::async_trait]
pub trait Rows: Sized + Send + Sync + 'static {
    /// The id.
    type Id: FromStr + Send;
    /// The list query.
    type Query: Send + Sync;
    /// Cinder's name of one row in its not-found text (`Volume`).
    const NOUN: &'static str;
    /// The policy rule of the list.
    const RULE: &'static str;

    /// The owning project.
    fn project_id(&self) -> &str;
    /// One row.
    async fn get(db: &dyn Database, id: Self::Id) -> Result<Self, DbError>;
    /// One page of rows.
    async fn list(db: &dyn Database, query: &Self::Query) -> Result<Vec<Self>, DbError>;
    /// The rows the query matches, without paging. Only called for
    /// `with_count`, which only the collections whose list reads it have;
    /// the others keep this default.
    async fn count(_db: &dyn Database, _query: &Self::Query) -> Result<i64, DbError> {
        Ok(0)
    }
}

/// Implements [`Rows`] for a model: `Model(Id, Query)`, its noun, its list
/// rule, and its repository's get, list and (for collections that read
/// `with_count`) count methods.
macro_rules! rows {
    (
        $model:ident($id:ty, $query:ty), $noun:literal, $rule:literal,
        $get:ident, $list:ident $(, $count:ident)?
    ) => {
        #[async_trait::async_trait]
        impl $crate::services::rows::Rows for $model {
            type Id = $id;
            type Query = $query;
            const NOUN: &'static str = $noun;
            const RULE: &'static str = $rule;

            fn project_id(&self) -> &str {
                &self.project_id
            }
            async fn get(
                db: &dyn clinker_db::Database,
                id: $id,
            ) -> Result<Self, clinker_db::DbError> {
                db.$get(id).await
            }
            async fn list(
                db: &dyn clinker_db::Database,
                query: &$query,
            ) -> Result<Vec<Self>, clinker_db::DbError> {
                db.$list(query).await
            }
            $(
            async fn count(
                db: &dyn clinker_db::Database,
                query: &$query,
            ) -> Result<i64, clinker_db::DbError> {
                db.$count(query).await
            }
            )?
        }
    };
}

pub(crate) use rows;

/// Cinder's not-found text of a row of `T` (`Volume X could not be found.`).
pub fn not_found<T: Rows>(id: &str) -> ApiError {
    ApiError::not_found(format!("{} {id} could not be found.", T::NOUN))
}

/// A row the caller may see: 404 for unknown ids, ids that do not parse
/// and other projects' rows (administrators see every project's).
///
/// # Errors
/// 404, database failures.
pub async fn get_owned<T: Rows>(state: &ApiState, ctx: &RequestContext, id: &str) -> ApiResult<T> {
    let Ok(row_id) = id.parse::<T::Id>() else {
        return Err(not_found::<T>(id));
    };
    let row = T::get(state.db.as_ref(), row_id)
        .await
        .map_err(|e| lookup_error(e, || not_found::<T>(id)))?;
    if visible(ctx, row.project_id()) {
        Ok(row)
    } else {
        Err(not_found::<T>(id))
    }
}
