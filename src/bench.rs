//! `lore bench`: retrieval latency at a given number of chunks, alone and through Dify's
//! endpoint under concurrent load, measured in-process on this machine.
//!
//! Embedding 10,000+ real chunks takes most of an hour on two cores, so the store is filled with
//! real CMRC passages embedded once, plus perturbed copies of their vectors (unit noise added,
//! renormalised) under the same texts: the store, the keyword index and the fusion do the work
//! they would do at that size. Questions are the set's real questions, embedded for real.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use crate::config::Config;
use crate::document::Metadata;
use crate::embed::Embedder;
use crate::eval::{percentile, read_jsonl, scratch_service};
use crate::kb::{ImportedDocument, KnowledgeBase, SearchRequest};

const KB: &str = "bench";

pub struct BenchArgs {
    /// corpus.jsonl of `{"id","title","text"}` rows (e.g. ../shared/eval/zh_cmrc2018).
    pub corpus: PathBuf,
    /// queries.jsonl of `{"question"}` rows.
    pub queries: PathBuf,
    /// Chunks in the store.
    pub chunks: usize,
    /// Real passages embedded (the rest are perturbed copies).
    pub passages: usize,
    /// Concurrent clients of `/dify/retrieval`.
    pub clients: usize,
    /// Requests each client sends.
    pub requests: usize,
}

#[derive(Deserialize)]
struct Row {
    #[serde(default)]
    title: String,
    text: String,
}

#[derive(Deserialize)]
struct Query {
    question: String,
}

/// A small deterministic generator (xorshift64*), so runs are repeatable without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn perturbed(vector: &[f32], noise: &mut Noise, amplitude: f32) -> Vec<f32> {
    let mut out: Vec<f32> = vector
        .iter()
        .map(|x| x + amplitude * noise.next())
        .collect();
    let norm = out
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    out.iter_mut().for_each(|x| *x /= norm);
    out
}

/// Chunks per stored document when filling the store.
const CHUNKS_PER_DOCUMENT: usize = 50;

pub async fn run(mut config: Config, args: BenchArgs) -> anyhow::Result<()> {
    config.listen = "127.0.0.1:0".parse()?;
    let rows: Vec<Row> = read_jsonl(&args.corpus)?
        .into_iter()
        .take(args.passages)
        .collect();
    anyhow::ensure!(!rows.is_empty(), "the corpus is empty");
    let texts: Vec<String> = rows
        .iter()
        .map(|r| format!("{}\n{}", r.title, r.text))
        .collect();
    let questions: Vec<String> = read_jsonl::<Query>(&args.queries)?
        .into_iter()
        .map(|q| q.question)
        .collect();
    // The store comes first, so that its memory readings are what a server holding it needs:
    // the embedding figures load extra embedders side by side, and the allocator keeps some of
    // what they free.
    store(config.clone(), &args, &rows, &texts).await?;
    embedding(&config, &texts, &questions).await
}

