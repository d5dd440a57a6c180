//! Hybrid retrieval and metadata filters through the REST search endpoint.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::TestServer;

/// Document names of a filtered search for "会员权益".
async fn names(server: &TestServer, filter: Value) -> BTreeSet<String> {
    let (status, body) = server
        .post_json(
            "/api/kbs/kb/search",
            &json!({ "query": "会员权益", "top_k": 10, "filter": filter }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["document_name"].as_str().unwrap().to_owned())
        .collect()
}

fn one(name: &str, operator: &str, value: Value) -> Value {
    json!({ "conditions": [{ "name": name, "comparison_operator": operator, "value": value }] })
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[tokio::test]
async fn every_filter_operator_is_evaluated_in_the_store() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    let docs = [
        (
            "a.md",
            json!({ "region": "华东", "year": 2024, "date": "2024-03-08", "tag": "vip-gold" }),
        ),
        (
            "b.md",
            json!({ "region": "华南", "year": 2026, "date": "2026-01-15", "tag": "normal" }),
        ),
        ("c.md", json!({})),
    ];
    for (name, metadata) in docs {
        let text = format!("# 会员权益 {name}\n\n会员可以享受积分和生日礼等权益。");
        let (status, body) = server
            .upload_with("kb", vec![(name.into(), text.into_bytes())], Some(metadata))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    server.wait_idle("kb").await;
    assert_eq!(
        names(&server, Value::Null).await,
        set(&["a.md", "b.md", "c.md"])
    );

    let cases = [
        (
            one("region", "contains", json!("华")),
            set(&["a.md", "b.md"]),
        ),
        (
            one("region", "not contains", json!("东")),
            set(&["b.md", "c.md"]),
        ),
        (one("tag", "start with", json!("vip")), set(&["a.md"])),
        (one("tag", "end with", json!("gold")), set(&["a.md"])),
        (one("region", "is", json!("华南")), set(&["b.md"])),
        (
            one("region", "is not", json!("华南")),
            set(&["a.md", "c.md"]),
        ),
        (one("region", "empty", Value::Null), set(&["c.md"])),
        (
            one("region", "not empty", Value::Null),
            set(&["a.md", "b.md"]),
        ),
        (one("region", "in", json!(["华东", "华北"])), set(&["a.md"])),
        (
            one("region", "not in", json!(["华东"])),
            set(&["b.md", "c.md"]),
        ),
        (one("year", "=", json!(2024)), set(&["a.md"])),
        (one("year", "≠", json!(2024)), set(&["b.md", "c.md"])),
        (one("year", ">", json!(2024)), set(&["b.md"])),
        (one("year", "<", json!(2026)), set(&["a.md"])),
        (one("year", "≥", json!(2024)), set(&["a.md", "b.md"])),
        (one("year", "≤", json!("2024")), set(&["a.md"])),
        (one("date", "before", json!("2025-01-01")), set(&["a.md"])),
        (
            one("date", "after", json!("2025-01-01T00:00:00Z")),
            set(&["b.md"]),
        ),
        (one("document_name", "is", json!("c.md")), set(&["c.md"])),
        (
            one("document_name", "end with", json!("b.md")),
            set(&["b.md"]),
        ),
        (
            json!({ "logical_operator": "and", "conditions": [
                { "name": "region", "comparison_operator": "is", "value": "华东" },
                { "name": "year", "comparison_operator": "≥", "value": 2026 }] }),
            set(&[]),
        ),
        (
            json!({ "logical_operator": "or", "conditions": [
                { "name": "region", "comparison_operator": "is", "value": "华东" },
                { "name": ["year"], "comparison_operator": "≥", "value": 2026 }] }),
            set(&["a.md", "b.md"]),
        ),
        (
            json!({ "logical_operator": "or", "conditions": null }),
            set(&["a.md", "b.md", "c.md"]),
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            names(&server, filter.clone()).await,
            expected,
            "filter {filter}"
        );
    }

    let (status, body) = server
        .post_json(
            "/api/kbs/kb/search",
            &json!({ "query": "会员", "filter": one("year", "between", json!(1)) }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("between")
    );
}

/// Promotions that read alike, so only the exact name separates them.
const PROMOTIONS: [(&str, &str); 5] = [
    (
        "spring.md",
        "# 春季促销\n\n春季促销期间，会员充值满一百元赠送二十元余额，活动奖励次日到账。",
    ),
    (
        "summer.md",
        "# 夏日狂欢\n\n夏日狂欢期间，会员充值满一百元赠送十五元余额，活动奖励次日到账。",
    ),
    (
        "star.md",
        "# 星耀节\n\n星耀节期间，会员充值满一百元赠送三十元余额，活动奖励次日到账。",
    ),
    (
        "autumn.md",
        "# 金秋回馈\n\n金秋回馈期间，会员充值满一百元赠送十元余额，活动奖励次日到账。",
    ),
    (
        "refund.md",
        "# 售后政策\n\n商品签收之日起七日内，如对商品不满意，可申请无理由退货。",
    ),
];

#[tokio::test]
async fn hybrid_finds_exact_names_and_paraphrases() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    let files = PROMOTIONS
        .iter()
        .map(|(n, t)| ((*n).to_owned(), t.as_bytes().to_vec()))
        .collect();
    server.upload("kb", files).await;
    server.wait_idle("kb").await;

    // An invented event name: the model has never seen it, keywords match it exactly.
    let hits = server.search("kb", "星耀节送多少", 3).await;
    assert_eq!(hits[0]["document_name"], "star.md", "{hits:?}");

    // A paraphrase with no word in common with the policy.
    let hits = server.search("kb", "东西收到后反悔了还能退吗", 3).await;
    assert_eq!(hits[0]["document_name"], "refund.md", "{hits:?}");
}
