//! Store filters from their JSON form (Qdrant's REST shape, what `search::filter` writes and what
//! the embedded Edge engine deserializes) to qdrant-client's gRPC `Filter`, so one filter language
//! serves both backends.
//!
//! Covered: `must` / `should` / `must_not` / `min_should` (a list or a single condition), nested
//! filters, field conditions with `match` (`value`, `any`, `except`, `text`, `text_any`,
//! `phrase`, `prefix`, `substring`), `range` (numbers, or ISO 8601 date-times as a datetime
//! range) and `values_count`, and `is_empty`, `is_null`, `has_id`, `has_vector`, `nested`.
//! Keys pass through unchanged: the server parses the same JSON path syntax as Edge
//! (`metadata."region"`). Anything else (geo conditions) is refused with a clear error rather
//! than dropped, since a dropped condition would widen a search silently.

use anyhow::{Context as _, anyhow, bail};
use qdrant_client::qdrant::condition::ConditionOneOf;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::{
    Condition, DatetimeRange, FieldCondition, Filter, HasIdCondition, HasVectorCondition,
    IsEmptyCondition, IsNullCondition, Match, MinShould, NestedCondition, PointId, Range,
    RepeatedIntegers, RepeatedStrings, ValuesCount,
};
use serde_json::{Map, Value};

/// The gRPC form of a JSON store filter.
pub fn to_grpc(value: &Value) -> anyhow::Result<Filter> {
    let object = value
        .as_object()
        .ok_or_else(|| anyhow!("a store filter must be a JSON object, not {value}"))?;
    filter(object)
}

fn filter(object: &Map<String, Value>) -> anyhow::Result<Filter> {
    let mut result = Filter::default();
    for (name, value) in object {
        match name.as_str() {
            "must" => result.must = conditions(value)?,
            "should" => result.should = conditions(value)?,
            "must_not" => result.must_not = conditions(value)?,
            "min_should" => {
                let min = value
                    .as_object()
                    .ok_or_else(|| anyhow!("'min_should' must be an object"))?;
                result.min_should = Some(MinShould {
                    conditions: conditions(min.get("conditions").unwrap_or(&Value::Null))?,
                    min_count: min
                        .get("min_count")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| anyhow!("'min_should' needs a 'min_count'"))?,
                });
            }
            other => bail!("unsupported filter clause '{other}'"),
        }
    }
    Ok(result)
}

/// A clause holds a list of conditions, or one condition alone (both are valid Qdrant JSON).
fn conditions(value: &Value) -> anyhow::Result<Vec<Condition>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(condition).collect(),
        one => Ok(vec![condition(one)?]),
    }
}

fn condition(value: &Value) -> anyhow::Result<Condition> {
    let object = value
        .as_object()
        .ok_or_else(|| anyhow!("a filter condition must be an object, not {value}"))?;
    let one_of = if object.contains_key("key") {
        ConditionOneOf::Field(field_condition(object)?)
    } else if let Some(inner) = object.get("is_empty") {
        ConditionOneOf::IsEmpty(IsEmptyCondition {
            key: key_of(inner, "is_empty")?,
        })
    } else if let Some(inner) = object.get("is_null") {
        ConditionOneOf::IsNull(IsNullCondition {
            key: key_of(inner, "is_null")?,
        })
    } else if let Some(ids) = object.get("has_id") {
        let ids = ids
            .as_array()
            .ok_or_else(|| anyhow!("'has_id' must be a list of point ids"))?;
        ConditionOneOf::HasId(HasIdCondition {
            has_id: ids.iter().map(point_id).collect::<anyhow::Result<_>>()?,
        })
    } else if let Some(name) = object.get("has_vector") {
        ConditionOneOf::HasVector(HasVectorCondition {
            has_vector: name
                .as_str()
                .ok_or_else(|| anyhow!("'has_vector' must name a vector"))?
                .to_owned(),
        })
    } else if let Some(nested) = object.get("nested") {
        let inner = nested
            .as_object()
            .ok_or_else(|| anyhow!("'nested' must be an object"))?;
        ConditionOneOf::Nested(NestedCondition {
            key: key_of(nested, "nested")?,
            filter: Some(filter(
                inner
                    .get("filter")
                    .and_then(Value::as_object)
                    .ok_or_else(|| anyhow!("'nested' needs a 'filter' object"))?,
            )?),
        })
    } else if ["must", "should", "must_not", "min_should"]
        .iter()
        .any(|clause| object.contains_key(*clause))
    {
        ConditionOneOf::Filter(filter(object)?)
    } else {
        bail!("unsupported filter condition {value}");
    };
    Ok(Condition {
        condition_one_of: Some(one_of),
    })
}

