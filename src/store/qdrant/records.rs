//! Catalog records kept on the Qdrant server, so that every lore instance sharing it sees the
//! same knowledge bases, documents and served versions (see `catalog::shared`).
//!
//! Beside its chunks, each knowledge base's collection holds vector-less points:
//! - one `kb` point: the knowledge base's `KbInfo`;
//! - one `document` point per document: its `DocumentRecord` and a `revision`, which grows by
//!   one with every change.
//!
//! In the knowledge base's own collection, dropping a knowledge base takes its records with it
//! in the same call, and a collection without a `kb` point is not (yet) a knowledge base.
//!
//! Changes are compare-and-set: an upsert conditioned (`update_filter`) on the revision the
//! change was computed from, then a read of the point. The server applies a shard's updates in
//! order, so of two instances changing one record at once the second one's condition fails;
//! it sees the first one's record and computes its change again from that.

use std::collections::BTreeMap;

use anyhow::Context as _;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    DeletePoints, GetPoints, NamedVectors, PointStruct, RetrievedPoint, UpsertPoints,
};
use serde_json::json;
use uuid::Uuid;

use super::filter::to_grpc;
use super::points::{json_payload, scroll_payloads, uuid_id};
use super::strong;
use crate::document::{DocumentRecord, KbInfo};

/// Payload key that marks catalog points (`kb` or `document`) and keeps them out of exports.
pub const CATALOG: &str = "catalog";
/// Records read per scroll page.
const PAGE: u32 = 256;

/// A knowledge base as stored: its description and its documents' records by id.
pub type StoredKb = (KbInfo, BTreeMap<String, DocumentRecord>);

fn kb_point() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, b"catalog/kb")
}

fn document_point(id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("catalog/document/{id}").as_bytes(),
    )
}

/// The catalog records of the knowledge bases under one collection prefix.
#[derive(Clone)]
pub struct Records {
    client: Qdrant,
    prefix: String,
}

impl Records {
    pub(super) fn new(client: Qdrant, prefix: String) -> Self {
        Self { client, prefix }
    }

    fn collection(&self, kb: &str) -> String {
        format!("{}{kb}", self.prefix)
    }

    /// Every knowledge base under the prefix that has its `kb` point, with its records.
    pub async fn list(&self) -> anyhow::Result<BTreeMap<String, StoredKb>> {
        let collections = self
            .client
            .list_collections()
            .await
            .context("cannot list the Qdrant collections")?;
        let mut kbs = BTreeMap::new();
        for collection in collections.collections {
            let Some(kb) = collection.name.strip_prefix(&self.prefix) else {
                continue;
            };
            match self.read_kb(kb).await {
                Ok(Some(stored)) => {
                    kbs.insert(kb.to_owned(), stored);
                }
                Ok(None) => {}
                // Dropped between the listing and the reading.
                Err(_) if !self.client.collection_exists(&collection.name).await? => {}
                Err(err) => return Err(err),
            }
        }
        Ok(kbs)
    }

    async fn read_kb(&self, kb: &str) -> anyhow::Result<Option<StoredKb>> {
        let collection = self.collection(kb);
        let catalog_points = to_grpc(&json!({
            "must": [{ "key": CATALOG, "match": { "any": ["kb", "document"] } }]
        }))?;
        let payloads = scroll_payloads(&self.client, &collection, catalog_points, PAGE)
            .await
            .with_context(|| format!("cannot read the catalog of '{collection}'"))?;
        let mut info = None;
        let mut documents = BTreeMap::new();
        for payload in payloads {
            match payload.get(CATALOG).and_then(|v| v.as_str()) {
                Some("kb") => info = Some(field(&payload, "info")?),
                Some("document") => {
                    let record: DocumentRecord = field(&payload, "record")?;
                    documents.insert(record.id.clone(), record);
                }
                _ => {}
            }
        }
        Ok(info.map(|info| (info, documents)))
    }

    /// Records a new knowledge base in its (existing) collection; `false` when it already has
    /// a record, written by this instance or another.
    pub async fn create_kb(&self, info: &KbInfo) -> anyhow::Result<bool> {
        let collection = self.collection(&info.id);
        let writer = Uuid::new_v4().to_string();
        let payload = json!({ CATALOG: "kb", "info": info, "writer": writer });
        // A condition no point meets: an existing record stays, a missing one is written.
        let never = to_grpc(&json!({ "must": [{ "key": CATALOG, "match": { "value": "-" } }] }))?;
        self.upsert(&collection, kb_point(), payload, Some(never))
            .await?;
        let stored = self.get(&collection, kb_point()).await?;
        Ok(stored.is_some_and(|p| written_by(&p, &writer)))
    }

