//! The catalog of lore instances that share one Qdrant server. The records live on the server,
//! beside the chunks (`store::qdrant::records`); each instance reads a copy kept in memory,
//! refreshed every `storage.qdrant.catalog_refresh_ms` and on each of its own writes.
//!
//! What several instances behind one load balancer get from it:
//! - they list the same knowledge bases and documents and serve the same versions, each
//!   within one refresh interval of a change made through another;
//! - a change is computed from the record on the server, not from the copy, and stored only if
//!   nobody changed the record meanwhile (compare-and-set, retried): two uploads of one file
//!   through two instances get different versions, and an ingestion that finishes late cannot
//!   serve its version over a newer one;
//! - readers see a document's old version or its new one, never a mix, as with one instance:
//!   search keeps only the chunks of the version the record names.
//!
//! An uploaded file stays on the instance that received it, which ingests it; another instance
//! shows it queued or processing until then.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Catalog, Change, Entries, KbEntry};
use crate::document::{DocumentRecord, DocumentStatus, KbInfo};
use crate::error::{Error, Result};
use crate::store::qdrant::records::{Records, StoredKb};

/// Tries of one change against changes made meanwhile by other instances.
const MAX_TRIES: usize = 16;

/// Knowledge bases and their documents' records, on a Qdrant server.
pub struct SharedCatalog {
    records: Records,
    entries: Entries,
    runtime: tokio::runtime::Handle,
    /// Counts the starts and ends of local writes: a refresh that overlapped one is dropped, so
    /// it cannot put back the records the write replaced.
    writes: AtomicU64,
}

impl SharedCatalog {
    /// Reads the catalog from the server and keeps refreshing it while the catalog lives.
    pub async fn open(records: Records, refresh: Duration) -> anyhow::Result<Arc<Self>> {
        let kbs = records.list().await?;
        let catalog = Arc::new(Self {
            records,
            entries: Entries::new(to_entries(kbs)),
            runtime: tokio::runtime::Handle::current(),
            writes: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&catalog);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(refresh);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(catalog) = weak.upgrade() else {
                    return;
                };
                if let Err(err) = catalog.refresh().await {
                    tracing::warn!(error = %format!("{err:#}"), "cannot refresh the catalog from Qdrant");
                }
            }
        });
        Ok(catalog)
    }

    /// Replaces the copy in memory with the server's records.
    async fn refresh(&self) -> anyhow::Result<()> {
        let before = self.writes.load(Ordering::SeqCst);
        let mut fresh = to_entries(self.records.list().await?);
        let mut entries = self.entries.write()?;
        if self.writes.load(Ordering::SeqCst) != before {
            return Ok(());
        }
        // Progress counters of documents ingested here are kept in memory only.
        for (kb, entry) in &mut fresh {
            let Some(known) = entries.get(kb) else {
                continue;
            };
            for (id, record) in &mut entry.documents {
                if let Some(local) = known.documents.get(id)
                    && record.status == DocumentStatus::Processing
                    && local.status == DocumentStatus::Processing
                    && local.pending_version == record.pending_version
                {
                    record.chunks_done = local.chunks_done;
                    record.chunk_count = local.chunk_count;
                }
            }
        }
        *entries = fresh;
        Ok(())
    }

    /// Applies a change already stored on the server to the copy in memory, and marks it for
    /// `refresh`.
    fn change_locally(&self, kb: &str, change: impl FnOnce(&mut KbEntry)) -> Result<()> {
        if let Some(entry) = self.entries.write()?.get_mut(kb) {
            change(entry);
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Runs a write against the server from a blocking thread, and marks it for `refresh`.
    fn remote<T>(&self, work: impl Future<Output = anyhow::Result<T>>) -> Result<T> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let result = self.runtime.block_on(work).map_err(Error::internal);
        self.writes.fetch_add(1, Ordering::SeqCst);
        result
    }
}

impl Catalog for SharedCatalog {
    fn entries(&self) -> &Entries {
        &self.entries
    }

    fn insert_kb(&self, info: KbInfo) -> Result<()> {
        if !self.remote(self.records.create_kb(&info))? {
            return Err(Error::kb_exists(&info.id));
        }
        let entry = KbEntry {
            info,
            documents: BTreeMap::new(),
        };
        self.entries.write()?.insert(entry.info.id.clone(), entry);
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// The records go with the collection, which the caller drops next.
    fn remove_kb(&self, kb: &str) -> Result<()> {
        self.entries
            .write()?
            .remove(kb)
            .ok_or_else(|| Error::kb_not_found(kb))?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn update_document(
        &self,
        kb: &str,
        id: &str,
        change: Change<'_>,
    ) -> Result<Option<DocumentRecord>> {
        self.kb(kb)?;
        for _ in 0..MAX_TRIES {
            let current = self.remote(self.records.document(kb, id))?;
            let (record, revision) = match current {
                Some((record, revision)) => (Some(record), revision),
                None => (None, 0),
            };
            let updated = change(record.as_ref());
            let unchanged = updated == record;
            if unchanged
                || self.remote(
                    self.records
                        .set_document(kb, id, revision, updated.as_ref()),
                )?
            {
                self.change_locally(kb, |entry| entry.set_document(id, updated.as_ref()))?;
                return Ok(updated);
            }
        }
        Err(Error::internal(anyhow::anyhow!(
            "the record of '{id}' in '{kb}' kept changing under {MAX_TRIES} tries"
        )))
    }

    fn insert_documents(&self, kb: &str, records: Vec<DocumentRecord>) -> Result<()> {
        self.kb(kb)?;
        self.remote(self.records.put_documents(kb, &records))?;
        self.change_locally(kb, |entry| entry.insert_documents(records))
    }
}

fn to_entries(kbs: BTreeMap<String, StoredKb>) -> BTreeMap<String, KbEntry> {
    kbs.into_iter()
        .map(|(id, (info, documents))| (id, KbEntry { info, documents }))
        .collect()
}
