//! The `VectorStore` contract, run against every backend available:
//! - the embedded store (Qdrant Edge in-process), always;
//! - `QdrantStore` against the in-process Qdrant gRPC endpoint (`common::qdrant_emulator`:
//!   qdrant-client's server traits over the Edge engine), always: real client and wire format;
//! - `QdrantStore` against a real Qdrant server when `QDRANT_URL` is set (gRPC, port 6334;
//!   `QDRANT_API_KEY` if it needs one): the proof of server semantics. Collections are named
//!   `lore_test_<random>_<kb>` and dropped at the end.
//!
//! No model is needed: vectors are small and made by hand, so expected orderings are known.

use std::sync::Arc;

use lore::config::{QdrantConfig, Secret};
use lore::document::Chunk;
use lore::search::MetadataCondition;
use lore::store::{
    Candidate, EmbeddedStore, QdrantStore, SparseVector, StoreQuery, StoredChunk, VectorStore,
};
use serde_json::{Value, json};

use crate::common::qdrant_emulator::QdrantEmulator;

const DIMENSION: usize = 4;
const EMULATOR_KEY: &str = "emulator-api-key-for-tests";

/// Where a backend keeps its data; `open` makes a fresh handle on it (a restart).
enum Place {
    Embedded(tempfile::TempDir),
    /// The emulator is held so that it serves as long as the place lives.
    Emulated(#[allow(dead_code)] QdrantEmulator, QdrantConfig),
    Server(QdrantConfig),
}

impl Place {
    fn name(&self) -> &'static str {
        match self {
            Place::Embedded(_) => "embedded",
            Place::Emulated(..) => "qdrant (in-process emulator)",
            Place::Server(_) => "qdrant (QDRANT_URL)",
        }
    }

    fn qdrant(&self) -> Option<&QdrantConfig> {
        match self {
            Place::Embedded(_) => None,
            Place::Emulated(_, config) | Place::Server(config) => Some(config),
        }
    }

    async fn open(&self) -> Arc<dyn VectorStore> {
        match self {
            Place::Embedded(dir) => Arc::new(EmbeddedStore::new(dir.path())),
            Place::Emulated(_, config) | Place::Server(config) => Arc::new(
                QdrantStore::connect(config)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e:#}", self.name())),
            ),
        }
    }
}

fn qdrant_config(url: &str, key: Option<&str>) -> QdrantConfig {
    QdrantConfig {
        url: url.to_owned(),
        api_key: key.map(Secret::new),
        collection_prefix: format!("lore_test_{}_", uuid::Uuid::new_v4().simple()),
        ..QdrantConfig::default()
    }
}

/// Every backend this run can reach.
async fn places() -> Vec<Place> {
    let emulator = QdrantEmulator::start(Some(EMULATOR_KEY)).await;
    let emulated = qdrant_config(&emulator.url, Some(EMULATOR_KEY));
    let mut places = vec![
        Place::Embedded(tempfile::tempdir().expect("temp dir")),
        Place::Emulated(emulator, emulated),
    ];
    if let Ok(url) = std::env::var("QDRANT_URL") {
        let key = std::env::var("QDRANT_API_KEY").ok();
        places.push(Place::Server(qdrant_config(&url, key.as_deref())));
    } else {
        eprintln!(
            "QDRANT_URL is not set: the store contract runs on embedded and the emulator only"
        );
    }
    places
}

