//! Knowledge bases: create, list, get, delete.

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn knowledge_bases_are_created_listed_and_deleted() {
    let server = TestServer::spawn().await;
    let (status, body) = server
        .post_json("/api/kbs", &json!({ "id": "faq", "name": "常见问题" }))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], "faq");
    assert_eq!(body["name"], "常见问题");

    let (status, body) = server.post_json("/api/kbs", &json!({ "id": "faq" })).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "kb_exists");

    let (_, body) = server.get("/api/kbs").await;
    let ids: Vec<&str> = body["kbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["faq"]);

    assert_eq!(server.delete("/api/kbs/faq").await, 204);
    let (status, body) = server.get("/api/kbs/faq").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "kb_not_found");
    // The id is free again.
    server.create_kb("faq").await;
}

#[tokio::test]
async fn invalid_ids_are_refused() {
    let server = TestServer::spawn().await;
    let (status, body) = server
        .post_json("/api/kbs", &json!({ "id": "../etc" }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("../etc")
    );
}
