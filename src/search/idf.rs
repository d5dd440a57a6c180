//! Question tokens' IDF, asked of the store and kept for a minute.
//!
//! The store answers a token's IDF by walking the token's posting list (`VectorStore::keyword_idf`):
//! for the common words of a 100,000-chunk knowledge base that doubled retrieval latency. IDF is
//! a statistic of the whole corpus and moves slowly, so a figure up to a minute old weighs
//! sentence evidence the same, and the common words, the expensive ones, are asked about by
//! almost every question.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::VectorStore;

/// How long a token's IDF is reused.
const FRESH_FOR: Duration = Duration::from_secs(60);
/// Entries kept at most (a few MB); beyond it the stale ones go, then all.
const MAX_ENTRIES: usize = 200_000;

/// IDF per (knowledge base, token), with when it was asked; `None` records a token no chunk holds.
type Entries = HashMap<(String, u32), (Option<f32>, Instant)>;

/// Cached IDFs of question tokens.
#[derive(Default)]
pub struct IdfCache {
    entries: Mutex<Entries>,
}

impl IdfCache {
    /// The IDF of each of `tokens` that some chunk of `kb` holds, asking the store only for the
    /// tokens not seen within the last minute.
    pub async fn idf(
        &self,
        store: &dyn VectorStore,
        kb: &str,
        tokens: &[u32],
    ) -> anyhow::Result<HashMap<u32, f32>> {
        let now = Instant::now();
        let mut known = HashMap::new();
        let mut missing = Vec::new();
        {
            let entries = self.lock();
            for token in tokens {
                match entries.get(&(kb.to_owned(), *token)) {
                    Some((idf, at)) if now.duration_since(*at) < FRESH_FOR => {
                        if let Some(idf) = idf {
                            known.insert(*token, *idf);
                        }
                    }
                    _ => missing.push(*token),
                }
            }
        }
        if missing.is_empty() {
            return Ok(known);
        }
        let fetched = store.keyword_idf(kb, &missing).await?;
        let mut entries = self.lock();
        if entries.len() + missing.len() > MAX_ENTRIES {
            entries.retain(|_, (_, at)| now.duration_since(*at) < FRESH_FOR);
            if entries.len() + missing.len() > MAX_ENTRIES {
                entries.clear();
            }
        }
        for token in missing {
            let idf = fetched.get(&token).copied();
            entries.insert((kb.to_owned(), token), (idf, now));
            if let Some(idf) = idf {
                known.insert(token, idf);
            }
        }
        Ok(known)
    }

    /// The map, even if a panic elsewhere poisoned the lock: entries are plain values.
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Chunk;
    use crate::store::{EmbeddedStore, SparseVector, StoredChunk};

    fn stored(document: &str, tokens: &[u32]) -> StoredChunk {
        StoredChunk {
            chunk: Chunk {
                document_id: document.into(),
                document_name: format!("{document}.md"),
                title: document.into(),
                chunk_index: 0,
                heading_path: vec![],
                text: document.into(),
                metadata: Default::default(),
            },
            dense: vec![1.0, 0.0],
            keyword: SparseVector {
                indices: tokens.to_vec(),
                values: vec![1.0; tokens.len()],
            },
        }
    }

    #[tokio::test]
    async fn a_token_is_asked_of_the_store_once_within_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::new(dir.path());
        store.create_kb("kb", 2).await.unwrap();
        store
            .replace_document("kb", "a", 1, vec![stored("a", &[1, 2])])
            .await
            .unwrap();
        store
            .replace_document("kb", "b", 1, vec![stored("b", &[2])])
            .await
            .unwrap();
        let cache = IdfCache::default();
        let first = cache.idf(&store, "kb", &[1, 2, 3]).await.unwrap();
        assert!(first[&1] > first[&2], "{first:?}");
        assert!(!first.contains_key(&3));

        // A new chunk changes the store's figures, but the cached ones are reused...
        store
            .replace_document("kb", "c", 1, vec![stored("c", &[1, 3])])
            .await
            .unwrap();
        assert_eq!(cache.idf(&store, "kb", &[1, 2, 3]).await.unwrap(), first);
        let fresh = store.keyword_idf("kb", &[1]).await.unwrap();
        assert!(fresh[&1] < first[&1], "{fresh:?} {first:?}");
        // ...and never for another knowledge base.
        store.create_kb("other", 2).await.unwrap();
        assert!(cache.idf(&store, "other", &[1]).await.unwrap().is_empty());
    }
}
