//! Answering: verdicts before any model call, and the chat client's protocol edge cases against
//! a scripted OpenAI-compatible server (timeouts, errors, fallbacks, hung streams).

use std::time::{Duration, Instant};

use lore::config::LlmEndpoint;
use serde_json::{Value, json};

use crate::common::llm::{Script, ScriptedLlm};
use crate::common::{TestServer, sse};

pub(crate) const DOCS: [(&str, &str); 3] = [
    (
        "refund.md",
        "# 售后政策\n\n商品签收之日起七日内，如对商品不满意，可申请无理由退货。退款在审核通过后三个工作日内原路返回。",
    ),
    (
        "cloud__members.md",
        "# 管理团队成员\n\n## 转让所有权\n\n工作空间所有者可以将所有权转让给其他成员，需要通过邮箱验证码确认。",
    ),
    (
        "selfhost__members.md",
        "# 管理团队成员\n\n## 转让所有权\n\n自托管版本中，无法将工作空间所有权转让给其他成员。",
    ),
];

async fn server_with(llm: &ScriptedLlm, fallbacks: Vec<LlmEndpoint>) -> TestServer {
    let base_url = llm.base_url.clone();
    let server = TestServer::spawn_with(move |c| {
        c.llm.base_url = base_url;
        c.llm.model = "primary".into();
        c.llm.fallbacks = fallbacks;
        c.llm.breaker_failures = 100;
    })
    .await;
    server.create_kb("kb").await;
    let files = DOCS
        .iter()
        .map(|(n, t)| ((*n).to_owned(), t.as_bytes().to_vec()))
        .collect();
    server.upload("kb", files).await;
    server.wait_idle("kb").await;
    server
}

