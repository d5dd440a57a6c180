//! Prometheus metrics, kept in one process-wide registry so that any component can count
//! without threading a handle through every constructor (as the `metrics` crate does with its
//! global recorder). `GET /metrics` renders them in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: a search takes milliseconds, an answer
/// with a model seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Registry {
    /// (route, method, status) -> requests.
    requests: BTreeMap<(String, String, u16), u64>,
    /// (route, method) -> latency.
    latency: BTreeMap<(String, String), Histogram>,
    /// Chat model calls by outcome ("ok", "timeout", "error", "skipped").
    model_calls: BTreeMap<&'static str, u64>,
    /// Answers by verdict and whether the extractive fallback stood in.
    answers: BTreeMap<(&'static str, &'static str), u64>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One HTTP request, by its route template (`/api/kbs/{kb}/search`, never the raw path, so
/// the label set stays small).
pub fn record_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let mut r = registry();
    *r.requests
        .entry((route.to_owned(), method.to_owned(), status))
        .or_default() += 1;
    let h = r
        .latency
        .entry((route.to_owned(), method.to_owned()))
        .or_default();
    let seconds = elapsed.as_secs_f64();
    for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
        if seconds <= bound {
            *count += 1;
        }
    }
    h.count += 1;
    h.sum += seconds;
}

/// One call to a chat model.
pub fn record_model_call(outcome: &'static str) {
    *registry().model_calls.entry(outcome).or_default() += 1;
}

/// One answer, by verdict ("answer", "not_found", "clarify") and fallback ("none", "extractive").
pub fn record_answer(verdict: &'static str, fallback: Option<&'static str>) {
    *registry()
        .answers
        .entry((verdict, fallback.unwrap_or("none")))
        .or_default() += 1;
}

/// The text exposition, with gauges read at scrape time passed in.
pub fn render(queue_depth: usize) -> String {
    let r = registry();
    let mut out = String::new();
    out.push_str("# HELP lore_http_requests_total HTTP requests by route, method and status.\n");
    out.push_str("# TYPE lore_http_requests_total counter\n");
    for ((route, method, status), n) in &r.requests {
        let _ = writeln!(
            out,
            "lore_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
            escape(route)
        );
    }
    out.push_str("# HELP lore_http_request_duration_seconds HTTP request latency by route.\n");
    out.push_str("# TYPE lore_http_request_duration_seconds histogram\n");
    for ((route, method), h) in &r.latency {
        let labels = format!("route=\"{}\",method=\"{method}\"", escape(route));
        for (count, bound) in h.counts.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "lore_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "lore_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "lore_http_request_duration_seconds_sum{{{labels}}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "lore_http_request_duration_seconds_count{{{labels}}} {}",
            h.count
        );
    }
    out.push_str("# HELP lore_ingest_queue_depth Documents queued or being processed.\n");
    out.push_str("# TYPE lore_ingest_queue_depth gauge\n");
    let _ = writeln!(out, "lore_ingest_queue_depth {queue_depth}");
    out.push_str("# HELP lore_model_calls_total Chat model calls by outcome.\n");
    out.push_str("# TYPE lore_model_calls_total counter\n");
    for (outcome, n) in &r.model_calls {
        let _ = writeln!(out, "lore_model_calls_total{{outcome=\"{outcome}\"}} {n}");
    }
    out.push_str("# HELP lore_answers_total Answers by verdict and fallback.\n");
    out.push_str("# TYPE lore_answers_total counter\n");
    for ((verdict, fallback), n) in &r.answers {
        let _ = writeln!(
            out,
            "lore_answers_total{{verdict=\"{verdict}\",fallback=\"{fallback}\"}} {n}"
        );
    }
    out
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        record_request("/unit/{x}", "GET", 200, Duration::from_millis(7));
        record_request("/unit/{x}", "GET", 200, Duration::from_millis(700));
        let text = render(4);
        assert!(text.contains(
            "lore_http_requests_total{route=\"/unit/{x}\",method=\"GET\",status=\"200\"} 2"
        ));
        let bucket = |le: &str| {
            format!(
                "lore_http_request_duration_seconds_bucket{{route=\"/unit/{{x}}\",method=\"GET\",le=\"{le}\"}}"
            )
        };
        assert!(text.contains(&format!("{} 0", bucket("0.005"))));
        assert!(text.contains(&format!("{} 1", bucket("0.01"))));
        assert!(text.contains(&format!("{} 2", bucket("1"))));
        assert!(text.contains(&format!("{} 2", bucket("+Inf"))));
        assert!(text.contains("lore_ingest_queue_depth 4"));
    }
}
