//! oslo.policy's check-string language, parsed once and evaluated per
//! request: `rule:<name>`, `role:<name>`, `<credential>:<match>` (generic
//! checks such as `project_id:%(project_id)s` or `is_admin:True`), the
//! literals `@` (always) and `!` (never), `not`, `and`, `or` and
//! parentheses. `not` binds tighter than `and`, `and` tighter than `or`;
//! an empty check string always passes, as in oslo.
//!
//! Unlike oslo (which logs a syntax error and turns the rule into "never"),
//! a check string that does not parse is an error the caller reports at
//! start-up.

use std::collections::BTreeMap;

/// A parsed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// `@` or an empty check string.
    Always,
    /// `!`.
    Never,
    /// `rule:<name>`: another rule of the policy.
    Rule(String),
    /// `role:<match>`: the caller has the role (case-insensitive).
    Role(String),
    /// `<kind>:<match>`: a credential (or a Python literal `kind`) equals
    /// the match, after `%(key)s` substitution from the target.
    Generic {
        /// Credential name, or a literal (`True`, `'text'`, `12`).
        kind: String,
        /// The value to compare with (may contain `%(key)s`).
        matcher: String,
    },
    /// `not <check>`.
    Not(Box<Check>),
    /// Every check holds.
    And(Vec<Check>),
    /// At least one check holds.
    Or(Vec<Check>),
}

/// What a check string cannot be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyntaxError(pub String);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Check(Check),
}

/// oslo's tokenizer: whitespace-separated words, parentheses peeled off
/// their ends, `and`/`or`/`not` in any case.
fn tokenize(text: &str) -> Result<Vec<Token>, SyntaxError> {
    let mut tokens = Vec::new();
    for word in text.split_whitespace() {
        let body = word.trim_start_matches('(');
        tokens.extend(std::iter::repeat_n(Token::Open, word.len() - body.len()));
        if body.is_empty() {
            continue;
        }
        let clean = body.trim_end_matches(')');
        let trailing = body.len() - clean.len();
        if !clean.is_empty() {
            tokens.push(match clean.to_ascii_lowercase().as_str() {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                _ => Token::Check(parse_atom(clean)?),
            });
        }
        tokens.extend(std::iter::repeat_n(Token::Close, trailing));
    }
    Ok(tokens)
}

fn parse_atom(word: &str) -> Result<Check, SyntaxError> {
    match word {
        "@" => return Ok(Check::Always),
        "!" => return Ok(Check::Never),
        _ => {}
    }
    if word.len() >= 2 && (word.starts_with('"') && word.ends_with('"')) {
        return Err(SyntaxError(format!(
            "a quoted string ({word}) is not a check"
        )));
    }
    let Some((kind, matcher)) = word.split_once(':') else {
        return Err(SyntaxError(format!(
            "{word:?} is not a check (expected kind:match, @ or !)"
        )));
    };
    Ok(match kind {
        "rule" => Check::Rule(matcher.to_owned()),
        "role" => Check::Role(matcher.to_owned()),
        "http" | "https" => {
            return Err(SyntaxError(format!(
                "{kind}: checks (remote policy servers) are not supported"
            )));
        }
        _ => Check::Generic {
            kind: kind.to_owned(),
            matcher: matcher.to_owned(),
        },
    })
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn or_expression(&mut self) -> Result<Check, SyntaxError> {
        let mut terms = vec![self.and_expression()?];
        while self.peek() == Some(&Token::Or) {
            self.position += 1;
            terms.push(self.and_expression()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Check::Or(terms)
        })
    }

    fn and_expression(&mut self) -> Result<Check, SyntaxError> {
        let mut terms = vec![self.not_expression()?];
        while self.peek() == Some(&Token::And) {
            self.position += 1;
            terms.push(self.not_expression()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Check::And(terms)
        })
    }

    fn not_expression(&mut self) -> Result<Check, SyntaxError> {
        match self.next() {
            Some(Token::Not) => Ok(Check::Not(Box::new(self.not_expression()?))),
            Some(Token::Check(check)) => Ok(check),
            Some(Token::Open) => {
                let inner = self.or_expression()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err(SyntaxError("unbalanced parentheses".into())),
                }
            }
            Some(Token::Close) => Err(SyntaxError("unbalanced parentheses".into())),
            Some(Token::And | Token::Or) => {
                Err(SyntaxError("and/or without a check before it".into()))
            }
            None => Err(SyntaxError("the check string ends too early".into())),
        }
    }
}

