//! Search quality and contract with the real model over real documents.

use std::collections::HashSet;

use serde_json::json;

use crate::common::{TestServer, md_zh_files, zh_questions};

#[tokio::test]
async fn chinese_questions_find_their_source_in_the_top_five() {
    let server = TestServer::spawn().await;
    server.create_kb("dify").await;
    let files = md_zh_files();
    assert_eq!(files.len(), 27);
    let (status, body) = server.upload_paths("dify", &files).await;
    assert_eq!(status, 202, "{body}");
    let documents = server.wait_idle("dify").await;
    assert!(
        documents.iter().all(|d| d["status"] == "ready"),
        "{documents:?}"
    );

    let questions = zh_questions("answerable");
    assert!(questions.len() >= 20);
    let mut found = 0;
    let mut misses = Vec::new();
    for q in &questions {
        let question = q["question"].as_str().unwrap();
        let sources: HashSet<&str> = q["source_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let hits = server.search("dify", question, 5).await;
        assert!(
            hits.iter()
                .all(|h| (0.0..=1.0).contains(&h["score"].as_f64().unwrap()))
        );
        assert!(
            hits.windows(2)
                .all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64())
        );
        if hits
            .iter()
            .any(|h| sources.contains(h["document_name"].as_str().unwrap()))
        {
            found += 1;
        } else {
            misses.push(question);
        }
    }
    let rate = found as f64 / questions.len() as f64;
    eprintln!(
        "top-5 source rate: {found}/{} = {rate:.3}; misses: {misses:?}",
        questions.len()
    );
    assert!(
        rate >= 0.9,
        "top-5 source rate {rate:.3} < 0.9; misses: {misses:?}"
    );
}

#[tokio::test]
async fn score_threshold_filters_and_top_k_limits() {
    let server = TestServer::spawn().await;
    server.create_kb("kb").await;
    let files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| {
            (
                format!("doc{i}.md"),
                format!("# 规则{i}\n\n第{i}条：会员每月可以领取{i}张优惠券。").into_bytes(),
            )
        })
        .collect();
    server.upload("kb", files).await;
    server.wait_idle("kb").await;

    let all = server.search("kb", "会员优惠券", 8).await;
    assert_eq!(all.len(), 8);
    assert_eq!(server.search("kb", "会员优惠券", 3).await.len(), 3);
    let cut = all[3]["score"].as_f64().unwrap();
    let (status, body) = server
        .post_json(
            "/api/kbs/kb/search",
            &json!({ "query": "会员优惠券", "top_k": 8, "score_threshold": cut }),
        )
        .await;
    assert_eq!(status, 200);
    let kept = body["records"].as_array().unwrap();
    let expected = all
        .iter()
        .filter(|r| r["score"].as_f64().unwrap() >= cut)
        .count();
    assert!(expected >= 4);
    assert_eq!(kept.len(), expected, "{kept:?}");
    assert!(kept.iter().all(|r| r["score"].as_f64().unwrap() >= cut));
}
