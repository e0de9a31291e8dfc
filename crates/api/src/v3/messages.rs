//! `/messages` (3.3; pagination 3.5): Cinder's `api/v3/messages.py`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clinker_db::{DbError, Page};
use clinker_types::MessageId;
use clinker_types::model::UserMessage;

use super::filters;
use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::listing::{self, Params};
use crate::microversion as mv;
use crate::policy;
use crate::request::Req;
use crate::services::{lookup_error, visible};
use crate::views::{self, ViewCtx, misc};

fn message_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Message {id} could not be found."))
}

async fn get_message(state: &ApiState, req: &Req, id: &str) -> ApiResult<UserMessage> {
    let Ok(message_id) = id.parse::<MessageId>() else {
        return Err(message_not_found(id));
    };
    let message = state
        .db
        .get_message(message_id)
        .await
        .map_err(|e| lookup_error(e, || message_not_found(id)))?;
    if visible(&req.context, &message.project_id) {
        Ok(message)
    } else {
        Err(message_not_found(id))
    }
}

/// `GET /messages`.
pub async fn index(State(state): State<ApiState>, req: Req) -> ApiResult<Response> {
    mv::require(req.version, mv::MESSAGES)?;
    policy::enforce(&req.context, "message:get_all", None)?;
    let max_limit = state.config.default.osapi_max_limit;
    let mut page = listing::Pagination {
        marker: None,
        limit: max_limit,
        offset: 0,
    };
    if req.version.matches(mv::MESSAGES_PAGINATION) {
        let mut params = Params::new(&req.query);
        page = listing::pagination(&mut params, max_limit)?;
        listing::sort_params(&mut params)?;
        if req.version.matches(mv::RESOURCE_FILTER) {
            filters::reject_invalid_filters(
                &req,
                filters::Resource::Message,
                params.into_filters(),
            )?;
        }
    }
    let marker = match &page.marker {
        None => None,
        // Cinder looks the marker up project-scoped: another project's
        // message is not found.
        Some(m) => Some(get_message(&state, &req, m).await?.id),
    };
    let project = (!req.is_admin()).then(|| req.context.project_id.clone());
    let messages = state
        .db
        .list_messages(
            project.as_deref(),
            &Page {
                marker,
                limit: Some(page.limit),
                offset: (page.offset > 0).then_some(page.offset),
            },
        )
        .await
        .map_err(|e| match e {
            DbError::NotFound { .. } => {
                message_not_found(page.marker.as_deref().unwrap_or_default())
            }
            other => other.into(),
        })?;
    Ok(views::ok(&misc::messages(
        &messages,
        &ViewCtx::of(&req),
        page.limit,
    )))
}

/// `GET /messages/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    req: Req,
    Path(message_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::MESSAGES)?;
    let message = get_message(&state, &req, &message_id).await?;
    policy::enforce(&req.context, "message:get", Some(&message.project_id))?;
    Ok(views::ok(&serde_json::json!({
        "message": misc::message(&message, &ViewCtx::of(&req))
    })))
}

/// `DELETE /messages/{id}` (204).
pub async fn delete(
    State(state): State<ApiState>,
    req: Req,
    Path(message_id): Path<String>,
) -> ApiResult<Response> {
    mv::require(req.version, mv::MESSAGES)?;
    let message = get_message(&state, &req, &message_id).await?;
    policy::enforce(&req.context, "message:delete", Some(&message.project_id))?;
    state
        .db
        .delete_message(message.id)
        .await
        .map_err(|e| lookup_error(e, || message_not_found(&message_id)))?;
    Ok(views::empty(StatusCode::NO_CONTENT))
}
