//! Declaring an RPC API once.
//!
//! `rpc_api!` takes one list of methods — each with its
//! kind (cast, call or fanout), the version that introduced it, its argument
//! and reply types, its docs and, for methods that work on one resource, the
//! id that serializes them — and generates everything Cinder writes four
//! times in an `rpcapi.py` and a manager:
//!
//! - the handler trait the manager implements (every method has a default
//!   body answering `NotImplemented`, so test doubles implement only what
//!   they use);
//! - the version table `METHODS` ([`MethodSpec`]s);
//! - the endpoint that checks a message against that table
//!   ([`crate::dispatch::Endpoint`]), decodes its arguments and calls the
//!   handler;
//! - the typed client, one method per RPC method;
//! - a `serve_…!` macro that implements the handler trait for a type by
//!   forwarding each method to the type's inherent method of the same name,
//!   so a manager can keep its handler bodies in one file per
//!   responsibility and still cannot miss one (a missing body is a compile
//!   error).
//!
//! A method can therefore not exist in one of those places and not in the
//! others. The wire format is oslo.messaging's: `{method, version, args}`
//! with the arguments struct as `args` (`{}` for a method without
//! arguments), the reply as the serde form of the result (`null` for a
//! method that returns nothing).
//!
//! ```text
//! rpc_api! {
//!     module: volume,                 // the module the API lives in
//!     service: "volume service",      // how errors name its servers
//!     topic: TOPIC,
//!     version: CURRENT_VERSION,       // what the endpoint serves and the client sends at most
//!     route: host,                    // casts and calls go to `topic.<host>`
//!                                     // (`route: topic`: to the shared queue)
//!     /// docs
//!     handler: VolumeManagerApi,
//!     /// docs
//!     endpoint: VolumeEndpoint,
//!     /// docs
//!     client: VolumeRpcClient,
//!     /// docs
//!     serve: serve_volume_api,
//!     methods: {
//!         /// Deletes a volume (and its snapshots when cascading).
//!         cast delete_volume(args: DeleteVolumeArgs) { since: 3.0, serialized_by: args.volume_id }
//!         /// The backend's capabilities.
//!         call get_capabilities(args: GetCapabilitiesArgs) -> Value { since: 3.0 }
//!         /// Reports capabilities to the schedulers now.
//!         fanout publish_service_capabilities() { since: 3.0 }
//!     }
//! }
//! ```
//!
//! `since` is the version the client sends the method at (refused while
//! the client is capped below it); the endpoint serves every declared name
//! at any version its own can serve, as oslo.messaging does.
//!
//! `serialized_by` names the resource a message works on: the endpoint
//! takes the handler's [`Hold`] on it before calling the method (the volume
//! manager waits there while another message for the same resource is
//! being handled), and internal callers of the handler method, which
//! already hold the resource, are not serialized again.
//!
//! A type served with `serve_…!(Type)` (or `serve_…!(Type, hold =
//! method)`) has, for each declared method, an inherent
//! `async fn name(&self, context: &RequestContext, args: Args) ->
//! Result<Reply, RemoteError>` (without `args` for a method without
//! arguments).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use clinker_types::{ErrorKind, Host};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use clinker_runtime::metrics;

use crate::{RequestContext, RpcError, RpcMessage, Target, TransportHandle, Version};

#[doc(hidden)]
pub use async_trait::async_trait;
#[doc(hidden)]
pub use clinker_types::RemoteError;
#[doc(hidden)]
pub use tracing::Instrument;

/// The span a served message runs in: the request's ids travel in the
/// message's context and are entered again here, so every log line of the
/// work (in the scheduler, the volume service) carries the `request_id` of
/// the API request that caused it.
#[doc(hidden)]
pub fn rpc_span(topic: &'static str, message: &RpcMessage) -> tracing::Span {
    let context = &message.context;
    tracing::info_span!(
        "rpc",
        topic,
        method = %message.method,
        request_id = %context.request_id,
        global_request_id = context.global_request_id.as_deref(),
        project_id = %context.project_id,
    )
}

/// How a method travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodKind {
    /// Fire-and-forget to one queue; fails fast when nobody consumes it.
    Cast,
    /// Request/reply to one queue, waiting at most `rpc_response_timeout`.
    Call,
    /// Delivered to every server of the topic (none is not an error).
    Fanout,
}

impl MethodKind {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            MethodKind::Cast => "cast",
            MethodKind::Call => "call",
            MethodKind::Fanout => "fanout",
        }
    }
}

