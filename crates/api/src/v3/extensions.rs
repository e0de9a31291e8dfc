//! `GET /extensions`: Cinder's extension list (aliases as Cinder loads
//! them from `api/contrib`).

use axum::response::Response;

use crate::fault::ApiResult;
use crate::request::Req;
use crate::views::{self, misc};

/// Lists the extensions.
pub async fn index(_req: Req) -> ApiResult<Response> {
    Ok(views::ok(&misc::extensions()))
}
