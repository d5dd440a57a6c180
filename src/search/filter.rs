//! The one filter language of lore: Dify's `metadata_condition` (a logical operator over
//! conditions of `name`, `comparison_operator`, `value`, with Dify's 18 operators), turned into
//! a Qdrant filter so it is evaluated inside the store, where it also limits the candidates.
//!
//! Names are user metadata keys (flat), or `document_id` / `document_name`. Qdrant has prefix and
//! substring matches but no suffix match, so every string value is also stored reversed under
//! `metadata_rev`, and "end with x" is "reversed starts with reversed x".

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Dify's operators, exact strings.
pub const OPERATORS: [&str; 18] = [
    "contains",
    "not contains",
    "start with",
    "end with",
    "is",
    "is not",
    "empty",
    "not empty",
    "in",
    "not in",
    "=",
    "≠",
    ">",
    "<",
    "≥",
    "≤",
    "before",
    "after",
];

/// A filter as clients send it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct MetadataCondition {
    #[serde(default)]
    pub logical_operator: Option<String>,
    #[serde(default)]
    pub conditions: Option<Vec<Condition>>,
}

/// One condition. `name` is a string; older Dify versions send a list of strings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Condition {
    pub name: Name,
    pub comparison_operator: String,
    #[serde(default)]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Name {
    One(String),
    Many(Vec<String>),
}

impl MetadataCondition {
    /// The Qdrant filter (JSON form) for this condition, or `None` when it has no conditions.
    pub fn to_store_filter(&self) -> Result<Option<Value>> {
        let conditions = self.conditions.as_deref().unwrap_or_default();
        if conditions.is_empty() {
            return Ok(None);
        }
        let parts = conditions
            .iter()
            .map(condition_filter)
            .collect::<Result<Vec<Value>>>()?;
        let operator = self
            .logical_operator
            .as_deref()
            .unwrap_or("and")
            .to_ascii_lowercase();
        match operator.as_str() {
            "and" => Ok(Some(json!({ "must": parts }))),
            "or" => Ok(Some(json!({ "should": parts }))),
            other => Err(Error::invalid_request(format!(
                "unknown logical_operator '{other}': use 'and' or 'or'"
            ))),
        }
    }
}

/// Payload path of a filterable name, quoted so any key characters are safe.
fn field_path(name: &str, reversed: bool) -> Result<String> {
    if name.is_empty() || name.contains('"') || name.contains('\\') {
        return Err(Error::invalid_request(format!(
            "invalid metadata name '{name}'"
        )));
    }
    Ok(match (name, reversed) {
        ("document_id" | "document_name", false) => name.to_owned(),
        ("document_id" | "document_name", true) => format!("document_rev.\"{name}\""),
        (_, false) => format!("metadata.\"{name}\""),
        (_, true) => format!("metadata_rev.\"{name}\""),
    })
}

fn condition_filter(condition: &Condition) -> Result<Value> {
    let names = match &condition.name {
        Name::One(name) => vec![name.as_str()],
        Name::Many(names) => names.iter().map(String::as_str).collect(),
    };
    if names.is_empty() {
        return Err(Error::invalid_request("a condition has an empty name"));
    }
    // Several names (the old list form) must all satisfy the condition.
    let per_name = names
        .into_iter()
        .map(|name| {
            operator_filter(
                name,
                &condition.comparison_operator,
                condition.value.as_ref(),
            )
        })
        .collect::<Result<Vec<Value>>>()?;
    Ok(json!({ "must": per_name }))
}

fn operator_filter(name: &str, operator: &str, value: Option<&Value>) -> Result<Value> {
    let key = field_path(name, false)?;
    let not = |filter: Value| json!({ "must_not": [filter] });
    let filter = match operator {
        "contains" => json!({ "key": key, "match": { "substring": text(operator, value)? } }),
        "not contains" => {
            not(json!({ "key": key, "match": { "substring": text(operator, value)? } }))
        }
        "start with" => json!({ "key": key, "match": { "prefix": text(operator, value)? } }),
        "end with" => {
            let reversed: String = text(operator, value)?.chars().rev().collect();
            json!({ "key": field_path(name, true)?, "match": { "prefix": reversed } })
        }
        "is" => equals(&key, operator, value)?,
        "is not" => not(equals(&key, operator, value)?),
        "empty" => empty(&key),
        "not empty" => not(empty(&key)),
        "in" => one_of(&key, operator, value)?,
        "not in" => not(one_of(&key, operator, value)?),
        "=" => number_range(&key, operator, value, &["gte", "lte"])?,
        "≠" => not(number_range(&key, operator, value, &["gte", "lte"])?),
        ">" => number_range(&key, operator, value, &["gt"])?,
        "<" => number_range(&key, operator, value, &["lt"])?,
        "≥" => number_range(&key, operator, value, &["gte"])?,
        "≤" => number_range(&key, operator, value, &["lte"])?,
        "before" => json!({ "key": key, "range": { "lt": date(operator, value)? } }),
        "after" => json!({ "key": key, "range": { "gt": date(operator, value)? } }),
        other => {
            return Err(Error::invalid_request(format!(
                "unknown comparison_operator '{other}'; supported: {}",
                OPERATORS.join(", ")
            )));
        }
    };
    Ok(filter)
}

fn missing(operator: &str) -> Error {
    Error::invalid_request(format!("the '{operator}' condition needs a value"))
}

/// A string value; numbers are accepted as their decimal text.
fn text(operator: &str, value: Option<&Value>) -> Result<String> {
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        _ => Err(missing(operator)),
    }
}

fn number(operator: &str, value: Option<&Value>) -> Result<f64> {
    match value {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| missing(operator)),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| {
            Error::invalid_request(format!(
                "the '{operator}' condition needs a number, not '{s}'"
            ))
        }),
        _ => Err(missing(operator)),
    }
}

