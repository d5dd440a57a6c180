//! Dify's external knowledge API, replayed the way Dify's backend calls it.

use serde_json::{Value, json};

use crate::common::TestServer;

const KEY: &str = "dify-test-key-0123456789";

async fn dify_server() -> TestServer {
    let server = TestServer::spawn_with(|c| c.api_key = Some(lore::config::Secret::new(KEY))).await;
    server.create_kb("faq").await;
    let docs = [
        (
            "refund.md",
            "# 售后政策\n\n商品签收之日起七日内，可申请无理由退货。",
            json!({ "region": "华东", "year": 2026, "date": "2026-01-10" }),
        ),
        (
            "events.md",
            "# 女神节活动\n\n女神节活动期间充值满一百元送三十元。",
            json!({ "region": "华南", "year": 2025, "date": "2025-03-08T09:00:00Z" }),
        ),
    ];
    for (name, text, metadata) in docs {
        let (status, body) = server
            .upload_with(
                "faq",
                vec![(name.into(), text.as_bytes().to_vec())],
                Some(metadata),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    server.wait_idle("faq").await;
    server
}

/// POSTs like Dify's backend: JSON body, bearer key.
async fn call(server: &TestServer, auth: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let mut request = server.http.post(server.url("/dify/retrieval"));
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn bearer() -> String {
    format!("Bearer {KEY}")
}

async fn retrieve(server: &TestServer, body: Value) -> Vec<Value> {
    let (status, response) = call(server, Some(&bearer()), Some(&body.to_string())).await;
    assert_eq!(status, 200, "{response}");
    response["records"].as_array().unwrap().clone()
}

#[tokio::test]
async fn auth_and_errors_follow_difys_contract() {
    let server = dify_server().await;
    let body = json!({ "knowledge_id": "faq", "query": "退货", "retrieval_setting": { "top_k": 2, "score_threshold": 0.0 } }).to_string();

    let (status, response) = call(&server, None, Some(&body)).await;
    assert_eq!(
        (status, response),
        (
            403,
            json!({ "error_code": 1002, "error_msg": "Authorization header is missing" })
        )
    );
    let (status, response) = call(&server, Some(&format!("Basic {KEY}")), Some(&body)).await;
    assert_eq!(
        (status, response),
        (
            403,
            json!({ "error_code": 1001, "error_msg": "Invalid Authorization header format. Expected 'Bearer <api-key>' format." })
        )
    );
    let (status, response) = call(&server, Some("Bearer wrong-key"), Some(&body)).await;
    assert_eq!(
        (status, response),
        (
            403,
            json!({ "error_code": 1002, "error_msg": "Authorization failed" })
        )
    );

    // Dify's registration probe: a POST with no body at all.
    let (status, response) = call(&server, Some(&bearer()), None).await;
    assert_eq!(
        (status, response),
        (
            400,
            json!({ "error_code": 400, "error_msg": "the request body is empty" })
        )
    );
    let (status, response) = call(&server, Some(&bearer()), Some("{not json")).await;
    assert_eq!(status, 400);
    assert_eq!(response["error_code"], 400);

    let unknown = json!({ "knowledge_id": "nope", "query": "x", "retrieval_setting": { "top_k": 2, "score_threshold": 0.5 } });
    let (status, response) = call(&server, Some(&bearer()), Some(&unknown.to_string())).await;
    assert_eq!(
        (status, response),
        (
            404,
            json!({ "error_code": 2001, "error_msg": "The knowledge does not exist" })
        )
    );

    // With a key configured, the REST API wants it too.
    let response = server
        .http
        .get(server.url("/api/kbs"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn records_have_difys_shape_and_honour_top_k_and_threshold() {
    let server = dify_server().await;
    // top_k null -> the configured default; score_threshold 0.0 -> disabled.
    let records = retrieve(
        &server,
        json!({ "knowledge_id": "faq", "query": "签收后多久可以退货",
        "retrieval_setting": { "top_k": null, "score_threshold": 0.0 } }),
    )
    .await;
    assert_eq!(records.len(), 2);
    let first = &records[0];
    assert_eq!(first["title"], "refund.md");
    assert_eq!(
        first["content"],
        "# 售后政策\n\n商品签收之日起七日内，可申请无理由退货。"
    );
    let metadata = first["metadata"].as_object().unwrap();
    assert_eq!(metadata["document_name"], "refund.md");
    assert_eq!(metadata["chunk_index"], 0);
    assert_eq!(metadata["region"], "华东");
    assert_eq!(metadata["year"], 2026);
    assert!(metadata["document_id"].is_string());
    assert!(
        records
            .windows(2)
            .all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64())
    );
    assert!(
        records
            .iter()
            .all(|r| (0.0..=1.0).contains(&r["score"].as_f64().unwrap()))
    );

    let top1 = retrieve(
        &server,
        json!({ "knowledge_id": "faq", "query": "签收后多久可以退货",
        "retrieval_setting": { "top_k": 1, "score_threshold": 0.0 } }),
    )
    .await;
    assert_eq!(top1.len(), 1);
    let threshold = records[0]["score"].as_f64().unwrap() - 1e-4;
    let strict = retrieve(
        &server,
        json!({ "knowledge_id": "faq", "query": "签收后多久可以退货",
        "retrieval_setting": { "top_k": 5, "score_threshold": threshold } }),
    )
    .await;
    assert_eq!(strict.len(), 1, "{strict:?}");
    // A high threshold that nothing passes: 200 with no records, never an error.
    let none = retrieve(
        &server,
        json!({ "knowledge_id": "faq", "query": "完全无关的问题：火星的天气",
        "retrieval_setting": { "top_k": 5, "score_threshold": 0.8 } }),
    )
    .await;
    assert!(none.is_empty() || none.iter().all(|r| r["score"].as_f64().unwrap() >= 0.8));
    // A Chinese query with escaped quotes.
    let quoted = r#"{"knowledge_id":"faq","query":"\"女神节\"活动送多少？","retrieval_setting":{"top_k":1,"score_threshold":0.0}}"#;
    let (status, response) = call(&server, Some(&bearer()), Some(quoted)).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["records"][0]["title"], "events.md");
}

#[tokio::test]
async fn metadata_conditions_in_every_shape_dify_sends() {
    let server = dify_server().await;
    let names = |records: Vec<Value>| -> Vec<String> {
        let mut names: Vec<String> = records
            .iter()
            .map(|r| r["title"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let base = |condition: Value| {
        let mut body = json!({ "knowledge_id": "faq", "query": "活动和退货",
            "retrieval_setting": { "top_k": 5, "score_threshold": 0.0 } });
        if !condition.is_null() || condition == json!("null") {
            body["metadata_condition"] = condition;
        }
        body
    };
    let all = vec!["events.md".to_owned(), "refund.md".to_owned()];
    assert_eq!(
        names(retrieve(&server, base(Value::Null)).await),
        all,
        "absent"
    );
    let mut explicit_null = base(Value::Null);
    explicit_null["metadata_condition"] = Value::Null;
    assert_eq!(names(retrieve(&server, explicit_null).await), all, "null");
    assert_eq!(
        names(
            retrieve(
                &server,
                base(json!({ "logical_operator": "and", "conditions": null }))
            )
            .await
        ),
        all
    );
    let by_region = json!({ "logical_operator": "and", "conditions": [
        { "name": ["region"], "comparison_operator": "is", "value": "华南" }] });
    assert_eq!(
        names(retrieve(&server, base(by_region)).await),
        ["events.md"]
    );
    let either = json!({ "logical_operator": "or", "conditions": [
        { "name": "region", "comparison_operator": "is", "value": "华南" },
        { "name": "year", "comparison_operator": "≥", "value": 2026 }] });
    assert_eq!(names(retrieve(&server, base(either)).await), all);
    let both = json!({ "logical_operator": "and", "conditions": [
        { "name": "region", "comparison_operator": "is", "value": "华南" },
        { "name": "year", "comparison_operator": "≥", "value": 2026 }] });
    assert!(
        retrieve(&server, base(both)).await.is_empty(),
        "a filter that matches nothing returns nothing"
    );

    // All 18 operators, alone, with "and" and with "or", the way Dify sends them.
    let refund = vec!["refund.md".to_owned()];
    let events = vec!["events.md".to_owned()];
    let none: Vec<String> = Vec::new();
    let cases = [
        ("region", "contains", json!("东"), &refund),
        ("region", "not contains", json!("东"), &events),
        ("document_name", "start with", json!("ref"), &refund),
        ("document_name", "end with", json!("nts.md"), &events),
        ("region", "is", json!("华东"), &refund),
        ("region", "is not", json!("华东"), &events),
        ("region", "empty", Value::Null, &none),
        ("region", "not empty", Value::Null, &all),
        ("region", "in", json!(["华南", "西北"]), &events),
        ("region", "not in", json!(["华南"]), &refund),
        ("year", "=", json!(2025), &events),
        ("year", "≠", json!(2025), &refund),
        ("year", ">", json!(2025), &refund),
        ("year", "<", json!(2026), &events),
        ("year", "≥", json!(2025), &all),
        ("year", "≤", json!(2025), &events),
        ("date", "before", json!("2026-01-01"), &events),
        ("date", "after", json!("2026-01-01T00:00:00+08:00"), &refund),
    ];
    for (name, operator, value, expected) in cases {
        for logical in ["and", "or"] {
            let condition = json!({ "logical_operator": logical, "conditions": [
                { "name": name, "comparison_operator": operator, "value": value }] });
            let found = names(retrieve(&server, base(condition)).await);
            assert_eq!(&found, expected, "{name} {operator} {value} ({logical})");
        }
    }
}