/// Parses a check string.
///
/// # Errors
/// A word that is not a check, unbalanced parentheses, a dangling operator.
pub fn parse(text: &str) -> Result<Check, SyntaxError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Ok(Check::Always);
    }
    let mut parser = Parser {
        tokens,
        position: 0,
    };
    let check = parser.or_expression()?;
    if parser.position < parser.tokens.len() {
        return Err(SyntaxError(match parser.peek() {
            Some(Token::Close) => "unbalanced parentheses".to_owned(),
            _ => "two checks without and/or between them".to_owned(),
        }));
    }
    Ok(check)
}

impl Check {
    /// The rule names this check refers to (for the cycle check).
    pub fn referenced_rules<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Check::Rule(name) => out.push(name),
            Check::Not(inner) => inner.referenced_rules(out),
            Check::And(all) | Check::Or(all) => {
                for c in all {
                    c.referenced_rules(out);
                }
            }
            _ => {}
        }
    }
}

/// Python's `%(key)s` formatting of a match against the target; `None`
/// when a key is missing (oslo then fails the check).
pub fn substitute(matcher: &str, target: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::with_capacity(matcher.len());
    let mut rest = matcher;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        if let Some(after) = tail.strip_prefix("%%") {
            out.push('%');
            rest = after;
        } else if let Some(open) = tail.strip_prefix("%(")
            && let Some(close) = open.find(")s")
        {
            out.push_str(target.get(&open[..close])?);
            rest = &open[close + 2..];
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Some(out)
}

/// oslo's `ast.literal_eval(kind)` for the literals policy files use:
/// quoted strings, `True`/`False`/`None` and integers.
pub fn literal_kind(kind: &str) -> Option<String> {
    let quoted = |q: char| kind.len() >= 2 && kind.starts_with(q) && kind.ends_with(q);
    if quoted('\'') || quoted('"') {
        return Some(kind[1..kind.len() - 1].to_owned());
    }
    if matches!(kind, "True" | "False" | "None") || kind.parse::<i64>().is_ok() {
        return Some(kind.to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(kind: &str, matcher: &str) -> Check {
        Check::Generic {
            kind: kind.into(),
            matcher: matcher.into(),
        }
    }

    #[test]
    fn parses_cinders_base_rules() {
        assert_eq!(
            parse("(role:admin) or (role:reader and project_id:%(project_id)s)").unwrap(),
            Check::Or(vec![
                Check::Role("admin".into()),
                Check::And(vec![
                    Check::Role("reader".into()),
                    generic("project_id", "%(project_id)s"),
                ]),
            ])
        );
        assert_eq!(
            parse("is_admin:True or (role:admin and is_admin_project:True)").unwrap(),
            Check::Or(vec![
                generic("is_admin", "True"),
                Check::And(vec![
                    Check::Role("admin".into()),
                    generic("is_admin_project", "True"),
                ]),
            ])
        );
    }

    #[test]
    fn precedence_literals_and_keywords() {
        assert_eq!(parse("").unwrap(), Check::Always);
        assert_eq!(parse("  ").unwrap(), Check::Always);
        assert_eq!(parse("@").unwrap(), Check::Always);
        assert_eq!(parse("!").unwrap(), Check::Never);
        // and binds tighter than or; not tighter than and.
        assert_eq!(
            parse("role:a or role:b AND not role:c").unwrap(),
            Check::Or(vec![
                Check::Role("a".into()),
                Check::And(vec![
                    Check::Role("b".into()),
                    Check::Not(Box::new(Check::Role("c".into()))),
                ]),
            ])
        );
        assert_eq!(
            parse("((rule:admin_api))").unwrap(),
            Check::Rule("admin_api".into())
        );
        assert_eq!(
            parse("not (role:a or role:b)").unwrap(),
            Check::Not(Box::new(Check::Or(vec![
                Check::Role("a".into()),
                Check::Role("b".into())
            ])))
        );
    }

    #[test]
    fn refuses_what_oslo_would_silently_deny() {
        for bad in [
            "role:admin or",
            "(role:admin",
            "role:admin)",
            "role:a role:b",
            "admin",
            "and role:a",
            "http://policy.example/check",
            "\"quoted\"",
            "not",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn substitution_and_literals() {
        let target: BTreeMap<String, String> = [("project_id".to_owned(), "p1".to_owned())].into();
        assert_eq!(substitute("%(project_id)s", &target).as_deref(), Some("p1"));
        assert_eq!(
            substitute("x-%(project_id)s-%%", &target).as_deref(),
            Some("x-p1-%")
        );
        assert_eq!(substitute("%(domain_id)s", &target), None);
        assert_eq!(literal_kind("'member'").as_deref(), Some("member"));
        assert_eq!(literal_kind("True").as_deref(), Some("True"));
        assert_eq!(literal_kind("project_id"), None);
    }
}
