//! The catalog: which knowledge bases exist and the record of every document in them
//! (status, version served, checksum, metadata). The store holds chunks; the catalog says which
//! of them are current.
//!
//! Two kinds, one per storage backend, opened together with their store by [`open`]:
//! - [`FileCatalog`] (embedded store): one JSON file per knowledge base in the data directory;
//! - [`SharedCatalog`] (Qdrant server): records on the server, beside the chunks, so that every
//!   lore instance sharing the server serves the same knowledge bases.
//!
//! Reads come from memory. Writes may block (a file's fsync, or a round trip to Qdrant), so
//! callers run them off the async runtime (`spawn_blocking`).

mod files;
mod shared;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};

pub use files::FileCatalog;
pub use shared::SharedCatalog;

use crate::config::{StorageBackend, StorageConfig};
use crate::document::{DocumentRecord, KbInfo};
use crate::error::{Error, Result};
use crate::store::{EmbeddedStore, QdrantStore, VectorStore};

/// A change of one document's record: given the current record (if any), the new one, or
/// `None` to delete it. A shared catalog may call it more than once, when another instance
/// changed the record first.
pub type Change<'a> = &'a mut dyn FnMut(Option<&DocumentRecord>) -> Option<DocumentRecord>;

/// What every catalog offers. Reads are answered from memory; writes may block.
pub trait Catalog: Send + Sync {
    /// The knowledge bases and records as this instance knows them.
    fn entries(&self) -> &Entries;

    /// Adds a knowledge base; fails with `kb_exists` if the id is taken.
    fn insert_kb(&self, info: KbInfo) -> Result<()>;

    /// Forgets a knowledge base (its collection and folder are removed by the caller).
    fn remove_kb(&self, kb: &str) -> Result<()>;

    /// Changes a document's record (creates it when there is none; deletes it when `change`
    /// returns `None`) and returns what was stored.
    fn update_document(
        &self,
        kb: &str,
        id: &str,
        change: Change<'_>,
    ) -> Result<Option<DocumentRecord>>;

    /// Adds or replaces many records at once (imports and copies between stores).
    fn insert_documents(&self, kb: &str, records: Vec<DocumentRecord>) -> Result<()>;

    fn list_kbs(&self) -> Result<Vec<KbInfo>> {
        Ok(self
            .entries()
            .read()?
            .values()
            .map(|kb| kb.info.clone())
            .collect())
    }

    fn kb(&self, kb: &str) -> Result<KbInfo> {
        self.entries()
            .read()?
            .get(kb)
            .map(|e| e.info.clone())
            .ok_or_else(|| Error::kb_not_found(kb))
    }

    fn documents(&self, kb: &str) -> Result<Vec<DocumentRecord>> {
        let kbs = self.entries().read()?;
        let entry = kbs.get(kb).ok_or_else(|| Error::kb_not_found(kb))?;
        Ok(entry.documents.values().cloned().collect())
    }

    fn document(&self, kb: &str, id: &str) -> Result<DocumentRecord> {
        let kbs = self.entries().read()?;
        let entry = kbs.get(kb).ok_or_else(|| Error::kb_not_found(kb))?;
        entry
            .documents
            .get(id)
            .cloned()
            .ok_or_else(|| Error::document_not_found(kb, id))
    }

    /// The version of each document whose chunks search may return.
    fn served_versions(&self, kb: &str) -> Result<BTreeMap<String, u64>> {
        let kbs = self.entries().read()?;
        let entry = kbs.get(kb).ok_or_else(|| Error::kb_not_found(kb))?;
        Ok(entry
            .documents
            .values()
            .filter(|d| d.version > 0)
            .map(|d| (d.id.clone(), d.version))
            .collect())
    }

    /// Sets progress counters in memory only: they are for watching, and written with the
    /// next change of state.
    fn set_progress(&self, kb: &str, id: &str, done: usize, total: usize) -> Result<()> {
        let mut kbs = self.entries().write()?;
        if let Some(record) = kbs.get_mut(kb).and_then(|e| e.documents.get_mut(id)) {
            record.chunks_done = done;
            record.chunk_count = total;
        }
        Ok(())
    }
}

/// A knowledge base and its documents' records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KbEntry {
    pub info: KbInfo,
    pub documents: BTreeMap<String, DocumentRecord>,
}

impl KbEntry {
    /// Stores a document's new record, or forgets the document (`None`).
    fn set_document(&mut self, id: &str, record: Option<&DocumentRecord>) {
        match record {
            Some(record) => self.documents.insert(id.to_owned(), record.clone()),
            None => self.documents.remove(id),
        };
    }

    fn insert_documents(&mut self, records: Vec<DocumentRecord>) {
        for record in records {
            self.documents.insert(record.id.clone(), record);
        }
    }
}

/// The catalog in memory.
pub struct Entries(RwLock<BTreeMap<String, KbEntry>>);

impl Entries {
    fn new(kbs: BTreeMap<String, KbEntry>) -> Self {
        Self(RwLock::new(kbs))
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, BTreeMap<String, KbEntry>>> {
        self.0
            .read()
            .map_err(|_| Error::internal(anyhow::anyhow!("catalog lock poisoned")))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, BTreeMap<String, KbEntry>>> {
        self.0
            .write()
            .map_err(|_| Error::internal(anyhow::anyhow!("catalog lock poisoned")))
    }
}

/// The store and the catalog that `storage` names: the embedded engine and catalog files under
/// `kbs_root` (`{data_dir}/kbs`), or a Qdrant server holding both (checked to answer first).
pub async fn open(
    storage: &StorageConfig,
    kbs_root: &Path,
) -> anyhow::Result<(Arc<dyn VectorStore>, Arc<dyn Catalog>)> {
    Ok(match storage.backend {
        StorageBackend::Embedded => (
            Arc::new(EmbeddedStore::new(kbs_root)),
            Arc::new(FileCatalog::open(kbs_root)?),
        ),
        StorageBackend::Qdrant => {
            let store = QdrantStore::connect(&storage.qdrant).await?;
            let refresh = std::time::Duration::from_millis(storage.qdrant.catalog_refresh_ms);
            let catalog = SharedCatalog::open(store.records(), refresh).await?;
            (Arc::new(store), catalog)
        }
    })
}

/// Writes `dir/name` so that a crash leaves the old or the new content, never a torn file.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
