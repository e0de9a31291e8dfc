//! The URLs the API hands out: per-item `self`/`bookmark` links, the
//! `next` link of a page, and the version document's `self` link (Cinder's
//! `api/common.py::ViewBuilder` and `api/views/versions.py`).
//!
//! The base is `[DEFAULT] public_endpoint` when set, otherwise
//! `http://<Host>` of the request; proxy headers (`Forwarded`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`) count only with
//! `[oslo_middleware] enable_proxy_headers_parsing`. Links carry
//! `/{project_id}` only when the request URL did.

/// Splits `/<project>/<rest>` into the project segment and `/<rest>` when
/// something follows the first segment and no route starts with it.
pub fn split_project_segment(path: &str) -> Option<(&str, &str)> {
    let trimmed = path.strip_prefix('/')?;
    let (first, rest) = trimmed.split_once('/')?;
    if first.is_empty() || rest.is_empty() || crate::v3::is_route_segment(first) {
        return None;
    }
    Some((first, &path[first.len() + 1..]))
}

/// Builds links for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Links {
    /// `scheme://host[:port][/prefix]`, no trailing slash.
    base: String,
    /// The project id, when the request URL carried one.
    project: Option<String>,
}

impl Links {
    /// Links rooted at `base` (trailing slashes ignored).
    pub fn new(base: &str, project: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            project,
        }
    }

    fn project_part(&self) -> String {
        self.project
            .as_ref()
            .map(|p| format!("/{p}"))
            .unwrap_or_default()
    }

    /// The root without a version (`http://host:8776`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `…/v3/{project}/{collection}/{id}`.
    pub fn self_href(&self, collection: &str, id: &str) -> String {
        format!("{}/v3{}/{collection}/{id}", self.base, self.project_part())
    }

    /// `…/{project}/{collection}/{id}` (no version, Cinder's bookmark).
    pub fn bookmark_href(&self, collection: &str, id: &str) -> String {
        format!("{}{}/{collection}/{id}", self.base, self.project_part())
    }

    /// The `links` array of an item.
    pub fn item_links(&self, collection: &str, id: &str) -> serde_json::Value {
        serde_json::json!([
            {"rel": "self", "href": self.self_href(collection, id)},
            {"rel": "bookmark", "href": self.bookmark_href(collection, id)},
        ])
    }

    /// The next page: the request's query with `marker` moved to the end,
    /// as webob's `params["marker"] = id` leaves it.
    pub fn next_href(&self, collection: &str, query: &[(String, String)], marker: &str) -> String {
        let mut params: Vec<(&str, &str)> = query
            .iter()
            .filter(|(k, _)| k != "marker")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        params.push(("marker", marker));
        let encoded: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
            .collect();
        format!(
            "{}/v3{}/{collection}?{}",
            self.base,
            self.project_part(),
            encoded.join("&")
        )
    }

    /// `…/v3/`, the `self` link of the versions document.
    pub fn version_href(&self) -> String {
        // Cinder strips a trailing version from the base before joining.
        let base = strip_trailing_version(&self.base);
        format!("{}/v3/", base.trim_end_matches('/'))
    }
}

fn strip_trailing_version(base: &str) -> &str {
    let trimmed = base.trim_end_matches('/');
    if let Some((head, last)) = trimmed.rsplit_once('/')
        && last.len() >= 2
        && last.starts_with('v')
        && last[1..].bytes().all(|b| b.is_ascii_digit())
        && !last[1..].starts_with('0')
    {
        return head;
    }
    base
}

/// Python's `urllib.parse.quote_plus` (what `urlencode` applies).
pub fn quote_plus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_segments_are_told_from_routes_by_the_route_table() {
        assert_eq!(
            split_project_segment("/abc123/volumes/x"),
            Some(("abc123", "/volumes/x"))
        );
        // Any string is a project id where no route starts with it.
        assert_eq!(
            split_project_segment("/admin/volumes/detail"),
            Some(("admin", "/volumes/detail"))
        );
        assert_eq!(
            split_project_segment("/My_Project.1/os-services"),
            Some(("My_Project.1", "/os-services"))
        );
        assert_eq!(split_project_segment("/volumes/x"), None);
        assert_eq!(split_project_segment("/os-quota-sets/p1"), None);
        assert_eq!(split_project_segment("/scheduler-stats/get_pools"), None);
        assert_eq!(split_project_segment("/abc123/"), None);
        assert_eq!(split_project_segment("/abc123"), None);
    }

    #[test]
    fn links_keep_or_drop_the_project() {
        let with = Links::new("http://h:8776/", Some("p1".into()));
        assert_eq!(
            with.self_href("volumes", "v"),
            "http://h:8776/v3/p1/volumes/v"
        );
        assert_eq!(
            with.bookmark_href("volumes", "v"),
            "http://h:8776/p1/volumes/v"
        );
        let without = Links::new("http://h:8776", None);
        assert_eq!(
            without.next_href(
                "volumes/detail",
                &[
                    ("limit".into(), "2".into()),
                    ("marker".into(), "old".into()),
                    ("name".into(), "a b".into())
                ],
                "new"
            ),
            "http://h:8776/v3/volumes/detail?limit=2&name=a+b&marker=new"
        );
        assert_eq!(without.version_href(), "http://h:8776/v3/");
        assert_eq!(
            Links::new("http://h/volume/v3", None).version_href(),
            "http://h/volume/v3/"
        );
    }
}
