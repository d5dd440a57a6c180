//! End to end with the real local chat model (scripts/setup-llm, scripts/llm-server): answers
//! carry the key fact and cite the right file, through REST (plain and streamed) and the
//! OpenAI-compatible endpoint. Robust facts only, never exact wording. Deadlines are long: on
//! two shared cores the 1.5B model reads a prompt at ~30 tokens/s.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use async_openai::types::chat::CreateChatCompletionStreamResponse;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::{TestServer, eval_dir, sse};

/// A running `scripts/llm-server`, killed when dropped.
struct LocalModel {
    base_url: String,
    _child: Child,
}

impl LocalModel {
    async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("addr").port()
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/llm-server");
        let mut child = Command::new(script)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("scripts/llm-server starts (run scripts/setup-llm first)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(180), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("llm listening on ") {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await;
        let base_url = ready.ok().flatten().expect("the local model became ready");
        Self {
            base_url,
            _child: child,
        }
    }
}

const QUESTION: &str = "使用 Docker Compose 部署 Dify，机器最低需要什么硬件配置？";
const SOURCE: &str = "selfhost__deploy__quick-start__docker-compose.md";

fn has_key_fact(answer: &str) -> bool {
    answer.contains('2') && answer.contains('4')
}

#[tokio::test]
async fn the_local_model_answers_with_the_key_fact_and_a_citation() {
    let model = LocalModel::start().await;
    let base_url = model.base_url.clone();
    let server = TestServer::spawn_with(move |c| {
        c.llm.base_url = base_url;
        // Greedy decoding: at the default temperature a 1.5B model sometimes stops after the
        // first requirement (seen once in five runs: "CPU >= 2 Core [1]" without the memory).
        c.llm.temperature = 0.0;
        c.llm.max_tokens = 120;
        c.answer.top_k = 2;
    })
    .await;
    server.create_kb("dify").await;
    let docs = eval_dir().join("docs/md_zh");
    let files: Vec<_> = [
        SOURCE,
        "selfhost__deploy__quick-start__faqs.md",
        "selfhost__deploy__overview.md",
    ]
    .iter()
    .map(|name| docs.join(name))
    .collect();
    server.upload_paths("dify", &files).await;
    server.wait_idle("dify").await;

    // Plain REST.
    let (status, reply) = server
        .post_json(
            "/api/kbs/dify/answer",
            &json!({ "question": QUESTION, "deadline_ms": 240000 }),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["verdict"], "answer", "{reply}");
    assert_eq!(
        reply["fallback"],
        Value::Null,
        "the model answered: {reply}"
    );
    let answer = reply["answer"].as_str().unwrap();
    assert!(has_key_fact(answer), "{answer}");
    assert_eq!(reply["citations"][0]["document_name"], SOURCE, "{reply}");

    // Streamed REST: deltas, then the whole reply.
    let body = server
        .http
        .post(server.url("/api/kbs/dify/answer"))
        .json(&json!({ "question": QUESTION, "deadline_ms": 240000, "stream": true }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = sse(&body);
    let deltas = events.iter().filter(|(event, _)| event == "delta").count();
    assert!(deltas > 1, "the answer streamed in pieces: {body}");
    let (last, done) = events.last().expect("events");
    assert_eq!(last, "done", "{body}");
    let done: Value = serde_json::from_str(done).unwrap();
    assert_eq!(done["fallback"], Value::Null);
    assert!(has_key_fact(done["answer"].as_str().unwrap()), "{done}");

    // The OpenAI-compatible endpoint, read with async-openai's own types.
    let request = json!({ "model": "dify", "stream": true, "messages": [{ "role": "user", "content": QUESTION }] });
    let body = server
        .http
        .post(server.url("/v1/chat/completions"))
        .json(&request)
        .send()
        .await
        .unwrap();
    let text = body.text().await.unwrap();
    let mut answer = String::new();
    for (_, data) in sse(&text).iter().take_while(|(_, data)| data != "[DONE]") {
        let chunk: CreateChatCompletionStreamResponse =
            serde_json::from_str(data).expect("an OpenAI chunk");
        answer.extend(chunk.choices.into_iter().filter_map(|c| c.delta.content));
    }
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(has_key_fact(&answer), "{answer}");
}
