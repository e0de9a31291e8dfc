//! Query parameters of list requests, as Cinder's `api/common.py` reads
//! them: pagination (`limit`, `marker`, `offset`), sorting (`sort` or the
//! deprecated `sort_key`/`sort_dir`), `with_count`, and the Python-literal
//! filter values (`metadata={'k': 'v'}`) that `ast.literal_eval` accepts.

use clinker_db::SortDir;
use serde_json::{Map, Number, Value};

use crate::fault::ApiError;
use crate::validation::{DB_MAX_INT, bool_param, validate_integer};

/// Query parameters being consumed, in request order.
#[derive(Clone, Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Wraps decoded query parameters.
    pub fn new(query: &[(String, String)]) -> Self {
        Self(query.to_vec())
    }

    /// Removes every occurrence of `name`, returning the last one (webob's
    /// `params[name]` sees the last value).
    pub fn pop(&mut self, name: &str) -> Option<String> {
        let mut found = None;
        self.0.retain(|(k, v)| {
            if k == name {
                found = Some(v.clone());
                false
            } else {
                true
            }
        });
        found
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The remaining parameters (the filters), last value per key.
    pub fn into_filters(self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (key, value) in self.0 {
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => out.push((key, value)),
            }
        }
        out
    }
}

/// `limit`, `marker`, `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pagination {
    /// The last id of the previous page.
    pub marker: Option<String>,
    /// At most this many items (capped at `osapi_max_limit`, its default).
    pub limit: u32,
    /// Items to skip after the marker.
    pub offset: u32,
}

/// Cinder's `_get_limit_param`.
///
/// # Errors
/// 400 "limit param must be an integer" / "limit param must be positive".
pub fn limit_param(value: Option<&str>, max_limit: u32) -> Result<u32, ApiError> {
    let Some(text) = value else {
        return Ok(max_limit);
    };
    let limit: i64 = text
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request("limit param must be an integer"))?;
    if limit < 0 {
        return Err(ApiError::bad_request("limit param must be positive"));
    }
    Ok(u32::try_from(limit).unwrap_or(u32::MAX).min(max_limit))
}

/// Cinder's `get_pagination_params`: pops and checks the three parameters.
///
/// # Errors
/// 400 for a bad `limit` or `offset`.
pub fn pagination(params: &mut Params, max_limit: u32) -> Result<Pagination, ApiError> {
    let limit = limit_param(params.pop("limit").as_deref(), max_limit)?;
    let marker = params.pop("marker");
    let offset = match params.pop("offset") {
        None => 0,
        Some(text) => validate_integer(&Value::String(text), "offset", 0, DB_MAX_INT)?,
    };
    Ok(Pagination {
        marker,
        limit,
        offset: u32::try_from(offset).unwrap_or(u32::MAX),
    })
}

/// Cinder's refusal of both sort forms in one request.
pub const SORT_FORMS_CONFLICT: &str = "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.";

/// Cinder's `get_sort_params`: `(key, direction)` as given (`sort=k:d,…`,
/// or `sort_key`/`sort_dir` defaulting to `default_key` and `desc`); a
/// missing direction is `desc`, and so is a blank one when `blank_is_desc`.
/// `None` when both forms are used.
pub fn sort_pairs(
    params: &mut Params,
    default_key: &str,
    blank_is_desc: bool,
) -> Option<Vec<(String, String)>> {
    if params.contains("sort") && (params.contains("sort_key") || params.contains("sort_dir")) {
        return None;
    }
    let mut pairs = Vec::new();
    if let Some(sort) = params.pop("sort") {
        for item in sort.trim().split(',') {
            let (key, dir) = match item.split_once(':') {
                Some((key, dir)) if !(dir.is_empty() || blank_is_desc && dir.trim().is_empty()) => {
                    (key, dir)
                }
                Some((key, _)) => (key, "desc"),
                None => (item, "desc"),
            };
            pairs.push((key.trim().to_owned(), dir.trim().to_owned()));
        }
    } else {
        let key = params
            .pop("sort_key")
            .unwrap_or_else(|| default_key.to_owned());
        let dir = params.pop("sort_dir").unwrap_or_else(|| "desc".to_owned());
        pairs.push((key.trim().to_owned(), dir.trim().to_owned()));
    }
    Some(pairs)
}

/// Cinder's `get_sort_params` plus the direction check of
/// `process_sort_params`: `(key, direction)` pairs, keys as given.
///
/// # Errors
/// 400 when both forms are used or a direction is neither `asc` nor `desc`.
pub fn sort_params(params: &mut Params) -> Result<Vec<(String, SortDir)>, ApiError> {
    let pairs = sort_pairs(params, "created_at", false)
        .ok_or_else(|| ApiError::bad_request(SORT_FORMS_CONFLICT))?;
    pairs
        .into_iter()
        .map(|(key, dir)| {
            let dir = match dir.as_str() {
                "asc" => SortDir::Asc,
                "desc" => SortDir::Desc,
                _ => {
                    return Err(ApiError::invalid_input(
                        "Unknown sort direction, must be 'desc' or 'asc'.",
                    ));
                }
            };
            Ok((key, dir))
        })
        .collect()
}

/// The "Invalid sort key" answer of Cinder's `paginate_query`.
pub fn invalid_sort_key() -> ApiError {
    ApiError::invalid_input("Invalid sort key")
}

/// Pops `with_count` (only honoured from 3.45).
///
/// # Errors
/// 400 when it is not a boolean.
pub fn with_count(params: &mut Params, supported: bool) -> Result<bool, ApiError> {
    if !supported || !params.contains("with_count") {
        return Ok(false);
    }
    let value = params.pop("with_count");
    bool_param("with_count", value.as_deref())
}

