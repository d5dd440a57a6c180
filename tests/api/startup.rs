//! Start-up: clear errors (never panics) when the model or runtime is missing, and the embedder
//! plumbing proven on the tiny random-weight fixture model.

use std::path::{Path, PathBuf};

use lore::config::Config;
use lore::embed::Embedder;
use lore::kb::KnowledgeBase;

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/tiny-e5")
}

fn config_with(adjust: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::load(Some(Path::new("/dev/null"))).expect("config");
    adjust(&mut config);
    config
}

#[tokio::test]
async fn a_missing_model_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = config_with(|c| {
        c.embedding.model_dir = Some(empty.path().to_path_buf());
        c.data_dir = data.path().to_path_buf();
    });
    let err = KnowledgeBase::open(config)
        .await
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        err.contains("model.onnx") && err.contains("scripts/setup-models"),
        "{err}"
    );
}

#[test]
fn a_missing_runtime_library_is_a_clear_error() {
    let config = config_with(|c| {
        c.embedding.model_dir = Some(tiny_model());
        c.embedding.onnxruntime = Some(PathBuf::from("/nonexistent/libonnxruntime.so"));
    });
    let err = Embedder::load(&config).expect_err("must fail").to_string();
    assert!(
        err.contains("/nonexistent/libonnxruntime.so") && err.contains("setup-models"),
        "{err}"
    );
}

#[tokio::test]
async fn the_tiny_model_embeds_in_order_with_prefixes() {
    let config = config_with(|c| c.embedding.model_dir = Some(tiny_model()));
    let embedder = Embedder::load(&config).expect("tiny model loads");
    let dimension = embedder.dimension();
    assert!(
        dimension > 0 && dimension < 384,
        "tiny model dimension {dimension}"
    );

    // Lengths differ so batching by length reorders them; the result must be in input order.
    let passages: Vec<String> = [
        "短",
        "一段稍微长一点的中文文本。",
        "a much longer English passage with many words in it",
        "中",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let together = embedder.embed_passages(passages.clone()).await.unwrap();
    assert_eq!(together.len(), passages.len());
    for (passage, vector) in passages.iter().zip(&together) {
        let alone = embedder
            .embed_passages(vec![passage.clone()])
            .await
            .unwrap()
            .remove(0);
        assert_eq!(vector.len(), dimension);
        let cosine: f32 = vector.iter().zip(&alone).map(|(a, b)| a * b).sum();
        assert!(
            cosine > 0.999,
            "{passage}: batched and single embeddings differ ({cosine})"
        );
    }
    // The query prefix is applied: a query and a passage of the same text differ.
    let query = embedder.embed_query("短").await.unwrap();
    assert_ne!(query, together[0]);
}
