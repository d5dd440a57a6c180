//! The Python baselines of `lore bench` (`scripts/bench_baseline.py`, run with the venv that
//! `scripts/setup-models` builds), on the same data in the same run: the same ONNX model driven
//! from Python's onnxruntime, and keyword search with rank_bm25.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::config::Config;

/// Embedding speed of the same model from Python (one thread, batch 1).
#[derive(Deserialize)]
pub struct EmbeddingFigures {
    pub tokens_per_s: f64,
    pub query_p50_ms: f64,
}

/// rank_bm25 over as many documents as lore's store holds.
#[derive(Deserialize)]
pub struct KeywordFigures {
    pub build_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Peak resident memory of the Python process.
    pub peak_mb: f64,
}

pub fn embedding(
    config: &Config,
    texts: &[String],
    questions: &[String],
) -> anyhow::Result<EmbeddingFigures> {
    let job = json!({
        "mode": "embedding",
        "model_dir": config.model_dir(),
        "texts": texts,
        "queries": questions,
    });
    run(config, &job)
}

/// `texts` repeated up to `documents` documents, as the store holds them.
pub fn keyword(
    config: &Config,
    texts: &[String],
    documents: usize,
    questions: &[String],
) -> anyhow::Result<KeywordFigures> {
    let job = json!({
        "mode": "keyword",
        "texts": texts,
        "documents": documents,
        "queries": questions,
    });
    run(config, &job)
}

fn run<T: DeserializeOwned>(config: &Config, job: &serde_json::Value) -> anyhow::Result<T> {
    let python = config.home.join("venv/bin/python");
    anyhow::ensure!(
        python.is_file(),
        "{} is missing (scripts/setup-models)",
        python.display()
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_baseline.py");
    let file = tempfile::NamedTempFile::new()?;
    serde_json::to_writer(&file, job)?;
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(file.path())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}