async fn ask(server: &TestServer, question: &str, deadline_ms: u64) -> Value {
    let (status, body) = server
        .post_json(
            "/api/kbs/kb/answer",
            &json!({ "question": question, "deadline_ms": deadline_ms }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

const ANSWERABLE: &str = "签收后几天内可以退货？";

#[tokio::test]
async fn answerable_questions_go_to_the_model_with_the_grounded_prompt() {
    let llm = ScriptedLlm::spawn(Script::Answer("签收之日起七日内可以申请无理由退货 [1]。")).await;
    let server = server_with(&llm, vec![]).await;
    let reply = ask(&server, ANSWERABLE, 5000).await;
    assert_eq!(reply["verdict"], "answer", "{reply}");
    assert_eq!(reply["answer"], "签收之日起七日内可以申请无理由退货 [1]。");
    assert_eq!(reply["model"], "primary");
    assert_eq!(reply["fallback"], Value::Null);
    assert_eq!(reply["citations"][0]["document_name"], "refund.md");
    assert!(reply["latency_ms"].as_u64().is_some());
    let request = llm.last_request.lock().unwrap().clone();
    let system = request["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("<passage n=\"1\"") && system.contains("无理由退货"),
        "{system}"
    );
    assert_eq!(
        request["messages"].as_array().unwrap().last().unwrap()["content"],
        ANSWERABLE
    );
}

#[tokio::test]
async fn uncovered_questions_are_refused_without_a_model_call() {
    let llm = ScriptedLlm::spawn(Script::Answer("编造的答案")).await;
    let server = server_with(&llm, vec![]).await;
    let reply = ask(&server, "你们的客服电话是多少？", 5000).await;
    assert_eq!(reply["verdict"], "not_found", "{reply}");
    assert_eq!(
        reply["answer"],
        "抱歉，知识库中没有找到与这个问题相关的内容。"
    );
    let reply = ask(&server, "What is your phone number?", 5000).await;
    assert_eq!(reply["verdict"], "not_found", "{reply}");
    assert!(reply["answer"].as_str().unwrap().starts_with("Sorry"));
    assert_eq!(llm.calls(), 0);
}

#[tokio::test]
async fn ambiguous_questions_get_a_clarifying_question() {
    let llm = ScriptedLlm::spawn(Script::Answer("编造的答案")).await;
    let server = server_with(&llm, vec![]).await;
    let reply = ask(&server, "工作空间的所有权可以转让吗？", 5000).await;
    assert_eq!(reply["verdict"], "clarify", "{reply}");
    let labels: Vec<&str> = reply["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), 2, "{reply}");
    assert!(
        labels.iter().any(|l| l.contains("cloud")) && labels.iter().any(|l| l.contains("selfhost")),
        "{labels:?}"
    );
    let answer = reply["answer"].as_str().unwrap();
    assert!(
        answer.starts_with("您问的是") && answer.contains(labels[0]),
        "{answer}"
    );
    assert_eq!(llm.calls(), 0);
}

#[tokio::test]
async fn a_slow_model_gets_an_extractive_answer_within_the_deadline() {
    let llm = ScriptedLlm::spawn(Script::Slow(Duration::from_secs(20), "太迟的答案")).await;
    let server = server_with(&llm, vec![]).await;
    let started = Instant::now();
    let reply = ask(&server, ANSWERABLE, 1500).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(2500), "took {elapsed:?}");
    assert_eq!(reply["verdict"], "answer");
    assert_eq!(reply["fallback"], "extractive");
    let answer = reply["answer"].as_str().unwrap();
    assert!(
        answer.contains("无理由退货") && answer.ends_with("[1]"),
        "{answer}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_fall_back_to_the_next_model() {
    let failing = ScriptedLlm::spawn(Script::Fail(500)).await;
    let backup = ScriptedLlm::spawn(Script::Answer("备用模型：七日内可退货 [1]。")).await;
    let fallbacks = vec![LlmEndpoint {
        base_url: backup.base_url.clone(),
        api_key: None,
        model: "backup".into(),
    }];
    let server = server_with(&failing, fallbacks).await;
    let reply = ask(&server, ANSWERABLE, 5000).await;
    assert_eq!(reply["answer"], "备用模型：七日内可退货 [1]。", "{reply}");
    assert_eq!(reply["model"], "backup");
    assert_eq!(failing.calls(), 2, "one retry of a transient error");
    assert_eq!(backup.calls(), 1);
}

#[tokio::test]
async fn rate_limits_are_retried_on_the_same_model() {
    let llm = ScriptedLlm::spawn(Script::FailFirst(429, 1, "重试后的答案 [1]")).await;
    let server = server_with(&llm, vec![]).await;
    let reply = ask(&server, ANSWERABLE, 5000).await;
    assert_eq!(reply["answer"], "重试后的答案 [1]", "{reply}");
    assert_eq!(llm.calls(), 2);
}

#[tokio::test]
async fn a_malformed_reply_is_not_retried_and_the_passage_answers() {
    let llm = ScriptedLlm::spawn(Script::Malformed).await;
    let server = server_with(&llm, vec![]).await;
    let reply = ask(&server, ANSWERABLE, 5000).await;
    assert_eq!(reply["fallback"], "extractive", "{reply}");
    assert_eq!(llm.calls(), 1);
}

#[tokio::test]
async fn a_hung_stream_is_cut_at_the_deadline() {
    let llm = ScriptedLlm::spawn(Script::Hang("七日内")).await;
    let server = server_with(&llm, vec![]).await;
    let started = Instant::now();
    let body = server
        .http
        .post(server.url("/api/kbs/kb/answer"))
        .json(&json!({ "question": ANSWERABLE, "stream": true, "deadline_ms": 1500 }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "took {:?}",
        started.elapsed()
    );
    let events = sse(&body);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"start"), "{body}");
    assert_eq!(names.last(), Some(&"done"), "{body}");
    let done: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert_eq!(done["answer"], "七日内");
}

#[tokio::test]
async fn the_openai_compatible_endpoint_answers_and_streams() {
    let llm = ScriptedLlm::spawn(Script::Answer("七日内可以无理由退货 [1]。")).await;
    let server = server_with(&llm, vec![]).await;

    let (status, models) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "kb");

    let request = json!({ "model": "kb", "messages": [
        { "role": "system", "content": "You are a pirate." },
        { "role": "user", "content": "你好" },
        { "role": "assistant", "content": "您好，请问有什么可以帮您？" },
        { "role": "user", "content": ANSWERABLE } ] });
    let (status, body) = server.post_json("/v1/chat/completions", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    let typed: async_openai::types::chat::CreateChatCompletionResponse =
        serde_json::from_value(body.clone()).expect("async-openai reads the response");
    assert_eq!(typed.model, "kb");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content, "七日内可以无理由退货 [1]。\n\n来源：售后政策");
    let sent = llm.last_request.lock().unwrap().clone();
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "user"],
        "history kept, client system prompt dropped"
    );
    assert!(
        !sent["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("pirate")
    );

    let mut streaming = request.clone();
    streaming["stream"] = json!(true);
    let body = server
        .http
        .post(server.url("/v1/chat/completions"))
        .json(&streaming)
        .send()
        .await
        .unwrap();
    assert!(
        body.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse(&body.text().await.unwrap());
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|(_, data)| serde_json::from_str::<Value>(data).unwrap())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "七日内可以无理由退货 [1]。\n\n来源：售后政策");

    let (status, body) = server
        .post_json(
            "/v1/chat/completions",
            &json!({ "model": "nope", "messages": [{ "role": "user", "content": "x" }] }),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "kb_not_found");
}

/// Run by the official `openai` Python client (installed by scripts/test) against lore.
const OPENAI_CLIENT_SCRIPT: &str = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="unused")
models = [m.id for m in client.models.list()]
reply = client.chat.completions.create(model="kb", messages=[{"role": "user", "content": sys.argv[2]}])
stream = client.chat.completions.create(model="kb", stream=True, messages=[{"role": "user", "content": sys.argv[2]}])
streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
print(json.dumps({"models": models, "content": reply.choices[0].message.content, "streamed": streamed}))
"#;

#[tokio::test]
async fn the_official_openai_python_client_works() {
    let llm = ScriptedLlm::spawn(Script::Answer("七日内可以无理由退货 [1]。")).await;
    let server = server_with(&llm, vec![]).await;
    let python = std::env::var("LORE_TEST_PYTHON").unwrap_or_else(|_| {
        let home = lore::config::Config::default().home;
        home.join("test-venv/bin/python")
            .to_string_lossy()
            .into_owned()
    });
    let output = tokio::process::Command::new(&python)
        .args(["-c", OPENAI_CLIENT_SCRIPT, &server.url("/v1"), ANSWERABLE])
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("{python} (run scripts/test to install the openai client): {e}")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let result: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    assert_eq!(result["models"], json!(["kb"]));
    assert_eq!(
        result["content"],
        "七日内可以无理由退货 [1]。\n\n来源：售后政策"
    );
    assert_eq!(result["streamed"], result["content"]);
}
