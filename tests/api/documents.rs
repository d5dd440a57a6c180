//! Document lifecycle: upload, ready, chunks, metadata, replace, re-upload, delete, restart.

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn uploaded_document_becomes_ready_with_chunks_and_metadata() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    let text = "# 会员权益\n\n## 积分\n\n每消费一元获得一个积分，积分可以兑换礼品。\n\n## 生日礼\n\n会员生日当月可领取一张五十元优惠券。\n";
    let (status, body) = server
        .upload_with(
            "kb",
            vec![("会员.md".into(), text.as_bytes().to_vec())],
            Some(json!({ "region": "华东", "year": 2026 })),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["documents"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["documents"][0]["status"], "queued");

    let documents = server.wait_idle("kb").await;
    assert_eq!(documents.len(), 1);
    let doc = &documents[0];
    assert_eq!(doc["status"], "ready", "{doc}");
    assert_eq!(doc["size_bytes"], text.len());
    assert_eq!(doc["sha256"].as_str().unwrap().len(), 64);
    assert!(doc["chunk_count"].as_u64().unwrap() >= 1);

    let (status, body) = server
        .get(&format!("/api/kbs/kb/documents/{id}/chunks"))
        .await;
    assert_eq!(status, 200);
    let chunks = body["chunks"].as_array().unwrap();
    assert!(
        chunks
            .iter()
            .any(|c| c["text"].as_str().unwrap().contains("五十元优惠券"))
    );
    assert_eq!(chunks[0]["title"], "会员权益");

    let hits = server.search("kb", "生日优惠券", 3).await;
    assert_eq!(hits[0]["document_id"], id.as_str());
    assert_eq!(
        hits[0]["metadata"],
        json!({ "region": "华东", "year": 2026 })
    );
    assert_eq!(hits[0]["title"], "会员权益");
}

#[tokio::test]
async fn deleting_a_document_removes_it_from_search() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    let (status, body) = server
        .upload(
            "kb",
            vec![
                (
                    "refund.md".into(),
                    "# 退款\n\n购买七天内可以无理由退款。".as_bytes().to_vec(),
                ),
                (
                    "shipping.md".into(),
                    "# 配送\n\n订单付款后四十八小时内发货。".as_bytes().to_vec(),
                ),
            ],
        )
        .await;
    assert_eq!(status, 202, "{body}");
    server.wait_idle("kb").await;
    let refund_id = body["documents"][0]["id"].as_str().unwrap().to_owned();
    let hits = server.search("kb", "怎么退款", 5).await;
    assert!(hits.iter().any(|h| h["document_name"] == "refund.md"));

    assert_eq!(
        server
            .delete(&format!("/api/kbs/kb/documents/{refund_id}"))
            .await,
        204
    );
    let hits = server.search("kb", "怎么退款", 5).await;
    assert!(!hits.is_empty());
    assert!(
        hits.iter().all(|h| h["document_name"] != "refund.md"),
        "{hits:?}"
    );
    let (status, body) = server
        .get(&format!("/api/kbs/kb/documents/{refund_id}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "document_not_found");
}

#[tokio::test]
async fn same_bytes_are_a_no_op_and_changed_bytes_replace() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    let v1 = "# 活动\n\n女神节活动奖励为一百积分。".as_bytes().to_vec();
    server
        .upload("kb", vec![("event.md".into(), v1.clone())])
        .await;
    let first = server.wait_idle("kb").await[0].clone();

    let (status, body) = server.upload("kb", vec![("event.md".into(), v1)]).await;
    assert_eq!(status, 202);
    assert_eq!(
        body["documents"][0]["status"], "ready",
        "same bytes must not re-ingest"
    );
    assert_eq!(server.wait_idle("kb").await[0], first);

    let v2 = "# 活动\n\n女神节活动奖励为三百积分。".as_bytes().to_vec();
    server.upload("kb", vec![("event.md".into(), v2)]).await;
    let documents = server.wait_idle("kb").await;
    assert_eq!(documents.len(), 1, "replacement must not add a document");
    assert_eq!(documents[0]["id"], first["id"]);
    assert_ne!(documents[0]["sha256"], first["sha256"]);
    let hits = server.search("kb", "女神节活动奖励", 5).await;
    let texts: Vec<&str> = hits
        .iter()
        .map(|h| h["content"].as_str().unwrap())
        .collect();
    assert!(texts.iter().any(|t| t.contains("三百积分")), "{texts:?}");
    assert!(
        texts.iter().all(|t| !t.contains("一百积分")),
        "old version still served: {texts:?}"
    );
}

#[tokio::test]
async fn a_restart_keeps_the_knowledge_base_searchable() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    server
        .upload(
            "kb",
            vec![(
                "hours.md".into(),
                "# 营业时间\n\n客服热线每天九点到二十一点有人接听。"
                    .as_bytes()
                    .to_vec(),
            )],
        )
        .await;
    server.wait_idle("kb").await;
    let before = server.search("kb", "客服几点上班", 3).await;

    let server = server.restart().await;
    let (_, body) = server.get("/api/kbs").await;
    assert_eq!(body["kbs"][0]["id"], "kb");
    let after = server.search("kb", "客服几点上班", 3).await;
    assert_eq!(before, after);
    assert_eq!(after[0]["document_name"], "hours.md");
}

#[tokio::test]
async fn a_restart_resumes_queued_documents() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    let files: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            (
                format!("rule{i}.md"),
                format!("# 规则{i}\n\n第{i}条规则：会员每月可以领取{i}张优惠券。").into_bytes(),
            )
        })
        .collect();
    let (status, _) = server.upload("kb", files).await;
    assert_eq!(status, 202);
    // Stop at once: most documents are still queued.
    let server = server.restart().await;
    let documents = server.wait_idle("kb").await;
    assert_eq!(documents.len(), 12);
    assert!(
        documents.iter().all(|d| d["status"] == "ready"),
        "{documents:?}"
    );
    let hits = server.search("kb", "第7条规则", 1).await;
    assert_eq!(hits[0]["document_name"], "rule7.md");
}

#[tokio::test]
async fn uploads_and_documents_beyond_the_limits_are_refused() {
    let server = TestServer::spawn_with(|c| {
        c.limits.max_upload_bytes = 4096;
        c.limits.max_document_chars = 500;
    })
    .await;
    server.create_kb("kb").await;
    let (status, body) = server
        .upload(
            "kb",
            vec![("big.txt".into(), "大".repeat(3000).into_bytes())],
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("4 KiB") && message.contains("limits.max_upload_bytes"),
        "the refusal names the limit and its setting: {message}"
    );

    let (status, _) = server
        .upload(
            "kb",
            vec![("long.txt".into(), "长文。".repeat(300).into_bytes())],
        )
        .await;
    assert_eq!(status, 202);
    let documents = server.wait_idle("kb").await;
    assert_eq!(documents[0]["status"], "failed");
    assert!(
        documents[0]["error"]
            .as_str()
            .unwrap()
            .contains("more than the limit of 500"),
        "{documents:?}"
    );
}
