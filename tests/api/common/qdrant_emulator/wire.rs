//! gRPC messages (qdrant-client's generated types) to Qdrant Edge's engine types and back, for
//! the calls `QdrantStore` makes. Filters go through Qdrant's JSON form, which Edge
//! deserializes itself, so the engine — not this file — decides what a filter means.

use std::collections::HashMap;

use anyhow::{Context as _, anyhow, bail};
use qdrant_client::Payload as GrpcPayload;
use qdrant_client::qdrant::condition::ConditionOneOf;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{
    self as grpc, Condition, FieldCondition, Filter, PointId, PointStruct, VectorsOutput,
    vector_output, vectors_output, with_payload_selector, with_vectors_selector,
};
use qdrant_edge::{
    PointStructPersisted, VectorInternal, VectorPersisted, VectorStructInternal,
    VectorStructPersisted, WithPayloadInterface, WithVector,
};
use serde_json::{Map, Value, json};

/// A gRPC filter as Edge's filter, through Qdrant's JSON form.
pub fn filter(filter: &Filter) -> anyhow::Result<qdrant_edge::Filter> {
    let value = filter_json(filter)?;
    serde_json::from_value(value.clone())
        .with_context(|| format!("Edge refuses the filter {value}"))
}

fn filter_json(filter: &Filter) -> anyhow::Result<Value> {
    let mut object = Map::new();
    for (name, conditions) in [
        ("must", &filter.must),
        ("should", &filter.should),
        ("must_not", &filter.must_not),
    ] {
        if !conditions.is_empty() {
            let list = conditions
                .iter()
                .map(condition_json)
                .collect::<anyhow::Result<Vec<_>>>()?;
            object.insert(name.into(), Value::Array(list));
        }
    }
    if let Some(min) = &filter.min_should {
        let list = min
            .conditions
            .iter()
            .map(condition_json)
            .collect::<anyhow::Result<Vec<_>>>()?;
        object.insert(
            "min_should".into(),
            json!({ "conditions": list, "min_count": min.min_count }),
        );
    }
    Ok(Value::Object(object))
}

fn condition_json(condition: &Condition) -> anyhow::Result<Value> {
    Ok(
        match condition
            .condition_one_of
            .as_ref()
            .ok_or_else(|| anyhow!("an empty condition"))?
        {
            ConditionOneOf::Field(field) => field_json(field)?,
            ConditionOneOf::IsEmpty(c) => json!({ "is_empty": { "key": c.key } }),
            ConditionOneOf::IsNull(c) => json!({ "is_null": { "key": c.key } }),
            ConditionOneOf::HasId(c) => {
                let ids = c
                    .has_id
                    .iter()
                    .map(id_json)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                json!({ "has_id": ids })
            }
            ConditionOneOf::HasVector(c) => json!({ "has_vector": c.has_vector }),
            ConditionOneOf::Filter(inner) => filter_json(inner)?,
            ConditionOneOf::Nested(c) => {
                let inner = c
                    .filter
                    .as_ref()
                    .ok_or_else(|| anyhow!("nested without filter"))?;
                json!({ "nested": { "key": c.key, "filter": filter_json(inner)? } })
            }
            ConditionOneOf::Slice(_) => bail!("slice conditions are not emulated"),
        },
    )
}

