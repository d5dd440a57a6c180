//! The command-line client behind `lore ingest` and `lore search`.
//!
//! It talks to a running server over HTTP when one answers at `--server`, and otherwise opens
//! the data directory itself (which a running server would hold locked).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::config::Config;
use crate::document::{DocumentRecord, DocumentStatus, Metadata};
use crate::error::ErrorCode;
use crate::kb::{AnswerRequest, KnowledgeBase, NewKb, SearchRequest, Upload};

/// Where commands go: a server over HTTP, or the data directory opened in-process.
pub enum Backend {
    Remote {
        http: reqwest::Client,
        base: String,
        key: Option<String>,
    },
    Local(Arc<KnowledgeBase>),
}

impl Backend {
    /// Uses the server at `server` if it answers `/healthz`, else opens the data directory.
    pub async fn connect(config: &Config, server: Option<&str>) -> anyhow::Result<Self> {
        let base = server
            .map(|s| s.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{}", config.listen));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        let healthy = http
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy {
            let key = config.api_key.as_ref().map(|k| k.expose().to_owned());
            return Ok(Self::Remote { http, base, key });
        }
        if server.is_some() {
            anyhow::bail!("no lore server answers at {base}");
        }
        eprintln!(
            "no server at {base}; opening {} directly",
            config.data_dir.display()
        );
        Ok(Self::Local(KnowledgeBase::open(config.clone()).await?))
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let request = match self {
            Self::Remote { key: Some(key), .. } => request.bearer_auth(key),
            _ => request,
        };
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("request failed");
        anyhow::bail!("{message} (HTTP {status})")
    }

    async fn ensure_kb(&self, kb: &str) -> anyhow::Result<()> {
        match self {
            Self::Remote { http, base, .. } => {
                let exists = self
                    .call(http.get(format!("{base}/api/kbs/{kb}")))
                    .await
                    .is_ok();
                if !exists {
                    self.call(
                        http.post(format!("{base}/api/kbs"))
                            .json(&json!({ "id": kb })),
                    )
                    .await?;
                }
                Ok(())
            }
            Self::Local(service) => {
                let request = NewKb {
                    id: kb.to_owned(),
                    name: None,
                    description: None,
                };
                match service.create_kb(request).await {
                    Ok(_) => Ok(()),
                    Err(err) if err.code() == ErrorCode::KbExists => Ok(()),
                    Err(err) => Err(anyhow::anyhow!(err.message().to_owned())),
                }
            }
        }
    }

    async fn upload(&self, kb: &str, path: &Path) -> anyhow::Result<DocumentRecord> {
        let bytes = tokio::fs::read(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match self {
            Self::Remote { http, base, .. } => {
                let part = reqwest::multipart::Part::bytes(bytes).file_name(name);
                let form = reqwest::multipart::Form::new().part("file", part);
                let body = self
                    .call(
                        http.post(format!("{base}/api/kbs/{kb}/documents"))
                            .multipart(form),
                    )
                    .await?;
                Ok(serde_json::from_value(body["documents"][0].clone())?)
            }
            Self::Local(service) => {
                let mut outcomes = service
                    .upload(kb, vec![Upload { name, bytes }], Metadata::new())
                    .await?;
                outcomes
                    .pop()
                    .map(|o| o.document)
                    .context("no upload outcome")
            }
        }
    }

    async fn document(&self, kb: &str, id: &str) -> anyhow::Result<DocumentRecord> {
        match self {
            Self::Remote { http, base, .. } => {
                let body = self
                    .call(http.get(format!("{base}/api/kbs/{kb}/documents/{id}")))
                    .await?;
                Ok(serde_json::from_value(body)?)
            }
            Self::Local(service) => Ok(service.document(kb, id)?),
        }
    }

    async fn search(&self, kb: &str, query: &str, top_k: usize) -> anyhow::Result<Vec<Value>> {
        match self {
            Self::Remote { http, base, .. } => {
                let body = json!({ "query": query, "top_k": top_k });
                let response = self
                    .call(http.post(format!("{base}/api/kbs/{kb}/search")).json(&body))
                    .await?;
                Ok(response["records"].as_array().cloned().unwrap_or_default())
            }
            Self::Local(service) => {
                let request = SearchRequest {
                    query: query.to_owned(),
                    top_k: Some(top_k),
                    score_threshold: None,
                    filter: None,
                };
                let hits = service.search(kb, request).await?;
                Ok(hits
                    .into_iter()
                    .map(|h| {
                        json!({ "score": h.score, "document_name": h.chunk.document_name,
                                "chunk_index": h.chunk.chunk_index, "content": h.chunk.text })
                    })
                    .collect())
            }
        }
    }
}

impl Backend {
    async fn answer(
        &self,
        kb: &str,
        question: &str,
        deadline_ms: Option<u64>,
    ) -> anyhow::Result<Value> {
        match self {
            Self::Remote { http, base, .. } => {
                let body = json!({ "question": question, "deadline_ms": deadline_ms });
                self.call(http.post(format!("{base}/api/kbs/{kb}/answer")).json(&body))
                    .await
            }
            Self::Local(service) => {
                let request = AnswerRequest {
                    question: question.to_owned(),
                    deadline_ms,
                    ..AnswerRequest::default()
                };
                let reply = service.answer(kb, request).await?;
                Ok(serde_json::to_value(reply)?)
            }
        }
    }
}

/// `lore ask`: prints the verdict, the answer and its sources.
pub async fn ask(
    backend: &Backend,
    kb: &str,
    question: &str,
    deadline_ms: Option<u64>,
) -> anyhow::Result<()> {
    let reply = backend.answer(kb, question, deadline_ms).await?;
    let verdict = reply["verdict"].as_str().unwrap_or_default();
    let mut note = String::new();
    if let Some(model) = reply["model"].as_str() {
        note = format!(", {model}");
    }
    if reply["fallback"].as_str().is_some() {
        note.push_str(", the model did not answer in time: best passage");
    }
    println!(
        "[{verdict}{note}, {} ms]\n{}",
        reply["latency_ms"],
        reply["answer"].as_str().unwrap_or_default()
    );
    for (n, citation) in reply["citations"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        println!(
            "[{}] {} #{} ({:.3})",
            n + 1,
            citation["document_name"].as_str().unwrap_or_default(),
            citation["chunk_index"],
            citation["score"].as_f64().unwrap_or_default()
        );
    }
    Ok(())
}

/// Files under `paths`; folders are walked and only files of supported types are taken.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            let nested: Vec<PathBuf> = entries
                .into_iter()
                .filter(|p| p.is_dir() || crate::ingest::extract::has_supported_extension(p))
                .collect();
            files.extend(collect_files(&nested)?);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            anyhow::bail!("{} does not exist", path.display());
        }
    }
    Ok(files)
}

