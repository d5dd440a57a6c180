//! `TestServer`: a real lore server on an ephemeral port with its own data directory.

pub mod llm;
pub mod qdrant_emulator;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lore::config::Config;
use lore::kb::KnowledgeBase;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The development evaluation set beside the repository (`../shared/eval`).
pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

pub fn eval_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval")
}

pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    /// The configured API key, sent by the helpers below.
    key: Option<String>,
    data_dir: Arc<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server with the default config, a fresh data directory and port 0.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start(data_dir, adjust).await
    }

    async fn start(data_dir: Arc<tempfile::TempDir>, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::load(Some(Path::new("/dev/null"))).expect("config");
        config.data_dir = data_dir.path().to_path_buf();
        config.listen = "127.0.0.1:0".parse().expect("addr");
        adjust(&mut config);
        let key = config.api_key.as_ref().map(|k| k.expose().to_owned());
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        // After a restart, the previous server's worker may still be finishing a document and
        // holding the data directory: wait for it, as a restarted process would for the lock.
        let deadline = Instant::now() + Duration::from_secs(120);
        let service = loop {
            match KnowledgeBase::open(config.clone()).await {
                Ok(service) => break service,
                Err(err) if err.to_string().contains("in use") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("service does not start: {err:#}"),
            }
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            lore::http::serve(listener, service, shutdown)
                .await
                .expect("server runs");
        });
        Self {
            base,
            http: reqwest::Client::new(),
            key,
            data_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.path().to_path_buf()
    }

    /// Stops this server and starts a new one on the same data directory.
    pub async fn restart(mut self) -> Self {
        let data_dir = Arc::clone(&self.data_dir);
        self.shutdown().await;
        Self::start(data_dir, |_| {}).await
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        // Let the ingestion worker notice the service is gone and release the data directory.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// A request with the server's API key, if it has one.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("request");
        split(response).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request");
        split(response).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::POST, path)
            .header("content-type", content_type)
            .body(body.into())
            .send()
            .await
            .expect("request");
        split(response).await
    }

    pub async fn delete(&self, path: &str) -> u16 {
        self.request(reqwest::Method::DELETE, path)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    pub async fn create_kb(&self, id: &str) {
        let (status, body) = self.post_json("/api/kbs", &json!({ "id": id })).await;
        assert_eq!(status, 201, "{body}");
    }

    /// Uploads files given as (name, bytes).
    pub async fn upload(&self, kb: &str, files: Vec<(String, Vec<u8>)>) -> (u16, Value) {
        self.upload_with(kb, files, None).await
    }

    pub async fn upload_with(
        &self,
        kb: &str,
        files: Vec<(String, Vec<u8>)>,
        metadata: Option<Value>,
    ) -> (u16, Value) {
        let mut form = Form::new();
        for (name, bytes) in files {
            form = form.part("file", Part::bytes(bytes).file_name(name));
        }
        if let Some(metadata) = metadata {
            form = form.text("metadata", metadata.to_string());
        }
        let response = self
            .request(reqwest::Method::POST, &format!("/api/kbs/{kb}/documents"))
            .multipart(form)
            .send()
            .await
            .expect("upload");
        split(response).await
    }

    /// Uploads files from disk.
    pub async fn upload_paths(&self, kb: &str, paths: &[PathBuf]) -> (u16, Value) {
        let files = paths
            .iter()
            .map(|p| {
                let name = p
                    .file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned();
                (name, std::fs::read(p).expect("read fixture"))
            })
            .collect();
        self.upload(kb, files).await
    }

    /// Waits until no document of `kb` is queued or processing; returns the documents.
    pub async fn wait_idle(&self, kb: &str) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let (status, body) = self.get(&format!("/api/kbs/{kb}/documents")).await;
            assert_eq!(status, 200, "{body}");
            let documents = body["documents"].as_array().cloned().unwrap_or_default();
            let busy = documents
                .iter()
                .any(|d| d["status"] == "queued" || d["status"] == "processing");
            if !busy {
                return documents;
            }
            assert!(
                Instant::now() < deadline,
                "ingestion did not finish: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The texts of a document's served chunks.
    pub async fn chunk_texts(&self, kb: &str, id: &str) -> Vec<String> {
        let (status, body) = self
            .get(&format!("/api/kbs/{kb}/documents/{id}/chunks"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["text"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn search(&self, kb: &str, query: &str, top_k: usize) -> Vec<Value> {
        let (status, body) = self
            .post_json(
                &format!("/api/kbs/{kb}/search"),
                &json!({ "query": query, "top_k": top_k }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["records"].as_array().cloned().expect("records")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn split(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The 27 Chinese Markdown files of the evaluation set.
pub fn md_zh_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(eval_dir().join("docs/md_zh"))
        .expect("../shared/eval/docs/md_zh")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files
}

/// Questions of `docs_qa_zh.dev.jsonl` of one type.
pub fn zh_questions(kind: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(eval_dir().join("docs_qa_zh.dev.jsonl")).expect("dev set");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|q| q["type"] == kind)
        .collect()
}

/// Server-sent events of a response body, as (event, data) pairs.
pub fn sse(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            (event, data)
        })
        .collect()
}