/// One row of an API's version table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodSpec {
    /// The method name on the wire.
    pub name: &'static str,
    /// Cast, call or fanout.
    pub kind: MethodKind,
    /// The version that introduced the method: what the client sends it at.
    pub since: Version,
}

/// What a handler holds on one resource while a message declared
/// `serialized_by` is handled; dropping it lets the next message for the
/// resource in.
pub struct Hold<'a> {
    _guard: Box<dyn Send + 'a>,
}

impl<'a> Hold<'a> {
    /// Holds `guard` until the method returns.
    pub fn new(guard: impl Send + 'a) -> Self {
        Self {
            _guard: Box::new(guard),
        }
    }

    /// Holds nothing (a handler that does not serialize).
    pub fn nothing() -> Self {
        Self::new(())
    }
}

impl std::fmt::Debug for Hold<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hold")
    }
}

/// The answer of a handler to a method it does not implement.
pub fn not_served(service: &str, method: &str) -> RemoteError {
    RemoteError::new(
        ErrorKind::NotImplemented,
        format!("{method} is not served by this {service}"),
    )
}

/// A handler's result as the reply on the wire (`null` for `()`).
///
/// # Errors
/// The handler's error, or `Internal` when the result does not serialize.
pub fn encode_reply<T: Serialize>(result: Result<T, RemoteError>) -> Result<Value, RemoteError> {
    result.and_then(|reply| {
        serde_json::to_value(reply)
            .map_err(|e| RemoteError::new(ErrorKind::Internal, e.to_string()))
    })
}

/// A client's arguments as the message's `args`.
///
/// # Errors
/// [`RpcError::Payload`].
pub fn encode_args<T: Serialize>(args: &T) -> Result<Value, RpcError> {
    serde_json::to_value(args).map_err(|e| RpcError::Payload(e.to_string()))
}

/// The `args` of a method without arguments.
pub fn no_args() -> Value {
    Value::Object(serde_json::Map::new())
}

/// A call's reply decoded, naming the method when it does not decode.
///
/// # Errors
/// [`RpcError::Payload`].
pub fn decode_reply<T: DeserializeOwned>(method: &str, reply: Value) -> Result<T, RpcError> {
    serde_json::from_value(reply).map_err(|e| RpcError::Payload(format!("reply to {method}: {e}")))
}

/// Where an API's messages go and what its servers are called in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Service {
    /// The topic (`cinder-volume`).
    pub topic: &'static str,
    /// The servers, as errors name them (`volume service`).
    pub name: &'static str,
    /// The highest version this build sends.
    pub version: Version,
}

/// What every generated client holds: the transport, the timeout of calls
/// and the version cap (Cinder's `LAST_RPC_VERSIONS` pin during a rolling
/// upgrade).
#[derive(Clone, Debug)]
pub struct ClientCore {
    service: Service,
    transport: TransportHandle,
    timeout: Duration,
    version_cap: Arc<RwLock<Version>>,
}

impl ClientCore {
    /// A client of `service` with `rpc_response_timeout`, capped at the
    /// service's current version.
    pub fn new(service: Service, transport: TransportHandle, timeout: Duration) -> Self {
        Self {
            service,
            transport,
            timeout,
            version_cap: Arc::new(RwLock::new(service.version)),
        }
    }

    /// The transport it sends on.
    pub fn transport(&self) -> TransportHandle {
        self.transport.clone()
    }

    /// `rpc_response_timeout`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Caps the versions sent (the lowest version any server reported).
    pub fn set_version_cap(&self, cap: Version) {
        if let Ok(mut c) = self.version_cap.write() {
            *c = cap.min(self.service.version);
        }
    }

    /// The current cap.
    pub fn version_cap(&self) -> Version {
        self.version_cap
            .read()
            .map(|c| *c)
            .unwrap_or(self.service.version)
    }

    /// Whether a message of `version` may be sent under the cap.
    pub fn can_send_version(&self, version: Version) -> bool {
        self.version_cap().can_serve(version)
    }

    /// The queue of a server from a `host@backend[#pool]` string (the pool
    /// does not matter), or the topic's shared queue.
    pub fn target(&self, host: Option<&str>) -> Target {
        match host {
            Some(host) => {
                let service_host = host
                    .parse::<Host>()
                    .map(|h| h.service_host())
                    .unwrap_or_else(|_| host.to_owned());
                Target::server(self.service.topic, &service_host)
            }
            None => Target::topic(self.service.topic),
        }
    }