fn key_of(value: &Value, condition: &str) -> anyhow::Result<String> {
    value
        .get("key")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("'{condition}' needs a 'key'"))
}

fn point_id(value: &Value) -> anyhow::Result<PointId> {
    match value {
        Value::String(uuid) => Ok(PointId::from(uuid.as_str())),
        Value::Number(n) => n
            .as_u64()
            .map(PointId::from)
            .ok_or_else(|| anyhow!("point id {n} is not an unsigned integer")),
        other => bail!("point id {other} is neither a UUID nor an integer"),
    }
}

fn field_condition(object: &Map<String, Value>) -> anyhow::Result<FieldCondition> {
    let key = object
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("a field condition's 'key' must be a string"))?;
    let mut result = FieldCondition {
        key: key.to_owned(),
        ..Default::default()
    };
    for (name, value) in object {
        match name.as_str() {
            "key" => {}
            "match" => result.r#match = Some(match_of(value).with_context(|| key.to_owned())?),
            "range" => range(value, &mut result).with_context(|| key.to_owned())?,
            "values_count" => {
                result.values_count = Some(values_count(value).with_context(|| key.to_owned())?)
            }
            "is_empty" => result.is_empty = value.as_bool(),
            "is_null" => result.is_null = value.as_bool(),
            other => bail!("unsupported field condition '{other}' on '{key}'"),
        }
    }
    Ok(result)
}

fn match_of(value: &Value) -> anyhow::Result<Match> {
    let object = value
        .as_object()
        .ok_or_else(|| anyhow!("'match' must be an object"))?;
    let (kind, value) = match object.iter().next() {
        Some(entry) if object.len() == 1 => entry,
        _ => bail!("'match' must have exactly one of value, any, except, text, ..."),
    };
    let string = || {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("match '{kind}' needs a string"))
    };
    let match_value = match kind.as_str() {
        "value" => match value {
            Value::String(s) => MatchValue::Keyword(s.clone()),
            Value::Bool(b) => MatchValue::Boolean(*b),
            Value::Number(n) => MatchValue::Integer(
                n.as_i64()
                    .ok_or_else(|| anyhow!("match value {n} is not an integer (use a range)"))?,
            ),
            other => bail!("cannot match the value {other}"),
        },
        "any" => match list(value)? {
            List::Strings(strings) => MatchValue::Keywords(RepeatedStrings { strings }),
            List::Integers(integers) => MatchValue::Integers(RepeatedIntegers { integers }),
        },
        "except" => match list(value)? {
            List::Strings(strings) => MatchValue::ExceptKeywords(RepeatedStrings { strings }),
            List::Integers(integers) => MatchValue::ExceptIntegers(RepeatedIntegers { integers }),
        },
        "text" => MatchValue::Text(string()?),
        "text_any" => MatchValue::TextAny(string()?),
        "phrase" => MatchValue::Phrase(string()?),
        "prefix" => MatchValue::Prefix(string()?),
        "substring" => MatchValue::Substring(string()?),
        other => bail!("unsupported match '{other}'"),
    };
    Ok(Match {
        match_value: Some(match_value),
    })
}

enum List {
    Strings(Vec<String>),
    Integers(Vec<i64>),
}

/// `any` / `except` lists are all strings or all integers (an empty list counts as strings).
fn list(value: &Value) -> anyhow::Result<List> {
    let items = value
        .as_array()
        .ok_or_else(|| anyhow!("'any' and 'except' take a list"))?;
    if items.iter().all(Value::is_string) {
        return Ok(List::Strings(
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ));
    }
    items
        .iter()
        .map(|v| {
            v.as_i64()
                .ok_or_else(|| anyhow!("a match list mixes kinds or holds {v}"))
        })
        .collect::<anyhow::Result<Vec<i64>>>()
        .map(List::Integers)
}

/// Numeric bounds make a `Range`; string bounds are date-times and make a `DatetimeRange`.
fn range(value: &Value, condition: &mut FieldCondition) -> anyhow::Result<()> {
    let object = value
        .as_object()
        .ok_or_else(|| anyhow!("'range' must be an object"))?;
    for bound in object.keys() {
        if !["lt", "gt", "gte", "lte"].contains(&bound.as_str()) {
            bail!("unsupported range bound '{bound}'");
        }
    }
    if object.values().any(Value::is_string) {
        let time = |bound: &str| object.get(bound).map(timestamp).transpose();
        condition.datetime_range = Some(DatetimeRange {
            lt: time("lt")?,
            gt: time("gt")?,
            gte: time("gte")?,
            lte: time("lte")?,
        });
    } else {
        let number = |bound: &str| -> anyhow::Result<Option<f64>> {
            object
                .get(bound)
                .filter(|v| !v.is_null())
                .map(|v| {
                    v.as_f64()
                        .ok_or_else(|| anyhow!("range bound '{bound}' is not a number: {v}"))
                })
                .transpose()
        };
        condition.range = Some(Range {
            lt: number("lt")?,
            gt: number("gt")?,
            gte: number("gte")?,
            lte: number("lte")?,
        });
    }
    Ok(())
}

