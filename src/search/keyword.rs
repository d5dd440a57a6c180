//! Keyword side of hybrid search: text to BM25 sparse vectors.
//!
//! Tokens come from Qdrant's multilingual tokenizer (charabia, which segments Chinese with a
//! jieba dictionary and splits Latin text into words), lower-cased and stemmed for English.
//! Documents carry BM25 term-frequency weights; the store multiplies in IDF at query time, so
//! adding documents never requires re-encoding the old ones.

use std::sync::Arc;

use qdrant_edge::TokenizerType;
use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::external::ordered_float::NotNan;

use crate::store::SparseVector;

/// BM25 term saturation: the usual value.
const K1: f64 = 1.2;
/// BM25 length normalisation: the usual value.
const B: f64 = 0.75;
/// Average chunk length in tokens of this tokenizer (a 300-model-token chunk of Chinese is
/// about this many words); BM25 only uses it to normalise lengths.
const AVERAGE_CHUNK_TOKENS: f64 = 160.0;

/// Turns text into keyword vectors. Cheap to clone.
#[derive(Clone)]
pub struct Keywords {
    bm25: Arc<EdgeBm25>,
}

impl Keywords {
    pub fn new() -> anyhow::Result<Self> {
        let not_nan = |v: f64| NotNan::new(v).map_err(|e| anyhow::anyhow!("{e}"));
        let config = EdgeBm25Config {
            k: not_nan(K1)?,
            b: not_nan(B)?,
            avg_len: not_nan(AVERAGE_CHUNK_TOKENS)?,
            tokenizer: TokenizerType::Multilingual,
            ..EdgeBm25Config::default()
        };
        let bm25 = EdgeBm25::new(config).map_err(|e| anyhow::anyhow!("cannot set up BM25: {e}"))?;
        Ok(Self {
            bm25: Arc::new(bm25),
        })
    }

    /// The vector stored with a chunk.
    pub fn document(&self, text: &str) -> SparseVector {
        self.bm25.embed_document(text).into()
    }

    /// The vector a question is matched with.
    pub fn query(&self, text: &str) -> SparseVector {
        self.bm25.embed_query(text).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_words_and_english_terms_become_matching_tokens() {
        let keywords = Keywords::new().unwrap();
        let doc = keywords.document("女神节活动期间，充值满100元赠送代金券。Docker Compose 部署");
        for query in ["女神节", "代金券", "docker", "compose"] {
            let q = keywords.query(query);
            assert!(!q.indices.is_empty(), "no token for {query}");
            assert!(
                q.indices.iter().all(|i| doc.indices.contains(i)),
                "{query} does not match the document's tokens"
            );
        }
        let unrelated = keywords.query("退款");
        assert!(unrelated.indices.iter().all(|i| !doc.indices.contains(i)));
    }
}