fn number_range(
    key: &str,
    operator: &str,
    value: Option<&Value>,
    bounds: &[&str],
) -> Result<Value> {
    let n = number(operator, value)?;
    let range: serde_json::Map<String, Value> =
        bounds.iter().map(|b| ((*b).to_owned(), json!(n))).collect();
    Ok(json!({ "key": key, "range": range }))
}

/// Equality for a string, and for the number a numeric string spells, since metadata values
/// may have been uploaded as either.
fn equals(key: &str, operator: &str, value: Option<&Value>) -> Result<Value> {
    let value = value.ok_or_else(|| missing(operator))?;
    let mut options = Vec::new();
    match value {
        Value::String(s) => {
            options.push(json!({ "key": key, "match": { "value": s } }));
            if let Ok(n) = s.trim().parse::<f64>() {
                options.push(json!({ "key": key, "range": { "gte": n, "lte": n } }));
            }
        }
        Value::Number(n) => {
            options.push(json!({ "key": key, "range": { "gte": n, "lte": n } }));
            options.push(json!({ "key": key, "match": { "value": n.to_string() } }));
        }
        Value::Bool(b) => options.push(json!({ "key": key, "match": { "value": b } })),
        _ => return Err(missing(operator)),
    }
    Ok(json!({ "should": options }))
}

/// "in": any of a list, given as a JSON array or a comma-separated string.
fn one_of(key: &str, operator: &str, value: Option<&Value>) -> Result<Value> {
    let items: Vec<Value> = match value {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| Value::String(p.trim().to_owned()))
            .collect(),
        Some(other @ Value::Number(_)) => vec![other.clone()],
        _ => return Err(missing(operator)),
    };
    if items.is_empty() {
        return Err(missing(operator));
    }
    let options = items
        .iter()
        .map(|item| equals(key, operator, Some(item)))
        .collect::<Result<Vec<Value>>>()?;
    Ok(json!({ "should": options }))
}

/// Missing, null or an empty string.
fn empty(key: &str) -> Value {
    json!({ "should": [
        { "is_empty": { "key": key } },
        { "key": key, "match": { "value": "" } },
    ] })
}

/// ISO 8601 date or date-time; a bare date means its midnight, UTC.
fn date(operator: &str, value: Option<&Value>) -> Result<String> {
    let raw = text(operator, value)?;
    let raw = raw.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.to_rfc3339());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S") {
        return Ok(t.and_utc().to_rfc3339());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .to_rfc3339());
    }
    Err(Error::invalid_request(format!(
        "the '{operator}' condition needs an ISO 8601 date (2024-03-08 or 2024-03-08T10:00:00Z), not '{raw}'"
    )))
}

/// The reversed copies of string values that "end with" matches against.
pub fn reversed_strings(map: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    map.iter()
        .filter_map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), Value::String(s.chars().rev().collect())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> MetadataCondition {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn empty_or_null_conditions_mean_no_filter() {
        assert_eq!(parse(json!({})).to_store_filter().unwrap(), None);
        assert_eq!(
            parse(json!({ "conditions": null }))
                .to_store_filter()
                .unwrap(),
            None
        );
        assert_eq!(
            parse(json!({ "logical_operator": "or", "conditions": [] }))
                .to_store_filter()
                .unwrap(),
            None
        );
    }

    #[test]
    fn every_operator_translates() {
        for operator in OPERATORS {
            let value = match operator {
                "before" | "after" => json!("2024-03-08"),
                "=" | "≠" | ">" | "<" | "≥" | "≤" => json!(3),
                "in" | "not in" => json!(["a", "b"]),
                "empty" | "not empty" => Value::Null,
                _ => json!("x"),
            };
            let condition = parse(json!({ "conditions": [
                { "name": "k", "comparison_operator": operator, "value": value } ] }));
            let filter = condition.to_store_filter().unwrap().unwrap();
            let _: qdrant_edge::Filter = serde_json::from_value(filter.clone())
                .unwrap_or_else(|e| panic!("{operator}: {e}: {filter}"));
        }
    }

    #[test]
    fn names_may_come_as_a_list_and_operators_are_checked() {
        let condition = parse(json!({ "logical_operator": "or", "conditions": [
            { "name": ["region"], "comparison_operator": "is", "value": "华东" } ] }));
        let filter = condition.to_store_filter().unwrap().unwrap();
        assert!(
            filter.to_string().contains("metadata.\\\"region\\\""),
            "{filter}"
        );
        let bad = parse(
            json!({ "conditions": [{ "name": "a", "comparison_operator": "like", "value": "x" }] }),
        );
        let err = bad.to_store_filter().unwrap_err();
        assert!(err.message().contains("like") && err.message().contains("not contains"));
        let no_value =
            parse(json!({ "conditions": [{ "name": "a", "comparison_operator": ">" }] }));
        assert!(
            no_value
                .to_store_filter()
                .unwrap_err()
                .message()
                .contains("needs a value")
        );
        let bad_date = parse(
            json!({ "conditions": [{ "name": "a", "comparison_operator": "before", "value": "yesterday" }] }),
        );
        assert!(
            bad_date
                .to_store_filter()
                .unwrap_err()
                .message()
                .contains("ISO 8601")
        );
    }

    #[test]
    fn end_with_uses_reversed_values() {
        let mut map = serde_json::Map::new();
        map.insert("file".into(), json!("规则.pdf"));
        map.insert("year".into(), json!(2024));
        let reversed = reversed_strings(&map);
        assert_eq!(reversed.get("file"), Some(&json!("fdp.则规")));
        assert!(!reversed.contains_key("year"));
    }
}
