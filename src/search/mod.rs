//! The retrieval half of hybrid search that is the same for every store: keyword vectors
//! (BM25 over Chinese-aware tokens) and fusion of dense and keyword scores into one calibrated
//! relevance in [0, 1], with sentence evidence weighed in.

pub mod evidence;
pub mod filter;
pub mod fusion;
pub mod idf;
pub mod keyword;

pub use evidence::QuestionTerms;
pub use filter::MetadataCondition;
pub use fusion::{Calibration, Fused, Ranking, fuse};
pub use idf::IdfCache;
pub use keyword::Keywords;
