//! Embedding: text to dense vectors with a local ONNX model, run by ONNX Runtime.
//!
//! Sits between splitting and storing on the ingest path, and at the start of every query.
//! Inference is CPU work and runs on dedicated threads, each owning one model session with one
//! intra-op thread (measured fastest per core): a pool of `embedding.workers` sessions for
//! passages, so ingestion uses every core, and one more for questions alone, so a question
//! never queues behind a bulk upload's batches (it only shares the CPU with them). All sessions
//! share one tokenizer (`crate::tokenize`, which holds the 250k-piece vocabulary in a few MB where
//! the `tokenizers` crate's own Unigram model takes ~330 MB).
//! Passages are sorted by length before batching, because a batch is padded to its longest
//! member and mixed lengths waste most of the compute on padding.
//!
//! Why not fastembed's `TextEmbedding`, which wraps the same steps: each instance holds its own
//! copy of the tokenizer, and `embed` takes `&mut self`, so several sessions would cost several
//! tokenizers. The steps are few: tokenize, pad, run, mean-pool over the mask, normalise.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::priority::Priority;

/// Files a model folder must hold.
const MODEL_FILES: [&str; 2] = ["model.onnx", "tokenizer.json"];
/// A loaded embedding model. Cheap to clone; clones share the sessions and the tokenizer.
#[derive(Clone)]
pub struct Embedder {
    inner: Arc<Inner>,
}

struct Inner {
    tokenizer: Arc<crate::tokenize::Tokenizer>,
    /// Batches of passages, taken by whichever passage worker is free.
    passages: std_mpsc::Sender<Job>,
    /// Questions, served by their own worker.
    questions: std_mpsc::Sender<Job>,
    dimension: usize,
    batch_size: usize,
    batch_tokens: usize,
    max_length: usize,
    query_prefix: String,
    passage_prefix: String,
}

/// One batch of token ids to embed, and where to send the vectors.
struct Job {
    ids: Vec<Vec<u32>>,
    reply: oneshot::Sender<anyhow::Result<Vec<Vec<f32>>>>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dimension", &self.inner.dimension)
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
    /// whatever is missing, and starts the worker threads.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let model_dir = config.model_dir();
        check_model_dir(&model_dir)?;
        let environment = ort_environment(&config.onnxruntime_path())?;
        // Whole texts (`load` sets neither truncation nor padding): the splitter counts tokens
        // of candidate chunks, and the embedder cuts and pads batches itself.
        let tokenizer = crate::tokenize::load(&model_dir.join("tokenizer.json"))?;
        let pad_id = tokenizer.token_to_id("<pad>").unwrap_or(1);

