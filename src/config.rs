//! Configuration: built-in defaults < `lore.toml` < `LORE_*` environment variables.
//!
//! One typed struct, read once at start and validated, so every later component can trust it.
//! Nested keys use `__` in the environment: `LORE_EMBEDDING__THREADS=2`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Top-level keys that `LORE_*` variables may set; other `LORE_` variables (such as
/// `LORE_CONFIG`, read by the CLI) are not configuration keys and are left alone.
const ENV_KEYS: &[&str] = &[
    "answer",
    "llm",
    "home",
    "data_dir",
    "listen",
    "api_key",
    "keys",
    "embedding",
    "chunking",
    "search",
    "limits",
    "wechat",
    "storage",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where `scripts/setup-models` installs the models and runtimes (`LORE_HOME`);
    /// default `$XDG_CACHE_HOME/lore` or `~/.cache/lore`.
    pub home: PathBuf,
    /// Where knowledge bases live. One lore process owns it at a time (it is locked).
    pub data_dir: PathBuf,
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// The admin API key (`LORE_API_KEY`). Without one, lore only listens on loopback.
    pub api_key: Option<Secret>,
    /// More keys, each with a role and optionally limited to some knowledge bases
    /// (`[[keys]]` in lore.toml).
    pub keys: Vec<KeyConfig>,
    pub embedding: EmbeddingConfig,
    pub chunking: ChunkingConfig,
    pub search: SearchConfig,
    pub answer: AnswerConfig,
    pub llm: LlmConfig,
    pub limits: LimitsConfig,
    pub wechat: WeChatConfig,
    pub storage: StorageConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// ONNX model folder (model.onnx, tokenizer.json, config.json, special_tokens_map.json,
    /// tokenizer_config.json); default `{home}/models/multilingual-e5-small`.
    pub model_dir: Option<PathBuf>,
    /// The ONNX Runtime shared library; default `{home}/onnxruntime/libonnxruntime.so`,
    /// or `ORT_DYLIB_PATH` when that is set.
    pub onnxruntime: Option<PathBuf>,
    /// Intra-op threads of each embedding session. One thread per session measured fastest.
    pub threads: usize,
    /// Sessions embedding passages in parallel (default: one per core, at most 8). Questions
    /// get one more session of their own.
    pub workers: usize,
    /// Passages embedded per model call; passages are grouped by length so padding stays small.
    pub batch_size: usize,
    /// Most padded tokens in one model call. 512 (one long passage, or a few short ones) was
    /// fastest on 2 cores: calls of 2,048 tokens embedded ~10% slower (see BENCHMARKS.md). It
    /// also bounds the memory a call takes.
    pub batch_tokens: usize,
    /// Tokens beyond this are cut before embedding (the model's own limit is 512).
    pub max_length: usize,
    /// Prefix the model wants before questions (E5: "query: ").
    pub query_prefix: String,
    /// Prefix the model wants before stored passages (E5: "passage: ").
    pub passage_prefix: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkingConfig {
    /// Target chunk size in tokens of the embedding tokenizer.
    pub size_tokens: usize,
    /// Tokens shared by neighbouring chunks, so a fact cut at a boundary is whole in one of them.
    pub overlap_tokens: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Results returned when a request does not say `top_k`.
    pub default_top_k: usize,
    /// Largest `top_k` a request may ask for.
    pub max_top_k: usize,
}

/// How questions are answered (see `answer::decide` for what each threshold does).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnswerConfig {
    /// Below this best calibrated score, the reply is "not in the knowledge base".
    pub min_score: f32,
    /// Below this share of the question's content found in the best document: not found.
    pub min_coverage: f32,
    /// Below this share of the question's content found together in one passage window (a few
    /// consecutive sentences under their headings): not found.
    pub min_focus: f32,
    /// Documents whose best hit is within this score of the top count as tied.
    pub tie_margin: f32,
    /// Tied documents whose best-matching sentences are at least this similar agree.
    pub agree_similarity: f32,
    /// Most options in a clarifying question.
    pub max_options: usize,
    /// Passages retrieved for a question.
    pub top_k: usize,
    /// Default time budget of an answer, in milliseconds (WeChat drops replies after 5 s).
    pub deadline_ms: u64,
    /// Reply when nothing is found, for Chinese questions (default: a built-in sentence).
    pub not_found_zh: Option<String>,
    /// Reply when nothing is found, for other questions.
    pub not_found_en: Option<String>,
}

