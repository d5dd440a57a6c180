//! Write leases: several lore instances may share one Qdrant, and a document must not be written
//! by two of them at once (two replacements interleaving their "write new, delete others" steps
//! could delete each other's chunks).
//!
//! A lease is one vector-less point in the knowledge base's collection, id derived from the
//! document id, payload `lease_of`, `owner`, `expires_at_ms`. Taking it is one conditional upsert
//! (`update_filter`: only when expired or already ours; a missing point is simply inserted),
//! then a read of the owner: the server applies a shard's updates in order, so of two racing
//! instances the second one's condition sees the first one's lease and leaves it alone. A lease
//! expires so that a crashed writer does not block its document forever.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    DeletePoints, Filter, GetPoints, NamedVectors, PointStruct, UpsertPoints,
};
use serde_json::json;
use uuid::Uuid;

use super::filter::to_grpc;
use super::points::uuid_id;
use super::strong;

/// Payload key that marks lease points (and keeps them out of exports).
pub const LEASE_OF: &str = "lease_of";

fn lease_id(document_id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("lease/{document_id}").as_bytes(),
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Takes the lease on `document_id` for `owner`, or returns the current holder's id when
/// another live instance holds it.
pub async fn acquire(
    client: &Qdrant,
    collection: &str,
    document_id: &str,
    owner: &str,
    ttl: Duration,
) -> anyhow::Result<Result<(), String>> {
    let id = uuid_id(lease_id(document_id));
    let now = now_ms();
    let expires = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let payload = json!({ LEASE_OF: document_id, "owner": owner, "expires_at_ms": expires });
    let takeable = to_grpc(&json!({ "should": [
        { "key": "expires_at_ms", "range": { "lt": now } },
        { "key": "owner", "match": { "value": owner } },
    ] }))?;
    client
        .upsert_points(UpsertPoints {
            collection_name: collection.to_owned(),
            wait: Some(true),
            points: vec![PointStruct::new(
                id.clone(),
                NamedVectors::default(),
                qdrant_client::Payload::try_from(payload)?,
            )],
            ordering: strong(),
            update_filter: Some(takeable),
            ..Default::default()
        })
        .await
        .context("cannot take a document's write lease")?;
    let current = client
        .get_points(GetPoints {
            collection_name: collection.to_owned(),
            ids: vec![id],
            with_payload: Some(true.into()),
            with_vectors: Some(false.into()),
            ..Default::default()
        })
        .await
        .context("cannot read a document's write lease")?;
    let holder = current
        .result
        .first()
        .and_then(|p| p.payload.get("owner"))
        .and_then(|v| v.as_str().map(ToOwned::to_owned))
        .unwrap_or_default();
    Ok(if holder == owner { Ok(()) } else { Err(holder) })
}

/// Gives the lease back, if it is still ours (an expired one may have been taken over).
pub async fn release(
    client: &Qdrant,
    collection: &str,
    document_id: &str,
    owner: &str,
) -> anyhow::Result<()> {
    let ours: Filter = to_grpc(&json!({ "must": [
        { "has_id": [lease_id(document_id).to_string()] },
        { "key": "owner", "match": { "value": owner } },
    ] }))?;
    client
        .delete_points(DeletePoints {
            collection_name: collection.to_owned(),
            wait: Some(true),
            points: Some(ours.into()),
            ordering: strong(),
            ..Default::default()
        })
        .await
        .context("cannot release a document's write lease")?;
    Ok(())
}
