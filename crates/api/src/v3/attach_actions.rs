//! The legacy attach actions of `POST /volumes/{id}/action` (Cinder's
//! `contrib/volume_actions.py` and the `os-force_detach` of
//! `contrib/admin_actions.py`): `os-reserve`, `os-unreserve`,
//! `os-initialize_connection`, `os-attach`, `os-begin_detaching`,
//! `os-roll_detaching`, `os-terminate_connection`, `os-detach`,
//! `os-force_detach`. Nova uses them for volumes attached before the
//! attachments API; [`super::volume_actions`] hands them over here.

use axum::http::StatusCode;
use axum::response::Response;
use clinker_types::connection::Connector;
use serde_json::{Value, json};

use crate::ApiState;
use crate::fault::{ApiError, ApiResult};
use crate::request::Req;
use crate::services::attachments::{self as service, AttachRequest, StatusStep};
use crate::services::volumes::{authorized_volume, get_volume};
use crate::validation::{self, JsonType, Schema, any, body_of, object, of, optional_uuid, uuid};
use crate::views;

/// The actions served here.
pub const ACTIONS: &[&str] = &[
    "os-reserve",
    "os-unreserve",
    "os-initialize_connection",
    "os-attach",
    "os-begin_detaching",
    "os-roll_detaching",
    "os-terminate_connection",
    "os-detach",
    "os-force_detach",
];

fn schema(action: &'static str) -> Schema {
    let inner = match action {
        "os-attach" => object()
            .prop("instance_uuid", uuid())
            .prop(
                "mountpoint",
                of(&[JsonType::String]).length(Some(1), Some(255)),
            )
            .prop("host_name", of(&[JsonType::String]).length(None, Some(255)))
            .prop(
                "mode",
                of(&[JsonType::String]).one_value_of(vec![json!("rw"), json!("ro")]),
            )
            .required(&["mountpoint"])
            .any_of_required(&["instance_uuid", "host_name"])
            .closed(),
        "os-detach" => of(&[JsonType::Object, JsonType::Null])
            .prop("attachment_id", optional_uuid())
            .closed(),
        "os-initialize_connection" => {
            body_of("connector", of(&[JsonType::Object, JsonType::String]))
        }
        "os-terminate_connection" => body_of(
            "connector",
            of(&[JsonType::String, JsonType::Object, JsonType::Null]),
        ),
        "os-force_detach" => object()
            .prop(
                "connector",
                of(&[JsonType::String, JsonType::Object, JsonType::Null]),
            )
            .prop("attachment_id", of(&[JsonType::String, JsonType::Null]))
            .closed(),
        // os-reserve, os-unreserve, os-begin_detaching, os-roll_detaching
        // take anything (Cinder: "TODO: Restrict the value to 'null'").
        _ => any(),
    };
    body_of(action, inner)
}

/// A connector given as an object; Cinder's schema also admits a string,
/// which no driver can use.
fn connector_object(value: Option<&Value>) -> Option<Connector> {
    value.and_then(Value::as_object).cloned()
}

fn text(args: &Value, key: &str) -> Option<String> {
    args.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Serves one legacy attach action of `volume_id`.
///
/// # Errors
/// Cinder's status codes and texts for each action.
pub async fn action(
    state: &ApiState,
    req: &Req,
    volume_id: &str,
    name: &str,
    args: &Value,
) -> ApiResult<Response> {
    let Some(action) = ACTIONS.iter().copied().find(|a| *a == name) else {
        return Err(crate::request::no_such_action(name));
    };
    validation::validate(&schema(action), &req.body_value())?;
    let ctx = &req.context;
    let compute = req.compute.as_ref();
    if let Some(step) = StatusStep::of_action(action) {
        service::status_step(state, ctx, volume_id, step).await?;
        return Ok(views::empty(StatusCode::ACCEPTED));
    }
    match action {
        "os-attach" => {
            let request = AttachRequest {
                instance_uuid: text(args, "instance_uuid"),
                host_name: text(args, "host_name"),
                mountpoint: text(args, "mountpoint").unwrap_or_default(),
                mode: text(args, "mode").unwrap_or_else(|| "rw".to_owned()),
            };
            service::attach(state, ctx, volume_id, request).await?;
        }
        "os-initialize_connection" => {
            let connector = connector_object(args.get("connector")).ok_or_else(|| {
                ApiError::invalid_input("Connector doesn't have required information: initiator")
            })?;
            let enforce_multipath = connector
                .get("enforce_multipath")
                .cloned()
                .unwrap_or(Value::Bool(false));
            let info = service::initialize_connection(state, ctx, volume_id, connector).await?;
            let mut body = info.to_nested_json();
            if let Some(map) = body.as_object_mut() {
                map.insert("enforce_multipath".into(), enforce_multipath);
            }
            return Ok(views::ok(&json!({ "connection_info": body })));
        }
        "os-terminate_connection" | "os-detach" | "os-force_detach" => {
            let force = action == "os-force_detach";
            let rule = match action {
                "os-force_detach" => "volume_extension:volume_admin_actions:force_detach",
                "os-detach" => "volume_extension:volume_actions:detach",
                _ => "volume_extension:volume_actions:terminate_connection",
            };
            let mut volume = authorized_volume(state, ctx, volume_id, rule).await?;
            if action != "os-detach" {
                let connector = connector_object(args.get("connector"));
                service::terminate_connection(state, ctx, compute, &volume, connector).await?;
            }
            if force {
                // The terminate may have settled the volume; detach from
                // what it is now.
                volume = get_volume(state, ctx, volume_id).await?;
            }
            if action != "os-terminate_connection" {
                let what = if force {
                    "Error force detaching volume"
                } else {
                    "Error detaching volume"
                };
                let attachment_id = text(args, "attachment_id");
                service::detach(state, ctx, compute, &volume, attachment_id.as_deref(), what)
                    .await?;
            }
        }
        _ => return Err(crate::request::no_such_action(name)),
    }
    Ok(views::empty(StatusCode::ACCEPTED))
}
