//! The Compute service as the API sees it (Cinder's `compute/nova.py`):
//! whether a server still uses a volume, asked on behalf of the caller.
//!
//! Cinder's `novaclient()` re-authenticates with the caller's own token at
//! Keystone (`identity.Token`, scoped to the caller's project), finds the
//! `compute` endpoint in the catalog that answer carries and calls Nova with
//! that token. Clinker does the same, over HTTP or HTTPS with `[nova]
//! cafile`, `certfile`/`keyfile` and `insecure`. The identity endpoint
//! is `[keystone_authtoken] auth_url` (Cinder takes `[nova] token_auth_url`
//! or the identity entry of the request's catalog; Clinker validates tokens
//! without a catalog), the endpoint interface is `public` and any region
//! matches (Cinder's `[nova] interface` and `region_name` defaults).

use std::time::Duration;

use clinker_config::SessionTlsOptions;
use clinker_types::ErrorKind;
use serde_json::{Value, json};

use crate::auth::AuthSetupError;
use crate::fault::ApiError;

/// Nova's microversion whose server volume view names the attachment
/// (`attachment_id`), as Cinder's `get_server_volume` asks for.
const NOVA_MICROVERSION: &str = "2.89";
/// How long one call to Keystone or Nova may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What is needed to call Compute as the caller: the Keystone v3 URL, the
/// client built from `[nova]`'s TLS options ([`client`]) and the caller's
/// token (only under `auth_strategy = keystone`).
#[derive(Clone)]
pub struct ComputeAuth {
    /// Keystone's v3 root, e.g. `http://keystone:5000/v3`.
    pub identity_url: String,
    /// The HTTP client for Keystone and Nova.
    pub http: reqwest::Client,
    /// The caller's `X-Auth-Token`.
    pub user_token: String,
}

impl std::fmt::Debug for ComputeAuth {
    // Tokens are credentials: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputeAuth")
            .field("identity_url", &self.identity_url)
            .field("user_token", &"<redacted>")
            .finish()
    }
}

/// Nova's answer to "does server S use volume V?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerVolume {
    /// Nova has no such server, or the server has no such volume (Cinder's
    /// `nova.NotFound`).
    NotFound,
    /// The server uses the volume through this attachment (Nova's
    /// `attachment_id`; absent from old Novas).
    Attached {
        /// The Cinder attachment Nova holds for the volume.
        attachment_id: Option<String>,
    },
    /// There is no Compute endpoint in the caller's catalog: nobody can be
    /// asked (Cinder fails with `EndpointNotFound`).
    NoComputeService,
}

/// The client calls on a caller's behalf use: `[nova]`'s TLS options.
///
/// # Errors
/// A certificate file cannot be read or holds no certificate.
pub fn client(tls: &SessionTlsOptions) -> Result<reqwest::Client, AuthSetupError> {
    let builder = clinker_runtime::http::client_builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT);
    crate::auth::session_tls(builder, tls, "nova")?
        .build()
        .map_err(|e| AuthSetupError(format!("cannot build the compute http client: {e}")))
}

fn unavailable(detail: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %detail, "cannot ask the compute service about a server's volume");
    ApiError::new(
        ErrorKind::Unavailable,
        "The Compute service is temporarily unavailable.",
    )
}

/// Cinder's `nova.API.get_server_volume`: `GET
/// /servers/{server_id}/os-volume_attachments/{volume_id}` on the Compute
/// endpoint of `project_id`'s catalog, as the caller.
///
/// # Errors
/// 503 when Keystone refuses the caller's token or Keystone or Nova cannot
/// be reached or answer something else than 200 or 404 (Cinder reports
/// Nova's failure).
pub async fn get_server_volume(
    auth: &ComputeAuth,
    project_id: &str,
    server_id: &str,
    volume_id: &str,
) -> Result<ServerVolume, ApiError> {
    let http = &auth.http;
    let Some((token, compute_url)) = rescope(http, auth, project_id).await? else {
        return Ok(ServerVolume::NoComputeService);
    };
    let url = format!(
        "{}/servers/{server_id}/os-volume_attachments/{volume_id}",
        compute_url.trim_end_matches('/')
    );
    let response = http
        .get(&url)
        .header("x-auth-token", token)
        .header(
            "openstack-api-version",
            format!("compute {NOVA_MICROVERSION}"),
        )
        .header("x-openstack-nova-api-version", NOVA_MICROVERSION)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| unavailable(clinker_runtime::http::describe(&e)))?;
    match response.status().as_u16() {
        404 => Ok(ServerVolume::NotFound),
        200 => {
            let body: Value = response.json().await.map_err(unavailable)?;
            Ok(ServerVolume::Attached {
                attachment_id: body["volumeAttachment"]["attachment_id"]
                    .as_str()
                    .map(str::to_owned),
            })
        }
        other => Err(unavailable(format!("nova answered {other} to GET {url}"))),
    }
}

/// A token for `project_id` made from the caller's, and the public Compute
/// endpoint of its catalog (`None` when the catalog has none).
async fn rescope(
    http: &reqwest::Client,
    auth: &ComputeAuth,
    project_id: &str,
) -> Result<Option<(String, String)>, ApiError> {
    let body = json!({"auth": {
        "identity": {"methods": ["token"], "token": {"id": auth.user_token}},
        "scope": {"project": {"id": project_id}},
    }});
    let url = format!("{}/auth/tokens", auth.identity_url.trim_end_matches('/'));
    let response = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| unavailable(clinker_runtime::http::describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(unavailable(format!(
            "keystone answered {status} to the caller's token"
        )));
    }
    let token = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| unavailable("keystone sent no X-Subject-Token"))?;
    let body: Value = response.json().await.map_err(unavailable)?;
    let endpoint = body["token"]["catalog"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|service| service["type"] == "compute")
        .flat_map(|service| service["endpoints"].as_array().into_iter().flatten())
        .find(|endpoint| endpoint["interface"] == "public")
        .and_then(|endpoint| endpoint["url"].as_str())
        .map(str::to_owned);
    Ok(endpoint.map(|url| (token, url)))
}