/// `lore ingest`: uploads files and folders, then follows ingestion with a progress bar.
pub async fn ingest(backend: &Backend, kb: &str, paths: &[PathBuf]) -> anyhow::Result<()> {
    let files = collect_files(paths)?;
    anyhow::ensure!(!files.is_empty(), "no files to ingest");
    backend.ensure_kb(kb).await?;
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} documents  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut accepted = Vec::new();
    let mut failed = 0;
    for file in &files {
        bar.set_message(format!("uploading {}", file.display()));
        match backend.upload(kb, file).await {
            Ok(record) if record.status == DocumentStatus::Failed => {
                bar.println(format!(
                    "failed: {}: {}",
                    file.display(),
                    record.error.unwrap_or_default()
                ));
                failed += 1;
                bar.inc(1);
            }
            Ok(record) => accepted.push(record),
            Err(err) => {
                bar.println(format!("failed: {}: {err:#}", file.display()));
                failed += 1;
                bar.inc(1);
            }
        }
    }
    let mut chunks = 0;
    for record in accepted {
        bar.set_message(format!("ingesting {}", record.name));
        let done = loop {
            let current = backend.document(kb, &record.id).await?;
            if matches!(
                current.status,
                DocumentStatus::Ready | DocumentStatus::Failed
            ) {
                break current;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if done.status == DocumentStatus::Failed {
            bar.println(format!(
                "failed: {}: {}",
                done.name,
                done.error.unwrap_or_default()
            ));
            failed += 1;
        } else {
            chunks += done.chunk_count;
        }
        bar.inc(1);
    }
    bar.finish_with_message("done");
    println!(
        "{} documents ready ({chunks} chunks), {failed} failed",
        files.len() - failed
    );
    anyhow::ensure!(failed == 0, "{failed} documents failed");
    Ok(())
}

/// `lore search`: prints the best chunks for a question.
pub async fn search(backend: &Backend, kb: &str, query: &str, top_k: usize) -> anyhow::Result<()> {
    let records = backend.search(kb, query, top_k).await?;
    if records.is_empty() {
        println!("no results");
    }
    for (rank, record) in records.iter().enumerate() {
        let content = record["content"].as_str().unwrap_or_default();
        let preview: String = content
            .chars()
            .take(160)
            .collect::<String>()
            .replace('\n', " ");
        println!(
            "{}. [{:.3}] {} #{}\n   {preview}",
            rank + 1,
            record["score"].as_f64().unwrap_or_default(),
            record["document_name"].as_str().unwrap_or_default(),
            record["chunk_index"].as_u64().unwrap_or_default(),
        );
    }
    Ok(())
}
