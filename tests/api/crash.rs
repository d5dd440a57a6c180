//! Crash safety: the real `lore` binary is killed with SIGKILL at several points while 30
//! documents are uploaded and ingested (new ones, then replacements), restarted, and checked:
//! every acknowledged upload is ready (nothing lost, nothing stuck), and every document's
//! chunks are all of its latest acknowledged version (no half-replaced document).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const DOCS: usize = 30;

/// A running `lore serve` process and its address.
struct Lore {
    child: Child,
    base: String,
}

impl Lore {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lore"))
            .args(["--config", "/dev/null", "--data-dir"])
            .arg(data_dir)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .env("LORE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lore binary");
        let stderr = child.stderr.take().expect("stderr");
        // Read the log on a thread (draining it all along, so lore never blocks on a full
        // pipe) and take the address from the "lore is listening" line.
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("addr=").nth(1)
                    && line.contains("lore is listening")
                {
                    let _ = found.send(rest.split_whitespace().next().unwrap_or(rest).to_owned());
                }
            }
        });
        let addr = address
            .recv_timeout(Duration::from_secs(120))
            .expect("lore did not start listening within 2 minutes");
        Self {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

fn content(doc: usize, round: usize) -> String {
    format!(
        "# 文档 {doc}\n\n第 {round} 版。编号 marker{doc}r{round} 的产品说明：保修期为 {round} 年，\
         退换货需在签收后 {doc} 天内申请。\n\n## 细则\n\n{}",
        "本条款适用于所有订单，客服会在三个工作日内处理申请。".repeat(8)
    )
}

async fn upload(http: &reqwest::Client, base: &str, doc: usize, round: usize) -> bool {
    let part = reqwest::multipart::Part::bytes(content(doc, round).into_bytes())
        .file_name(format!("doc{doc}.md"));
    let form = reqwest::multipart::Form::new().part("file", part);
    let sent = http
        .post(format!("{base}/api/kbs/kb/documents"))
        .multipart(form)
        .send()
        .await;
    matches!(sent, Ok(r) if r.status().as_u16() == 202)
}

async fn documents(http: &reqwest::Client, base: &str) -> Vec<Value> {
    let body: Value = http
        .get(format!("{base}/api/kbs/kb/documents"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    body["documents"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn sigkill_during_ingestion_loses_no_acknowledged_document() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let lore = Lore::start(dir.path());
    let created = http
        .post(format!("{}/api/kbs", lore.base))
        .json(&serde_json::json!({ "id": "kb" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut lore = Some(lore);
    // The latest acknowledged round of each document.
    let mut latest = vec![None; DOCS];
    // Documents still queued or processing when the process was killed, over all rounds.
    let mut killed_mid_ingestion = 0;
    for (round, kill_after) in [(1, 400), (2, 1_500), (3, 3_000), (4, 0)] {
        let running = lore.take().unwrap_or_else(|| Lore::start(dir.path()));
        let base = running.base.clone();
        let started = Instant::now();
        let deadline = Duration::from_millis(kill_after);
        // Upload one by one, killing the process mid-way (round 4 kills between uploads).
        for (doc, last) in latest.iter_mut().enumerate() {
            if kill_after > 0 && started.elapsed() >= deadline {
                break;
            }
            if round == 4 && doc == DOCS / 2 {
                break;
            }
            if upload(&http, &base, doc, round).await {
                *last = Some(round);
            }
        }
        let left = deadline.saturating_sub(started.elapsed());
        tokio::time::sleep(left).await;
        let unfinished = documents(&http, &base)
            .await
            .iter()
            .filter(|d| d["status"] == "queued" || d["status"] == "processing")
            .count();
        killed_mid_ingestion += unfinished;
        running.kill();

        let restarted = Lore::start(dir.path());
        check(&http, &restarted.base, &latest).await;
        lore = Some(restarted);
    }
    if let Some(lore) = lore {
        lore.kill();
    }
    assert!(
        killed_mid_ingestion > 0,
        "no kill landed during ingestion: the test proved nothing"
    );
}

/// After a restart: every acknowledged document becomes ready, with the chunks of its latest
/// acknowledged version only.
async fn check(http: &reqwest::Client, base: &str, latest: &[Option<usize>]) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let docs = loop {
        let docs = documents(http, base).await;
        let busy = docs
            .iter()
            .any(|d| d["status"] == "queued" || d["status"] == "processing");
        if !busy {
            break docs;
        }
        assert!(
            Instant::now() < deadline,
            "ingestion never finished: {docs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (doc, round) in latest.iter().enumerate() {
        let name = format!("doc{doc}.md");
        let record = docs.iter().find(|d| d["name"] == name.as_str());
        let Some(round) = round else {
            // Never acknowledged: it may exist (sent before the kill), but then it is whole.
            if let Some(record) = record {
                assert!(record["status"] == "ready", "{record}");
            }
            continue;
        };
        let record = record.unwrap_or_else(|| panic!("{name} was acknowledged and is lost"));
        assert_eq!(record["status"], "ready", "{record}");
        let id = record["id"].as_str().unwrap();
        let chunks: Value = http
            .get(format!("{base}/api/kbs/kb/documents/{id}/chunks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let chunks = chunks["chunks"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            chunks.len() as u64,
            record["chunk_count"].as_u64().unwrap(),
            "{record}"
        );
        let text: String = chunks
            .iter()
            .map(|c| c["text"].as_str().unwrap_or(""))
            .collect();
        // The version marker is in the first chunk; no chunk of another version may remain.
        let newest = format!("第 {round} 版");
        assert!(
            text.contains(&newest),
            "{name} should be round {round}: {text}"
        );
        for other in (1..=4).filter(|r| r != round) {
            assert!(
                !text.contains(&format!("第 {other} 版")),
                "{name} mixes versions"
            );
        }
        // Search sees only the current version too.
        let hits: Value = http
            .post(format!("{base}/api/kbs/kb/search"))
            .json(&serde_json::json!({ "query": format!("marker{doc}r{round}"), "top_k": 10 }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for hit in hits["records"].as_array().unwrap() {
            if hit["document_name"] == name.as_str() {
                let content = hit["content"].as_str().unwrap();
                assert!(
                    !(1..=4).any(|r| r != *round && content.contains(&format!("第 {r} 版"))),
                    "search returned an old version of {name}"
                );
            }
        }
    }
}