        let model = model_dir.join("model.onnx");
        // Sessions share their prepacked weights. ONNX Runtime's arena stays on: without it,
        // 60 CMRC passages took 13-21 s instead of 9-11 s for ~100 MB less peak memory;
        // `embedding.batch_tokens` bounds what each arena grows to.
        let prepacked = ort::session::builder::PrepackedWeights::new();
        let open_session = || -> anyhow::Result<Session> {
            let configure =
                |err: ort::Error<_>| anyhow::anyhow!("cannot configure ONNX Runtime: {err}");
            Session::builder(&environment)
                .map_err(|err| anyhow::anyhow!("cannot start ONNX Runtime: {err}"))?
                // `All` is ORT_ENABLE_ALL, Python's default; `Level3` is only ORT_ENABLE_LAYOUT.
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(configure)?
                .with_intra_threads(config.embedding.threads)
                .map_err(configure)?
                .with_inter_threads(1)
                .map_err(configure)?
                .with_prepacked_weights(&prepacked)
                .map_err(configure)?
                .commit_from_file(&model)
                .with_context(|| format!("cannot load the embedding model {}", model.display()))
        };
        let (questions, question_jobs) = std_mpsc::channel();
        let mut probe_session = open_session()?;
        let dimension = probe(&mut probe_session, &tokenizer, pad_id)?;
        spawn_worker(
            "lore-embed-query",
            Priority::Normal,
            probe_session,
            pad_id,
            Arc::new(Mutex::new(question_jobs)),
        )?;
        let (passages, passage_jobs) = std_mpsc::channel();
        let passage_jobs = Arc::new(Mutex::new(passage_jobs));
        for n in 0..config.embedding.workers.max(1) {
            let name = format!("lore-embed-{n}");
            spawn_worker(
                &name,
                Priority::Background,
                open_session()?,
                pad_id,
                Arc::clone(&passage_jobs),
            )?;
        }
        release_freed_heap();
        Ok(Self {
            inner: Arc::new(Inner {
                tokenizer: Arc::new(tokenizer),
                passages,
                questions,
                dimension,
                batch_size: config.embedding.batch_size,
                batch_tokens: config.embedding.batch_tokens,
                max_length: config.embedding.max_length,
                query_prefix: config.embedding.query_prefix.clone(),
                passage_prefix: config.embedding.passage_prefix.clone(),
            }),
        })
    }

    /// Length of every vector this model returns.
    pub fn dimension(&self) -> usize {
        self.inner.dimension
    }

    /// The model's tokenizer, without truncation or padding, for sizing chunks.
    pub fn tokenizer(&self) -> Arc<crate::tokenize::Tokenizer> {
        Arc::clone(&self.inner.tokenizer)
    }

    /// Embeds a question (with the query prefix), on the question worker.
    pub async fn embed_query(&self, question: &str) -> anyhow::Result<Vec<f32>> {
        let text = format!("{}{question}", self.inner.query_prefix);
        let ids = self.token_ids(&[text]).await?;
        let mut vectors = submit(&self.inner.questions, ids).await?;
        vectors
            .pop()
            .context("the embedding model returned no vector")
    }

    /// Embeds passages (with the passage prefix), in the order given: batches of similar
    /// length, spread over the passage workers.
    pub async fn embed_passages(&self, passages: Vec<String>) -> anyhow::Result<Vec<Vec<f32>>> {
        let texts: Vec<String> = passages
            .into_iter()
            .map(|p| format!("{}{p}", self.inner.passage_prefix))
            .collect();
        let ids = self.token_ids(&texts).await?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let batches = batches(&order, &ids, self.inner.batch_size, self.inner.batch_tokens);
        let pending = batches.iter().map(|batch| {
            let batch_ids = batch.iter().map(|&i| ids[i].clone()).collect();
            submit(&self.inner.passages, batch_ids)
        });
        let results = futures::future::join_all(pending).await;
        let mut vectors = vec![Vec::new(); ids.len()];
        for (batch, embedded) in batches.iter().zip(results) {
            let embedded = embedded?;
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

    /// Token ids of each text, cut to `max_length` (keeping the closing special token, as the
    /// model was trained), on a blocking thread: tokenizing a long document takes a while.
    async fn token_ids(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<u32>>> {
        let inner = Arc::clone(&self.inner);
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || {
            let encodings = inner
                .tokenizer
                .encode_batch(texts, true)
                .map_err(|err| anyhow::anyhow!("tokenizing failed: {err}"))?;
            Ok(encodings
                .iter()
                .map(|e| truncate(e.get_ids(), inner.max_length))
                .collect())
        })
        .await
        .context("the tokenizing task was cancelled")?
    }
}

/// Hands the heap that loading freed back to the kernel. Each session parses the whole model
/// file (~150 MB of protobuf) and copies its weights out; glibc keeps the freed parse buffers
/// in its arenas, where they would count against the process for as long as it runs.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's own arenas to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Consecutive runs of `order` (sorted by length) of at most `max_items` texts and at most
/// `max_tokens` padded tokens: a batch's activations grow with its count times its longest
/// text (attention with its square), so long passages go fewer at a time.
fn batches(
    order: &[usize],
    ids: &[Vec<u32>],
    max_items: usize,
    max_tokens: usize,
) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for &i in order {
        let longest = current
            .iter()
            .map(|&j| ids[j].len())
            .chain([ids[i].len()])
            .max()
            .unwrap_or(0);
        let fits = current.len() < max_items.max(1) && (current.len() + 1) * longest <= max_tokens;
        if !fits && !current.is_empty() {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// `ids` cut to `max` tokens, the last kept token replaced by the sequence's own last one
/// (`</s>`), which is what the tokenizer's truncation with its post-processor produces.
fn truncate(ids: &[u32], max: usize) -> Vec<u32> {
    if ids.len() <= max || max == 0 {
        return ids.to_vec();
    }
    let mut cut = ids[..max].to_vec();
    if let (Some(last), Some(end)) = (cut.last_mut(), ids.last()) {
        *last = *end;
    }
    cut
}

async fn submit(
    queue: &std_mpsc::Sender<Job>,
    ids: Vec<Vec<u32>>,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let (reply, answer) = oneshot::channel();
    queue
        .send(Job { ids, reply })
        .map_err(|_| anyhow::anyhow!("the embedding workers have stopped"))?;
    answer
        .await
        .map_err(|_| anyhow::anyhow!("an embedding worker stopped mid-batch"))?
}

/// A thread owning one session, serving jobs from `jobs` until every sender is gone.
fn spawn_worker(
    name: &str,
    priority: Priority,
    mut session: Session,
    pad_id: u32,
    jobs: Arc<Mutex<std_mpsc::Receiver<Job>>>,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            priority.apply();
            loop {
                // Hold the lock only to take a job, so the other workers can take the next.
                let job = match jobs.lock() {
                    Ok(receiver) => receiver.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                let result = run(&mut session, &job.ids, pad_id);
                let _ = job.reply.send(result);
            }
        })
        .context("cannot start an embedding thread")?;
    Ok(())
}

/// One batch through the model: pad to the longest, run, mean-pool over real tokens, normalise.
fn run(session: &mut Session, ids: &[Vec<u32>], pad_id: u32) -> anyhow::Result<Vec<Vec<f32>>> {
    let batch = ids.len();
    let width = ids.iter().map(Vec::len).max().unwrap_or(0);
    if batch == 0 || width == 0 {
        return Ok(vec![Vec::new(); batch]);
    }
    let mut input_ids = Vec::with_capacity(batch * width);
    let mut mask = Vec::with_capacity(batch * width);
    for row in ids {
        input_ids.extend(row.iter().map(|&id| i64::from(id)));
        input_ids.extend(std::iter::repeat_n(i64::from(pad_id), width - row.len()));
        mask.extend(std::iter::repeat_n(1i64, row.len()));
        mask.extend(std::iter::repeat_n(0i64, width - row.len()));
    }
    let shape = [batch, width];
    let inputs = ort::inputs![
        "input_ids" => Tensor::from_array((shape, input_ids))?,
        "attention_mask" => Tensor::from_array((shape, mask.clone()))?,
    ];
    let outputs = session.run(inputs).context("embedding failed")?;
    let (out_shape, hidden) = outputs["last_hidden_state"]
        .try_extract_tensor::<f32>()
        .context("the model's output is not last_hidden_state [batch, tokens, dim]")?;
    let dim = match **out_shape {
        [b, t, d] if b as usize == batch && t as usize == width && d > 0 => d as usize,
        _ => anyhow::bail!("unexpected output shape {out_shape:?}"),
    };
    Ok((0..batch)
        .map(|b| {
            let mut sum = vec![0f32; dim];
            let mut count = 0f32;
            for t in 0..width {
                if mask[b * width + t] == 1 {
                    let start = (b * width + t) * dim;
                    for (s, v) in sum.iter_mut().zip(&hidden[start..start + dim]) {
                        *s += v;
                    }
                    count += 1.0;
                }
            }
            let mean: Vec<f32> = sum.iter().map(|s| s / count.max(1.0)).collect();
            normalize(&mean)
        })
        .collect())
}

/// Unit length, so the store's cosine and a plain dot product agree.
fn normalize(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / (norm + 1e-12)).collect()
}

/// Runs one short passage to learn the vector length and fail early on a broken model.
fn probe(
    session: &mut Session,
    tokenizer: &crate::tokenize::Tokenizer,
    pad_id: u32,
) -> anyhow::Result<usize> {
    let encoding = tokenizer
        .encode("passage: probe", true)
        .map_err(|err| anyhow::anyhow!("the tokenizer failed a probe: {err}"))?;
    let vectors = run(session, &[encoding.get_ids().to_vec()], pad_id)
        .context("the embedding model failed a probe")?;
    let dimension = vectors.first().map(Vec::len).unwrap_or_default();
    anyhow::ensure!(
        dimension > 0,
        "the embedding model returned an empty vector"
    );
    Ok(dimension)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_few_long_texts_or_many_short_ones() {
        let ids: Vec<Vec<u32>> = [10, 10, 10, 10, 500, 500, 500]
            .iter()
            .map(|&n| vec![0; n])
            .collect();
        let order: Vec<usize> = (0..ids.len()).collect();
        assert_eq!(
            batches(&order, &ids, 8, 1024),
            vec![vec![0, 1, 2, 3], vec![4, 5], vec![6]]
        );
        assert_eq!(batches(&order, &ids, 2, 100_000).len(), 4);
        // A text longer than the budget still gets a batch of its own.
        assert_eq!(batches(&[0], &[vec![0; 2000]], 8, 1024), vec![vec![0]]);
    }

    #[test]
    fn truncation_keeps_the_closing_token() {
        assert_eq!(truncate(&[0, 5, 6, 7, 2], 4), vec![0, 5, 6, 2]);
        assert_eq!(truncate(&[0, 5, 2], 4), vec![0, 5, 2]);
    }
}
