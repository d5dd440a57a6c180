//! Keys, roles, knowledge-base lists and the per-key rate, through every front door.

use lore::config::{KeyConfig, Role, Secret};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::TestServer;

const ADMIN: &str = "admin-key-0123456789abcdef";
const READER: &str = "reader-key-0123456789abcdef";
const FAQ_OPS: &str = "faq-ops-key-0123456789abcdef";

fn key(name: &str, key: &str, role: Role, kbs: Option<&[&str]>) -> KeyConfig {
    KeyConfig {
        name: name.into(),
        key: Some(Secret::new(key)),
        key_sha256: None,
        role,
        kbs: kbs.map(|k| k.iter().map(|s| (*s).to_owned()).collect()),
    }
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = server.http.request(method, server.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

async fn server() -> TestServer {
    // The reader's key is configured by digest only, as an operator would keep it in lore.toml.
    let reader_digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(READER.as_bytes()))
    };
    let server = TestServer::spawn_with(move |c| {
        c.api_key = Some(Secret::new(ADMIN));
        c.keys = vec![
            KeyConfig {
                key: None,
                key_sha256: Some(reader_digest),
                ..key("bot", "", Role::Read, Some(&["faq"]))
            },
            key("faq-ops", FAQ_OPS, Role::Admin, Some(&["faq"])),
        ];
    })
    .await;
    for kb in ["faq", "hr"] {
        let (status, body, _) = call(
            &server,
            Method::POST,
            "/api/kbs",
            Some(ADMIN),
            Some(json!({ "id": kb })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    server
}

#[tokio::test]
async fn missing_or_unknown_keys_get_401_and_the_wrong_role_or_kb_gets_403() {
    let server = server().await;
    let search = Some(json!({ "query": "退货" }));

    let (status, body, headers) = call(&server, Method::GET, "/api/kbs", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (status, body, _) = call(
        &server,
        Method::GET,
        "/api/kbs",
        Some("not-a-key-at-all-000000"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        !body.to_string().contains("not-a-key"),
        "the key is not echoed: {body}"
    );

    // The reader: reads its own knowledge base only, writes nothing.
    let (status, body, _) = call(&server, Method::GET, "/api/kbs", Some(READER), None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["kbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["faq"]);
    let (status, _, _) = call(
        &server,
        Method::POST,
        "/api/kbs/faq/search",
        Some(READER),
        search.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body, _) = call(
        &server,
        Method::POST,
        "/api/kbs/hr/search",
        Some(READER),
        search.clone(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _, _) = call(
        &server,
        Method::DELETE,
        "/api/kbs/faq/documents/x",
        Some(READER),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let upload = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"# a\n\ntext".to_vec()).file_name("a.md"),
    );
    let response = server
        .http
        .post(server.url("/api/kbs/faq/documents"))
        .bearer_auth(READER)
        .multipart(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // An admin limited to faq manages faq's documents, but not other knowledge bases, and
    // creates or deletes none.
    let (status, _, _) = call(
        &server,
        Method::DELETE,
        "/api/kbs/faq/documents/missing",
        Some(FAQ_OPS),
        None,
    )
    .await;
    assert_eq!(status, 404, "allowed through to the service");
    let (status, _, _) = call(
        &server,
        Method::DELETE,
        "/api/kbs/hr/documents/missing",
        Some(FAQ_OPS),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = call(
        &server,
        Method::POST,
        "/api/kbs",
        Some(FAQ_OPS),
        Some(json!({ "id": "new" })),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = call(&server, Method::DELETE, "/api/kbs/faq", Some(FAQ_OPS), None).await;
    assert_eq!(status, 403);
    let (status, _, _) = call(&server, Method::DELETE, "/api/kbs/hr", Some(ADMIN), None).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn openai_and_dify_honour_the_key_lists() {
    let server = server().await;
    let (status, body, _) = call(&server, Method::GET, "/v1/models", Some(READER), None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["faq"]);
    let chat = json!({ "model": "hr", "messages": [{ "role": "user", "content": "退货" }] });
    let (status, body, _) = call(
        &server,
        Method::POST,
        "/v1/chat/completions",
        Some(READER),
        Some(chat),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );

    let dify = |kb: &str| json!({ "knowledge_id": kb, "query": "退货", "retrieval_setting": { "top_k": 2, "score_threshold": 0 } });
    let (status, body, _) = call(
        &server,
        Method::POST,
        "/dify/retrieval",
        Some(READER),
        Some(dify("faq")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = call(
        &server,
        Method::POST,
        "/dify/retrieval",
        Some(READER),
        Some(dify("hr")),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_i64()),
        (403, Some(1002)),
        "{body}"
    );
    let (status, body, _) = call(
        &server,
        Method::POST,
        "/dify/retrieval",
        Some("unknown-key-00000000000"),
        Some(dify("faq")),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_i64()),
        (403, Some(1002)),
        "{body}"
    );
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_but_dify_is_never_limited() {
    let server = TestServer::spawn_with(|c| {
        c.api_key = Some(Secret::new(ADMIN));
        c.limits.requests_per_minute = 6;
        c.limits.burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let (status, body, headers) =
            call(&server, Method::GET, "/api/kbs", Some(ADMIN), None).await;
        if status == 429 {
            assert_eq!(body["error"]["code"], "rate_limited");
            retry_after = headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let wait = retry_after.expect("Retry-After");
    assert!((1..=10).contains(&wait), "{wait}");
    // Health checks and Dify are outside the limit.
    let (status, _, _) = call(&server, Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
    let body = json!({ "knowledge_id": "none", "query": "q" });
    for _ in 0..5 {
        let (status, _, _) = call(
            &server,
            Method::POST,
            "/dify/retrieval",
            Some(ADMIN),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 404);
    }
}