fn field_json(field: &FieldCondition) -> anyhow::Result<Value> {
    let mut object = Map::new();
    object.insert("key".into(), field.key.clone().into());
    if let Some(m) = &field.r#match {
        let (kind, value) = match m
            .match_value
            .as_ref()
            .ok_or_else(|| anyhow!("empty match"))?
        {
            MatchValue::Keyword(s) => ("value", json!(s)),
            MatchValue::Integer(i) => ("value", json!(i)),
            MatchValue::Boolean(b) => ("value", json!(b)),
            MatchValue::Text(s) => ("text", json!(s)),
            MatchValue::Keywords(list) => ("any", json!(list.strings)),
            MatchValue::Integers(list) => ("any", json!(list.integers)),
            MatchValue::ExceptIntegers(list) => ("except", json!(list.integers)),
            MatchValue::ExceptKeywords(list) => ("except", json!(list.strings)),
            MatchValue::Phrase(s) => ("phrase", json!(s)),
            MatchValue::TextAny(s) => ("text_any", json!(s)),
            MatchValue::Prefix(s) => ("prefix", json!(s)),
            MatchValue::Substring(s) => ("substring", json!(s)),
        };
        object.insert("match".into(), json!({ kind: value }));
    }
    if let Some(range) = &field.range {
        let mut bounds = Map::new();
        for (name, bound) in [
            ("lt", range.lt),
            ("gt", range.gt),
            ("gte", range.gte),
            ("lte", range.lte),
        ] {
            if let Some(bound) = bound {
                bounds.insert(name.into(), json!(bound));
            }
        }
        object.insert("range".into(), Value::Object(bounds));
    }
    if let Some(range) = &field.datetime_range {
        let mut bounds = Map::new();
        for (name, bound) in [
            ("lt", range.lt),
            ("gt", range.gt),
            ("gte", range.gte),
            ("lte", range.lte),
        ] {
            if let Some(t) = bound {
                let time = chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos)?)
                    .ok_or_else(|| anyhow!("timestamp out of range"))?;
                bounds.insert(name.into(), json!(time.to_rfc3339()));
            }
        }
        object.insert("range".into(), Value::Object(bounds));
    }
    if let Some(count) = &field.values_count {
        object.insert(
            "values_count".into(),
            json!({ "lt": count.lt, "gt": count.gt, "gte": count.gte, "lte": count.lte }),
        );
    }
    if field.geo_bounding_box.is_some()
        || field.geo_radius.is_some()
        || field.geo_polygon.is_some()
        || field.is_empty.is_some()
        || field.is_null.is_some()
    {
        bail!("a field condition on '{}' that is not emulated", field.key);
    }
    Ok(Value::Object(object))
}

fn id_json(id: &PointId) -> anyhow::Result<Value> {
    Ok(match id.point_id_options.as_ref() {
        Some(PointIdOptions::Uuid(uuid)) => json!(uuid),
        Some(PointIdOptions::Num(n)) => json!(n),
        None => bail!("a point id without a value"),
    })
}

pub fn point_id(id: &PointId) -> anyhow::Result<qdrant_edge::PointId> {
    Ok(match id.point_id_options.as_ref() {
        Some(PointIdOptions::Uuid(uuid)) => qdrant_edge::PointId::Uuid(uuid.parse()?),
        Some(PointIdOptions::Num(n)) => qdrant_edge::PointId::NumId(*n),
        None => bail!("a point id without a value"),
    })
}

pub fn grpc_id(id: &qdrant_edge::PointId) -> PointId {
    match id {
        qdrant_edge::PointId::Uuid(uuid) => PointId::from(uuid.to_string()),
        qdrant_edge::PointId::NumId(n) => PointId::from(*n),
    }
}

/// A gRPC point (named dense and sparse vectors, JSON-like payload) as Edge stores it.
#[allow(deprecated)]
pub fn point(point: PointStruct) -> anyhow::Result<PointStructPersisted> {
    let id = point_id(
        point
            .id
            .as_ref()
            .ok_or_else(|| anyhow!("a point without id"))?,
    )?;
    let mut named = HashMap::new();
    match point.vectors.and_then(|v| v.vectors_options) {
        Some(grpc::vectors::VectorsOptions::Vectors(vectors)) => {
            for (name, vector) in vectors.vectors {
                let value = match vector.vector {
                    Some(grpc::vector::Vector::Dense(d)) => VectorPersisted::Dense(d.data),
                    Some(grpc::vector::Vector::Sparse(s)) => {
                        VectorPersisted::Sparse(qdrant_edge::SparseVector {
                            indices: s.indices,
                            values: s.values,
                        })
                    }
                    None => match vector.indices {
                        Some(indices) => VectorPersisted::Sparse(qdrant_edge::SparseVector {
                            indices: indices.data,
                            values: vector.data,
                        }),
                        None => VectorPersisted::Dense(vector.data),
                    },
                    Some(_) => bail!("vector '{name}' is of a kind that is not emulated"),
                };
                named.insert(name, value);
            }
        }
        Some(grpc::vectors::VectorsOptions::Vector(_)) => {
            bail!("unnamed vectors are not emulated")
        }
        None => {}
    }
    let payload: Map<String, Value> = GrpcPayload::from(point.payload).into();
    Ok(PointStructPersisted {
        id,
        vector: VectorStructPersisted::Named(named),
        payload: Some(payload.into()),
    })
}

