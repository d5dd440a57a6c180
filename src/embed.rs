//! Embedding: text to dense vectors with a local ONNX model through fastembed.
//!
//! Sits between splitting and storing on the ingest path, and at the start of every query.
//! Inference is CPU work: it runs on blocking threads, never on the async runtime. Passages are
//! sorted by length before batching, because a batch is padded to its longest member and mixed
//! lengths waste most of the compute on padding.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};

use crate::config::Config;

/// Files a model folder must hold.
const MODEL_FILES: [&str; 5] = [
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

/// A loaded embedding model. Cheap to clone; clones share the one session.
#[derive(Clone)]
pub struct Embedder {
    /// fastembed's `embed` takes `&mut self`; the session is used by one caller at a time and
    /// each call holds the lock for one batch only, so a query waits for at most one batch.
    model: Arc<Mutex<TextEmbedding>>,
    tokenizer: Arc<tokenizers::Tokenizer>,
    dimension: usize,
    batch_size: usize,
    query_prefix: String,
    passage_prefix: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dimension", &self.dimension)
            .finish_non_exhaustive()
    }
}

/// ONNX Runtime allows one environment per process; every embedder shares it. Only success is
/// kept, so a failed start (library missing) can be retried once the library is in place.
static ORT_ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

fn ort_environment(library: &Path) -> anyhow::Result<ort::environment::Environment> {
    if !library.is_file() {
        anyhow::bail!(
            "the ONNX Runtime library {} does not exist; run scripts/setup-models, or set \
             embedding.onnxruntime (LORE_EMBEDDING__ONNXRUNTIME) to libonnxruntime.so",
            library.display()
        );
    }
    let mut slot = ORT_ENVIRONMENT
        .lock()
        .map_err(|_| anyhow::anyhow!("ONNX Runtime start-up panicked earlier"))?;
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    // `init_from` checks the library's version and returns an error; ort's implicit loading
    // would panic instead.
    let env = ort::init_from(library)
        .map_err(|err| anyhow::anyhow!("cannot load ONNX Runtime: {err}"))?
        .with_name("lore")
        .build()
        .map_err(|err| anyhow::anyhow!("cannot start ONNX Runtime: {err}"))?;
    *slot = Some(env.clone());
    Ok(env)
}

impl Embedder {
    /// Loads the model folder and the runtime named by the config, with clear errors for
    /// whatever is missing.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let model_dir = config.model_dir();
        check_model_dir(&model_dir)?;
        let environment = ort_environment(&config.onnxruntime_path())?;
        let read = |name: &str| -> anyhow::Result<Vec<u8>> {
            let path = model_dir.join(name);
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
        };
        let tokenizer_files = TokenizerFiles {
            tokenizer_file: read("tokenizer.json")?,
            config_file: read("config.json")?,
            special_tokens_map_file: read("special_tokens_map.json")?,
            tokenizer_config_file: read("tokenizer_config.json")?,
        };
        let model = UserDefinedEmbeddingModel::new(read("model.onnx")?, tokenizer_files)
            .with_pooling(Pooling::Mean);
        let options = InitOptionsUserDefined::new()
            .with_environment(environment)
            .with_max_length(config.embedding.max_length)
            .with_intra_threads(config.embedding.threads);
        let mut model =
            TextEmbedding::try_new_from_user_defined(model, options).with_context(|| {
                format!("cannot load the embedding model in {}", model_dir.display())
            })?;
        let probe = model
            .embed(["passage: probe"], None)
            .context("the embedding model failed a probe")?;
        let dimension = probe.first().map(Vec::len).unwrap_or_default();
        anyhow::ensure!(
            dimension > 0,
            "the embedding model returned an empty vector"
        );

        let mut tokenizer = tokenizers::Tokenizer::from_file(model_dir.join("tokenizer.json"))
            .map_err(|err| anyhow::anyhow!("cannot read tokenizer.json: {err}"))?;
        // The splitter counts tokens of whole candidate chunks: truncation would hide their size.
        tokenizer
            .with_truncation(None)
            .map_err(|err| anyhow::anyhow!("cannot configure the tokenizer: {err}"))?;
        tokenizer.with_padding(None);

        Ok(Self {
            model: Arc::new(Mutex::new(model)),
            tokenizer: Arc::new(tokenizer),
            dimension,
            batch_size: config.embedding.batch_size,
            query_prefix: config.embedding.query_prefix.clone(),
            passage_prefix: config.embedding.passage_prefix.clone(),
        })
    }

    /// Length of every vector this model returns.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The model's tokenizer, without truncation or padding, for sizing chunks.
    pub fn tokenizer(&self) -> Arc<tokenizers::Tokenizer> {
        Arc::clone(&self.tokenizer)
    }

    /// Embeds a question (with the query prefix).
    pub async fn embed_query(&self, question: &str) -> anyhow::Result<Vec<f32>> {
        let text = format!("{}{question}", self.query_prefix);
        let mut vectors = self.run_blocking(vec![text]).await?;
        vectors
            .pop()
            .context("the embedding model returned no vector")
    }

    /// Embeds passages (with the passage prefix), in the order given.
    pub async fn embed_passages(&self, passages: Vec<String>) -> anyhow::Result<Vec<Vec<f32>>> {
        let texts = passages
            .into_iter()
            .map(|p| format!("{}{p}", self.passage_prefix))
            .collect();
        self.run_blocking(texts).await
    }

    async fn run_blocking(&self, texts: Vec<String>) -> anyhow::Result<Vec<Vec<f32>>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.embed_sorted(&texts))
            .await
            .context("the embedding task was cancelled")?
    }

    /// Embeds in batches of similar length, then restores the caller's order.
    fn embed_sorted(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut vectors = vec![Vec::new(); texts.len()];
        for batch in order.chunks(self.batch_size) {
            let inputs: Vec<&str> = batch.iter().map(|&i| texts[i].as_str()).collect();
            let embedded = {
                let mut model = self.model.lock().map_err(|_| {
                    anyhow::anyhow!("the embedding model is unusable after a panic")
                })?;
                model
                    .embed(&inputs, Some(inputs.len()))
                    .context("embedding failed")?
            };
            anyhow::ensure!(
                embedded.len() == batch.len(),
                "the embedding model skipped inputs"
            );
            for (&i, vector) in batch.iter().zip(embedded) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }
}

fn check_model_dir(dir: &Path) -> anyhow::Result<()> {
    let missing: Vec<PathBuf> = MODEL_FILES
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| !path.is_file())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
    anyhow::bail!(
        "the embedding model is not set up: missing {}; run scripts/setup-models, or set \
         embedding.model_dir (LORE_EMBEDDING__MODEL_DIR) to an ONNX model folder",
        names.join(", ")
    )
}
