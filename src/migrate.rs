//! `lore migrate`: copies knowledge bases from the configured store to the other backend
//! (embedded Qdrant Edge <-> Qdrant server), stored vectors and all, so nothing is re-embedded.
//!
//! Each backend keeps its own catalog (files beside the embedded store, records beside the
//! chunks on a Qdrant server), so the document records are copied with the chunks. In place
//! (the usual case) `storage.backend` is switched afterwards; with `--to-data-dir`, each knowledge
//! base's folder (kept uploads, settings) is copied too, so the target directory is complete.
//! The data directory is locked for the whole copy, so no server writes while it runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::catalog::Catalog;
use crate::config::{Config, StorageBackend};
use crate::store::VectorStore;

/// Chunks per export page and import call.
const PAGE: usize = 256;

/// What to migrate, where to.
#[derive(Debug, Clone)]
pub struct MigrateArgs {
    /// The backend to copy to; the source is `storage.backend`.
    pub to: StorageBackend,
    /// Knowledge bases to copy; all when empty.
    pub kbs: Vec<String>,
    /// Another data directory for the target (kept uploads and settings are copied too).
    pub to_data_dir: Option<PathBuf>,
}

/// One knowledge base copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub kb: String,
    pub chunks: usize,
}

/// Runs a migration and says what was copied.
pub async fn run(config: Config, args: MigrateArgs) -> anyhow::Result<Vec<Copied>> {
    let from = config.storage.backend;
    let target_dir = args
        .to_data_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.clone());
    let same_dir = same_path(&target_dir, &config.data_dir);
    if from == args.to && (same_dir || from == StorageBackend::Qdrant) {
        bail!(
            "source and target are the same store ({from:?} in {}): nothing to migrate",
            config.data_dir.display()
        );
    }
    let _lock = crate::kb::lock_data_dir(&config.data_dir)?;
    let _target_lock = if same_dir {
        None
    } else {
        Some(crate::kb::lock_data_dir(&target_dir)?)
    };
    let source_root = config.data_dir.join("kbs");
    let target_root = target_dir.join("kbs");
    let (source, source_catalog) = crate::catalog::open(&config.storage, &source_root).await?;
    let known: Vec<String> = source_catalog
        .list_kbs()?
        .into_iter()
        .map(|kb| kb.id)
        .collect();
    let kbs = if args.kbs.is_empty() {
        known
    } else {
        for kb in &args.kbs {
            anyhow::ensure!(
                known.contains(kb),
                "no knowledge base '{kb}' in {}",
                config.data_dir.display()
            );
        }
        args.kbs.clone()
    };
    let mut target_config = config.storage.clone();
    target_config.backend = args.to;
    let (target, target_catalog) = crate::catalog::open(&target_config, &target_root).await?;

    let mut copied = Vec::with_capacity(kbs.len());
    for kb in kbs {
        if !same_dir {
            copy_kb_folder(&source_root.join(&kb), &target_root.join(&kb))?;
        }
        let chunks = copy_kb(source.as_ref(), target.as_ref(), &kb).await?;
        copy_records(&source_catalog, &target_catalog, &kb).await?;
        tracing::info!(kb, chunks, to = ?args.to, "knowledge base copied");
        copied.push(Copied { kb, chunks });
    }
    Ok(copied)
}

/// Copies a knowledge base's catalog entry (its description and every document's record),
/// replacing what the target catalog had for it.
async fn copy_records(
    source: &Arc<dyn Catalog>,
    target: &Arc<dyn Catalog>,
    kb: &str,
) -> anyhow::Result<()> {
    let info = source.kb(kb)?;
    let records = source.documents(kb)?;
    let target = Arc::clone(target);
    let kb = kb.to_owned();
    // Catalog writes block (files, or calls to the server).
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        if target.kb(&kb).is_ok() {
            target.remove_kb(&kb)?;
        }
        target.insert_kb(info)?;
        target.insert_documents(&kb, records)?;
        Ok(())
    })
    .await?
}

/// Copies one knowledge base's stored chunks, replacing whatever the target held for it, and
/// checks that the target holds as many as were read.
pub async fn copy_kb(
    source: &dyn VectorStore,
    target: &dyn VectorStore,
    kb: &str,
) -> anyhow::Result<usize> {
    let dimension = source
        .dimension(kb)
        .await?
        .with_context(|| format!("knowledge base '{kb}' has no collection in the source store"))?;
    target.drop_kb(kb).await?;
    target.create_kb(kb, dimension).await?;
    let mut from = None;
    let mut copied = 0;
    loop {
        let page = source.export(kb, from, PAGE).await?;
        copied += page.points.len();
        target.import(kb, page.points).await?;
        match page.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    let stored = count(target, kb).await?;
    anyhow::ensure!(
        stored == copied,
        "'{kb}': {copied} chunks were copied but the target holds {stored}"
    );
    Ok(copied)
}

/// Chunks stored for a knowledge base, counted through the export.
pub async fn count(store: &dyn VectorStore, kb: &str) -> anyhow::Result<usize> {
    let mut from = None;
    let mut total = 0;
    loop {
        let page = store.export(kb, from, PAGE).await?;
        total += page.points.len();
        match page.next {
            Some(next) => from = Some(next),
            None => return Ok(total),
        }
    }
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Copies a knowledge base's folder (kept uploads, settings) but not the embedded engine's
/// shard, which the store copy writes, nor the catalog file, which the target catalog writes.
fn copy_kb_folder(from: &Path, to: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        !to.join("catalog.json").exists(),
        "{} already holds a knowledge base; remove it or choose another --to-data-dir",
        to.display()
    );
    copy_dir(from, to, &["shard", "catalog.json"])
}

fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        if entry.file_type()?.is_dir() {
            copy_dir(&source, &target, &[])?;
        } else {
            std::fs::copy(&source, &target)
                .with_context(|| format!("cannot copy {}", source.display()))?;
        }
    }
    Ok(())
}