impl AnswerConfig {
    pub fn decide_config(&self) -> crate::answer::DecideConfig {
        crate::answer::DecideConfig {
            min_score: self.min_score,
            min_coverage: self.min_coverage,
            min_focus: self.min_focus,
            tie_margin: self.tie_margin,
            agree_similarity: self.agree_similarity,
            max_options: self.max_options,
        }
    }
}

impl Default for AnswerConfig {
    fn default() -> Self {
        let decide = crate::answer::DecideConfig::default();
        Self {
            min_score: decide.min_score,
            min_coverage: decide.min_coverage,
            min_focus: decide.min_focus,
            tie_margin: decide.tie_margin,
            agree_similarity: decide.agree_similarity,
            max_options: decide.max_options,
            top_k: 6,
            deadline_ms: 4500,
            not_found_zh: None,
            not_found_en: None,
        }
    }
}

/// The chat model: any OpenAI-compatible server, with ordered fallbacks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Base URL of the OpenAI-compatible API (ends in `/v1`); default: scripts/llm-server.
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    /// Tried in order when the one before fails or its circuit is open.
    pub fallbacks: Vec<LlmEndpoint>,
    pub temperature: f32,
    pub max_tokens: u32,
    /// Time to establish a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Longest a single model call may take, in milliseconds (the request deadline cuts it
    /// shorter).
    pub timeout_ms: u64,
    /// Extra attempts on the same endpoint for transient errors (timeouts, 429, 5xx).
    pub retries: u32,
    /// Consecutive failures after which an endpoint is skipped for `breaker_cooldown_ms`.
    pub breaker_failures: u32,
    pub breaker_cooldown_ms: u64,
}

/// Another model endpoint to fall back to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmEndpoint {
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<Secret>,
    pub model: String,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8081/v1".to_owned(),
            api_key: None,
            model: "qwen2.5-1.5b-instruct".to_owned(),
            fallbacks: Vec::new(),
            temperature: 0.1,
            max_tokens: 512,
            connect_timeout_ms: 1000,
            timeout_ms: 60_000,
            retries: 1,
            breaker_failures: 3,
            breaker_cooldown_ms: 30_000,
        }
    }
}

impl LlmConfig {
    /// The primary endpoint, then the fallbacks.
    pub fn endpoints(&self) -> Vec<LlmEndpoint> {
        let primary = LlmEndpoint {
            base_url: self.base_url.clone(),
            api_key: self.api_key.clone(),
            model: self.model.clone(),
        };
        std::iter::once(primary)
            .chain(self.fallbacks.iter().cloned())
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted upload request, all files together, in bytes.
    pub max_upload_bytes: usize,
    /// Longest accepted question, in characters.
    pub max_query_chars: usize,
    /// Longest extracted document text, in characters (about 2,000 pages of Chinese); longer
    /// documents fail with `payload_too_large` instead of tying up ingestion for hours.
    pub max_document_chars: usize,
    /// Requests per minute per API key on the REST and OpenAI front doors (0: unlimited).
    /// Dify and WeChat are exempt: they retry what is refused, which only adds load.
    pub requests_per_minute: u32,
    /// Requests a key may make at once before the per-minute rate applies.
    pub burst: u32,
}

/// One API key: `key` itself, or only its SHA-256 (hex) so lore.toml holds no secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Who holds it; named in logs and metrics instead of the key.
    pub name: String,
    #[serde(default)]
    pub key: Option<Secret>,
    #[serde(default)]
    pub key_sha256: Option<String>,
    pub role: Role,
    /// The knowledge bases this key may use; all when absent.
    #[serde(default)]
    pub kbs: Option<Vec<String>>,
}

/// What a key may do. `admin` manages knowledge bases and documents and may also read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search, answer, Dify, OpenAI: everything that reads.
    Read,
    /// Everything.
    Admin,
}

