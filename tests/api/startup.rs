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

/// The nice value of each live thread whose name starts with `prefix` (Linux: field 19 of
/// /proc/self/task/*/stat, counted after the parenthesised name).
#[cfg(target_os = "linux")]
fn nice_values(prefix: &str) -> Vec<i64> {
    let mut values = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc")
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if let Some(nice) = after_name.split_whitespace().nth(16) {
            values.push(nice.parse().expect("nice"));
        }
    }
    values
}

/// Questions must not queue behind a bulk upload: passage workers run at a lower priority than
/// the question worker, so a question gets a core while every core embeds passages.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn passage_workers_yield_the_cores_to_questions() {
    let config = config_with(|c| {
        c.embedding.model_dir = Some(tiny_model());
        c.embedding.workers = 2;
    });
    let embedder = Embedder::load(&config).expect("tiny model loads");
    embedder
        .embed_passages(vec!["退款".into(), "refund".into()])
        .await
        .expect("embeds");
    embedder.embed_query("退款").await.expect("embeds");
    // Names are cut to 15 bytes: the question worker is "lore-embed-quer".
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let questions = nice_values("lore-embed-q");
        let passages: Vec<i64> = (0..2)
            .flat_map(|n| nice_values(&format!("lore-embed-{n}")))
            .collect();
        let lowest_passage = passages.iter().min().copied().unwrap_or(i64::MIN);
        if !questions.is_empty() && questions.iter().all(|&q| q < lowest_passage) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "question workers at nice {questions:?}, passage workers at {passages:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Index building is bulk work too: the embedded store's optimizer thread runs below the
/// priority of the thread that answers questions.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_store_builds_its_indexes_at_background_priority() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = lore::store::EmbeddedStore::new(dir.path());
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc");
    let own: i64 = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(16))
        .and_then(|n| n.parse().ok())
        .expect("own nice value");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let optimizers = nice_values("lore-optimize");
        if !optimizers.is_empty() && optimizers.iter().all(|&n| n > own) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "optimizer threads at nice {optimizers:?}, questions at {own}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
