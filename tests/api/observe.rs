//! What operators see: request ids, Prometheus metrics by route, liveness and readiness.

use crate::common::TestServer;

#[tokio::test]
async fn requests_carry_ids_and_metrics_count_them_by_route() {
    let server = TestServer::spawn().await;
    server.create_kb("faq").await;
    let response = server
        .http
        .get(server.url("/api/kbs/faq"))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let response = server
        .http
        .get(server.url("/api/kbs/faq"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-request-id"],
        "trace-me-42",
        "the caller's id is kept"
    );
    server
        .http
        .get(server.url("/api/kbs/nope"))
        .send()
        .await
        .unwrap();

    let response = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let count = |status: u16| -> u64 {
        let prefix = format!(
            "lore_http_requests_total{{route=\"/api/kbs/{{kb}}\",method=\"GET\",status=\"{status}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |n| n.parse().unwrap())
    };
    // Other tests in this binary share the registry, so counts are at least ours.
    assert!(count(200) >= 2 && count(404) >= 1, "{text}");
    assert!(text.contains("lore_http_request_duration_seconds_bucket{route=\"/api/kbs/{kb}\",method=\"GET\",le=\"+Inf\"}"));
    assert!(text.contains("# TYPE lore_ingest_queue_depth gauge"));
    assert!(
        !text.contains("/api/kbs/nope"),
        "raw paths never become labels"
    );

    for path in ["/healthz", "/readyz"] {
        assert_eq!(server.get(path).await.0, 200);
    }
}