/// A secret string (API key) that never shows in `Debug` output or logs.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for comparison or for sending to its owner's service.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

fn default_home() -> PathBuf {
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(cache).join("lore");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("lore"),
        None => PathBuf::from(".lore"),
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            home: default_home(),
            data_dir: PathBuf::from("data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_key: None,
            keys: Vec::new(),
            embedding: EmbeddingConfig::default(),
            chunking: ChunkingConfig::default(),
            search: SearchConfig::default(),
            answer: AnswerConfig::default(),
            llm: LlmConfig::default(),
            limits: LimitsConfig::default(),
            wechat: WeChatConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self {
            model_dir: None,
            onnxruntime: None,
            threads: 1,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
            batch_size: 8,
            batch_tokens: 512,
            max_length: 512,
            query_prefix: "query: ".to_owned(),
            passage_prefix: "passage: ".to_owned(),
        }
    }
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        Self {
            size_tokens: 300,
            overlap_tokens: 45,
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            default_top_k: 5,
            max_top_k: 100,
        }
    }
}

/// The WeChat official-account front door (`/wechat/{kb}`). The account itself (token, AppID,
/// keys) is set per knowledge base through `PUT /api/kbs/{kb}/wechat`; these are the timings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeChatConfig {
    /// WeChat's API (access tokens, customer-service messages); tests point it at a stand-in.
    pub api_base: String,
    /// How long one of WeChat's tries waits for the answer. WeChat hangs up after 5 s.
    pub reply_wait_ms: u64,
    /// Time budget of one answer across WeChat's three tries (about 15 s in all).
    pub deadline_ms: u64,
    /// How long a clarifying question waits for the user's choice, in seconds.
    pub clarify_ttl_secs: u64,
    /// How long an answer that missed all three tries waits for the user's next message.
    pub pending_ttl_secs: u64,
    /// Longest text reply in bytes (WeChat's limit is 2048); longer answers end at a sentence.
    pub max_reply_bytes: usize,
    /// The OCR program for image messages (Debian's `tesseract-ocr`) and its languages.
    pub ocr_command: String,
    pub ocr_languages: String,
    /// Largest picture downloaded for OCR.
    pub max_image_bytes: usize,
}

/// Where chunks and their vectors live (`[storage]`), and with them the catalog (document
/// records): files in `data_dir` beside the embedded store, records beside the chunks on a
/// Qdrant server. `lore migrate` moves knowledge bases between backends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `embedded` (Qdrant Edge inside lore, under `data_dir`) or `qdrant` (a Qdrant server).
    pub backend: StorageBackend,
    pub qdrant: QdrantConfig,
}

/// The two vector-store backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Embedded,
    Qdrant,
}

/// A Qdrant server (single node or cluster), reached over gRPC.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QdrantConfig {
    /// gRPC URL (Qdrant's port 6334); `https://` turns on TLS, checked against the system roots.
    pub url: String,
    /// Qdrant's API key (`LORE_STORAGE__QDRANT__API_KEY`); sent on every call, never logged.
    pub api_key: Option<Secret>,
    /// Collections are named `{collection_prefix}{kb}`, so deployments can share one server.
    pub collection_prefix: String,
    /// Limit of one call, in milliseconds.
    pub timeout_ms: u64,
    /// Limit of opening a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How long a lore instance holds a document's write lease; another instance may take the
    /// document over after that (a crashed writer must not block it forever).
    pub lease_ms: u64,
    /// How often each instance re-reads the shared catalog (knowledge bases and document
    /// records), in milliseconds: changes made through another instance show within this.
    pub catalog_refresh_ms: u64,
}

impl Default for QdrantConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:6334".to_owned(),
            api_key: None,
            collection_prefix: "lore_".to_owned(),
            timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
            lease_ms: 600_000,
            catalog_refresh_ms: 1_000,
        }
    }
}

impl Default for WeChatConfig {
    fn default() -> Self {
        Self {
            api_base: "https://api.weixin.qq.com".to_owned(),
            reply_wait_ms: 4_500,
            deadline_ms: 13_000,
            clarify_ttl_secs: 600,
            pending_ttl_secs: 3_600,
            max_reply_bytes: 2_048,
            ocr_command: "tesseract".to_owned(),
            ocr_languages: "chi_sim+eng".to_owned(),
            max_image_bytes: 10 * 1024 * 1024,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            max_query_chars: 2000,
            max_document_chars: 2_000_000,
            requests_per_minute: 600,
            burst: 60,
        }
    }
}

