//! The scale-out store: a Qdrant server (single node or cluster) through `qdrant-client` (gRPC).
//!
//! One collection per knowledge base, `{collection_prefix}{kb}`, rather than one shared
//! collection with a tenant key: knowledge bases differ in size and may differ in model
//! dimension, dropping one is a single cheap call, and each one's HNSW graph and IDF statistics
//! (BM25's `idf` modifier is computed per collection) stay its own. With a tenant key, a small
//! knowledge base's keyword scores would depend on every other tenant's documents. Qdrant
//! handles many collections well at this scale (tens to hundreds of knowledge bases); the
//! prefix lets several deployments share a server.
//!
//! The layout and the query plan are the embedded store's: named vectors `dense` (cosine) and
//! `keyword` (sparse, IDF by the engine), the same payload, payload indexes on `document_id`,
//! `version` and the metadata fields documents bring, and a hybrid query sent as one
//! `QueryBatch` of the two halves, fused above the store (`search::fusion`) so scores are the
//! same whichever backend holds the chunks.
//!
//! Writes wait for the server to apply them (`wait`, strong ordering). Replacing a document
//! holds its write lease (see `lease`), so instances sharing a server never interleave two
//! replacements of one document.

pub mod filter;
mod lease;
mod points;
pub mod records;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    CreateCollection, CreateFieldIndexCollection, DeletePoints, Distance, FieldType, Filter,
    Modifier, PointsSelector, Query, QueryBatchPoints, QueryPoints, ScoredPoint, ScrollPoints,
    SparseVectorConfig, SparseVectorParams, UpsertPoints, VectorInput, VectorParams,
    VectorParamsMap, VectorsConfig, WithVectorsSelector, WriteOrdering, WriteOrderingType,
    with_vectors_selector::SelectorOptions,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    Candidate, DENSE, ExportPage, ExportedPoint, KEYWORD, StoreQuery, StoredChunk, VectorStore,
    chunk_from_payload, cosine, idf_from_probe,
};
use crate::config::QdrantConfig;
use crate::document::Chunk;

/// Points per upsert call: big documents go in several calls, each well under gRPC's 4 MiB
/// default message limit at 384-d (about 2 kB of vector plus the text per point).
const UPSERT_BATCH: usize = 256;
/// Points per scroll page when reading a document's chunks.
const SCROLL_PAGE: u32 = 256;

/// Knowledge bases stored on a Qdrant server.
pub struct QdrantStore {
    client: Qdrant,
    prefix: String,
    lease_ttl: Duration,
    /// Who this instance is, in lease payloads: random per process.
    owner: String,
    /// Metadata fields indexed so far, as (collection, field): each index is asked for once
    /// per process (asking again is harmless, only a wasted call).
    indexed: std::sync::Mutex<HashSet<(String, String)>>,
}

impl QdrantStore {
    /// Connects and checks that the server answers, so a wrong URL or key fails at start-up
    /// with a clear message. The API key is sent on every call and never logged.
    pub async fn connect(config: &QdrantConfig) -> anyhow::Result<Self> {
        let mut builder = Qdrant::from_url(&config.url)
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            // The client's own version check prints to stdout; lore logs the version instead.
            .skip_compatibility_check();
        if let Some(key) = &config.api_key {
            builder = builder.api_key(key.expose().to_owned());
        }
        let client = builder
            .build()
            .with_context(|| format!("invalid Qdrant URL '{}'", config.url))?;
        let health = client.health_check().await.map_err(|err| {
            anyhow!(
                "cannot reach the Qdrant server at {} (storage.qdrant.url): {}",
                config.url,
                redact(&err.to_string(), config)
            )
        })?;
        tracing::info!(url = %config.url, version = %health.version, "Qdrant server answers");
        Ok(Self {
            client,
            prefix: config.collection_prefix.clone(),
            lease_ttl: Duration::from_millis(config.lease_ms),
            owner: Uuid::new_v4().to_string(),
            indexed: std::sync::Mutex::new(HashSet::new()),
        })
    }