/// Whether a list gets a `next` link (Cinder's `_get_collection_links`):
/// some items came back and the page is as large as allowed.
pub fn wants_next_link(items: usize, count: Option<i64>, limit: u32) -> bool {
    let item_count = match count {
        Some(c) if c > 0 => c,
        _ => i64::try_from(items).unwrap_or(i64::MAX),
    };
    items > 0 && i64::from(limit) <= item_count
}

/// Python's `ast.literal_eval` on the literals filter values use: strings
/// in either quote style, integers, floats, `True`/`False`/`None`, lists,
/// tuples and dicts. `None` when the text is not such a literal (Cinder
/// then keeps it as a plain string).
pub fn literal_eval(text: &str) -> Option<Value> {
    let mut parser = Literal {
        chars: text.trim().chars().collect(),
        pos: 0,
        depth: 0,
    };
    let value = parser.value()?;
    parser.skip_ws();
    (parser.pos == parser.chars.len()).then_some(value)
}

/// Nesting deeper than this is refused: filter values are flat dicts, and
/// unbounded recursion on request text would let a client overflow the
/// stack.
const MAX_LITERAL_DEPTH: usize = 16;

struct Literal {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Literal {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_ws();
        if self.depth >= MAX_LITERAL_DEPTH {
            return None;
        }
        self.depth += 1;
        let value = match self.peek()? {
            '\'' | '"' => self.string().map(Value::String),
            '{' => self.dict(),
            '[' => self.sequence('[', ']'),
            '(' => self.sequence('(', ')'),
            c if c.is_ascii_digit() || c == '-' || c == '+' => self.number(),
            _ => self.word(),
        };
        self.depth -= 1;
        value
    }

    fn string(&mut self) -> Option<String> {
        let quote = self.peek()?;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            self.pos += 1;
            match c {
                c if c == quote => return Some(out),
                '\\' => {
                    let escaped = self.peek()?;
                    self.pos += 1;
                    out.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                }
                other => out.push(other),
            }
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
        {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos]
            .iter()
            .filter(|c| **c != '_')
            .collect();
        if let Ok(i) = text.parse::<i64>() {
            return Some(Value::Number(i.into()));
        }
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
    }

    fn word(&mut self) -> Option<Value> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        match word.as_str() {
            "True" => Some(Value::Bool(true)),
            "False" => Some(Value::Bool(false)),
            "None" => Some(Value::Null),
            _ => None,
        }
    }

    fn sequence(&mut self, open: char, close: char) -> Option<Value> {
        if !self.eat(open) {
            return None;
        }
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(Value::Array(items));
            }
            items.push(self.value()?);
            if !self.eat(',') {
                return self.eat(close).then_some(Value::Array(items));
            }
        }
    }

    fn dict(&mut self) -> Option<Value> {
        if !self.eat('{') {
            return None;
        }
        let mut map = Map::new();
        loop {
            if self.eat('}') {
                return Some(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if !self.eat(':') {
                return None;
            }
            let value = self.value()?;
            map.insert(key, value);
            if !self.eat(',') {
                return self.eat('}').then_some(Value::Object(map));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn pagination_follows_cinder() {
        let mut p = params(&[("limit", "5000"), ("marker", "m"), ("offset", "2")]);
        assert_eq!(
            pagination(&mut p, 1000).unwrap(),
            Pagination {
                marker: Some("m".into()),
                limit: 1000,
                offset: 2
            }
        );
        let err = pagination(&mut params(&[("limit", "x")]), 1000).unwrap_err();
        assert_eq!(err.user_message(), "limit param must be an integer");
        let err = pagination(&mut params(&[("limit", "-1")]), 1000).unwrap_err();
        assert_eq!(err.user_message(), "limit param must be positive");
        let err = pagination(&mut params(&[("offset", "-1")]), 1000).unwrap_err();
        assert_eq!(err.user_message(), "offset must be >= 0");
    }

    #[test]
    fn sort_forms() {
        let mut p = params(&[("sort", "name:asc,size")]);
        assert_eq!(
            sort_params(&mut p).unwrap(),
            vec![
                ("name".into(), SortDir::Asc),
                ("size".into(), SortDir::Desc)
            ]
        );
        let mut p = params(&[("sort", "name"), ("sort_key", "size")]);
        assert!(sort_params(&mut p).is_err());
        let mut p = params(&[("sort_key", "size"), ("sort_dir", "up")]);
        assert_eq!(
            sort_params(&mut p).unwrap_err().user_message(),
            "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'."
        );
        assert_eq!(
            sort_params(&mut params(&[])).unwrap(),
            vec![("created_at".into(), SortDir::Desc)]
        );
    }

    #[test]
    fn literals_parse_like_python() {
        assert_eq!(
            literal_eval("{'k': 'v', \"n\": 1}"),
            Some(json!({"k": "v", "n": 1}))
        );
        assert_eq!(literal_eval("['a', 'b']"), Some(json!(["a", "b"])));
        assert_eq!(literal_eval("5"), Some(json!(5)));
        assert_eq!(literal_eval("True"), Some(json!(true)));
        assert_eq!(literal_eval("available"), None);
        assert_eq!(literal_eval("{'k': }"), None);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(literal_eval(&deep), None);
    }

    #[test]
    fn next_link_rule() {
        assert!(wants_next_link(2, None, 2));
        assert!(!wants_next_link(1, None, 2));
        assert!(!wants_next_link(0, None, 0));
        assert!(wants_next_link(2, Some(10), 5));
    }
}