pub fn with_payload(
    selector: Option<&grpc::WithPayloadSelector>,
) -> anyhow::Result<WithPayloadInterface> {
    Ok(match selector.and_then(|s| s.selector_options.as_ref()) {
        None => WithPayloadInterface::Bool(false),
        Some(with_payload_selector::SelectorOptions::Enable(on)) => WithPayloadInterface::Bool(*on),
        Some(_) => bail!("payload selectors are not emulated"),
    })
}

pub fn with_vector(selector: Option<&grpc::WithVectorsSelector>) -> WithVector {
    match selector.and_then(|s| s.selector_options.as_ref()) {
        None => WithVector::Bool(false),
        Some(with_vectors_selector::SelectorOptions::Enable(on)) => WithVector::Bool(*on),
        Some(with_vectors_selector::SelectorOptions::Include(names)) => {
            WithVector::Selector(names.names.clone())
        }
    }
}

/// A payload from Edge as gRPC values.
pub fn grpc_payload(payload: Option<qdrant_edge::Payload>) -> HashMap<String, grpc::Value> {
    payload
        .map(|p| GrpcPayload::from(p.0).into())
        .unwrap_or_default()
}

/// Edge's vectors of a point as gRPC output vectors (named only; lore uses no other kind).
pub fn grpc_vectors(vectors: Option<VectorStructInternal>) -> Option<VectorsOutput> {
    let VectorStructInternal::Named(named) = vectors? else {
        return None;
    };
    let vectors = named
        .into_iter()
        .filter_map(|(name, vector)| {
            let vector = match vector {
                VectorInternal::Dense(data) => {
                    vector_output::Vector::Dense(grpc::DenseVector { data })
                }
                VectorInternal::Sparse(s) => vector_output::Vector::Sparse(grpc::SparseVector {
                    indices: s.indices,
                    values: s.values,
                }),
                VectorInternal::MultiDense(_) => return None,
            };
            #[allow(deprecated)]
            let output = grpc::VectorOutput {
                vector: Some(vector),
                ..Default::default()
            };
            Some((name, output))
        })
        .collect();
    Some(VectorsOutput {
        vectors_options: Some(vectors_output::VectorsOptions::Vectors(
            grpc::NamedVectorsOutput { vectors },
        )),
    })
}

/// A nearest-neighbour query (dense or sparse) as Edge's vector.
pub fn nearest(query: Option<&grpc::Query>) -> anyhow::Result<VectorInternal> {
    let Some(grpc::query::Variant::Nearest(input)) = query.and_then(|q| q.variant.as_ref()) else {
        bail!("only nearest-vector queries are emulated");
    };
    Ok(match input.variant.as_ref() {
        Some(grpc::vector_input::Variant::Dense(d)) => VectorInternal::Dense(d.data.clone()),
        Some(grpc::vector_input::Variant::Sparse(s)) => {
            VectorInternal::Sparse(qdrant_edge::SparseVector {
                indices: s.indices.clone(),
                values: s.values.clone(),
            })
        }
        _ => bail!("only dense and sparse query vectors are emulated"),
    })
}
