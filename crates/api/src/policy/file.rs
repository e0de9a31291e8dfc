//! Reading a policy file: `policy.json`, or `policy.yaml` written as
//! oslo.policy's generator and operators write it — one flat mapping from
//! rule names to check strings.
//!
//! JSON (any file whose text starts with `{`) is parsed completely,
//! including the legacy list-of-lists values (`[["role:a", "role:b"],
//! ["role:c"]]` = `(role:a and role:b) or (role:c)`). YAML is read as the
//! flat-mapping subset policy files use: `key: value` lines with plain,
//! single- or double-quoted keys and values, `#` comments, `---`, and
//! values folded over indented continuation lines. Anything else (nested
//! mappings, block scalars, anchors, an unquoted value starting with `!`
//! or `@`, which YAML reads as a tag or refuses) is reported with its line
//! so the operator can fix it, instead of being guessed at.

/// Why a policy file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct FileError {
    /// 1-based line (0 for whole-file JSON errors).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

fn error(line: usize, reason: impl Into<String>) -> FileError {
    FileError {
        line,
        reason: reason.into(),
    }
}

/// The rules of a policy file's text, in file order (a later duplicate
/// replaces an earlier one, as YAML loaders do).
///
/// # Errors
/// Text that is not a flat mapping of strings.
pub fn parse_policy_text(text: &str) -> Result<Vec<(String, String)>, FileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rules = if text.trim_start().starts_with('{') {
        parse_json(text)?
    } else {
        parse_yaml(text)?
    };
    let mut deduplicated: Vec<(String, String)> = Vec::with_capacity(rules.len());
    for (name, check) in rules {
        match deduplicated.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = check,
            None => deduplicated.push((name, check)),
        }
    }
    Ok(deduplicated)
}

fn parse_json(text: &str) -> Result<Vec<(String, String)>, FileError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| error(e.line(), format!("not valid JSON: {e}")))?;
    let Some(map) = value.as_object() else {
        return Err(error(0, "the file must be a mapping of rule names"));
    };
    map.iter()
        .map(|(name, value)| Ok((name.clone(), json_check(name, value)?)))
        .collect()
}

/// A JSON value as a check string: a string, or oslo's legacy list of
/// lists (outer = or, inner = and).
fn json_check(name: &str, value: &serde_json::Value) -> Result<String, FileError> {
    use serde_json::Value;
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(alternatives) => {
            let mut ors = Vec::new();
            for alternative in alternatives {
                let terms: Vec<&str> = match alternative {
                    Value::Array(terms) => terms.iter().filter_map(Value::as_str).collect(),
                    Value::String(s) => vec![s.as_str()],
                    _ => return Err(error(0, format!("rule {name}: unsupported list item"))),
                };
                if terms.is_empty() {
                    ors.push("@".to_owned());
                } else {
                    ors.push(format!("({})", terms.join(" and ")));
                }
            }
            Ok(ors.join(" or "))
        }
        _ => Err(error(0, format!("rule {name}: the value must be a string"))),
    }
}

/// A scalar being read: its text and, for a quoted one, whether the
/// closing quote has been seen.
struct Scalar {
    text: String,
    open_quote: Option<char>,
}

fn parse_yaml(text: &str) -> Result<Vec<(String, String)>, FileError> {
    let mut rules: Vec<(String, String)> = Vec::new();
    let mut pending: Option<(String, Scalar, usize)> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        let indented = line.len() != trimmed.len();
        if let Some((_, scalar, _)) = &mut pending
            && scalar.open_quote.is_some()
        {
            // Inside a quoted scalar every line continues it.
            let quote = scalar.open_quote.unwrap_or('"');
            let (piece, closed, rest) = read_quoted(trimmed, quote, number)?;
            if !scalar.text.is_empty() && !piece.is_empty() {
                scalar.text.push(' ');
            }
            scalar.text.push_str(&piece);
            if closed {
                scalar.open_quote = None;
                check_trailing(rest, number)?;
            }
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if !indented && (trimmed == "---" || trimmed == "...") {
            continue;
        }
        if indented {
            let Some((_, scalar, _)) = &mut pending else {
                return Err(error(number, "unexpected indentation"));
            };
            let piece = plain_value(trimmed, number)?;
            if !scalar.text.is_empty() {
                scalar.text.push(' ');
            }
            scalar.text.push_str(&piece);
            continue;
        }
        if let Some((name, scalar, _)) = pending.take() {
            rules.push((name, scalar.text));
        }
        let (name, after_key) = read_key(trimmed, number)?;
        let value = after_key.trim_start();
        let scalar = match value.chars().next() {
            None => Scalar {
                text: String::new(),
                open_quote: None,
            },
            Some(quote @ ('"' | '\'')) => {
                let (piece, closed, rest) = read_quoted(&value[1..], quote, number)?;
                if closed {
                    check_trailing(rest, number)?;
                }
                Scalar {
                    text: piece,
                    open_quote: (!closed).then_some(quote),
                }
            }
            Some(_) => Scalar {
                text: plain_value(value, number)?,
                open_quote: None,
            },
        };
        pending = Some((name, scalar, number));
    }
    if let Some((name, scalar, started)) = pending {
        if scalar.open_quote.is_some() {
            return Err(error(started, format!("rule {name}: unterminated quote")));
        }
        rules.push((name, scalar.text));
    }
    Ok(rules)
}

