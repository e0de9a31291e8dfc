//! `GET /` (300, every version) and `GET /v3/` (200): Cinder's
//! `api/versions.py`. Nova, cinderclient and keystoneauth read `version`
//! and `min_version` from here to negotiate microversions.

use axum::http::StatusCode;
use axum::response::Response;

use crate::fault::ApiResult;
use crate::request::Req;
use crate::views::{self, misc};

/// `GET /`: the versions document with 300 Multiple Choices.
pub async fn root(req: Req) -> ApiResult<Response> {
    Ok(views::json(
        StatusCode::MULTIPLE_CHOICES,
        &misc::versions(&req.links),
    ))
}

/// `GET /v3/`: the same document with 200.
pub async fn show(req: Req) -> ApiResult<Response> {
    Ok(views::ok(&misc::versions(&req.links)))
}