    /// A document's record and its revision; `None` when it has none.
    pub async fn document(
        &self,
        kb: &str,
        id: &str,
    ) -> anyhow::Result<Option<(DocumentRecord, u64)>> {
        let point = self.get(&self.collection(kb), document_point(id)).await?;
        point
            .map(|point| {
                let payload = json_payload(point.payload);
                let revision = payload
                    .get("revision")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or_default();
                Ok((field(&payload, "record")?, revision))
            })
            .transpose()
    }

    /// Replaces (or, given `None`, deletes) a document's record if it is still at `revision`
    /// (0: it has none); `false` when another change came first.
    pub async fn set_document(
        &self,
        kb: &str,
        id: &str,
        revision: u64,
        record: Option<&DocumentRecord>,
    ) -> anyhow::Result<bool> {
        let collection = self.collection(kb);
        let point = document_point(id);
        let unchanged = json!({ "key": "revision", "match": { "value": revision } });
        let Some(record) = record else {
            if revision == 0 {
                return Ok(true);
            }
            self.client
                .delete_points(DeletePoints {
                    collection_name: collection.clone(),
                    wait: Some(true),
                    points: Some(
                        to_grpc(&json!({ "must": [
                            { "has_id": [point.to_string()] }, unchanged
                        ] }))?
                        .into(),
                    ),
                    ordering: strong(),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("cannot delete a record in '{collection}'"))?;
            return Ok(self.get(&collection, point).await?.is_none());
        };
        let writer = Uuid::new_v4().to_string();
        let payload = json!({
            CATALOG: "document",
            "record": record,
            "revision": revision + 1,
            "writer": writer,
        });
        let condition = to_grpc(&json!({ "must": [unchanged] }))?;
        self.upsert(&collection, point, payload, Some(condition))
            .await?;
        let stored = self.get(&collection, point).await?;
        Ok(stored.is_some_and(|p| written_by(&p, &writer)))
    }

    /// Writes records as they are, whatever was there (copies between stores).
    pub async fn put_documents(&self, kb: &str, records: &[DocumentRecord]) -> anyhow::Result<()> {
        let collection = self.collection(kb);
        for record in records {
            let payload = json!({
                CATALOG: "document",
                "record": record,
                "revision": 1,
                "writer": "",
            });
            self.upsert(&collection, document_point(&record.id), payload, None)
                .await?;
        }
        Ok(())
    }

    async fn upsert(
        &self,
        collection: &str,
        id: Uuid,
        payload: serde_json::Value,
        condition: Option<qdrant_client::qdrant::Filter>,
    ) -> anyhow::Result<()> {
        self.client
            .upsert_points(UpsertPoints {
                collection_name: collection.to_owned(),
                wait: Some(true),
                points: vec![PointStruct::new(
                    uuid_id(id),
                    NamedVectors::default(),
                    qdrant_client::Payload::try_from(payload)?,
                )],
                ordering: strong(),
                update_filter: condition,
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot write a catalog record in '{collection}'"))?;
        Ok(())
    }

    async fn get(&self, collection: &str, id: Uuid) -> anyhow::Result<Option<RetrievedPoint>> {
        let found = self
            .client
            .get_points(GetPoints {
                collection_name: collection.to_owned(),
                ids: vec![uuid_id(id)],
                with_payload: Some(true.into()),
                with_vectors: Some(false.into()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot read a catalog record in '{collection}'"))?;
        Ok(found.result.into_iter().next())
    }
}

fn written_by(point: &RetrievedPoint, writer: &str) -> bool {
    point
        .payload
        .get("writer")
        .and_then(|v| v.as_str())
        .is_some_and(|w| w == writer)
}

fn field<T: serde::de::DeserializeOwned>(
    payload: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> anyhow::Result<T> {
    let value = payload
        .get(key)
        .cloned()
        .with_context(|| format!("a catalog point lacks '{key}'"))?;
    serde_json::from_value(value).with_context(|| format!("a catalog point has an invalid '{key}'"))
}
