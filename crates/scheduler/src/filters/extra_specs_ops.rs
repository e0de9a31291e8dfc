//! Extra-spec matching operators (Cinder's `extra_specs_ops.match`).
//!
//! A requirement is either a plain string (exact equality with a string
//! capability) or `<op> <value>` with the operators `=` (numeric ≥), `==`,
//! `!=`, `>=`, `<=` (numeric), `s==`, `s!=`, `s<`, `s<=`, `s>`, `s>=`
//! (string), `<in>` (substring or list membership), `<is>` (boolean), and
//! `<or> a <or> b`. Only the first word after an operator is compared, as in
//! Cinder.

use clinker_types::capabilities::truthy;
use serde_json::Value;

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
        _ => None,
    }
}

fn as_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Whether a capability value satisfies a requirement string.
pub fn matches(value: Option<&Value>, requirement: &str) -> bool {
    let mut words = requirement.split_whitespace();
    let op = words.next();
    let operand = words.next();
    let known_op = matches!(
        op,
        Some(
            "=" | "=="
                | "!="
                | ">="
                | "<="
                | "s=="
                | "s!="
                | "s<"
                | "s<="
                | "s>"
                | "s>="
                | "<in>"
                | "<is>"
                | "<or>"
        )
    );
    if !known_op {
        // Plain equality: only a string capability equals a string
        // requirement (Python's `value == req`).
        return matches!(value, Some(Value::String(s)) if s == requirement);
    }
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return false;
    };
    if op == Some("<or>") {
        let text = as_text(value);
        // `<or> a <or> b <or> c`: every other word is a candidate.
        return requirement
            .split_whitespace()
            .collect::<Vec<_>>()
            .chunks(2)
            .filter_map(|pair| pair.get(1))
            .any(|candidate| text.as_deref() == Some(*candidate));
    }
    let Some(operand) = operand else { return false };
    let numeric = |cmp: fn(f64, f64) -> bool| match (as_float(value), operand.parse::<f64>()) {
        (Some(a), Ok(b)) => cmp(a, b),
        _ => false,
    };
    let textual = |cmp: fn(&str, &str) -> bool| match value {
        Value::String(s) => cmp(s, operand),
        _ => false,
    };
    match op {
        Some("=" | ">=") => numeric(|a, b| a >= b),
        Some("==") => numeric(|a, b| (a - b).abs() < f64::EPSILON),
        Some("!=") => numeric(|a, b| (a - b).abs() >= f64::EPSILON),
        Some("<=") => numeric(|a, b| a <= b),
        Some("s==") => textual(|a, b| a == b),
        Some("s!=") => textual(|a, b| a != b),
        Some("s<") => textual(|a, b| a < b),
        Some("s<=") => textual(|a, b| a <= b),
        Some("s>") => textual(|a, b| a > b),
        Some("s>=") => textual(|a, b| a >= b),
        Some("<in>") => match value {
            Value::String(s) => s.contains(operand),
            Value::Array(items) => items.iter().any(|i| as_text(i).as_deref() == Some(operand)),
            _ => false,
        },
        Some("<is>") => truthy(value) == truthy(&Value::String(operand.to_owned())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(value: Value, req: &str) -> bool {
        matches(Some(&value), req)
    }

    #[test]
    fn plain_equality_is_string_only() {
        assert!(m(json!("lvm"), "lvm"));
        assert!(!m(json!("lvm"), "LVM"));
        assert!(!m(json!(5), "5"), "python compares 5 == '5' as false");
        assert!(!matches(None, "x"));
    }

    #[test]
    fn numeric_operators() {
        assert!(m(json!(10), "= 5"));
        assert!(m(json!("10"), ">= 10"));
        assert!(!m(json!(4), "= 5"));
        assert!(m(json!(5), "== 5.0"));
        assert!(m(json!(5), "!= 6"));
        assert!(m(json!(5), "<= 5"));
        assert!(!m(json!("abc"), ">= 1"));
    }

    #[test]
    fn string_operators() {
        assert!(m(json!("abc"), "s== abc"));
        assert!(m(json!("abc"), "s!= abd"));
        assert!(m(json!("abc"), "s< abd"));
        assert!(m(json!("abc"), "s<= abc"));
        assert!(m(json!("abd"), "s> abc"));
        assert!(m(json!("abc"), "s>= abc"));
        assert!(!m(json!(1), "s== 1"));
    }

    #[test]
    fn in_is_and_or() {
        assert!(m(json!("fast ssd"), "<in> ssd"));
        assert!(m(json!(["a", "b"]), "<in> b"));
        assert!(!m(json!(["a", "b"]), "<in> c"));
        assert!(m(json!(true), "<is> True"));
        assert!(m(json!("true"), "<is> true"));
        assert!(!m(json!(false), "<is> True"));
        assert!(m(json!("b"), "<or> a <or> b <or> c"));
        assert!(!m(json!("d"), "<or> a <or> b"));
        assert!(!matches(None, "<is> True"));
    }
}
