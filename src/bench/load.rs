//! Concurrent clients of `/dify/retrieval`, for latency under load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{KB, Query, Spread};
use crate::kb::KnowledgeBase;

pub struct LoadFigures {
    pub latency: Spread,
    pub throughput: f64,
    pub errors: usize,
}

/// Serves the knowledge base on a loopback port and sends Dify retrieval requests from
/// concurrent clients (bounded: `clients` x `requests`).
pub async fn dify_load(
    service: Arc<KnowledgeBase>,
    queries: &[Query],
    clients: usize,
    requests: usize,
) -> anyhow::Result<LoadFigures> {
    let key = service
        .config()
        .api_key
        .as_ref()
        .map(|k| k.expose().to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/dify/retrieval", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(listener, service, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let questions: Arc<Vec<String>> =
        Arc::new(queries.iter().map(|q| q.question.clone()).collect());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, url, key, questions) = (
            http.clone(),
            url.clone(),
            key.clone(),
            Arc::clone(&questions),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests);
            let mut errors = 0;
            for i in 0..requests {
                let question = &questions[(client * requests + i) % questions.len()];
                let body = json!({ "knowledge_id": KB, "query": question,
                    "retrieval_setting": { "top_k": 5, "score_threshold": 0.0 } });
                let mut request = http.post(&url).json(&body);
                if let Some(key) = &key {
                    request = request.bearer_auth(key);
                }
                let sent = Instant::now();
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await?;
        latencies.append(&mut l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = server.await;
    latencies.sort_by(f64::total_cmp);
    Ok(LoadFigures {
        latency: Spread::of(&latencies),
        throughput: latencies.len() as f64 / seconds,
        errors,
    })
}
