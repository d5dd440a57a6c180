//! Chunks to Qdrant gRPC points and back: the same payload (`chunk_payload`) and the same named
//! vectors as the embedded store, so a point means the same thing in either backend.

use std::collections::HashMap;

use anyhow::anyhow;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vector_output::Vector as OutputVector;
use qdrant_client::qdrant::{
    Filter, NamedVectors, PointId, PointStruct, RetrievedPoint, ScrollPoints, Value, Vector,
    VectorsOutput,
};
use qdrant_client::{Payload, Qdrant};
use uuid::Uuid;

use crate::store::{
    DENSE, ExportedPoint, KEYWORD, SparseVector, StoredChunk, chunk_from_payload, chunk_payload,
    point_id,
};

/// A chunk as a point: derived id, payload, `dense` and (when it has tokens) `keyword` vectors.
pub fn to_point(stored: StoredChunk, version: u64) -> PointStruct {
    let id = point_id(&stored.chunk.document_id, version, stored.chunk.chunk_index);
    let payload = Payload::from(chunk_payload(&stored.chunk, version));
    let mut vectors = NamedVectors::default().add_vector(DENSE, Vector::new_dense(stored.dense));
    // An empty sparse vector is no vector: leave it out (a chunk without keyword tokens is
    // never found by the keyword half anyway), as exporting gives it back empty.
    if !stored.keyword.indices.is_empty() {
        vectors = vectors.add_vector(
            KEYWORD,
            Vector::new_sparse(stored.keyword.indices, stored.keyword.values),
        );
    }
    PointStruct::new(uuid_id(id), vectors, payload)
}

pub fn uuid_id(id: Uuid) -> PointId {
    PointId::from(id.to_string())
}

/// The UUID of a point id; lore writes only UUID ids.
pub fn id_uuid(id: Option<&PointId>) -> anyhow::Result<Uuid> {
    match id.and_then(|id| id.point_id_options.as_ref()) {
        Some(PointIdOptions::Uuid(text)) => Ok(Uuid::parse_str(text)?),
        Some(PointIdOptions::Num(n)) => Err(anyhow!("unexpected numeric point id {n}")),
        None => Err(anyhow!("a point without an id")),
    }
}

/// The JSON payload of a point.
pub fn json_payload(payload: HashMap<String, Value>) -> serde_json::Map<String, serde_json::Value> {
    Payload::from(payload).into()
}

/// The dense vector of a returned point.
pub fn dense_of(vectors: Option<&VectorsOutput>) -> Option<Vec<f32>> {
    match vectors?.get_vector_by_name(DENSE)? {
        OutputVector::Dense(dense) => Some(dense.data),
        _ => None,
    }
}

/// The keyword vector of a returned point; absent means the chunk had no keyword tokens.
pub fn sparse_of(vectors: Option<&VectorsOutput>) -> SparseVector {
    match vectors.and_then(|v| v.get_vector_by_name(KEYWORD)) {
        Some(OutputVector::Sparse(sparse)) => SparseVector {
            indices: sparse.indices,
            values: sparse.values,
        },
        _ => SparseVector::default(),
    }
}

/// A scrolled point (with payload and vectors) back as what was stored.
pub fn exported(point: RetrievedPoint) -> anyhow::Result<ExportedPoint> {
    let id = id_uuid(point.id.as_ref())?;
    let dense = dense_of(point.vectors.as_ref())
        .ok_or_else(|| anyhow!("stored point {id} has no dense vector"))?;
    let keyword = sparse_of(point.vectors.as_ref());
    let (chunk, version) = chunk_from_payload(&json_payload(point.payload))?;
    Ok(ExportedPoint {
        version,
        stored: StoredChunk {
            chunk,
            dense,
            keyword,
        },
    })
}

/// The payloads of every point of `collection` that `filter` selects, read `page` at a time.
pub async fn scroll_payloads(
    client: &Qdrant,
    collection: &str,
    filter: Filter,
    page: u32,
) -> anyhow::Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let mut payloads = Vec::new();
    let mut offset = None;
    loop {
        let read = client
            .scroll(ScrollPoints {
                collection_name: collection.to_owned(),
                filter: Some(filter.clone()),
                offset,
                limit: Some(page),
                with_payload: Some(true.into()),
                with_vectors: Some(false.into()),
                ..Default::default()
            })
            .await?;
        payloads.extend(read.result.into_iter().map(|p| json_payload(p.payload)));
        match read.next_page_offset {
            Some(next) => offset = Some(next),
            None => return Ok(payloads),
        }
    }
}
