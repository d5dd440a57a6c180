//! The REST API's OpenAPI document (`GET /openapi.json`, generated from the handlers), and
//! schemathesis, a schema-driven fuzzer, run with it against a real server that has a key, data
//! and a connected WeChat account: no 5xx anywhere, and every status, media type and body as
//! the document says.

use std::path::PathBuf;
use std::time::Instant;

use lore::config::Secret;
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::common::llm::{Script, ScriptedLlm};

const KEY: &str = "openapi-fuzz-key-0123456789";

/// The pinned schemathesis CLI, installed by scripts/test into the test venv beside `openai`.
fn schemathesis() -> PathBuf {
    let python = std::env::var("LORE_TEST_PYTHON").map_or_else(
        |_| {
            lore::config::Config::default()
                .home
                .join("test-venv/bin/python")
        },
        PathBuf::from,
    );
    python.with_file_name("schemathesis")
}

#[tokio::test]
async fn the_document_is_public_and_describes_every_route() {
    let server = TestServer::spawn_with(|c| c.api_key = Some(Secret::new(KEY))).await;
    // No key: the description holds no data, like /healthz.
    let response = reqwest::get(server.url("/openapi.json"))
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc,
        serde_json::to_value(<lore::http::openapi::ApiDoc as utoipa::OpenApi>::openapi())
            .expect("document")
    );
    // The error schema names the closed list of codes.
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("codes");
    assert!(codes.contains(&json!("kb_not_found")) && codes.contains(&json!("internal")));
    // What the document promises about the key holds: a guarded route refuses without it.
    let response = reqwest::get(server.url("/api/kbs")).await.expect("request");
    assert_eq!(response.status(), 401);
}

/// A server worth fuzzing: a knowledge base with a document (so searches and answers find
/// something, and the chat model is asked), a scratch one to delete, a WeChat account (so its
/// door checks signatures instead of answering 404), and no rate limit.
async fn fuzz_target(llm: &ScriptedLlm) -> (TestServer, String, String) {
    let base_url = llm.base_url.clone();
    let server = TestServer::spawn_with(move |c| {
        c.api_key = Some(Secret::new(KEY));
        c.limits.requests_per_minute = 0;
        c.llm.base_url = base_url;
    })
    .await;
    server.create_kb("faq").await;
    server.create_kb("scratch").await;
    let refund = "# 退款政策\n\n签收之日起七日内可以申请无理由退货。\n\n## 女神节\n\n女神节活动期间全场八折。\n";
    let (status, body) = server
        .upload_with(
            "faq",
            vec![
                ("refund.md".into(), refund.as_bytes().to_vec()),
                (
                    "scratch.txt".into(),
                    "临时文件，可以删除。".as_bytes().to_vec(),
                ),
            ],
            Some(json!({ "region": "华东", "year": 2026 })),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let kept = body["documents"][0]["id"].as_str().expect("id").to_owned();
    let scratch = body["documents"][1]["id"].as_str().expect("id").to_owned();
    server.wait_idle("faq").await;
    let response = server
        .http
        .put(server.url("/api/kbs/faq/wechat"))
        .bearer_auth(KEY)
        .json(&json!({ "token": "fuzztoken123", "app_id": "wx0123456789abcdef" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    (server, kept, scratch)
}

/// schemathesis' configuration: path parameters mostly name things that exist (else nearly
/// every call would stop at 404), strings sometimes come from lore's own vocabulary, and the
/// DELETE operations get the scratch knowledge base and document so the rest keep their data.
fn config(kept: &str, scratch: &str) -> String {
    format!(
        r#"
[dictionaries.kbs]
values = ["faq"]
[dictionaries.docs]
values = ["{kept}"]
[dictionaries.words]
values = ["faq", "退款", "女神节", "region", "year", "document_name", "document_id", "华东", "2026-01-01", "refund.md"]

[parameters]
"path.kb" = {{ dictionary = "kbs", probability = 0.8 }}
"path.doc" = {{ dictionary = "docs", probability = 0.8 }}

[generation]
dictionaries.string = {{ dictionary = "words", probability = 0.3 }}

[[operations]]
include-method = "DELETE"
parameters = {{ "path.kb" = "scratch", "path.doc" = "{scratch}" }}
"#
    )
}

/// Every operation, every phase (examples, coverage, fuzzing, stateful), a bounded number of
/// cases per operation and a fixed seed, so a failure reproduces; `LORE_FUZZ_EXAMPLES` and
/// `LORE_FUZZ_SEED` widen or vary the search. The WeChat door is included although schemathesis
/// cannot sign: unsigned or badly signed calls must get 403, not a 5xx.
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_mismatch() {
    let llm = ScriptedLlm::spawn(Script::Answer("签收之日起七日内可以申请无理由退货 [1]。")).await;
    let (server, kept, scratch) = fuzz_target(&llm).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config(&kept, &scratch)).expect("config");
    let examples = std::env::var("LORE_FUZZ_EXAMPLES").unwrap_or_else(|_| "40".into());
    let seed = std::env::var("LORE_FUZZ_SEED").unwrap_or_else(|_| "1".into());
    let cli = schemathesis();
    let started = Instant::now();
    let output = tokio::process::Command::new(&cli)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {KEY}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
        ])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--request-timeout", "30", "--no-color"])
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} (run scripts/test to install schemathesis): {e}",
                cli.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    // It really ran: every operation it selected (all but /openapi.json itself, which it
    // loads) was tested.
    let selected = field(&stdout, "Selected:").expect("a 'Selected: n/n' line");
    let tested = field(&stdout, "Tested:").expect("a 'Tested: n' line");
    assert_eq!(
        (selected.clone(), tested.clone()),
        (format!("{tested}/{tested}"), tested),
        "not every operation was tested:\n{stdout}"
    );
    let summary = stdout
        .lines()
        .find(|l| l.contains("generated,"))
        .unwrap_or("no summary")
        .trim();
    eprintln!(
        "schemathesis: {summary} in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// The value after `label` on the first line that starts with it, e.g. "22/22" for "Selected:".
fn field(output: &str, label: &str) -> Option<String> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .map(|value| value.trim().to_owned())
}
