//! The catalog: which knowledge bases exist and the record of every document in them
//! (status, version served, checksum, metadata). The store holds chunks; the catalog says which
//! of them are current.
//!
//! Each knowledge base's part is one JSON file, `{data_dir}/kbs/{kb}/catalog.json`, replaced
//! atomically (write, fsync, rename) on every change of state, so a crash leaves either the old
//! or the new file. Progress counters change in memory only.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::document::{DocumentRecord, KbInfo};
use crate::error::{Error, ErrorCode, Result};

const CATALOG_FILE: &str = "catalog.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KbEntry {
    info: KbInfo,
    documents: BTreeMap<String, DocumentRecord>,
}

/// Knowledge bases and their documents' records, kept in memory and on disk.
pub struct Catalog {
    root: PathBuf,
    kbs: RwLock<BTreeMap<String, KbEntry>>,
}

impl Catalog {
    /// Loads every knowledge base found under `root` (`{data_dir}/kbs`).
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let mut kbs = BTreeMap::new();
        for entry in std::fs::read_dir(root)? {
            let path = entry?.path().join(CATALOG_FILE);
            if !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            let kb: KbEntry = serde_json::from_slice(&bytes)
                .with_context(|| format!("cannot read the catalog {}", path.display()))?;
            kbs.insert(kb.info.id.clone(), kb);
        }
        Ok(Self {
            root: root.to_path_buf(),
            kbs: RwLock::new(kbs),
        })
    }

    pub fn kb_dir(&self, kb: &str) -> PathBuf {
        self.root.join(kb)
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<String, KbEntry>>> {
        self.kbs
            .read()
            .map_err(|_| Error::internal(anyhow::anyhow!("catalog lock poisoned")))
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, BTreeMap<String, KbEntry>>> {
        self.kbs
            .write()
            .map_err(|_| Error::internal(anyhow::anyhow!("catalog lock poisoned")))
    }

    pub fn list_kbs(&self) -> Result<Vec<KbInfo>> {
        Ok(self.read()?.values().map(|kb| kb.info.clone()).collect())
    }

    pub fn kb(&self, kb: &str) -> Result<KbInfo> {
        self.read()?
            .get(kb)
            .map(|e| e.info.clone())
            .ok_or_else(|| Error::kb_not_found(kb))
    }

    /// Adds a knowledge base; fails with `kb_exists` if the id is taken.
    pub fn insert_kb(&self, info: KbInfo) -> Result<()> {
        let mut kbs = self.write()?;
        if kbs.contains_key(&info.id) {
            return Err(Error::new(
                ErrorCode::KbExists,
                format!("knowledge base '{}' already exists", info.id),
            ));
        }
        let entry = KbEntry {
            info,
            documents: BTreeMap::new(),
        };
        self.persist(&entry)?;
        kbs.insert(entry.info.id.clone(), entry);
        Ok(())
    }

    /// Forgets a knowledge base (its directory is removed by the caller).
    pub fn remove_kb(&self, kb: &str) -> Result<()> {
        let mut kbs = self.write()?;
        kbs.remove(kb).ok_or_else(|| Error::kb_not_found(kb))?;
        let path = self.kb_dir(kb).join(CATALOG_FILE);
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
        Ok(())
    }

    pub fn documents(&self, kb: &str) -> Result<Vec<DocumentRecord>> {
        let kbs = self.read()?;
        let entry = kbs.get(kb).ok_or_else(|| Error::kb_not_found(kb))?;
        Ok(entry.documents.values().cloned().collect())
    }

    pub fn document(&self, kb: &str, id: &str) -> Result<DocumentRecord> {
        let kbs = self.read()?;
        let entry = kbs.get(kb).ok_or_else(|| Error::kb_not_found(kb))?;
        entry
            .documents
            .get(id)
            .cloned()
            .ok_or_else(|| Error::document_not_found(kb, id))
    }

    /// The version of each document whose chunks search may return.
    pub fn served_versions(&self, kb: &str) -> Result<BTreeMap<String, u64>> {
        let kbs = self.read()?;
        let entry = kbs.get(kb).ok_or_else(|| Error::kb_not_found(kb))?;
        Ok(entry
            .documents
            .values()
            .filter(|d| d.version > 0)
            .map(|d| (d.id.clone(), d.version))
            .collect())
    }

    /// Changes a document's record (or creates it, when `change` is given `None`) and persists
    /// the knowledge base's catalog. `change` returns the new record, or `None` to delete it.
    pub fn update_document<F>(
        &self,
        kb: &str,
        id: &str,
        change: F,
    ) -> Result<Option<DocumentRecord>>
    where
        F: FnOnce(Option<&DocumentRecord>) -> Option<DocumentRecord>,
    {
        let mut kbs = self.write()?;
        let entry = kbs.get_mut(kb).ok_or_else(|| Error::kb_not_found(kb))?;
        let updated = change(entry.documents.get(id));
        match &updated {
            Some(record) => entry.documents.insert(id.to_owned(), record.clone()),
            None => entry.documents.remove(id),
        };
        self.persist(entry)?;
        Ok(updated)
    }

    /// Adds or replaces many records with one write of the catalog.
    pub fn insert_documents(&self, kb: &str, records: Vec<DocumentRecord>) -> Result<()> {
        let mut kbs = self.write()?;
        let entry = kbs.get_mut(kb).ok_or_else(|| Error::kb_not_found(kb))?;
        for record in records {
            entry.documents.insert(record.id.clone(), record);
        }
        self.persist(entry)
    }

    /// Sets progress counters without writing to disk: they are only for watching.
    pub fn set_progress(&self, kb: &str, id: &str, done: usize, total: usize) -> Result<()> {
        let mut kbs = self.write()?;
        if let Some(record) = kbs.get_mut(kb).and_then(|e| e.documents.get_mut(id)) {
            record.chunks_done = done;
            record.chunk_count = total;
        }
        Ok(())
    }

    fn persist(&self, entry: &KbEntry) -> Result<()> {
        let dir = self.kb_dir(&entry.info.id);
        let bytes = serde_json::to_vec_pretty(entry).map_err(Error::internal)?;
        write_atomically(&dir, CATALOG_FILE, &bytes).map_err(Error::internal)
    }
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
