//! The web page in a real browser: headless Debian Chromium driven by playwright-core
//! (`tests/web/*.mjs`, installed by `scripts/setup-browser`) against a real server on port 0.
//! Missing browser tooling fails these tests with the command that installs it: they never skip.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lore::config::Secret;

use crate::common::TestServer;
use crate::common::llm::{Script, ScriptedLlm};

/// What the scripted chat model answers; the page must show exactly this, with `[1]` clickable.
const ANSWER: &str = "最低配置为 CPU >= 2 核、内存 >= 4 GiB [1]。";
const KEY: &str = "web-page-test-key-0123456789";

fn web_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

/// Fails with the way to fix it when the browser or the test tools are not installed.
fn require_browser_tooling() {
    let chromium = std::env::var("LORE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let playwright = web_tests().join("node_modules/playwright-core/package.json");
    for (path, what) in [
        (chromium.as_str(), "Chromium"),
        (playwright.to_str().unwrap_or_default(), "playwright-core"),
    ] {
        assert!(
            Path::new(path).exists(),
            "{what} is not installed ({path} is missing): run scripts/setup-browser"
        );
    }
}

/// Runs one page test script with node against `server`; panics with its output if it fails.
async fn run_page_test(script: &str, server: &TestServer, env: &[(&str, &str)]) {
    require_browser_tooling();
    let started = Instant::now();
    let output = tokio::process::Command::new("node")
        .arg(web_tests().join(script))
        .env("LORE_URL", &server.base)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("node does not run ({e}): install Node.js 20+ (apt-get install nodejs)")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!(
        "{script} took {:.1} s\n{stdout}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "{script} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
}

#[tokio::test]
async fn the_page_uploads_watches_tests_retrieval_and_answers_in_a_browser() {
    let llm = ScriptedLlm::spawn(Script::Answer(ANSWER)).await;
    let base_url = llm.base_url.clone();
    let server = TestServer::spawn_with(move |c| {
        c.llm.base_url = base_url;
        c.llm.model = "scripted".into();
        // The page asks with the default deadline; a busy test machine must not turn the
        // scripted answer into the extractive fallback.
        c.answer.deadline_ms = 60_000;
    })
    .await;
    run_page_test("e2e.mjs", &server, &[("LORE_EXPECTED_ANSWER", ANSWER)]).await;
}

#[tokio::test]
async fn the_page_asks_for_the_api_key_and_explains_refusals() {
    const UPLOAD_LIMIT: usize = 64 * 1024;
    let server = TestServer::spawn_with(|c| {
        c.api_key = Some(Secret::new(KEY));
        c.limits.max_upload_bytes = UPLOAD_LIMIT;
    })
    .await;
    let limit = UPLOAD_LIMIT.to_string();
    run_page_test(
        "api-key.mjs",
        &server,
        &[("LORE_KEY", KEY), ("LORE_UPLOAD_LIMIT", &limit)],
    )
    .await;
}

#[tokio::test]
async fn the_page_connects_a_wechat_account_without_showing_its_secrets() {
    let server = TestServer::spawn_with(|c| c.api_key = Some(Secret::new(KEY))).await;
    run_page_test("wechat.mjs", &server, &[("LORE_KEY", KEY)]).await;
}
