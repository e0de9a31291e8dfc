//! The list and detail path every paged collection shares (Cinder's
//! `_get_volumes`, `_items`, `_get_all`, …): the microversion and
//! `get_all` policy checks, the paging, sort and `with_count` parameters,
//! the database query with its marker, the rows and their total, and the
//! page body.
//!
//! A collection's model is bound to its repository with
//! `services::rows::rows!` (query type, get, list and count
//! methods, Cinder's noun for a marker's not-found text, the policy rule),
//! then implements [`Listed`]: how a request's [`ListParams`] become its
//! query and how a page renders (usually through a
//! [`crate::views::Collection`]). Its `GET /x` and `GET /x/detail` routes
//! are then [`index`] and [`detail`] for that model.

use axum::extract::State;
use axum::response::Response;
use clinker_db::{Page, SortDir};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::listing::{self, Pagination, Params, invalid_sort_key};
use crate::microversion as mv;
use crate::policy;
use crate::request::Req;
use crate::services::lookup_error;
use crate::services::rows::{Rows, not_found};

/// The list parameters of a request.
#[derive(Clone, Debug)]
pub struct ListParams {
    /// `limit`, `marker`, `offset`.
    pub page: Pagination,
    /// The sort keys as given.
    pub sort: Vec<(String, SortDir)>,
    /// `with_count` (3.45, collections that read it).
    pub with_count: bool,
    /// Every other parameter, last value per key.
    pub filters: Vec<(String, String)>,
}

impl ListParams {
    /// Reads the parameters in the order the collection's Cinder
    /// controller does (which decides the error a request with several
    /// bad ones gets).
    ///
    /// # Errors
    /// 400 for a bad `limit`, `offset`, sort direction or `with_count`.
    pub fn read(req: &Req, max_limit: u32, sort_first: bool, counted: bool) -> ApiResult<Self> {
        let mut params = Params::new(&req.query);
        let (page, sort) = if sort_first {
            let sort = listing::sort_params(&mut params)?;
            (listing::pagination(&mut params, max_limit)?, sort)
        } else {
            let page = listing::pagination(&mut params, max_limit)?;
            (page, listing::sort_params(&mut params)?)
        };
        let with_count = counted
            && listing::with_count(&mut params, req.version.matches(mv::SUPPORT_COUNT_INFO))?;
        Ok(Self {
            page,
            sort,
            with_count,
            filters: params.into_filters(),
        })
    }

    /// The first page of everything, ignoring the request (collections
    /// that read no parameters before some microversion).
    pub fn everything(max_limit: u32) -> Self {
        Self {
            page: Pagination {
                marker: None,
                limit: max_limit,
                offset: 0,
            },
            sort: Vec::new(),
            with_count: false,
            filters: Vec::new(),
        }
    }

    /// The database's paging, the marker parsed as an id of `T`.
    ///
    /// # Errors
    /// 404 (`T`'s not-found text) for a marker that is no id.
    pub fn db_page<T: Rows>(&self) -> ApiResult<Page<T::Id>> {
        let marker = match &self.page.marker {
            None => None,
            Some(m) => Some(m.parse::<T::Id>().map_err(|_| not_found::<T>(m))?),
        };
        Ok(Page {
            marker,
            limit: Some(self.page.limit),
            offset: (self.page.offset > 0).then_some(self.page.offset),
        })
    }
}

/// The sort keys as columns.
///
/// # Errors
/// 400 "Invalid input received: Invalid sort key" for a key `column` does
/// not know.
pub fn sort_columns<C>(
    sort: &[(String, SortDir)],
    column: impl Fn(&str) -> Option<C>,
) -> ApiResult<Vec<(C, SortDir)>> {
    sort.iter()
        .map(|(key, dir)| column(key).map(|c| (c, *dir)).ok_or_else(invalid_sort_key))
        .collect()
}

/// How a request lists a collection: its parameters, its query, its page.
#[async_trait::async_trait]
pub trait Listed: Rows {
    /// The microversion check.
    ///
    /// # Errors
    /// 404 below the collection's microversion.
    fn require_version(_req: &Req) -> ApiResult<()> {
        Ok(())
    }
    /// The list parameters of a request.
    ///
    /// # Errors
    /// 400 for bad ones.
    fn params(req: &Req, max_limit: u32) -> ApiResult<ListParams>;
    /// The query of a request; `None` when nothing can match (Cinder
    /// matches nothing for filters that are not columns).
    ///
    /// # Errors
    /// 400 for bad filters or sort keys, 404 for a bad marker.
    fn query(req: &Req, params: &ListParams) -> ApiResult<Option<Self::Query>>;
    /// The response of a page.
    ///
    /// # Errors
    /// Whatever the view needs to look up.
    async fn render(state: &ApiState, req: &Req, page: Fetched<Self>) -> ApiResult<Response>;
}

/// A page of rows as the list path fetched it.
#[derive(Debug)]
pub struct Fetched<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// `/detail` rather than the plain list.
    pub detailed: bool,
    /// No query ran: the filters could match nothing.
    pub filtered_out: bool,
    /// The total, when `with_count` asked for it.
    pub count: Option<i64>,
    /// The page size asked for.
    pub limit: u32,
}

/// `GET /x`.
///
/// # Errors
/// See [`Listed`].
pub async fn index<T: Listed>(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list::<T>(&state, &req, false).await
}

/// `GET /x/detail`.
///
/// # Errors
/// See [`Listed`].
pub async fn detail<T: Listed>(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    list::<T>(&state, &req, true).await
}

async fn list<T: Listed>(state: &ApiState, req: &Req, detailed: bool) -> ApiResult<Response> {
    T::require_version(req)?;
    policy::enforce(&req.context, T::RULE, None)?;
    let params = T::params(req, state.config.default.osapi_max_limit)?;
    let query = T::query(req, &params)?;
    let filtered_out = query.is_none();
    let (rows, count) = match query {
        None => (Vec::new(), params.with_count.then_some(0)),
        Some(query) => {
            let marker = || not_found::<T>(params.page.marker.as_deref().unwrap_or_default());
            let rows = T::list(state.db.as_ref(), &query)
                .await
                .map_err(|e| lookup_error(e, marker))?;
            let count = if params.with_count {
                Some(
                    T::count(state.db.as_ref(), &query)
                        .await
                        .map_err(ApiError::from)?,
                )
            } else {
                None
            };
            (rows, count)
        }
    };
    let page = Fetched {
        rows,
        detailed,
        filtered_out,
        count,
        limit: params.page.limit,
    };
    T::render(state, req, page).await
}