    /// Takes this instance's write lease on a document, as `replace_document` does; `false`
    /// when another instance holds it and it has not expired.
    pub async fn try_lease(&self, kb: &str, document_id: &str) -> anyhow::Result<bool> {
        let taken = lease::acquire(
            &self.client,
            &self.collection(kb),
            document_id,
            &self.owner,
            self.lease_ttl,
        )
        .await?;
        Ok(taken.is_ok())
    }

    /// Gives back this instance's write lease on a document, if it still holds it.
    pub async fn release_lease(&self, kb: &str, document_id: &str) -> anyhow::Result<()> {
        lease::release(&self.client, &self.collection(kb), document_id, &self.owner).await
    }

    /// The catalog records kept beside the chunks (see `records`).
    pub fn records(&self) -> records::Records {
        records::Records::new(self.client.clone(), self.prefix.clone())
    }

    /// The collection of a knowledge base.
    pub fn collection(&self, kb: &str) -> String {
        format!("{}{kb}", self.prefix)
    }

    async fn create_collection(&self, name: &str, dimension: usize) -> anyhow::Result<()> {
        let dense = VectorParams {
            size: u64::try_from(dimension)?,
            distance: Distance::Cosine as i32,
            ..Default::default()
        };
        let keyword = SparseVectorParams {
            index: None,
            modifier: Some(Modifier::Idf as i32),
        };
        let created = self
            .client
            .create_collection(CreateCollection {
                collection_name: name.to_owned(),
                vectors_config: Some(VectorsConfig {
                    config: Some(VectorsConfigKind::ParamsMap(VectorParamsMap {
                        map: HashMap::from([(DENSE.to_owned(), dense)]),
                    })),
                }),
                sparse_vectors_config: Some(SparseVectorConfig {
                    map: HashMap::from([(KEYWORD.to_owned(), keyword)]),
                }),
                ..Default::default()
            })
            .await;
        if let Err(err) = created {
            // Another instance may have created it meanwhile: that is success.
            if self.client.collection_exists(name).await.unwrap_or(false) {
                return Ok(());
            }
            return Err(err).with_context(|| format!("cannot create the collection '{name}'"));
        }
        for (field, kind) in [
            ("document_id", FieldType::Keyword),
            ("version", FieldType::Integer),
            (lease::LEASE_OF, FieldType::Keyword),
            (records::CATALOG, FieldType::Keyword),
        ] {
            self.client
                .create_field_index(CreateFieldIndexCollection {
                    collection_name: name.to_owned(),
                    wait: Some(true),
                    field_name: field.to_owned(),
                    field_type: Some(kind as i32),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("cannot index '{field}' in '{name}'"))?;
        }
        Ok(())
    }

    /// Indexes the metadata fields of `points` not indexed yet, so filters on them are
    /// answered from an index rather than by reading every payload: strings as keywords (with
    /// their reversed copies, which "end with" matches), numbers as floats. Other values are
    /// still filtered, without an index. A failed index costs speed, not correctness: logged.
    async fn index_metadata(&self, collection: &str, points: &[ExportedPoint]) {
        let mut wanted = BTreeMap::new();
        for point in points {
            for (key, value) in &point.stored.chunk.metadata {
                // Names filters cannot address (see `search::filter`) need no index.
                if key.contains(['"', '\\']) {
                    continue;
                }
                match value {
                    serde_json::Value::String(_) => {
                        wanted.insert(format!("metadata.\"{key}\""), FieldType::Keyword);
                        wanted.insert(format!("metadata_rev.\"{key}\""), FieldType::Keyword);
                    }
                    serde_json::Value::Number(_) => {
                        wanted.insert(format!("metadata.\"{key}\""), FieldType::Float);
                    }
                    _ => {}
                }
            }
        }
        for (field, kind) in wanted {
            let new = self
                .indexed
                .lock()
                .map(|mut done| done.insert((collection.to_owned(), field.clone())))
                .unwrap_or(true);
            if !new {
                continue;
            }
            let created = self
                .client
                .create_field_index(CreateFieldIndexCollection {
                    collection_name: collection.to_owned(),
                    wait: Some(true),
                    field_name: field.clone(),
                    field_type: Some(kind as i32),
                    ..Default::default()
                })
                .await;
            if let Err(err) = created {
                tracing::warn!(collection, field, error = %err, "cannot index a metadata field");
                if let Ok(mut done) = self.indexed.lock() {
                    done.remove(&(collection.to_owned(), field));
                }
            }
        }
    }

    async fn upsert(&self, collection: &str, points: Vec<ExportedPoint>) -> anyhow::Result<()> {
        self.index_metadata(collection, &points).await;
        let mut points = points.into_iter().peekable();
        while points.peek().is_some() {
            let batch = points
                .by_ref()
                .take(UPSERT_BATCH)
                .map(|p| points::to_point(p.stored, p.version))
                .collect();
            self.client
                .upsert_points(UpsertPoints {
                    collection_name: collection.to_owned(),
                    wait: Some(true),
                    points: batch,
                    ordering: strong(),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("cannot store chunks in '{collection}'"))?;
        }
        Ok(())
    }

    async fn delete_where(&self, collection: &str, filter: Filter) -> anyhow::Result<()> {
        self.client
            .delete_points(DeletePoints {
                collection_name: collection.to_owned(),
                wait: Some(true),
                points: Some(PointsSelector::from(filter)),
                ordering: strong(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot delete chunks in '{collection}'"))?;
        Ok(())
    }

    async fn write_version(
        &self,
        collection: &str,
        document_id: &str,
        version: u64,
        chunks: Vec<StoredChunk>,
    ) -> anyhow::Result<()> {
        let points = chunks
            .into_iter()
            .map(|stored| ExportedPoint { version, stored })
            .collect();
        self.upsert(collection, points).await?;
        let stale = filter::to_grpc(&json!({
            "must": [
                { "key": "document_id", "match": { "value": document_id } },
                { "key": "version", "range": { "lt": version } },
            ],
        }))?;
        self.delete_where(collection, stale).await
    }
}

fn strong() -> Option<WriteOrdering> {
    Some(WriteOrdering {
        r#type: WriteOrderingType::Strong as i32,
    })
}

fn document_only(document_id: &str) -> serde_json::Value {
    json!({ "must": [{ "key": "document_id", "match": { "value": document_id } }] })
}

/// Client errors may quote request metadata; make sure the key is never among it.
fn redact(message: &str, config: &QdrantConfig) -> String {
    match &config.api_key {
        Some(key) if !key.expose().is_empty() => message.replace(key.expose(), "***"),
        _ => message.to_owned(),
    }
}

/// A query of one half of hybrid search.
fn half(
    collection: &str,
    vector: VectorInput,
    using: &str,
    limit: usize,
    filter: Option<Filter>,
    with_vector: Option<&str>,
) -> QueryPoints {
    QueryPoints {
        collection_name: collection.to_owned(),
        query: Some(Query::new_nearest(vector)),
        using: Some(using.to_owned()),
        filter,
        limit: Some(limit as u64),
        with_payload: Some(true.into()),
        with_vectors: Some(match with_vector {
            Some(name) => WithVectorsSelector::from(SelectorOptions::Include(
                qdrant_client::qdrant::VectorsSelector {
                    names: vec![name.to_owned()],
                },
            )),
            None => false.into(),
        }),
        ..Default::default()
    }
}

fn candidate(point: ScoredPoint) -> anyhow::Result<(Uuid, Candidate, Option<Vec<f32>>)> {
    let id = points::id_uuid(point.id.as_ref())?;
    let dense = points::dense_of(point.vectors.as_ref());
    let (chunk, version) = chunk_from_payload(&points::json_payload(point.payload))?;
    Ok((
        id,
        Candidate {
            chunk,
            version,
            dense: point.score,
            keyword: None,
        },
        dense,
    ))
}

#[async_trait]
impl VectorStore for QdrantStore {
    async fn create_kb(&self, kb: &str, dimension: usize) -> anyhow::Result<()> {
        let name = self.collection(kb);
        if self.client.collection_exists(&name).await? {
            return Ok(());
        }
        self.create_collection(&name, dimension).await
    }

    async fn drop_kb(&self, kb: &str) -> anyhow::Result<()> {
        let name = self.collection(kb);
        if let Ok(mut indexed) = self.indexed.lock() {
            indexed.retain(|(collection, _)| *collection != name);
        }
        if self.client.collection_exists(&name).await? {
            self.client
                .delete_collection(&name)
                .await
                .with_context(|| format!("cannot delete the collection '{name}'"))?;
        }
        Ok(())
    }

    async fn replace_document(
        &self,
        kb: &str,
        document_id: &str,
        version: u64,
        chunks: Vec<StoredChunk>,
    ) -> anyhow::Result<()> {
        let collection = self.collection(kb);
        // Another instance writing this document (two uploads of one file through two
        // instances) is waited for, at most as long as a holder may keep the lease.
        let deadline = tokio::time::Instant::now() + self.lease_ttl;
        let mut pause = Duration::from_millis(50);
        loop {
            let taken = lease::acquire(
                &self.client,
                &collection,
                document_id,
                &self.owner,
                self.lease_ttl,
            )
            .await?;
            match taken {
                Ok(()) => break,
                Err(_) if tokio::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(holder) => anyhow::bail!(
                    "document '{document_id}' of '{kb}' has been written by another lore \
                     instance ({holder}) for longer than lease_ms; try again when it is done"
                ),
            }
        }
        let written = self
            .write_version(&collection, document_id, version, chunks)
            .await;
        let released = lease::release(&self.client, &collection, document_id, &self.owner).await;
        written?;
        released
    }

    async fn delete_document(&self, kb: &str, document_id: &str) -> anyhow::Result<()> {
        let collection = self.collection(kb);
        self.delete_where(&collection, filter::to_grpc(&document_only(document_id))?)
            .await
    }

    async fn search(&self, kb: &str, query: StoreQuery) -> anyhow::Result<Vec<Candidate>> {
        let collection = self.collection(kb);
        let store_filter = query.filter.as_ref().map(filter::to_grpc).transpose()?;
        let mut halves = vec![half(
            &collection,
            VectorInput::new_dense(query.dense.clone()),
            DENSE,
            query.candidates,
            store_filter.clone(),
            None,
        )];
        if !query.keyword.indices.is_empty() {
            // Keyword finds come with their dense vector, so every candidate gets a cosine.
            halves.push(half(
                &collection,
                VectorInput::new_sparse(
                    query.keyword.indices.clone(),
                    query.keyword.values.clone(),
                ),
                KEYWORD,
                query.candidates,
                store_filter,
                Some(DENSE),
            ));
        }
        let response = self
            .client
            .query_batch(QueryBatchPoints {
                collection_name: collection.clone(),
                query_points: halves,
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot search '{collection}'"))?;
        let mut results = response.result.into_iter();
        let dense_hits = results.next().map(|r| r.result).unwrap_or_default();
        let keyword_hits = results.next().map(|r| r.result).unwrap_or_default();

        let mut by_id: HashMap<Uuid, Candidate> = HashMap::new();
        for point in dense_hits {
            let (id, found, _) = candidate(point)?;
            by_id.insert(id, found);
        }
        for point in keyword_hits {
            let score = point.score;
            let (id, mut found, vector) = candidate(point)?;
            if let Some(known) = by_id.get_mut(&id) {
                known.keyword = Some(score);
                continue;
            }
            found.dense = vector.map(|v| cosine(&v, &query.dense)).unwrap_or(0.0);
            found.keyword = Some(score);
            by_id.insert(id, found);
        }
        Ok(by_id.into_values().collect())
    }

    async fn keyword_idf(&self, kb: &str, tokens: &[u32]) -> anyhow::Result<HashMap<u32, f32>> {
        if tokens.is_empty() {
            return Ok(HashMap::new());
        }
        let collection = self.collection(kb);
        // One probe per token, in one batch: the best chunk for the token alone, with its
        // stored keyword vector.
        let probes = tokens
            .iter()
            .map(|token| QueryPoints {
                with_payload: Some(false.into()),
                ..half(
                    &collection,
                    VectorInput::new_sparse(vec![*token], vec![1.0]),
                    KEYWORD,
                    1,
                    None,
                    Some(KEYWORD),
                )
            })
            .collect();
        let response = self
            .client
            .query_batch(QueryBatchPoints {
                collection_name: collection.clone(),
                query_points: probes,
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot read keyword statistics of '{collection}'"))?;
        Ok(tokens
            .iter()
            .zip(response.result)
            .filter_map(|(token, found)| {
                let point = found.result.first()?;
                let stored = points::sparse_of(point.vectors.as_ref());
                let idf = idf_from_probe(*token, point.score, &stored.indices, &stored.values)?;
                Some((*token, idf))
            })
            .collect())
    }

    async fn document_chunks(
        &self,
        kb: &str,
        document_id: &str,
        version: u64,
    ) -> anyhow::Result<Vec<Chunk>> {
        let collection = self.collection(kb);
        let of_version = filter::to_grpc(&json!({
            "must": [
                { "key": "document_id", "match": { "value": document_id } },
                { "key": "version", "match": { "value": version } },
            ]
        }))?;
        let payloads = points::scroll_payloads(&self.client, &collection, of_version, SCROLL_PAGE)
            .await
            .with_context(|| format!("cannot read chunks in '{collection}'"))?;
        let mut chunks = payloads
            .iter()
            .map(|payload| Ok(chunk_from_payload(payload)?.0))
            .collect::<anyhow::Result<Vec<_>>>()?;
        chunks.sort_by_key(|c| c.chunk_index);
        Ok(chunks)
    }

    async fn dimension(&self, kb: &str) -> anyhow::Result<Option<usize>> {
        let name = self.collection(kb);
        if !self.client.collection_exists(&name).await? {
            return Ok(None);
        }
        let info = self
            .client
            .collection_info(&name)
            .await
            .with_context(|| format!("cannot read the collection '{name}'"))?;
        let size = info
            .result
            .and_then(|i| i.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| match v.config? {
                VectorsConfigKind::ParamsMap(map) => map.map.get(DENSE).map(|p| p.size),
                VectorsConfigKind::Params(_) => None,
            })
            .ok_or_else(|| anyhow!("the collection '{name}' has no '{DENSE}' vector"))?;
        Ok(Some(usize::try_from(size)?))
    }

    async fn export(
        &self,
        kb: &str,
        from: Option<Uuid>,
        limit: usize,
    ) -> anyhow::Result<ExportPage> {
        let collection = self.collection(kb);
        // Lease and catalog points are bookkeeping, not chunks.
        let chunks_only = filter::to_grpc(&json!({
            "must": [
                { "is_empty": { "key": lease::LEASE_OF } },
                { "is_empty": { "key": records::CATALOG } },
            ]
        }))?;
        let page = self
            .client
            .scroll(ScrollPoints {
                collection_name: collection.clone(),
                filter: Some(chunks_only),
                offset: from.map(points::uuid_id),
                limit: Some(u32::try_from(limit)?),
                with_payload: Some(true.into()),
                with_vectors: Some(true.into()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot export '{collection}'"))?;
        let points = page
            .result
            .into_iter()
            .map(points::exported)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let next = page
            .next_page_offset
            .map(|id| points::id_uuid(Some(&id)))
            .transpose()?;
        Ok(ExportPage { points, next })
    }

    async fn import(&self, kb: &str, points: Vec<ExportedPoint>) -> anyhow::Result<()> {
        self.upsert(&self.collection(kb), points).await
    }
}
