//! The catalog of one lore instance (embedded store): each knowledge base's part is one JSON
//! file, `{data_dir}/kbs/{kb}/catalog.json`, replaced atomically (write, fsync, rename) on every
//! change of state, so a crash leaves either the old or the new file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;

use super::{Catalog, Change, Entries, KbEntry, write_atomically};
use crate::document::{DocumentRecord, KbInfo};
use crate::error::{Error, Result};

const CATALOG_FILE: &str = "catalog.json";

/// Knowledge bases and their documents' records, in memory and in files.
pub struct FileCatalog {
    root: PathBuf,
    entries: Entries,
    /// Held from a change until its file is written, so files are written in change order.
    writing: Mutex<()>,
}

impl FileCatalog {
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
            entries: Entries::new(kbs),
            writing: Mutex::new(()),
        })
    }

    fn writing(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.writing
            .lock()
            .map_err(|_| Error::internal(anyhow::anyhow!("catalog lock poisoned")))
    }

    fn persist(&self, entry: &KbEntry) -> Result<()> {
        let dir = self.root.join(&entry.info.id);
        let bytes = serde_json::to_vec_pretty(entry).map_err(Error::internal)?;
        write_atomically(&dir, CATALOG_FILE, &bytes).map_err(Error::internal)
    }

    /// Applies `change` to a knowledge base's entry in memory and writes its file.
    fn change_kb<T>(&self, kb: &str, change: impl FnOnce(&mut KbEntry) -> T) -> Result<T> {
        let _writing = self.writing()?;
        let (result, snapshot) = {
            let mut kbs = self.entries.write()?;
            let entry = kbs.get_mut(kb).ok_or_else(|| Error::kb_not_found(kb))?;
            (change(entry), entry.clone())
        };
        self.persist(&snapshot)?;
        Ok(result)
    }
}

impl Catalog for FileCatalog {
    fn entries(&self) -> &Entries {
        &self.entries
    }

    fn insert_kb(&self, info: KbInfo) -> Result<()> {
        let _writing = self.writing()?;
        if self.entries.read()?.contains_key(&info.id) {
            return Err(Error::kb_exists(&info.id));
        }
        let entry = KbEntry {
            info,
            documents: BTreeMap::new(),
        };
        self.persist(&entry)?;
        self.entries.write()?.insert(entry.info.id.clone(), entry);
        Ok(())
    }

    fn remove_kb(&self, kb: &str) -> Result<()> {
        let _writing = self.writing()?;
        self.entries
            .write()?
            .remove(kb)
            .ok_or_else(|| Error::kb_not_found(kb))?;
        let path = self.root.join(kb).join(CATALOG_FILE);
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
        Ok(())
    }

    fn update_document(
        &self,
        kb: &str,
        id: &str,
        change: Change<'_>,
    ) -> Result<Option<DocumentRecord>> {
        self.change_kb(kb, |entry| {
            let updated = change(entry.documents.get(id));
            entry.set_document(id, updated.as_ref());
            updated
        })
    }

    fn insert_documents(&self, kb: &str, records: Vec<DocumentRecord>) -> Result<()> {
        self.change_kb(kb, |entry| entry.insert_documents(records))
    }
}
