//! Response bodies, per resource and microversion (Cinder's
//! `api/views/*.py` and `api/v3/views/*.py`). Views emit exactly the keys
//! Cinder emits for the negotiated version: Tempest validates them with
//! `additionalProperties: False`.

pub mod attachments;
pub mod backups;
pub mod groups;
pub mod misc;
pub mod snapshots;
pub mod transfers;
pub mod type_extras;
pub mod types;
pub mod volumes;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clinker_types::Timestamp;
use serde_json::Value;

use crate::links::Links;
use crate::microversion::ApiVersion;
use crate::policy;
use crate::request::Req;

/// What a view needs to know about the request.
#[derive(Clone, Copy, Debug)]
pub struct ViewCtx<'a> {
    /// The negotiated version.
    pub version: ApiVersion,
    /// Whether admin-only fields are shown.
    pub is_admin: bool,
    /// `os-vol-host-attr:host` (`volume_extension:volume_host_attribute`).
    pub host_attribute: bool,
    /// `os-vol-tenant-attr:tenant_id`
    /// (`volume_extension:volume_tenant_attribute`; project readers).
    pub tenant_attribute: bool,
    /// `os-vol-mig-status-attr:*`
    /// (`volume_extension:volume_mig_status_attribute`).
    pub mig_status_attribute: bool,
    /// Link builder.
    pub links: &'a Links,
    /// Query of the request, for `next` links.
    pub query: &'a [(String, String)],
}

impl<'a> ViewCtx<'a> {
    /// The view context of a request.
    pub fn of(req: &'a Req) -> Self {
        // Cinder's attribute extensions authorize against the caller's own
        // project (`context.authorize` with the default target).
        let ctx = &req.context;
        let own = Some(ctx.project_id.as_str());
        Self {
            version: req.version,
            is_admin: req.is_admin(),
            host_attribute: policy::allowed(ctx, "volume_extension:volume_host_attribute", own),
            tenant_attribute: policy::allowed(ctx, "volume_extension:volume_tenant_attribute", own),
            mig_status_attribute: policy::allowed(
                ctx,
                "volume_extension:volume_mig_status_attribute",
                own,
            ),
            links: &req.links,
            query: &req.query,
        }
    }
}

/// A timestamp as Cinder renders it, or null.
pub fn time(ts: Option<Timestamp>) -> Value {
    ts.map_or(Value::Null, |t| Value::String(t.to_iso8601()))
}

/// An optional string as JSON.
pub fn opt<T: ToString>(value: Option<T>) -> Value {
    value.map_or(Value::Null, |v| Value::String(v.to_string()))
}

/// A JSON response with `status`.
pub fn json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A 200 JSON response.
pub fn ok(body: &Value) -> Response {
    json(StatusCode::OK, body)
}

/// A JSON response with `status` written straight from a `Serialize` view.
pub fn serialized<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = (status, bytes).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => crate::fault::ApiError::internal(format!("response not serializable: {e}"))
            .into_response(),
    }
}

/// An empty response with `status` (Cinder's `webob.Response(status_int=…)`).
pub fn empty(status: StatusCode) -> Response {
    let mut response = status.into_response();
    if status != StatusCode::NO_CONTENT {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

/// What a list body calls its collection (Cinder's `_collection_name` and
/// the keys of its list view).
#[derive(Clone, Copy, Debug)]
pub struct Collection {
    /// The items' key (`volumes`).
    pub key: &'static str,
    /// The `next` links' key (`volumes_links`).
    pub links_key: &'static str,
    /// The path `next` links point at (`volumes`).
    pub path: &'static str,
    /// The path of the detailed list's `next` links, where it has its own
    /// (`volumes/detail`).
    pub detail_path: Option<&'static str>,
}

impl Collection {
    /// A collection whose items are under `key`, its `next` links under
    /// `links_key` pointing at `path`.
    pub const fn new(key: &'static str, links_key: &'static str, path: &'static str) -> Self {
        Self {
            key,
            links_key,
            path,
            detail_path: None,
        }
    }

    /// The same, with the detailed list's links pointing at `path`.
    pub const fn detail_at(self, path: &'static str) -> Self {
        Self {
            detail_path: Some(path),
            ..self
        }
    }

    /// The `next` links of a page whose last row is `last_id` (Cinder's
    /// `_get_collection_links`).
    pub fn links(
        &self,
        ctx: &ViewCtx<'_>,
        detailed: bool,
        last_id: Option<String>,
        items: usize,
        count: Option<i64>,
        limit: u32,
    ) -> Option<Value> {
        let path = match self.detail_path {
            Some(detail) if detailed => detail,
            _ => self.path,
        };
        next_links(ctx, path, last_id, items, count, limit)
    }

    /// A list body of `items` (a `Serialize` sequence or a `Vec<Value>`).
    pub fn page<I>(&self, items: I, links: Option<Value>, count: Option<i64>) -> Page<I> {
        Page {
            collection: *self,
            items,
            links,
            count,
        }
    }
}

/// A list body: `{<key>: [...], <links_key>: [next], "count": n}`, the
/// links when the page is full, the count when it was asked for.
#[derive(Debug)]
pub struct Page<I> {
    collection: Collection,
    items: I,
    links: Option<Value>,
    count: Option<i64>,
}

impl<I: serde::Serialize> serde::Serialize for Page<I> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut body = serializer.serialize_map(None)?;
        body.serialize_entry(self.collection.key, &self.items)?;
        if let Some(links) = &self.links {
            body.serialize_entry(self.collection.links_key, links)?;
        }
        if let Some(count) = self.count {
            body.serialize_entry("count", &count)?;
        }
        body.end()
    }
}

impl Page<Vec<Value>> {
    /// The body as a JSON value.
    pub fn into_value(self) -> Value {
        let mut body = serde_json::Map::new();
        body.insert(self.collection.key.into(), Value::Array(self.items));
        if let Some(links) = self.links {
            body.insert(self.collection.links_key.into(), links);
        }
        if let Some(count) = self.count {
            body.insert("count".into(), count.into());
        }
        Value::Object(body)
    }
}

/// The `next` link array of a page, when Cinder would emit one.
pub fn next_links(
    ctx: &ViewCtx<'_>,
    collection: &str,
    last_id: Option<String>,
    items: usize,
    count: Option<i64>,
    limit: u32,
) -> Option<Value> {
    let last_id = last_id?;
    if !crate::listing::wants_next_link(items, count, limit) {
        return None;
    }
    Some(serde_json::json!([{
        "rel": "next",
        "href": ctx.links.next_href(collection, ctx.query, &last_id),
    }]))
}
