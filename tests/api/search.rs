//! Search quality and contract with the real model over real documents.

use std::collections::HashSet;

use serde_json::json;

use crate::common::{TestServer, md_zh_files, zh_questions};

/// The development set end to end: answerable questions find their source, and every question
/// gets the verdict its type expects, at the rates the answers issue sets (decided without the
/// chat model: the model here is a closed port, so an `answer` verdict ends in the extractive
/// fallback).
#[tokio::test]
async fn dev_set_sources_are_found_and_verdicts_meet_their_targets() {
    let server = TestServer::spawn_with(|c| {
        c.llm.base_url = "http://127.0.0.1:9/v1".into();
        c.llm.fallbacks.clear();
    })
    .await;
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

    for (kind, expected, target) in [
        ("answerable", "answer", 0.90),
        ("unanswerable", "not_found", 0.85),
        ("ambiguous", "clarify", 0.70),
    ] {
        let questions = zh_questions(kind);
        assert!(questions.len() >= 5, "{kind}");
        let mut wrong = Vec::new();
        for q in &questions {
            let question = q["question"].as_str().unwrap();
            let (status, reply) = server
                .post_json(
                    "/api/kbs/dify/answer",
                    &json!({ "question": question, "deadline_ms": 2000 }),
                )
                .await;
            assert_eq!(status, 200, "{reply}");
            if reply["verdict"] != expected {
                wrong.push(format!("{question} -> {}", reply["verdict"]));
            }
        }
        let rate = 1.0 - wrong.len() as f64 / questions.len() as f64;
        eprintln!("{kind} -> {expected}: {rate:.3}; wrong: {wrong:?}");
        assert!(
            rate >= target,
            "{kind} -> {expected}: {rate:.3} < {target}; wrong: {wrong:?}"
        );
    }
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