    /// Sends `method` as its kind says: a cast or call to `host`'s queue
    /// (the shared queue without one), or a fanout. Casts and fanouts
    /// answer `null`.
    ///
    /// # Errors
    /// A version above the cap ([`RpcError::Transport`]), no consumer,
    /// timeout, a remote failure.
    pub async fn send(
        &self,
        context: &RequestContext,
        method: &MethodSpec,
        host: Option<&str>,
        args: Value,
    ) -> Result<Value, RpcError> {
        if !self.can_send_version(method.since) {
            return Err(RpcError::Transport(format!(
                "cannot send {} at version {}: the {}s are pinned to {}",
                method.name,
                method.since,
                self.service.name,
                self.version_cap()
            )));
        }
        let message = RpcMessage {
            method: method.name.to_owned(),
            version: method.since,
            args,
            context: context.clone(),
        };
        let started = std::time::Instant::now();
        let result = match method.kind {
            MethodKind::Cast => self
                .transport
                .cast(&self.target(host), message)
                .await
                .map(|()| Value::Null),
            MethodKind::Call => {
                self.transport
                    .call(&self.target(host), message, self.timeout)
                    .await
            }
            MethodKind::Fanout => self
                .transport
                .fanout_cast(self.service.topic, message)
                .await
                .map(|()| Value::Null),
        };
        let kind = method.kind.label();
        metrics::histogram!(
            metrics::RPC_SECONDS,
            "topic" => self.service.topic,
            "method" => method.name,
            "kind" => kind
        )
        .record(started.elapsed());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(RpcError::Unroutable { .. }) => "unroutable",
            Err(RpcError::Timeout { .. }) => "timeout",
            Err(RpcError::Remote(_)) => "remote_error",
            Err(RpcError::Transport(_)) => "transport_error",
            Err(RpcError::Payload(_)) => "payload_error",
        };
        metrics::counter!(
            metrics::RPC_MESSAGES,
            "topic" => self.service.topic,
            "method" => method.name,
            "kind" => kind,
            "outcome" => outcome
        )
        .increment(1);
        result
    }
}

/// Counts a served message and its handling time (what the consumer side
/// of every `rpc_api!` endpoint reports).
#[doc(hidden)]
pub fn observe_served(
    topic: &'static str,
    method: &str,
    started: std::time::Instant,
    result: &Result<Value, RemoteError>,
) {
    // Only declared method names get here: `Endpoint::check` refuses
    // others before a handler runs, so the label stays bounded.
    let method = method.to_owned();
    metrics::histogram!(metrics::RPC_SERVED_SECONDS, "topic" => topic, "method" => method.clone())
        .record(started.elapsed());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!(
        metrics::RPC_SERVED,
        "topic" => topic,
        "method" => method,
        "outcome" => outcome
    )
    .increment(1);
}