impl Config {
    /// Reads the defaults, then `file` if it exists (`lore.toml` by default), then `LORE_*`.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let explicit = file.is_some();
        let file = file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("lore.toml"));
        if explicit && !file.exists() {
            anyhow::bail!("config file {} does not exist", file.display());
        }
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(&file))
            .merge(
                Env::prefixed("LORE_")
                    .filter(|key| {
                        let top = key.as_str().split("__").next().unwrap_or_default();
                        ENV_KEYS.iter().any(|known| known.eq_ignore_ascii_case(top))
                    })
                    .split("__"),
            )
            .extract()
            .map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what can be checked before anything starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        let c = &self.chunking;
        anyhow::ensure!(
            c.size_tokens >= 16,
            "chunking.size_tokens must be at least 16"
        );
        anyhow::ensure!(
            c.overlap_tokens < c.size_tokens,
            "chunking.overlap_tokens must be smaller than chunking.size_tokens"
        );
        anyhow::ensure!(
            self.embedding.threads >= 1,
            "embedding.threads must be at least 1"
        );
        anyhow::ensure!(
            self.embedding.batch_size >= 1,
            "embedding.batch_size must be at least 1"
        );
        anyhow::ensure!(
            self.search.default_top_k >= 1,
            "search.default_top_k must be at least 1"
        );
        anyhow::ensure!(
            self.search.default_top_k <= self.search.max_top_k,
            "search.default_top_k must not exceed search.max_top_k"
        );
        if let Some(key) = &self.api_key {
            anyhow::ensure!(
                key.expose().len() >= 16,
                "api_key must be at least 16 characters"
            );
        }
        for key in &self.keys {
            let name = &key.name;
            match (&key.key, &key.key_sha256) {
                (Some(k), None) => anyhow::ensure!(
                    k.expose().len() >= 16,
                    "key {name}: keys must be at least 16 characters"
                ),
                (None, Some(hash)) => anyhow::ensure!(
                    hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
                    "key {name}: key_sha256 must be 64 hex digits"
                ),
                _ => anyhow::bail!("key {name}: set exactly one of key and key_sha256"),
            }
        }
        Ok(())
    }

    pub fn model_dir(&self) -> PathBuf {
        self.embedding
            .model_dir
            .clone()
            .unwrap_or_else(|| self.home.join("models").join("multilingual-e5-small"))
    }

    pub fn onnxruntime_path(&self) -> PathBuf {
        if let Some(path) = &self.embedding.onnxruntime {
            return path.clone();
        }
        match std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => self.home.join("onnxruntime").join("libonnxruntime.so"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's test jail returns its own (large) error type
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_are_valid_and_listen_on_loopback() {
        let config = Config::default();
        config.validate().unwrap();
        assert!(config.listen.ip().is_loopback());
        assert_eq!(config.listen.port(), 8080);
    }

    #[test]
    fn file_then_environment_override_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "lore.toml",
                "data_dir = \"/from/file\"\n[chunking]\nsize_tokens = 200\noverlap_tokens = 20\n",
            )?;
            jail.set_env("LORE_CHUNKING__SIZE_TOKENS", "250");
            jail.set_env("LORE_CONFIG", "ignored: not a key");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.data_dir, PathBuf::from("/from/file"));
            assert_eq!(config.chunking.size_tokens, 250);
            assert_eq!(config.chunking.overlap_tokens, 20);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        Jail::expect_with(|jail| {
            jail.create_file("lore.toml", "[chunking]\nsize_token = 200\n")?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("size_token"), "{err}");
            jail.create_file(
                "lore.toml",
                "[chunking]\nsize_tokens = 20\noverlap_tokens = 30\n",
            )?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("overlap_tokens"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn secrets_do_not_print() {
        let config = Config {
            api_key: Some(Secret::new("super-secret-key-123")),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("super-secret"));
    }
}
