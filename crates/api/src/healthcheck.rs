//! `/healthcheck`, as oslo.middleware's `Healthcheck` app with its
//! `disable_by_file` backend answers it in Cinder's `api-paste.ini`:
//! outside authentication, `200 OK` while the node should take traffic and
//! `503 DISABLED BY FILE` while `[healthcheck] disable_by_file_path`
//! exists (how operators drain a node from a load balancer). `HEAD` gets
//! `204` / `503` without a body; `Accept` picks `text/plain` (the
//! default), `text/html` or `application/json`, as oslo offers them.

use std::path::PathBuf;

use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The one check Clinker runs (oslo's `DisableByFileHealthcheck`).
#[derive(Clone, Debug, Default)]
pub struct Healthcheck {
    /// `[healthcheck] disable_by_file_path`.
    pub disable_by_file_path: Option<PathBuf>,
}

/// oslo's result: available or not, and the reason shown.
struct Outcome {
    available: bool,
    reason: &'static str,
}

impl Healthcheck {
    async fn check(&self) -> Outcome {
        let disabled = match &self.disable_by_file_path {
            Some(path) => tokio::fs::try_exists(path).await.unwrap_or(false),
            None => false,
        };
        if disabled {
            Outcome {
                available: false,
                reason: "DISABLED BY FILE",
            }
        } else {
            Outcome {
                available: true,
                reason: "OK",
            }
        }
    }

    /// Answers one request.
    pub async fn respond(&self, method: &Method, headers: &HeaderMap) -> Response {
        let outcome = self.check().await;
        if *method == Method::HEAD {
            let status = if outcome.available {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return (status, [(header::CONTENT_TYPE, PLAIN)]).into_response();
        }
        let status = if outcome.available {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let (content_type, body) = match preferred(headers) {
            Offer::Plain => (PLAIN, outcome.reason.to_owned()),
            Offer::Json => (
                "application/json",
                // oslo pretty-prints with sorted keys and a 4-space indent.
                format!(
                    "{{\n    \"detailed\": false,\n    \"reasons\": [\n        \"{}\"\n    ]\n}}",
                    outcome.reason
                ),
            ),
            Offer::Html => (
                "text/html; charset=UTF-8",
                format!(
                    "<HTML>\n<HEAD><TITLE>Healthcheck Status</TITLE></HEAD>\n<BODY>\n\n\
                     <H2>Result of 1 checks:</H2>\n<TABLE bgcolor=\"#ffffff\" border=\"1\">\n<TBODY>\n\
                     <TR>\n\n<TH>\nReason\n</TH>\n</TR>\n<TR>\n\n    <TD>{}</TD>\n\n</TR>\n\
                     </TBODY>\n</TABLE>\n<HR></HR>\n\n</BODY>\n</HTML>",
                    outcome.reason
                ),
            ),
        };
        (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
    }
}

const PLAIN: &str = "text/plain; charset=UTF-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offer {
    Plain,
    Html,
    Json,
}

/// webob's `acceptable_offers` over oslo's offers in its order
/// (`text/plain`, `text/html`, `application/json`): the highest quality
/// wins, ties go to the earlier offer; no match is `text/plain`.
fn preferred(headers: &HeaderMap) -> Offer {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Offer::Plain;
    };
    let offers = [
        (Offer::Plain, "text/plain"),
        (Offer::Html, "text/html"),
        (Offer::Json, "application/json"),
    ];
    let mut best: Option<(Offer, f32)> = None;
    for (offer, media) in offers {
        let (top, sub) = media.split_once('/').unwrap_or((media, ""));
        let quality = accept
            .split(',')
            .filter_map(|range| {
                let mut parts = range.split(';').map(str::trim);
                let pattern = parts.next()?.to_ascii_lowercase();
                let q = parts
                    .filter_map(|p| p.strip_prefix("q="))
                    .find_map(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                let (ptop, psub) = pattern.split_once('/')?;
                let matches =
                    (ptop == "*" && psub == "*") || (ptop == top && (psub == "*" || psub == sub));
                matches.then_some(q)
            })
            .fold(None, |acc: Option<f32>, q| {
                Some(acc.map_or(q, |a| a.max(q)))
            });
        if let Some(q) = quality
            && q > 0.0
            && best.is_none_or(|(_, b)| q > b)
        {
            best = Some((offer, q));
        }
    }
    best.map_or(Offer::Plain, |(offer, _)| offer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        headers
    }

    #[test]
    fn accept_picks_oslo_offers_in_order() {
        assert_eq!(preferred(&HeaderMap::new()), Offer::Plain);
        assert_eq!(preferred(&accept("application/json")), Offer::Json);
        assert_eq!(preferred(&accept("text/html")), Offer::Html);
        assert_eq!(preferred(&accept("*/*")), Offer::Plain);
        assert_eq!(preferred(&accept("image/png")), Offer::Plain);
        assert_eq!(
            preferred(&accept("text/plain;q=0.5, application/json")),
            Offer::Json
        );
        assert_eq!(preferred(&accept("text/*;q=0.9, */*;q=0.1")), Offer::Plain);
    }
}