/// Declares an RPC API; see the [module docs](crate::api).
macro_rules! rpc_api {
    (@kind cast) => { $crate::api::MethodKind::Cast };
    (@kind call) => { $crate::api::MethodKind::Call };
    (@kind fanout) => { $crate::api::MethodKind::Fanout };
    (@reply) => { () };
    (@reply $reply:ty) => { $reply };
    (@args) => { $crate::api::no_args() };
    (@args $arg:ident) => { $crate::api::encode_args($arg)? };
    (@decode $reply_value:ident, $method:expr,) => {{
        let _ = $reply_value;
        Ok(())
    }};
    (@decode $reply_value:ident, $method:expr, $reply:ty) => {
        $crate::api::decode_reply($method, $reply_value)
    };

    // One client method. A fanout goes to the whole topic; the others to
    // a server's queue (`route: host`) or the shared queue (`route: topic`).
    (@client $route:ident $meta:tt fanout $($method:tt)*) => {
        $crate::api::rpc_api!(@client_fn [] [None] [
            "",
            "A fanout cast to every server of the topic.",
            "",
            "# Errors",
            "Transport failures, a version above the cap.",
        ] $meta fanout $($method)*);
    };
    (@client host $($method:tt)*) => {
        $crate::api::rpc_api!(@client_fn [host: &str,] [Some(host)] [
            "",
            "Sent to the queue of `host` (`host@backend`; a `#pool` suffix is ignored).",
            "",
            "# Errors",
            "No consumer for that queue, transport failures, a version above the cap; for a",
            "call also a timeout, the remote error or a reply that does not decode.",
        ] $($method)*);
    };
    (@client topic $($method:tt)*) => {
        $crate::api::rpc_api!(@client_fn [] [None] [
            "",
            "Sent to the topic's shared queue (any one server takes it).",
            "",
            "# Errors",
            "No server running, transport failures, a version above the cap; for a call",
            "also a timeout, the remote error or a reply that does not decode.",
        ] $($method)*);
    };
    (@client_fn [$($host_param:tt)*] [$host:expr] [$($doc:literal),* $(,)?]
        [$(#[$meta:meta])*] $kind:ident $name:ident ($($arg:ident : $args:ty)?) [$($reply:ty)?]
    ) => {
        $(#[$meta])*
        $(#[doc = $doc])*
        pub async fn $name(
            &self,
            context: &$crate::RequestContext,
            $($host_param)*
            $($arg: &$args)?
        ) -> ::std::result::Result<$crate::api::rpc_api!(@reply $($reply)?), $crate::RpcError> {
            let args = $crate::api::rpc_api!(@args $($arg)?);
            let spec = &__methods::$name::SPEC;
            let reply = self.core.send(context, spec, $host, args).await?;
            $crate::api::rpc_api!(@decode reply, spec.name, $($reply)?)
        }
    };

    (@with_dollar ($d:tt)
        module: $($module:ident)::+,
        service: $service:literal,
        topic: $topic:expr,
        version: $version:expr,
        route: $route:ident,
        $(#[$handler_meta:meta])*
        handler: $handler:ident,
        $(#[$endpoint_meta:meta])*
        endpoint: $endpoint:ident,
        $(#[$client_meta:meta])*
        client: $client:ident,
        $(#[$serve_meta:meta])*
        serve: $serve:ident,
        methods: {
            $(
                $(#[$meta:meta])*
                $kind:ident $name:ident ($($arg:ident : $args:ty)?) $(-> $reply:ty)?
                { since: $since:literal $(, serialized_by: $key:expr)? $(,)? }
            )*
        } $(,)?
    ) => {
        /// One module per method: its row of the version table and its
        /// types, for the `serve` macro expanded in other crates.
        #[doc(hidden)]
        pub mod __methods {
            $(
                #[allow(unused_imports)]
                pub mod $name {
                    use super::super::*;
                    /// The method's row of the version table.
                    pub const SPEC: $crate::api::MethodSpec = $crate::api::MethodSpec {
                        name: stringify!($name),
                        kind: $crate::api::rpc_api!(@kind $kind),
                        since: $crate::Version::from_literal(stringify!($since)),
                    };
                    // A method newer than the API's version could never be
                    // sent nor served.
                    const _: () = assert!(
                        $version.can_serve(SPEC.since),
                        concat!(stringify!($name), " is newer than the API's version"),
                    );
                    $(
                        /// The arguments.
                        pub type Args = $args;
                    )?
                    /// The reply.
                    pub type Reply = $crate::api::rpc_api!(@reply $($reply)?);
                }
            )*
        }

        /// The version table: every method of the API with its kind and
        /// the version that introduced it. The endpoint serves exactly
        /// these names and the client sends each at its version.
        pub const METHODS: &[$crate::api::MethodSpec] = &[$(__methods::$name::SPEC),*];

        $(#[$handler_meta])*
        #[$crate::api::async_trait]
        pub trait $handler: Send + Sync + 'static {
            /// Holds `resource` (named by a method's `serialized_by`) for
            /// as long as the returned [`Hold`]($crate::api::Hold) lives;
            /// the endpoint takes it before such a method runs. The default
            /// holds nothing.
            async fn hold(
                &self,
                _resource: String,
            ) -> ::std::result::Result<$crate::api::Hold<'_>, $crate::api::RemoteError> {
                Ok($crate::api::Hold::nothing())
            }
            $(
                $(#[$meta])*
                async fn $name(
                    &self,
                    _context: $crate::RequestContext
                    $(, $arg: $args)?
                ) -> ::std::result::Result<
                    $crate::api::rpc_api!(@reply $($reply)?),
                    $crate::api::RemoteError,
                > {
                    $(let _ = $arg;)?
                    Err($crate::api::not_served($service, stringify!($name)))
                }
            )*
        }

        $(#[$endpoint_meta])*
        pub struct $endpoint {
            api: ::std::sync::Arc<dyn $handler>,
            endpoint: $crate::dispatch::Endpoint,
        }

        impl ::std::fmt::Debug for $endpoint {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($endpoint))
                    .field("endpoint", &self.endpoint)
                    .finish()
            }
        }

        impl $endpoint {
            /// Serves `api` at the API's current version.
            pub fn new(api: ::std::sync::Arc<dyn $handler>) -> Self {
                Self::with_version(api, $version)
            }

            /// Serves `api` at another version (rolling-upgrade tests).
            pub fn with_version(
                api: ::std::sync::Arc<dyn $handler>,
                version: $crate::Version,
            ) -> Self {
                Self {
                    api,
                    endpoint: $crate::dispatch::Endpoint::new(version, &[$(stringify!($name)),*]),
                }
            }
        }

        #[$crate::api::async_trait]
        impl $crate::RpcHandler for $endpoint {
            async fn handle(
                &self,
                message: $crate::RpcMessage,
            ) -> ::std::result::Result<::serde_json::Value, $crate::api::RemoteError> {
                self.endpoint.check(&message)?;
                let context = message.context.clone();
                let span = $crate::api::rpc_span($topic, &message);
                let started = ::std::time::Instant::now();
                let method = message.method.clone();
                let result = $crate::api::Instrument::instrument(async move { match message.method.as_str() {
                    $(
                        stringify!($name) => {
                            $(let $arg: $args = $crate::dispatch::decode_args(&message)?;)?
                            $(
                                let _held = self
                                    .api
                                    .hold(::std::string::ToString::to_string(&$key))
                                    .await?;
                            )?
                            $crate::api::encode_reply(self.api.$name(context $(, $arg)?).await)
                        }
                    )*
                    other => Err($crate::dispatch::DispatchError::NoSuchMethod {
                        method: other.to_owned(),
                    }
                    .into()),
                } }, span).await;
                $crate::api::observe_served($topic, &method, started, &result);
                result
            }
        }

        $(#[$client_meta])*
        #[derive(Clone, Debug)]
        pub struct $client {
            core: $crate::api::ClientCore,
        }

        impl $client {
            /// A client with `rpc_response_timeout`.
            pub fn new(transport: $crate::TransportHandle, timeout: ::std::time::Duration) -> Self {
                let service = $crate::api::Service {
                    topic: $topic,
                    name: $service,
                    version: $version,
                };
                Self {
                    core: $crate::api::ClientCore::new(service, transport, timeout),
                }
            }

            /// The transport it sends on.
            pub fn transport(&self) -> $crate::TransportHandle {
                self.core.transport()
            }

            /// `rpc_response_timeout`.
            pub fn timeout(&self) -> ::std::time::Duration {
                self.core.timeout()
            }

            /// Caps the versions sent (the lowest version any server
            /// reported), as Cinder pins `LAST_RPC_VERSIONS`.
            pub fn set_version_cap(&self, cap: $crate::Version) {
                self.core.set_version_cap(cap);
            }

            /// The current cap.
            pub fn version_cap(&self) -> $crate::Version {
                self.core.version_cap()
            }

            /// Whether a message of `version` may be sent under the cap.
            pub fn can_send_version(&self, version: $crate::Version) -> bool {
                self.core.can_send_version(version)
            }

            $(
                $crate::api::rpc_api!(@client $route
                    [$(#[$meta])*] $kind $name ($($arg: $args)?) [$($reply)?]);
            )*
        }

        $(#[$serve_meta])*
        #[macro_export]
        macro_rules! $serve {
            ($d t:ty $d(, hold = $d hold:ident)? $d(,)?) => {
                const _: () = {
                    use $crate $(::$module)+ ::__methods as methods;

                    #[$crate::api::async_trait]
                    impl $crate $(::$module)+ ::$handler for $d t {
                        $d(
                            async fn hold(
                                &self,
                                resource: String,
                            ) -> ::std::result::Result<
                                $crate::api::Hold<'_>,
                                $crate::api::RemoteError,
                            > {
                                Ok($crate::api::Hold::new(<$d t>::$d hold(self, resource).await?))
                            }
                        )?
                        $(
                            async fn $name(
                                &self,
                                context: $crate::RequestContext
                                $(, $arg: methods::$name::Args)?
                            ) -> ::std::result::Result<
                                methods::$name::Reply,
                                $crate::api::RemoteError,
                            > {
                                <$d t>::$name(self, &context $(, $arg)?).await
                            }
                        )*
                    }
                };
            };
        }
    };

    ($($declaration:tt)*) => {
        $crate::api::rpc_api!(@with_dollar ($) $($declaration)*);
    };
}

pub(crate) use rpc_api;

#[cfg(test)]
mod tests;