fn unit(v: [f32; DIMENSION]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

fn chunk(
    document: &str,
    index: usize,
    dense: [f32; DIMENSION],
    tokens: &[u32],
    metadata: Value,
) -> StoredChunk {
    StoredChunk {
        chunk: Chunk {
            document_id: document.to_owned(),
            document_name: format!("{document}.md"),
            title: format!("{document}.md"),
            chunk_index: index,
            heading_path: vec!["标题".to_owned()],
            text: format!("{document} 第{index}段"),
            metadata: metadata.as_object().cloned().unwrap_or_default(),
        },
        dense: unit(dense),
        keyword: SparseVector {
            indices: tokens.to_vec(),
            values: vec![1.0; tokens.len()],
        },
    }
}

fn query(
    dense: [f32; DIMENSION],
    tokens: &[u32],
    candidates: usize,
    filter: Option<Value>,
) -> StoreQuery {
    StoreQuery {
        dense: unit(dense),
        keyword: SparseVector {
            indices: tokens.to_vec(),
            values: vec![1.0; tokens.len()],
        },
        candidates,
        filter,
    }
}

/// Candidates as (document, chunk, version), best dense score first.
fn found(mut candidates: Vec<Candidate>) -> Vec<(String, usize, u64)> {
    candidates.sort_by(|a, b| b.dense.total_cmp(&a.dense));
    candidates
        .into_iter()
        .map(|c| (c.chunk.document_id, c.chunk.chunk_index, c.version))
        .collect()
}

#[tokio::test]
async fn insert_read_delete_and_restart() {
    for place in places().await {
        let name = place.name();
        let store = place.open().await;
        assert_eq!(store.dimension("kb1").await.unwrap(), None, "{name}");
        store.create_kb("kb1", DIMENSION).await.unwrap();
        store.create_kb("kb1", DIMENSION).await.unwrap(); // idempotent
        assert_eq!(
            store.dimension("kb1").await.unwrap(),
            Some(DIMENSION),
            "{name}"
        );
        let chunks: Vec<StoredChunk> = (0..3)
            .map(|i| {
                chunk(
                    "a",
                    i,
                    [1.0, i as f32, 0.0, 0.0],
                    &[1, 2],
                    json!({ "k": "v" }),
                )
            })
            .collect();
        store.replace_document("kb1", "a", 1, chunks).await.unwrap();
        store
            .replace_document(
                "kb1",
                "b",
                1,
                vec![chunk("b", 0, [0.0, 1.0, 0.0, 0.0], &[], json!({}))],
            )
            .await
            .unwrap();
        let read = store.document_chunks("kb1", "a", 1).await.unwrap();
        assert_eq!(
            read.iter().map(|c| c.chunk_index).collect::<Vec<_>>(),
            [0, 1, 2],
            "{name}"
        );
        assert_eq!(read[1].text, "a 第1段", "{name}");
        assert_eq!(read[1].heading_path, ["标题"], "{name}");
        assert_eq!(read[1].metadata.get("k"), Some(&json!("v")), "{name}");

        store.delete_document("kb1", "a").await.unwrap();
        assert!(
            store
                .document_chunks("kb1", "a", 1)
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        assert_eq!(
            store.document_chunks("kb1", "b", 1).await.unwrap().len(),
            1,
            "{name}"
        );

        // A restart (a new handle on the same data) sees what was acknowledged.
        drop(store);
        let store = place.open().await;
        assert_eq!(
            store.document_chunks("kb1", "b", 1).await.unwrap().len(),
            1,
            "{name}"
        );
        let hits = store
            .search("kb1", query([0.0, 1.0, 0.0, 0.0], &[], 5, None))
            .await
            .unwrap();
        assert_eq!(found(hits), [("b".to_owned(), 0, 1)], "{name}");

        store.drop_kb("kb1").await.unwrap();
        assert_eq!(store.dimension("kb1").await.unwrap(), None, "{name}");
        store.drop_kb("kb1").await.unwrap(); // no-op
    }
}

#[tokio::test]
async fn replacing_a_document_leaves_only_the_new_version_and_never_deletes_a_newer_one() {
    for place in places().await {
        let name = place.name();
        let store = place.open().await;
        store.create_kb("kb2", DIMENSION).await.unwrap();
        let v1 = (0..3)
            .map(|i| chunk("doc", i, [1.0, 0.0, i as f32, 0.0], &[5], json!({})))
            .collect();
        store.replace_document("kb2", "doc", 1, v1).await.unwrap();
        let v2 = (0..2)
            .map(|i| chunk("doc", i, [1.0, 0.0, i as f32, 0.1], &[5], json!({})))
            .collect();
        store.replace_document("kb2", "doc", 2, v2).await.unwrap();

        assert!(
            store
                .document_chunks("kb2", "doc", 1)
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        assert_eq!(
            store.document_chunks("kb2", "doc", 2).await.unwrap().len(),
            2,
            "{name}"
        );
        let hits = store
            .search("kb2", query([1.0, 0.0, 0.0, 0.0], &[5], 10, None))
            .await
            .unwrap();
        assert_eq!(hits.len(), 2, "{name}");
        assert!(
            hits.iter().all(|c| c.version == 2),
            "{name}: {:?}",
            found(hits)
        );

        // The same version again overwrites (derived ids): no duplicates.
        let again = (0..2)
            .map(|i| chunk("doc", i, [1.0, 0.0, i as f32, 0.1], &[5], json!({})))
            .collect();
        store
            .replace_document("kb2", "doc", 2, again)
            .await
            .unwrap();
        assert_eq!(
            store.document_chunks("kb2", "doc", 2).await.unwrap().len(),
            2,
            "{name}"
        );
        // A late replacement by an older version leaves the newer one alone.
        let late = (0..3)
            .map(|i| chunk("doc", i, [1.0, 0.0, i as f32, 0.0], &[5], json!({})))
            .collect();
        store.replace_document("kb2", "doc", 1, late).await.unwrap();
        assert_eq!(
            store.document_chunks("kb2", "doc", 2).await.unwrap().len(),
            2,
            "{name}: an older version deleted the newer one"
        );
        // An empty new version removes the document's chunks, of every older version.
        store
            .replace_document("kb2", "doc", 3, Vec::new())
            .await
            .unwrap();
        assert!(
            store
                .search("kb2", query([1.0, 0.0, 0.0, 0.0], &[5], 10, None))
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        store.drop_kb("kb2").await.unwrap();
    }
}

#[tokio::test]
async fn hybrid_search_finds_both_halves_with_the_same_scores_everywhere() {
    let mut reference: Option<Vec<(String, f32, Option<f32>)>> = None;
    for place in places().await {
        let name = place.name();
        let store = place.open().await;
        store.create_kb("kb3", DIMENSION).await.unwrap();
        for (doc, dense, tokens) in [
            ("d1", [1.0, 0.0, 0.0, 0.0], &[][..]),
            ("d2", [0.8, 0.6, 0.0, 0.0], &[7][..]),
            ("d3", [0.0, 0.0, 1.0, 0.0], &[7, 9][..]),
            ("d4", [0.0, 0.0, 0.0, 1.0], &[9][..]),
        ] {
            store
                .replace_document("kb3", doc, 1, vec![chunk(doc, 0, dense, tokens, json!({}))])
                .await
                .unwrap();
        }
        let mut hits = store
            .search("kb3", query([1.0, 0.0, 0.0, 0.0], &[7], 2, None))
            .await
            .unwrap();
        hits.sort_by(|a, b| b.dense.total_cmp(&a.dense));
        let seen: Vec<(String, f32, Option<f32>)> = hits
            .iter()
            .map(|c| (c.chunk.document_id.clone(), c.dense, c.keyword))
            .collect();
        // Dense half: d1, d2. Keyword half (token 7): d2, d3; d3 gets its cosine computed.
        let ids: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(ids, ["d1", "d2", "d3"], "{name}: {seen:?}");
        assert!(
            (seen[0].1 - 1.0).abs() < 1e-5 && seen[0].2.is_none(),
            "{name}: {seen:?}"
        );
        assert!(
            (seen[1].1 - 0.8).abs() < 1e-5 && seen[1].2.is_some(),
            "{name}: {seen:?}"
        );
        assert!(
            seen[2].1.abs() < 1e-5 && seen[2].2.is_some(),
            "{name}: {seen:?}"
        );
        match &reference {
            None => reference = Some(seen),
            Some(first) => {
                for (a, b) in first.iter().zip(&seen) {
                    assert_eq!(a.0, b.0, "{name}");
                    assert!((a.1 - b.1).abs() < 1e-5, "{name}: {first:?} vs {seen:?}");
                    let (ka, kb) = (a.2.unwrap_or(0.0), b.2.unwrap_or(0.0));
                    assert!((ka - kb).abs() < 1e-4, "{name}: {first:?} vs {seen:?}");
                }
            }
        }
        store.drop_kb("kb3").await.unwrap();
    }
}

/// The IDF sentence evidence weighs question words with is the engine's BM25 IDF over the whole
/// knowledge base, whatever the stored weights and on every backend.
#[tokio::test]
async fn keyword_idf_is_the_engines_idf_everywhere() {
    for place in places().await {
        let name = place.name();
        let store = place.open().await;
        store.create_kb("kb_idf", DIMENSION).await.unwrap();
        for (doc, tokens, weights) in [
            ("d1", &[5][..], &[1.3][..]),
            ("d2", &[7][..], &[0.5][..]),
            ("d3", &[7, 9][..], &[2.0, 0.7][..]),
            ("d4", &[9][..], &[1.1][..]),
        ] {
            let mut stored = chunk(doc, 0, [1.0, 0.0, 0.0, 0.0], tokens, json!({}));
            stored.keyword.values = weights.to_vec();
            store
                .replace_document("kb_idf", doc, 1, vec![stored])
                .await
                .unwrap();
        }
        let idf = store.keyword_idf("kb_idf", &[5, 7, 11]).await.unwrap();
        // BM25's IDF over 4 chunks: ln(1 + (N - df + 0.5) / (df + 0.5)).
        let expected = |df: f32| (1.0 + (4.0 - df + 0.5) / (df + 0.5)).ln();
        assert!((idf[&5] - expected(1.0)).abs() < 1e-4, "{name}: {idf:?}");
        assert!((idf[&7] - expected(2.0)).abs() < 1e-4, "{name}: {idf:?}");
        assert!(
            !idf.contains_key(&11),
            "{name}: a token no chunk holds: {idf:?}"
        );
        assert!(store.keyword_idf("kb_idf", &[]).await.unwrap().is_empty());
        store.drop_kb("kb_idf").await.unwrap();
    }
}

/// Every Dify operator, evaluated inside each store: the same documents everywhere.
#[tokio::test]
async fn metadata_filters_select_the_same_documents_everywhere() {
    let documents = [
        (
            "a",
            json!({ "region": "华东", "year": 2024, "file": "规则.pdf", "date": "2024-03-01T00:00:00Z", "note": "x" }),
        ),
        (
            "b",
            json!({ "region": "华南", "year": 2025, "file": "说明.docx", "date": "2025-01-10T00:00:00Z" }),
        ),
        (
            "c",
            json!({ "region": "华东", "year": 2026, "file": "faq.pdf" }),
        ),
    ];
    let cases: Vec<(Value, &[&str])> = vec![
        (
            json!([{ "name": "region", "comparison_operator": "is", "value": "华东" }]),
            &["a", "c"],
        ),
        (
            json!([{ "name": "region", "comparison_operator": "is not", "value": "华东" }]),
            &["b"],
        ),
        (
            json!([{ "name": "file", "comparison_operator": "contains", "value": "规则" }]),
            &["a"],
        ),
        (
            json!([{ "name": "file", "comparison_operator": "not contains", "value": "pdf" }]),
            &["b"],
        ),
        (
            json!([{ "name": "file", "comparison_operator": "start with", "value": "说" }]),
            &["b"],
        ),
        (
            json!([{ "name": "file", "comparison_operator": "end with", "value": ".pdf" }]),
            &["a", "c"],
        ),
        (
            json!([{ "name": "region", "comparison_operator": "in", "value": ["华南", "西北"] }]),
            &["b"],
        ),
        (
            json!([{ "name": "region", "comparison_operator": "not in", "value": "华南,西北" }]),
            &["a", "c"],
        ),
        (
            json!([{ "name": "year", "comparison_operator": "=", "value": 2025 }]),
            &["b"],
        ),
        (
            json!([{ "name": "year", "comparison_operator": "≠", "value": 2025 }]),
            &["a", "c"],
        ),
        (
            json!([{ "name": "year", "comparison_operator": ">", "value": 2024 }]),
            &["b", "c"],
        ),
        (
            json!([{ "name": "year", "comparison_operator": "<", "value": 2025 }]),
            &["a"],
        ),
        (
            json!([{ "name": "year", "comparison_operator": "≥", "value": "2025" }]),
            &["b", "c"],
        ),
        (
            json!([{ "name": "year", "comparison_operator": "≤", "value": 2025 }]),
            &["a", "b"],
        ),
        (
            json!([{ "name": "date", "comparison_operator": "before", "value": "2025-01-01" }]),
            &["a"],
        ),
        (
            json!([{ "name": "date", "comparison_operator": "after", "value": "2024-06-01" }]),
            &["b"],
        ),
        (
            json!([{ "name": "note", "comparison_operator": "empty" }]),
            &["b", "c"],
        ),
        (
            json!([{ "name": "note", "comparison_operator": "not empty" }]),
            &["a"],
        ),
        (
            json!([{ "name": "document_name", "comparison_operator": "is", "value": "b.md" }]),
            &["b"],
        ),
        (
            json!([{ "name": "document_id", "comparison_operator": "end with", "value": "c" }]),
            &["c"],
        ),
    ];
    for place in places().await {
        let name = place.name();
        let store = place.open().await;
        store.create_kb("kb4", DIMENSION).await.unwrap();
        for (doc, metadata) in &documents {
            store
                .replace_document(
                    "kb4",
                    doc,
                    1,
                    vec![chunk(doc, 0, [1.0, 0.5, 0.0, 0.0], &[3], metadata.clone())],
                )
                .await
                .unwrap();
        }
        let mut all = cases.clone();
        all.push((
            json!({ "logical_operator": "or", "conditions": [
                { "name": "region", "comparison_operator": "is", "value": "华南" },
                { "name": "year", "comparison_operator": "=", "value": 2024 } ] }),
            &["a", "b"],
        ));
        for (conditions, expected) in all {
            let condition: MetadataCondition = if conditions.is_array() {
                serde_json::from_value(
                    json!({ "logical_operator": "and", "conditions": conditions }),
                )
                .unwrap()
            } else {
                serde_json::from_value(conditions.clone()).unwrap()
            };
            let filter = condition.to_store_filter().unwrap();
            let hits = store
                .search("kb4", query([1.0, 0.0, 0.0, 0.0], &[3], 10, filter))
                .await
                .unwrap();
            let mut ids: Vec<String> = hits.into_iter().map(|c| c.chunk.document_id).collect();
            ids.sort();
            assert_eq!(ids, expected, "{name}: {conditions}");
        }
        store.drop_kb("kb4").await.unwrap();
    }
}

#[tokio::test]
async fn export_and_import_copy_every_point_with_its_vectors() {
    for place in places().await {
        let name = place.name();
        let store = place.open().await;
        store.create_kb("src", DIMENSION).await.unwrap();
        for (n, doc) in ["x", "y", "z"].into_iter().enumerate() {
            let chunks = (0..3)
                .map(|i| {
                    chunk(
                        doc,
                        i,
                        [1.0, i as f32, n as f32, 0.5],
                        if i == 0 { &[] } else { &[4, 8] },
                        json!({ "d": doc }),
                    )
                })
                .collect();
            store.replace_document("src", doc, 2, chunks).await.unwrap();
        }
        store.create_kb("copy", DIMENSION).await.unwrap();
        let mut from = None;
        let mut total = 0;
        loop {
            // Small pages, so paging is exercised.
            let page = store.export("src", from, 2).await.unwrap();
            assert!(page.points.len() <= 2, "{name}");
            total += page.points.len();
            for point in &page.points {
                assert_eq!(point.version, 2, "{name}");
                assert_eq!(point.stored.dense.len(), DIMENSION, "{name}");
                let expect_tokens = if point.stored.chunk.chunk_index == 0 {
                    0
                } else {
                    2
                };
                assert_eq!(point.stored.keyword.indices.len(), expect_tokens, "{name}");
            }
            store.import("copy", page.points).await.unwrap();
            match page.next {
                Some(next) => from = Some(next),
                None => break,
            }
        }
        assert_eq!(total, 9, "{name}");
        assert_eq!(
            lore::migrate::count(store.as_ref(), "copy").await.unwrap(),
            9,
            "{name}"
        );
        let q = query([1.0, 1.0, 1.0, 0.5], &[8], 10, None);
        let scored = |hits: Vec<Candidate>| {
            let mut all: Vec<(String, usize, u64, i64, Option<i64>)> = hits
                .into_iter()
                .map(|c| {
                    let round = |x: f32| (x * 1e4).round() as i64;
                    (
                        c.chunk.document_id,
                        c.chunk.chunk_index,
                        c.version,
                        round(c.dense),
                        c.keyword.map(round),
                    )
                })
                .collect();
            all.sort();
            all
        };
        let before = scored(store.search("src", q.clone()).await.unwrap());
        let after = scored(store.search("copy", q).await.unwrap());
        assert_eq!(before.len(), 9, "{name}");
        assert_eq!(before, after, "{name}");
        store.drop_kb("src").await.unwrap();
        store.drop_kb("copy").await.unwrap();
    }
}

/// Two lore instances on one Qdrant: while one holds a document's write lease, the other's
/// replacement of that document waits (refused after `lease_ms`); an expired lease can be
/// taken over.
#[tokio::test]
async fn a_document_is_written_by_one_instance_at_a_time() {
    for place in places().await {
        let Some(config) = place.qdrant() else {
            continue; // the embedded store belongs to one process (the data directory lock)
        };
        let name = place.name();
        let first = QdrantStore::connect(config).await.unwrap();
        let second = QdrantStore::connect(config).await.unwrap();
        first.create_kb("kb5", DIMENSION).await.unwrap();
        assert!(first.try_lease("kb5", "doc").await.unwrap(), "{name}");
        assert!(
            first.try_lease("kb5", "doc").await.unwrap(),
            "{name}: a holder may renew"
        );
        assert!(!second.try_lease("kb5", "doc").await.unwrap(), "{name}");
        // A replacement waits for the holder, at most `lease_ms`: then it is refused.
        let impatient = QdrantStore::connect(&QdrantConfig {
            lease_ms: 300,
            ..config.clone()
        })
        .await
        .unwrap();
        let refused = impatient
            .replace_document(
                "kb5",
                "doc",
                1,
                vec![chunk("doc", 0, [1.0, 0.0, 0.0, 0.0], &[], json!({}))],
            )
            .await
            .unwrap_err();
        assert!(
            format!("{refused:#}").contains("another lore instance"),
            "{name}: {refused:#}"
        );
        // Other documents are not held up.
        second
            .replace_document(
                "kb5",
                "other",
                1,
                vec![chunk("other", 0, [0.0, 1.0, 0.0, 0.0], &[], json!({}))],
            )
            .await
            .unwrap();
        let waiting = {
            let second = QdrantStore::connect(config).await.unwrap();
            tokio::spawn(async move {
                second
                    .replace_document(
                        "kb5",
                        "doc",
                        1,
                        vec![chunk("doc", 0, [1.0, 0.0, 0.0, 0.0], &[], json!({}))],
                    )
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "{name}: written while the lease was held"
        );
        first.release_lease("kb5", "doc").await.unwrap();
        waiting.await.unwrap().unwrap();
        // The lease is given back after a replacement, and lease points are not chunks.
        assert!(first.try_lease("kb5", "doc").await.unwrap(), "{name}");
        first.release_lease("kb5", "doc").await.unwrap();
        assert_eq!(
            lore::migrate::count(&first, "kb5").await.unwrap(),
            2,
            "{name}"
        );
        let hits = first
            .search("kb5", query([1.0, 0.0, 0.0, 0.0], &[], 10, None))
            .await
            .unwrap();
        assert_eq!(hits.len(), 2, "{name}");

        // A crashed holder's lease expires.
        let short = QdrantConfig {
            lease_ms: 200,
            ..config.clone()
        };
        let crashed = QdrantStore::connect(&short).await.unwrap();
        assert!(crashed.try_lease("kb5", "doc").await.unwrap(), "{name}");
        assert!(!second.try_lease("kb5", "doc").await.unwrap(), "{name}");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert!(second.try_lease("kb5", "doc").await.unwrap(), "{name}");
        second.release_lease("kb5", "doc").await.unwrap();
        first.drop_kb("kb5").await.unwrap();
    }
}

#[tokio::test]
async fn a_wrong_api_key_fails_at_connect_without_showing_the_key() {
    let emulator = QdrantEmulator::start(Some(EMULATOR_KEY)).await;
    let wrong = qdrant_config(&emulator.url, Some("not-the-right-key-0123456789"));
    let err = QdrantStore::connect(&wrong).await.err().expect("refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("cannot reach the Qdrant server"),
        "{message}"
    );
    assert!(!message.contains("not-the-right-key"), "{message}");
    let nobody = qdrant_config("http://127.0.0.1:1", None);
    let err = QdrantStore::connect(&nobody).await.err().expect("refused");
    assert!(format!("{err:#}").contains("127.0.0.1:1"), "{err:#}");
}

/// On a Qdrant server, filterable metadata fields get payload indexes as documents bring them:
/// strings as keywords (and their reversed copies, for "end with"), numbers as floats.
#[tokio::test]
async fn metadata_fields_are_indexed_on_qdrant() {
    for place in places().await {
        let Some(config) = place.qdrant() else {
            continue; // the embedded store filters in process, without payload indexes
        };
        let name = place.name();
        let store = QdrantStore::connect(config).await.unwrap();
        store.create_kb("kb6", DIMENSION).await.unwrap();
        let metadata = json!({ "region": "华东", "year": 2026, "tags": ["a"] });
        store
            .replace_document(
                "kb6",
                "doc",
                1,
                vec![chunk("doc", 0, [1.0, 0.0, 0.0, 0.0], &[5], metadata)],
            )
            .await
            .unwrap();
        let mut client = qdrant_client::Qdrant::from_url(&config.url).skip_compatibility_check();
        if let Some(key) = &config.api_key {
            client = client.api_key(key.expose().to_owned());
        }
        let info = client
            .build()
            .unwrap()
            .collection_info(store.collection("kb6"))
            .await
            .unwrap();
        let schema: Vec<(String, i32)> = info
            .result
            .unwrap()
            .payload_schema
            .into_iter()
            .map(|(field, info)| (field.replace('"', ""), info.data_type))
            .collect();
        use qdrant_client::qdrant::PayloadSchemaType as Type;
        for (field, kind) in [
            ("document_id", Type::Keyword),
            ("metadata.region", Type::Keyword),
            ("metadata_rev.region", Type::Keyword),
            ("metadata.year", Type::Float),
        ] {
            assert!(
                schema.contains(&(field.to_owned(), kind as i32)),
                "{name}: no {kind:?} index on {field}: {schema:?}"
            );
        }
        store.drop_kb("kb6").await.unwrap();
    }
}
