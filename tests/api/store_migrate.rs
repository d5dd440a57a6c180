//! `lore migrate` both ways with the real model and real documents: embedded -> Qdrant (the
//! in-process gRPC endpoint over Qdrant Edge, or a real server with `QDRANT_URL`) in place, then
//! Qdrant -> embedded into another data directory through the `lore` binary; the same searches
//! return the same records (content, document, chunk, score) at every step.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lore::config::{Config, StorageBackend};
use lore::migrate::{MigrateArgs, run};
use serde_json::{Value, json};

use crate::common::qdrant_emulator::QdrantTarget;
use crate::common::{TestServer, md_zh_files};

const KB: &str = "mig";

/// (query, filter) pairs; each result is compared whole.
fn searches() -> Vec<Value> {
    vec![
        json!({ "query": "如何测试召回效果", "top_k": 5 }),
        json!({ "query": "知识库请求频率限制是多少", "top_k": 5 }),
        json!({ "query": "个人账号管理 修改邮箱", "top_k": 3 }),
        json!({ "query": "导入文本数据", "top_k": 5, "filter": { "conditions": [
            { "name": "team", "comparison_operator": "is", "value": "客服" } ] } }),
    ]
}

/// Records reduced to what must not change; scores rounded to absorb float printing.
async fn results(server: &TestServer) -> Vec<Vec<(String, String, u64, i64)>> {
    let mut all = Vec::new();
    for search in searches() {
        let (status, body) = server
            .post_json(&format!("/api/kbs/{KB}/search"), &search)
            .await;
        assert_eq!(status, 200, "{body}");
        let records = body["records"].as_array().cloned().unwrap_or_default();
        all.push(
            records
                .iter()
                .map(|r| {
                    (
                        r["content"].as_str().unwrap_or_default().to_owned(),
                        r["document_id"].as_str().unwrap_or_default().to_owned(),
                        r["chunk_index"].as_u64().unwrap_or(u64::MAX),
                        (r["score"].as_f64().unwrap_or(-1.0) * 1e4).round() as i64,
                    )
                })
                .collect(),
        );
    }
    all
}

fn on_qdrant(config: &mut Config, data_dir: &Path, qdrant: &QdrantTarget) {
    config.data_dir = data_dir.to_path_buf();
    qdrant.configure(config);
}

#[tokio::test]
async fn migrate_both_ways_keeps_search_results() {
    let first_dir = tempfile::tempdir().expect("temp dir");
    let first: PathBuf = first_dir.path().to_path_buf();
    let dir = first.clone();
    let server = TestServer::spawn_with(move |c| c.data_dir = dir).await;
    server.create_kb(KB).await;
    let files: Vec<PathBuf> = md_zh_files()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("cloud__knowledge__test-retrieval")
                || name.starts_with("cloud__knowledge__knowledge-request-rate-limit")
                || name.starts_with("selfhost__workspace__personal-account-management")
        })
        .collect();
    assert_eq!(files.len(), 3);
    let (status, body) = server.upload_paths(KB, &files[..2]).await;
    assert_eq!(status, 202, "{body}");
    let third = vec![(
        "导入文本.md".to_owned(),
        std::fs::read(
            md_zh_files()
                .into_iter()
                .find(|p| {
                    p.to_string_lossy()
                        .contains("cloud__knowledge__create-knowledge__import-text-data__readme")
                })
                .expect("fixture"),
        )
        .unwrap(),
    )];
    let (status, body) = server
        .upload_with(KB, third, Some(json!({ "team": "客服" })))
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = server.upload_paths(KB, &files[2..]).await;
    assert_eq!(status, 202, "{body}");
    let documents = server.wait_idle(KB).await;
    assert!(
        documents.iter().all(|d| d["status"] == "ready"),
        "{documents:?}"
    );
    let before = results(&server).await;
    assert!(before.iter().all(|r| !r.is_empty()), "{before:?}");
    drop(server);

    // Embedded -> Qdrant, in place (the catalog stays where it is).
    let qdrant = QdrantTarget::start("migrate").await;
    let mut config = Config::load(Some(Path::new("/dev/null"))).expect("config");
    on_qdrant(&mut config, &first, &qdrant);
    config.storage.backend = StorageBackend::Embedded;
    let deadline = Instant::now() + Duration::from_secs(120);
    let copied = loop {
        let args = MigrateArgs {
            to: StorageBackend::Qdrant,
            kbs: Vec::new(),
            to_data_dir: None,
        };
        match run(config.clone(), args).await {
            Ok(copied) => break copied,
            // The stopped server's worker may still hold the data directory for a moment.
            Err(err) if err.to_string().contains("in use") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("migrate to qdrant: {err:#}"),
        }
    };
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0].kb, KB);
    assert!(copied[0].chunks >= 4, "{copied:?}");

    let server = TestServer::spawn_with(|c| on_qdrant(c, &first, &qdrant)).await;
    assert_eq!(
        results(&server).await,
        before,
        "search on Qdrant after migrating"
    );
    drop(server);

    // Qdrant -> embedded, into another data directory, through the CLI.
    let second_dir = tempfile::tempdir().expect("temp dir");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_lore"));
        command
            .arg("--config")
            .arg("/dev/null")
            .arg("--data-dir")
            .arg(&first)
            .args(["migrate", "--to", "embedded", "--kb", KB, "--to-data-dir"])
            .arg(second_dir.path())
            .env("LORE_STORAGE__BACKEND", "qdrant")
            .env("LORE_STORAGE__QDRANT__URL", &qdrant.url)
            .env("LORE_STORAGE__QDRANT__COLLECTION_PREFIX", &qdrant.prefix);
        if let Some(key) = &qdrant.key {
            command.env("LORE_STORAGE__QDRANT__API_KEY", key);
        }
        // Awaited, not blocking: the emulator serves on this test's runtime.
        let output = command.output().await.expect("lore runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                stdout.contains(&format!("{KB}: {} chunks copied", copied[0].chunks)),
                "{stdout}"
            );
            break;
        }
        assert!(
            stderr.contains("in use") && Instant::now() < deadline,
            "lore migrate --to embedded: {stderr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let dir = second_dir.path().to_path_buf();
    let server = TestServer::spawn_with(move |c| c.data_dir = dir).await;
    let documents = server.wait_idle(KB).await;
    assert_eq!(documents.len(), 4, "the catalog came along: {documents:?}");
    assert_eq!(
        results(&server).await,
        before,
        "search on embedded after migrating back"
    );
    drop(server);

    // Clean up a real server.
    let mut config = Config::load(Some(Path::new("/dev/null"))).expect("config");
    on_qdrant(&mut config, &first, &qdrant);
    let (store, _) = lore::catalog::open(&config.storage, &first.join("kbs"))
        .await
        .unwrap();
    store.drop_kb(KB).await.unwrap();
}