/// RFC 3339, or a date-time / date without zone (read as UTC, as Qdrant does).
fn timestamp(value: &Value) -> anyhow::Result<prost_types::Timestamp> {
    let raw = value
        .as_str()
        .ok_or_else(|| anyhow!("a date-time bound must be a string, not {value}"))?;
    let time = chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.to_utc())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S").map(|t| t.and_utc())
        })
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| anyhow!("'{raw}' is not an ISO 8601 date-time"))?;
    Ok(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos())?,
    })
}

fn values_count(value: &Value) -> anyhow::Result<ValuesCount> {
    let object = value
        .as_object()
        .ok_or_else(|| anyhow!("'values_count' must be an object"))?;
    let bound = |name: &str| object.get(name).and_then(Value::as_u64);
    Ok(ValuesCount {
        lt: bound("lt"),
        gt: bound("gt"),
        gte: bound("gte"),
        lte: bound("lte"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::MetadataCondition;
    use serde_json::json;

    fn field(key: &str, match_value: MatchValue) -> Condition {
        Condition {
            condition_one_of: Some(ConditionOneOf::Field(FieldCondition {
                key: key.into(),
                r#match: Some(Match {
                    match_value: Some(match_value),
                }),
                ..Default::default()
            })),
        }
    }

    fn nested(filter: Filter) -> Condition {
        Condition {
            condition_one_of: Some(ConditionOneOf::Filter(filter)),
        }
    }

    #[test]
    fn clauses_and_matches_translate_exactly() {
        let json = json!({
            "must": [
                { "key": "document_id", "match": { "value": "d1" } },
                { "key": "version", "match": { "value": 3 } },
                { "key": "flag", "match": { "value": true } },
            ],
            "should": { "key": "t", "match": { "any": ["a", "b"] } },
            "must_not": [
                { "key": "n", "match": { "any": [1, 2] } },
                { "key": "e", "match": { "except": ["x"] } },
                { "key": "i", "match": { "except": [7] } },
                { "key": "txt", "match": { "text": "退款" } },
                { "key": "ta", "match": { "text_any": "a b" } },
                { "key": "ph", "match": { "phrase": "a b" } },
                { "key": "metadata.\"文件\"", "match": { "prefix": "规则" } },
                { "key": "metadata.\"x\"", "match": { "substring": "则" } },
            ],
        });
        let expected = Filter {
            must: vec![
                field("document_id", MatchValue::Keyword("d1".into())),
                field("version", MatchValue::Integer(3)),
                field("flag", MatchValue::Boolean(true)),
            ],
            should: vec![field(
                "t",
                MatchValue::Keywords(RepeatedStrings {
                    strings: vec!["a".into(), "b".into()],
                }),
            )],
            must_not: vec![
                field(
                    "n",
                    MatchValue::Integers(RepeatedIntegers {
                        integers: vec![1, 2],
                    }),
                ),
                field(
                    "e",
                    MatchValue::ExceptKeywords(RepeatedStrings {
                        strings: vec!["x".into()],
                    }),
                ),
                field(
                    "i",
                    MatchValue::ExceptIntegers(RepeatedIntegers { integers: vec![7] }),
                ),
                field("txt", MatchValue::Text("退款".into())),
                field("ta", MatchValue::TextAny("a b".into())),
                field("ph", MatchValue::Phrase("a b".into())),
                field("metadata.\"文件\"", MatchValue::Prefix("规则".into())),
                field("metadata.\"x\"", MatchValue::Substring("则".into())),
            ],
            min_should: None,
        };
        assert_eq!(to_grpc(&json).unwrap(), expected);
    }

    #[test]
    fn ranges_empty_null_ids_and_nesting() {
        let json = json!({ "must": [
            { "key": "year", "range": { "gte": 2025, "lt": 2026.5 } },
            { "key": "at", "range": { "lt": "2024-03-08T00:00:00+00:00", "gte": "2024-03-01" } },
            { "is_empty": { "key": "metadata.\"a\"" } },
            { "is_null": { "key": "b" } },
            { "has_id": ["5b4e2bd4-0c5d-4b8f-8a0e-0f1d7c8e9a10", 7] },
            { "has_vector": "dense" },
            { "nested": { "key": "items", "filter": { "must": { "key": "n", "match": { "value": 1 } } } } },
            { "should": [ { "must_not": [ { "key": "z", "match": { "value": "" } } ] } ] },
            { "key": "tags", "values_count": { "gte": 2 } },
        ] });
        let filter = to_grpc(&json).unwrap();
        let kinds: Vec<&ConditionOneOf> = filter
            .must
            .iter()
            .map(|c| c.condition_one_of.as_ref().unwrap())
            .collect();
        let ConditionOneOf::Field(year) = kinds[0] else {
            panic!("{:?}", kinds[0])
        };
        assert_eq!(
            year.range,
            Some(Range {
                gte: Some(2025.0),
                lt: Some(2026.5),
                ..Default::default()
            })
        );
        let ConditionOneOf::Field(at) = kinds[1] else {
            panic!()
        };
        let range = at.datetime_range.unwrap();
        assert_eq!(range.lt.unwrap().seconds, 1_709_856_000);
        assert_eq!(range.gte.unwrap().seconds, 1_709_251_200);
        assert!(at.range.is_none());
        assert!(
            matches!(kinds[2], ConditionOneOf::IsEmpty(c) if c.key == "metadata.\"a\""),
            "{kinds:?}"
        );
        assert!(matches!(kinds[3], ConditionOneOf::IsNull(c) if c.key == "b"));
        let ConditionOneOf::HasId(ids) = kinds[4] else {
            panic!()
        };
        assert_eq!(
            ids.has_id,
            vec![
                PointId::from("5b4e2bd4-0c5d-4b8f-8a0e-0f1d7c8e9a10"),
                PointId::from(7u64)
            ]
        );
        assert!(matches!(kinds[5], ConditionOneOf::HasVector(c) if c.has_vector == "dense"));
        let ConditionOneOf::Nested(items) = kinds[6] else {
            panic!()
        };
        assert_eq!(items.key, "items");
        assert_eq!(
            items.filter.as_ref().unwrap().must,
            vec![field("n", MatchValue::Integer(1))]
        );
        assert_eq!(
            kinds[7],
            &ConditionOneOf::Filter(Filter {
                should: vec![nested(Filter {
                    must_not: vec![field("z", MatchValue::Keyword(String::new()))],
                    ..Default::default()
                })],
                ..Default::default()
            })
        );
        let ConditionOneOf::Field(tags) = kinds[8] else {
            panic!()
        };
        assert_eq!(tags.values_count.unwrap().gte, Some(2));
    }

    #[test]
    fn unsupported_shapes_are_refused_not_dropped() {
        for bad in [
            json!([]),
            json!({ "must": [{ "key": "g", "geo_radius": { "center": {}, "radius": 1 } }] }),
            json!({ "must": [{ "key": "f", "match": { "value": 1.5 } }] }),
            json!({ "must": [{ "key": "f", "match": { "any": ["a", 1] } }] }),
            json!({ "must": [{ "key": "f", "match": { "value": "a", "text": "b" } }] }),
            json!({ "must": [{ "key": "f", "range": { "lt": "yesterday" } }] }),
            json!({ "must": [{ "something": 1 }] }),
            json!({ "filter": [] }),
        ] {
            assert!(to_grpc(&bad).is_err(), "{bad}");
        }
    }

    /// Every filter `search::filter` writes, for all 18 Dify operators with both logical
    /// operators and every value shape, converts without error.
    #[test]
    fn every_dify_operator_converts() {
        for operator in crate::search::filter::OPERATORS {
            let values = match operator {
                "before" | "after" => vec![json!("2024-03-08"), json!("2024-03-08T10:00:00Z")],
                "=" | "≠" | ">" | "<" | "≥" | "≤" => vec![json!(3), json!("2.5")],
                "in" | "not in" => vec![json!(["a", 2]), json!("a, b"), json!(4)],
                "empty" | "not empty" => vec![Value::Null],
                "is" | "is not" => vec![json!("x"), json!("12"), json!(12), json!(true)],
                _ => vec![json!("x"), json!(5)],
            };
            for value in values {
                for logical in ["and", "or"] {
                    for name in ["region", "document_name", "document_id"] {
                        let condition: MetadataCondition = serde_json::from_value(json!({
                            "logical_operator": logical,
                            "conditions": [
                                { "name": name, "comparison_operator": operator, "value": value }
                            ]
                        }))
                        .unwrap();
                        let filter = condition.to_store_filter().unwrap().unwrap();
                        to_grpc(&filter).unwrap_or_else(|e| panic!("{operator}: {e:#}: {filter}"));
                    }
                }
            }
        }
    }
}
