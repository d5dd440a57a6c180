//! Load: 64 concurrent clients on loopback mixing search, answers (model stubbed by the
//! scripted server), Dify retrieval and uploads, for `LORE_LOAD_SECS` seconds (10 by default;
//! BENCHMARKS.md's figures use 30). Asserts no 5xx and no failed connection; prints latency
//! percentiles per operation and the process's resident memory as it goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;

use crate::answer::DOCS;
use crate::common::llm::{Script, ScriptedLlm};
use crate::common::{TestServer, md_zh_files};

const CLIENTS: usize = 64;

#[derive(Default)]
struct Tally {
    /// (operation, status, latency)
    calls: Vec<(&'static str, u16, Duration)>,
    failures: Vec<String>,
}

fn resident_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_mixing_every_front_door_get_no_server_errors() {
    let seconds: u64 = std::env::var("LORE_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let llm = ScriptedLlm::spawn(Script::Answer("签收之日起七日内可以退货[1]。")).await;
    let base_url = llm.base_url.clone();
    let server = TestServer::spawn_with(move |c| {
        c.llm.base_url = base_url;
        c.limits.requests_per_minute = 0;
    })
    .await;
    server.create_kb("kb").await;
    let mut files: Vec<(String, Vec<u8>)> = DOCS
        .iter()
        .map(|(n, t)| ((*n).to_owned(), t.as_bytes().to_vec()))
        .collect();
    for path in md_zh_files().into_iter().take(6) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.push((name, std::fs::read(&path).unwrap()));
    }
    server.upload("kb", files).await;
    server.wait_idle("kb").await;

    let server = Arc::new(server);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let rss_start = resident_mb();
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (server, tally) = (Arc::clone(&server), Arc::clone(&tally));
        clients.push(tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < end {
                n += 1;
                // 4 in 10 searches, 3 Dify retrievals, 2 answers, 1 upload.
                let (op, request) = match (client + n) % 10 {
                    0..=3 => (
                        "search",
                        server
                            .http
                            .post(server.url("/api/kbs/kb/search"))
                            .json(&json!({ "query": "签收后几天内可以退货？", "top_k": 5 })),
                    ),
                    4..=6 => (
                        "dify",
                        server
                            .http
                            .post(server.url("/dify/retrieval"))
                            .json(&json!({
                            "knowledge_id": "kb", "query": "如何部署 Docker Compose",
                            "retrieval_setting": { "top_k": 4, "score_threshold": 0.2 } })),
                    ),
                    7 | 8 => (
                        "answer",
                        server.http.post(server.url("/api/kbs/kb/answer")).json(
                            &json!({ "question": "签收后几天内可以退货？", "deadline_ms": 20000 }),
                        ),
                    ),
                    _ => {
                        let text =
                            format!("# 公告 {client}-{n}\n\n第 {n} 号公告：活动将于下周开始。");
                        let part = reqwest::multipart::Part::bytes(text.into_bytes())
                            .file_name(format!("notice-{client}-{}.md", n % 3));
                        (
                            "upload",
                            server
                                .http
                                .post(server.url("/api/kbs/kb/documents"))
                                .multipart(reqwest::multipart::Form::new().part("file", part)),
                        )
                    }
                };
                let sent = Instant::now();
                let outcome = request.timeout(Duration::from_secs(60)).send().await;
                let elapsed = sent.elapsed();
                let mut tally = tally.lock().await;
                match outcome {
                    Ok(response) => tally.calls.push((op, response.status().as_u16(), elapsed)),
                    Err(err) => tally.failures.push(format!("{op}: {err}")),
                }
            }
        }));
    }
    let mut peak = rss_start;
    while clients.iter().any(|c| !c.is_finished()) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(resident_mb());
    }
    let tally = tally.lock().await;
    let total = tally.calls.len();
    println!(
        "load: {CLIENTS} clients, {seconds} s, {total} requests ({:.0}/s); RSS {rss_start:.0} MB at start, peak {peak:.0} MB, {:.0} MB at end",
        total as f64 / started.elapsed().as_secs_f64(),
        resident_mb()
    );
    for op in ["search", "dify", "answer", "upload"] {
        let mut latencies: Vec<Duration> = tally
            .calls
            .iter()
            .filter(|(o, _, _)| *o == op)
            .map(|(_, _, d)| *d)
            .collect();
        latencies.sort();
        println!(
            "  {op:7} n={:5} p50={:?} p95={:?} p99={:?}",
            latencies.len(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.95),
            percentile(&latencies, 0.99)
        );
    }
    assert!(
        tally.failures.is_empty(),
        "failed requests: {:?}",
        &tally.failures[..tally.failures.len().min(5)]
    );
    let errors: Vec<_> = tally.calls.iter().filter(|(_, s, _)| *s >= 500).collect();
    assert!(errors.is_empty(), "server errors: {errors:?}");
    let unexpected: Vec<_> = tally
        .calls
        .iter()
        .filter(|(op, s, _)| !matches!((*op, *s), ("upload", 202) | (_, 200)))
        .take(5)
        .collect();
    assert!(unexpected.is_empty(), "unexpected statuses: {unexpected:?}");
    assert!(total > CLIENTS, "the clients barely ran: {total} requests");
}
