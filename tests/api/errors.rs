//! Bad input gets the error codes of the REST contract, and nothing else is lost.

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn unknown_knowledge_base_is_404_everywhere() {
    let server = TestServer::spawn().await;
    let expected = json!({ "error": { "code": "kb_not_found",
        "message": "knowledge base 'nope' does not exist" } });
    let (status, body) = server.get("/api/kbs/nope").await;
    assert_eq!((status, &body), (404, &expected));
    let (status, body) = server.get("/api/kbs/nope/documents").await;
    assert_eq!((status, &body), (404, &expected));
    let (status, body) = server
        .post_json("/api/kbs/nope/search", &json!({ "query": "x" }))
        .await;
    assert_eq!((status, &body), (404, &expected));
    let (status, body) = server
        .upload("nope", vec![("a.md".into(), b"# a".to_vec())])
        .await;
    assert_eq!((status, &body), (404, &expected));
}

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    let (status, body) = server
        .post_raw(
            "/api/kbs/kb/search",
            "application/json",
            "{\"query\": \"x\"",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_json");
    let (status, body) = server
        .post_raw("/api/kbs", "application/json", "not json")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_json");
    // Valid JSON of the wrong shape is an invalid request, not invalid JSON.
    let (status, body) = server
        .post_json("/api/kbs/kb/search", &json!({ "q": "x" }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn search_parameters_are_validated() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    for (body, needle) in [
        (json!({ "query": "  " }), "empty"),
        (json!({ "query": "x", "top_k": 0 }), "top_k"),
        (json!({ "query": "x", "top_k": 100000 }), "top_k"),
        (
            json!({ "query": "x", "score_threshold": 1.5 }),
            "score_threshold",
        ),
    ] {
        let (status, response) = server.post_json("/api/kbs/kb/search", &body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(response["error"]["code"], "invalid_request");
        assert!(
            response["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{response}"
        );
    }
}

#[tokio::test]
async fn unsupported_and_empty_uploads_fail_alone() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;

    let (status, body) = server
        .upload(
            "kb",
            vec![("photo.png".into(), b"\x89PNG\r\n\x1a\n....".to_vec())],
        )
        .await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_format");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("png"),
        "{body}"
    );

    let (status, body) = server
        .upload("kb", vec![("empty.md".into(), Vec::new())])
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "empty_file");

    // In a mixed upload, the good file is accepted and the bad ones are reported alone.
    let (status, body) = server
        .upload(
            "kb",
            vec![
                (
                    "good.md".into(),
                    "# 退款规则\n\n七天内无理由退款。".as_bytes().to_vec(),
                ),
                ("bad.exe".into(), b"\x7fELF\x02\x01".to_vec()),
                ("empty.txt".into(), Vec::new()),
            ],
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let docs = body["documents"].as_array().unwrap();
    assert_eq!(docs[0]["status"], "queued");
    assert_eq!(docs[1]["status"], "failed");
    assert_eq!(docs[1]["error_code"], "unsupported_format");
    assert_eq!(docs[2]["status"], "failed");
    assert_eq!(docs[2]["error_code"], "empty_file");

    let documents = server.wait_idle("kb").await;
    let good = documents.iter().find(|d| d["name"] == "good.md").unwrap();
    assert_eq!(good["status"], "ready", "{good}");
    let bad = documents.iter().find(|d| d["name"] == "bad.exe").unwrap();
    assert_eq!(bad["status"], "failed");
    assert!(
        bad["error"].as_str().unwrap().contains("unsupported"),
        "{bad}"
    );
    let hits = server.search("kb", "退款", 5).await;
    assert_eq!(hits[0]["document_name"], "good.md");
}