/// The key of a `key: value` line and the text after its colon.
fn read_key(line: &str, number: usize) -> Result<(String, &str), FileError> {
    if let Some(quote @ ('"' | '\'')) = line.chars().next() {
        let (key, closed, rest) = read_quoted(&line[1..], quote, number)?;
        if !closed {
            return Err(error(number, "unterminated quoted key"));
        }
        let rest = rest.trim_start();
        let Some(after) = rest.strip_prefix(':') else {
            return Err(error(number, format!("expected ':' after the key {key:?}")));
        };
        return Ok((key, after));
    }
    if line.starts_with(['-', '[', '{', '?', '&', '*', '!', '|', '>', '%', '@', '`']) {
        return Err(error(
            number,
            "expected `\"rule name\": \"check string\"` (a flat mapping)",
        ));
    }
    // A plain key ends at the first ': ' (or a ':' ending the line); rule
    // names themselves contain colons (`volume:create`).
    let mut search = 0;
    while let Some(found) = line[search..].find(':') {
        let at = search + found;
        let after = &line[at + 1..];
        if after.is_empty() || after.starts_with([' ', '\t']) {
            return Ok((line[..at].trim_end().to_owned(), after));
        }
        search = at + 1;
    }
    Err(error(number, "expected `name: check string`"))
}

/// Reads a quoted scalar's text up to its closing quote: the text, whether
/// it closed, and what follows the closing quote.
fn read_quoted(text: &str, quote: char, number: usize) -> Result<(String, bool, &str), FileError> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            if quote == '\'' && text[i + 1..].starts_with('\'') {
                out.push('\'');
                chars.next();
                continue;
            }
            return Ok((out, true, &text[i + 1..]));
        }
        if c == '\\' && quote == '"' {
            let Some((_, escaped)) = chars.next() else {
                return Err(error(number, "a line may not end with a backslash"));
            };
            out.push(match escaped {
                'n' => '\n',
                't' => '\t',
                '"' => '"',
                '\\' => '\\',
                '/' => '/',
                other => {
                    return Err(error(number, format!("unsupported escape \\{other}")));
                }
            });
            continue;
        }
        out.push(c);
    }
    Ok((out, false, ""))
}

/// Only a comment may follow a closed quoted scalar.
fn check_trailing(rest: &str, number: usize) -> Result<(), FileError> {
    let rest = rest.trim();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err(error(
            number,
            format!("unexpected text after the value: {rest}"),
        ))
    }
}

/// A plain (unquoted) value, without a trailing ` # comment`.
fn plain_value(text: &str, number: usize) -> Result<String, FileError> {
    if text.starts_with(['!', '@', '&', '*', '|', '>', '[', '{', '%', '`']) {
        return Err(error(
            number,
            format!("quote this value ({text}): YAML does not read it as text"),
        ));
    }
    let value = match text.find(" #") {
        Some(at) => &text[..at],
        None => text,
    };
    if value.contains(": ") {
        return Err(error(number, "nested mappings are not policy rules"));
    }
    Ok(value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn into_map(rules: Vec<(String, String)>) -> BTreeMap<String, String> {
        rules.into_iter().collect()
    }

    #[test]
    fn reads_generated_and_hand_written_yaml() {
        let text = "\
# Cinder policy overrides
---
\"volume:create\": \"role:admin\"
#\"volume:delete\": \"rule:xena_system_admin_or_project_member\"
'volume:get_all': '!'
context_is_admin: role:admin   # trailing comment
\"volume:update\": \"role:admin or
  (role:member and project_id:%(project_id)s)\"
volume:extend: role:admin
  or role:member
\"it's\": 'it''s @'
empty:
";
        let rules = parse_policy_text(text).unwrap();
        assert_eq!(
            rules,
            vec![
                ("volume:create".to_owned(), "role:admin".to_owned()),
                ("volume:get_all".to_owned(), "!".to_owned()),
                ("context_is_admin".to_owned(), "role:admin".to_owned()),
                (
                    "volume:update".to_owned(),
                    "role:admin or (role:member and project_id:%(project_id)s)".to_owned()
                ),
                (
                    "volume:extend".to_owned(),
                    "role:admin or role:member".to_owned()
                ),
                ("it's".to_owned(), "it's @".to_owned()),
                ("empty".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn reads_json_with_legacy_lists() {
        let rules = parse_policy_text(
            r#"{"a": "role:x", "b": [["role:y", "project_id:%(project_id)s"], ["role:z"]], "c": []}"#,
        )
        .unwrap();
        assert_eq!(
            into_map(rules),
            BTreeMap::from([
                ("a".to_owned(), "role:x".to_owned()),
                (
                    "b".to_owned(),
                    "(role:y and project_id:%(project_id)s) or (role:z)".to_owned()
                ),
                ("c".to_owned(), String::new()),
            ])
        );
    }

    #[test]
    fn refuses_what_is_not_a_flat_mapping() {
        for (text, line) in [
            ("a: b\nrules:\n  nested: x\n", 3),
            ("\"volume:create\": !\n", 1),
            ("\"volume:create\": @\n", 1),
            ("- item\n", 1),
            ("\"a\": \"open\n", 1),
            ("a: |\n  block\n", 1),
            ("  indented: x\n", 1),
            ("\"a\": \"x\" trailing\n", 1),
            ("just text\n", 1),
        ] {
            let err = parse_policy_text(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
        }
        assert!(parse_policy_text("{\"a\": 1}").is_err());
        assert!(parse_policy_text("{broken").is_err());
    }
}
