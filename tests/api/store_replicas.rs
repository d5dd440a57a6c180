//! Several lore instances on one Qdrant, as behind a load balancer: each has its own data
//! directory, and they share the knowledge bases, documents and served versions through the
//! catalog kept on the server. Runs on the in-process Qdrant endpoint (real client and wire
//! protocol, Qdrant Edge behind it), or on a real server when `QDRANT_URL` is set.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::qdrant_emulator::QdrantTarget;
use crate::common::{TestServer, fixture};

const KB: &str = "faq";
const DOC: &str = "rules.txt";

/// An instance with a fresh data directory on the shared Qdrant.
async fn instance(qdrant: &QdrantTarget) -> TestServer {
    TestServer::spawn_with(|c| {
        qdrant.configure(c);
        c.storage.qdrant.catalog_refresh_ms = 200;
    })
    .await
}

/// Creates the knowledge base through `a` and waits until `b` serves it too.
async fn create_on_both(a: &TestServer, b: &TestServer) {
    a.create_kb(KB).await;
    eventually("b sees the knowledge base", || async {
        let (status, body) = b.get(&format!("/api/kbs/{KB}")).await;
        (status == 200)
            .then_some(())
            .ok_or(format!("{status} {body}"))
    })
    .await;
}

/// Passages `range` of the CMRC fixture (a title line, a passage line, a blank line each).
fn passages(range: std::ops::Range<usize>) -> String {
    let text = std::fs::read_to_string(fixture("docs/cmrc_dev_first30_utf8.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    lines[range.start * 3..range.end * 3].join("\n")
}

/// Polls `check` until it holds (the other instance's catalog refreshes every 200 ms).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match check().await {
            Ok(()) => return,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(last) => panic!("{what}: {last}"),
        }
    }
}

async fn document(server: &TestServer, id: &str) -> (u16, Value) {
    server.get(&format!("/api/kbs/{KB}/documents/{id}")).await
}

fn first_title(text: &str) -> String {
    text.lines().next().unwrap().trim().to_owned()
}

#[tokio::test]
async fn instances_on_one_qdrant_serve_the_same_knowledge_base() {
    let qdrant = QdrantTarget::start("replicas").await;
    let a = instance(&qdrant).await;
    let b = instance(&qdrant).await;
    create_on_both(&a, &b).await;
    let (status, body) = b
        .post_json("/api/kbs", &serde_json::json!({ "id": KB }))
        .await;
    assert_eq!(status, 409, "the id is taken on the shared server: {body}");
    assert_eq!(body["error"]["code"], "kb_exists");

    // Uploaded through a, served by b.
    let first = passages(0..3);
    let (status, body) = a
        .upload(KB, vec![(DOC.into(), first.clone().into_bytes())])
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["documents"][0]["id"].as_str().unwrap().to_owned();
    a.wait_idle(KB).await;
    eventually("b serves the document", || async {
        let hits = b.search(KB, &first_title(&first), 3).await;
        hits.iter()
            .any(|h| h["document_name"] == DOC)
            .then_some(())
            .ok_or(format!("{hits:?}"))
    })
    .await;

    // Replaced through b: a serves the new version only, never a mix of the two.
    let second = passages(3..6);
    let (status, body) = b
        .upload(KB, vec![(DOC.into(), second.clone().into_bytes())])
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["documents"][0]["pending_version"], 2, "{body}");
    b.wait_idle(KB).await;
    eventually("a serves the new version", || async {
        let (_, record) = document(&a, &id).await;
        (record["version"] == 2 && record["status"] == "ready")
            .then_some(())
            .ok_or(format!("{record}"))
    })
    .await;
    let texts = a.chunk_texts(KB, &id).await;
    assert!(!texts.is_empty());
    assert!(
        texts.iter().all(|t| second.contains(t.trim())),
        "a chunk of the old version is served: {texts:?}"
    );
    let old = a.search(KB, &first_title(&first), 5).await;
    assert!(
        old.iter()
            .all(|h| second.contains(h["content"].as_str().unwrap().trim())),
        "search returns the old version: {old:?}"
    );

    // Deleted through a: gone from b.
    assert_eq!(
        a.delete(&format!("/api/kbs/{KB}/documents/{id}")).await,
        204
    );
    eventually("b forgets the document", || async {
        let (status, _) = document(&b, &id).await;
        let hits = b.search(KB, &first_title(&second), 5).await;
        (status == 404 && hits.is_empty())
            .then_some(())
            .ok_or(format!("{status} {hits:?}"))
    })
    .await;

    // Deleted knowledge base: gone from both.
    assert_eq!(b.delete(&format!("/api/kbs/{KB}")).await, 204);
    eventually("a forgets the knowledge base", || async {
        let (status, _) = a.get(&format!("/api/kbs/{KB}")).await;
        (status == 404).then_some(()).ok_or(format!("{status}"))
    })
    .await;
}

/// Two uploads of one file through two instances at once: each gets its own version (the
/// record is changed compare-and-set on the server), and the newer one is served whole,
/// whichever ingestion finishes last.
#[tokio::test]
async fn simultaneous_uploads_through_two_instances_serve_one_whole_version() {
    let qdrant = QdrantTarget::start("replicas").await;
    let a = instance(&qdrant).await;
    let b = instance(&qdrant).await;
    create_on_both(&a, &b).await;

    let (from_a, from_b) = (passages(6..9), passages(9..12));
    let ((status_a, body_a), (status_b, body_b)) = tokio::join!(
        a.upload(KB, vec![(DOC.into(), from_a.clone().into_bytes())]),
        b.upload(KB, vec![(DOC.into(), from_b.clone().into_bytes())]),
    );
    assert_eq!((status_a, status_b), (202, 202), "{body_a} {body_b}");
    let version = |body: &Value| body["documents"][0]["pending_version"].as_u64().unwrap();
    let (version_a, version_b) = (version(&body_a), version(&body_b));
    assert_ne!(version_a, version_b, "two uploads got one version");
    let id = body_a["documents"][0]["id"].as_str().unwrap().to_owned();

    let newest = version_a.max(version_b);
    let expected = if version_a > version_b {
        &from_a
    } else {
        &from_b
    };
    for server in [&a, &b] {
        eventually("the newest upload is served", || async {
            let (_, record) = document(server, &id).await;
            (record["version"] == newest && record["status"] == "ready")
                .then_some(())
                .ok_or(format!("{record}"))
        })
        .await;
    }
    // Both ingestions are over (each instance ingests its own upload).
    a.wait_idle(KB).await;
    b.wait_idle(KB).await;
    let (_, record) = document(&a, &id).await;
    assert_eq!(record["version"], newest, "{record}");
    for server in [&a, &b] {
        let texts = server.chunk_texts(KB, &id).await;
        assert!(!texts.is_empty());
        assert!(
            texts.iter().all(|t| expected.contains(t.trim())),
            "the served version mixes the two uploads: {texts:?}"
        );
    }
}