/// Fills a store of `args.chunks` chunks and measures retrieval on it, one question at a time
/// and through `/dify/retrieval` under load, and the memory it takes.
async fn store(
    config: Config,
    args: &BenchArgs,
    rows: &[Row],
    texts: &[String],
) -> anyhow::Result<()> {
    reset_peak_memory();
    let (_data, service) = scratch_service(config, KB).await?;
    let loaded_mb = memory_mb("VmRSS");
    let started = Instant::now();
    let vectors = service.embedder().embed_passages(texts.to_vec()).await?;
    let embed_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    // Copies are stored as documents of CHUNKS_PER_DOCUMENT chunks, as manuals and FAQ files
    // are: a 100,000-chunk knowledge base is a few thousand documents, not 100,000 of them.
    let indices: Vec<usize> = (0..rows.len()).collect();
    let mut stored = 0;
    let mut copy = 0;
    while stored < args.chunks {
        let mut batch = Vec::new();
        for (number, group) in indices.chunks(CHUNKS_PER_DOCUMENT).enumerate() {
            let take = group.len().min(args.chunks - stored);
            if take == 0 {
                break;
            }
            let chunks = group[..take]
                .iter()
                .map(|&i| {
                    let dense = if copy == 0 {
                        vectors[i].clone()
                    } else {
                        perturbed(&vectors[i], &mut noise, 0.02)
                    };
                    (texts[i].clone(), dense)
                })
                .collect();
            stored += take;
            batch.push(ImportedDocument {
                name: format!("{copy}-{number}.md"),
                title: rows[group[0]].title.clone(),
                metadata: Metadata::new(),
                chunks,
            });
        }
        service.import_documents(KB, batch).await?;
        copy += 1;
    }
    let fill_seconds = started.elapsed().as_secs_f64();
    let filled_mb = memory_mb("VmRSS");
    let filled_heap_mb = memory_mb("RssAnon");
    let fill_peak_mb = memory_mb("VmHWM");

    let queries: Vec<Query> = read_jsonl(&args.queries)?;
    let mut latencies = Vec::with_capacity(queries.len());
    for query in &queries {
        let asked = Instant::now();
        let request = SearchRequest {
            query: query.question.clone(),
            top_k: Some(5),
            score_threshold: None,
            filter: None,
        };
        service.search(KB, request).await?;
        latencies.push(asked.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);

    let dify = dify_load(Arc::clone(&service), &queries, args.clients, args.requests).await?;

    println!(
        "store: {stored} chunks ({} real passages embedded in {embed_seconds:.1} s, filled in {fill_seconds:.1} s)",
        rows.len()
    );
    println!(
        "retrieval (embed question + hybrid search + fusion), {} questions one at a time: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99)
    );
    println!(
        "/dify/retrieval over HTTP, {} clients x {} requests: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, {:.1} requests/s, {} errors",
        args.clients, args.requests, dify.p50, dify.p95, dify.p99, dify.throughput, dify.errors
    );
    match (
        loaded_mb,
        filled_mb,
        filled_heap_mb,
        fill_peak_mb,
        memory_mb("VmHWM"),
    ) {
        (Some(loaded), Some(filled), Some(heap), Some(fill_peak), Some(peak)) => println!(
            "resident memory: {loaded:.0} MB with the model loaded and the store empty; {filled:.0} MB once the {stored} chunks are stored ({heap:.0} MB of it heap, the rest mapped files; peak {fill_peak:.0} MB while filling); peak {peak:.0} MB while filling and serving"
        ),
        _ => println!("resident memory: n/a (no /proc/self/status)"),
    }
    Ok(())
}

/// Embedding speed: one passage worker against all of them, question latency idle against
/// during a bulk embedding, and the same model driven from Python (`scripts/bench_baseline.py`).
async fn embedding(config: &Config, texts: &[String], questions: &[String]) -> anyhow::Result<()> {
    let sample: Vec<String> = texts.iter().take(120).cloned().collect();
    let asked: Vec<String> = questions.iter().take(40).cloned().collect();
    let mut single = config.clone();
    single.embedding.workers = 1;
    let one = Embedder::load(&single)?;
    let tokens: usize = sample
        .iter()
        .map(|t| {
            one.tokenizer()
                .encode(format!("passage: {t}"), true)
                .map_or(0, |e| e.len().min(config.embedding.max_length))
        })
        .sum();
    let started = Instant::now();
    one.embed_passages(sample.clone()).await?;
    let one_seconds = started.elapsed().as_secs_f64();
    drop(one);

    let all = Embedder::load(config)?;
    let started = Instant::now();
    all.embed_passages(sample.clone()).await?;
    let all_seconds = started.elapsed().as_secs_f64();
    let idle = question_latencies(&all, &asked).await?;
    let bulk = {
        let (embedder, passages) = (all.clone(), sample.clone());
        tokio::spawn(async move { embedder.embed_passages(passages).await })
    };
    let busy = question_latencies(&all, &asked).await?;
    bulk.await??;

    println!(
        "embedding {} passages ({tokens} tokens): 1 worker {:.1} passages/s ({:.0} tokens/s); {} workers {:.1} passages/s ({:.0} tokens/s), {:.2}x",
        sample.len(),
        sample.len() as f64 / one_seconds,
        tokens as f64 / one_seconds,
        config.embedding.workers,
        sample.len() as f64 / all_seconds,
        tokens as f64 / all_seconds,
        one_seconds / all_seconds
    );
    println!(
        "question embedding: idle p50 {:.1} ms, p95 {:.1} ms; during a bulk embedding p50 {:.1} ms, p95 {:.1} ms ({:.2}x idle at p50)",
        percentile(&idle, 0.5),
        percentile(&idle, 0.95),
        percentile(&busy, 0.5),
        percentile(&busy, 0.95),
        percentile(&busy, 0.5) / percentile(&idle, 0.5).max(f64::EPSILON)
    );
    match python_baseline(config, &sample, &asked) {
        Ok(python) => println!(
            "python onnxruntime baseline (same model, 1 thread, batch 1): {:.1} passages/s ({:.0} tokens/s), question p50 {:.1} ms; lore is {:.2}x with 1 worker, {:.2}x with {}; rank_bm25 query p50 {} over {} passages",
            python.passages_per_s,
            python.tokens_per_s,
            python.query_p50_ms,
            tokens as f64 / one_seconds / python.tokens_per_s,
            tokens as f64 / all_seconds / python.tokens_per_s,
            config.embedding.workers,
            python
                .bm25_p50_ms
                .map_or("n/a (pip install rank_bm25)".to_owned(), |ms| format!(
                    "{ms:.1} ms"
                )),
            sample.len()
        ),
        Err(err) => println!("python baseline skipped: {err:#}"),
    }
    Ok(())
}

async fn question_latencies(embedder: &Embedder, questions: &[String]) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(questions.len());
    for question in questions {
        let asked = Instant::now();
        embedder.embed_query(question).await?;
        latencies.push(asked.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

#[derive(Deserialize)]
struct PythonFigures {
    passages_per_s: f64,
    tokens_per_s: f64,
    query_p50_ms: f64,
    bm25_p50_ms: Option<f64>,
}

fn python_baseline(
    config: &Config,
    texts: &[String],
    questions: &[String],
) -> anyhow::Result<PythonFigures> {
    let python = config.home.join("venv/bin/python");
    anyhow::ensure!(
        python.is_file(),
        "{} is missing (scripts/setup-models)",
        python.display()
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_baseline.py");
    let job = tempfile::NamedTempFile::new()?;
    serde_json::to_writer(
        &job,
        &json!({ "model_dir": config.model_dir(), "texts": texts, "queries": questions }),
    )?;
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(job.path())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

struct LoadFigures {
    p50: f64,
    p95: f64,
    p99: f64,
    throughput: f64,
    errors: usize,
}

/// Serves the knowledge base on a loopback port and sends Dify retrieval requests from
/// concurrent clients (bounded: `clients` x `requests`).
async fn dify_load(
    service: Arc<KnowledgeBase>,
    queries: &[Query],
    clients: usize,
    requests: usize,
) -> anyhow::Result<LoadFigures> {
    let key = service
        .config()
        .api_key
        .as_ref()
        .map(|k| k.expose().to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/dify/retrieval", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(listener, service, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let questions: Arc<Vec<String>> =
        Arc::new(queries.iter().map(|q| q.question.clone()).collect());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, url, key, questions) = (
            http.clone(),
            url.clone(),
            key.clone(),
            Arc::clone(&questions),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests);
            let mut errors = 0;
            for i in 0..requests {
                let question = &questions[(client * requests + i) % questions.len()];
                let body = json!({ "knowledge_id": KB, "query": question,
                    "retrieval_setting": { "top_k": 5, "score_threshold": 0.0 } });
                let mut request = http.post(&url).json(&body);
                if let Some(key) = &key {
                    request = request.bearer_auth(key);
                }
                let sent = Instant::now();
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await?;
        latencies.append(&mut l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = server.await;
    latencies.sort_by(f64::total_cmp);
    Ok(LoadFigures {
        p50: percentile(&latencies, 0.5),
        p95: percentile(&latencies, 0.95),
        p99: percentile(&latencies, 0.99),
        throughput: latencies.len() as f64 / seconds,
        errors,
    })
}

/// Resets the kernel's record of this process's peak resident memory (Linux: writing 5 to
/// clear_refs), so the next reading covers only what follows.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A memory figure of this process in MB, where the kernel reports it: `VmRSS` (resident now)
/// or `VmHWM` (peak resident since start or the last reset).
fn memory_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
