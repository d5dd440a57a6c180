//! `lore bench`: in one run, retrieval latency at a given number of chunks (alone, through
//! Dify's endpoint under concurrent load, and against rank_bm25 over as many documents), the
//! answer path without the model, memory, PDF extraction speed, and embedding speed against the
//! same model driven from Python, all measured in-process on this machine.
//!
//! Embedding 10,000+ real chunks takes most of an hour on two cores, so the store is filled with
//! real CMRC passages embedded once, plus perturbed copies of their vectors (unit noise added,
//! renormalised) under the same texts: the store, the keyword index and the fusion do the work
//! they would do at that size. Questions are the set's real questions, embedded for real.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use crate::config::Config;
use crate::document::Metadata;
use crate::embed::Embedder;
use crate::eval::{percentile, read_jsonl, scratch_service};
use crate::kb::{AnswerRequest, ImportedDocument, SearchRequest};

mod load;
mod python;

const KB: &str = "bench";
/// Questions asked of rank_bm25: at 100,000 documents each takes seconds in Python.
const KEYWORD_QUESTIONS: usize = 20;
/// The PDF of `fixtures/` timed for extraction (55 pages, Chinese).
const PDF_FIXTURE: &str = "fixtures/docs/java_dev_manual_huangshan_zh.pdf";
/// Runs of the PDF extraction averaged.
const PDF_RUNS: u32 = 3;

/// Which figures a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Both parts, each in a fresh child process of this binary: one part's memory and
    /// allocator state must not skew the other's figures (embedding ran ~10% slower in a
    /// process that had held a 100,000-chunk store).
    All,
    /// The store: retrieval, Dify under load, the answer path, rank_bm25, memory.
    Store,
    /// Ingestion: PDF extraction and embedding, against their baselines.
    Ingestion,
}

pub struct BenchArgs {
    /// What to measure.
    pub part: Part,
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
pub(crate) struct Query {
    pub(crate) question: String,
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
    if args.part == Part::All {
        return each_part_in_a_fresh_process();
    }
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
    if args.part == Part::Store {
        store(config, &args, &rows, &texts).await
    } else {
        extraction()?;
        embedding(&config, &texts, &questions).await
    }
}

/// Runs this command again once per part, with its `--part` (see [`Part::All`]).
fn each_part_in_a_fresh_process() -> anyhow::Result<()> {
    // This command's arguments without a `--part all` it may have been given.
    let mut args = Vec::new();
    let mut given = std::env::args_os().skip(1);
    while let Some(arg) = given.next() {
        match arg.to_str() {
            Some("--part") => {
                given.next();
            }
            Some(flag) if flag.starts_with("--part=") => {}
            _ => args.push(arg),
        }
    }
    for part in ["store", "ingestion"] {
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(&args)
            .args(["--part", part])
            .status()?;
        anyhow::ensure!(status.success(), "the {part} part of the bench failed");
    }
    Ok(())
}

/// Fills a store of `args.chunks` chunks and measures retrieval on it (one question at a time,
/// through `/dify/retrieval` under load, against rank_bm25), the answer path without the
/// model, and the memory it takes.
async fn store(
    mut config: Config,
    args: &BenchArgs,
    rows: &[Row],
    texts: &[String],
) -> anyhow::Result<()> {
    // No chat model: the discard port is closed, so a call is refused at once.
    config.llm.base_url = "http://127.0.0.1:9/v1".to_owned();
    config.llm.fallbacks.clear();
    config.llm.retries = 0;
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

    let dify = load::dify_load(Arc::clone(&service), &queries, args.clients, args.requests).await?;

    // The answer path without the model: the chat endpoint is a closed port (refused at once,
    // no retries), so what is timed is retrieval, the verdict, the prompt and the fallback.
    let mut answers = Vec::with_capacity(queries.len());
    for query in &queries {
        let asked = Instant::now();
        let request = AnswerRequest {
            question: query.question.clone(),
            ..AnswerRequest::default()
        };
        service.answer(KB, request).await?;
        answers.push(asked.elapsed().as_secs_f64() * 1000.0);
    }
    answers.sort_by(f64::total_cmp);

    println!(
        "store: {stored} chunks ({} real passages embedded in {embed_seconds:.1} s, filled in {fill_seconds:.1} s)",
        rows.len()
    );
    println!(
        "retrieval (embed question + hybrid search + fusion), {} questions one at a time: {}",
        latencies.len(),
        Spread::of(&latencies)
    );
    println!(
        "/dify/retrieval over HTTP, {} clients x {} requests: {}, {:.1} requests/s, {} errors",
        args.clients, args.requests, dify.latency, dify.throughput, dify.errors
    );
    println!(
        "answer path without the model (retrieval, verdict, prompt, fallback reply), {} questions: {}",
        answers.len(),
        Spread::of(&answers)
    );
    let asked: Vec<String> = queries
        .iter()
        .take(KEYWORD_QUESTIONS)
        .map(|q| q.question.clone())
        .collect();
    match python::keyword(service.config(), texts, stored, &asked) {
        Ok(bm25) => println!(
            "rank_bm25 baseline over the same {stored} documents (characters and bigrams), {} questions: p50 {:.1} ms, p95 {:.1} ms (index built in {:.1} s, {:.0} MB peak); its p50 is {:.2}x lore's hybrid retrieval p50",
            asked.len(),
            bm25.p50_ms,
            bm25.p95_ms,
            bm25.build_s,
            bm25.peak_mb,
            bm25.p50_ms / percentile(&latencies, 0.5).max(f64::EPSILON)
        ),
        Err(err) => println!("rank_bm25 baseline skipped: {err:#}"),
    }
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

/// PDF extraction speed on the manual of `fixtures/`, against pdf-extract's own plain text of
/// the same file (the library lore's extractor reads glyphs through).
fn extraction() -> anyhow::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PDF_FIXTURE);
    let Ok(bytes) = std::fs::read(&path) else {
        println!("PDF extraction skipped: {} is missing", path.display());
        return Ok(());
    };
    let pages = pdf_extract::Document::load_mem(&bytes)?.get_pages().len() as f64;
    let seconds_per_run = |run: &dyn Fn() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let started = Instant::now();
        for _ in 0..PDF_RUNS {
            run()?;
        }
        Ok(started.elapsed().as_secs_f64() / f64::from(PDF_RUNS))
    };
    let plain = seconds_per_run(&|| {
        pdf_extract::extract_text_from_mem(&bytes)?;
        Ok(())
    })?;
    let ours = seconds_per_run(&|| {
        crate::ingest::extract::extract("manual.pdf", &bytes).map_err(anyhow::Error::msg)?;
        Ok(())
    })?;
    println!(
        "PDF extraction ({pages} pages, {PDF_FIXTURE}): {:.1} pages/s; pdf-extract's plain text {:.1} pages/s; lore is {:.2}x (headers, footers, lines and tables rebuilt)",
        pages / ours,
        pages / plain,
        plain / ours
    );
    Ok(())
}

/// Rounds of the single-worker and Python embedding measurements, taken in turn. Both drive
/// the same ONNX Runtime kernels, so their ratio is close to 1, and a run-to-run spread of a few
/// percent (clock speed, neighbours on the host) would otherwise decide it: the median of
/// alternated rounds compares the two under the same conditions.
const EMBEDDING_ROUNDS: usize = 3;

/// Embedding speed: one passage worker against all of them, question latency idle against
/// during a bulk embedding, and the same model driven from Python (`scripts/bench_baseline.py`).
async fn embedding(config: &Config, texts: &[String], questions: &[String]) -> anyhow::Result<()> {
    let sample: Vec<String> = texts.iter().take(120).cloned().collect();
    let asked: Vec<String> = questions.iter().take(40).cloned().collect();
    let mut single = config.clone();
    single.embedding.workers = 1;
    let one = Embedder::load(&single)?;
    let tokens = sample
        .iter()
        .map(|t| {
            one.tokenizer()
                .encode(format!("passage: {t}"), true)
                .map_or(0, |e| e.len().min(config.embedding.max_length))
        })
        .sum::<usize>() as f64;
    let mut one_rates = Vec::with_capacity(EMBEDDING_ROUNDS);
    let mut python = Ok(Vec::with_capacity(EMBEDDING_ROUNDS));
    for _ in 0..EMBEDDING_ROUNDS {
        let started = Instant::now();
        one.embed_passages(sample.clone()).await?;
        one_rates.push(tokens / started.elapsed().as_secs_f64());
        if let Ok(rounds) = &mut python {
            match python::embedding(config, &sample, &asked) {
                Ok(figures) => rounds.push(figures),
                Err(err) => python = Err(err),
            }
        }
    }
    drop(one);
    let one_rate = median(&one_rates);

    let all = Embedder::load(config)?;
    let started = Instant::now();
    all.embed_passages(sample.clone()).await?;
    let all_rate = tokens / started.elapsed().as_secs_f64();
    let idle = question_latencies(&all, &asked).await?;
    let bulk = {
        let (embedder, passages) = (all.clone(), sample.clone());
        tokio::spawn(async move { embedder.embed_passages(passages).await })
    };
    let busy = question_latencies(&all, &asked).await?;
    bulk.await??;

    let passages_per_token = sample.len() as f64 / tokens;
    println!(
        "embedding {} passages ({tokens} tokens): 1 worker {:.1} passages/s ({one_rate:.0} tokens/s, median of {EMBEDDING_ROUNDS}); {} workers {:.1} passages/s ({all_rate:.0} tokens/s), {:.2}x",
        sample.len(),
        one_rate * passages_per_token,
        config.embedding.workers,
        all_rate * passages_per_token,
        all_rate / one_rate
    );
    println!(
        "question embedding: idle p50 {:.1} ms, p95 {:.1} ms; during a bulk embedding p50 {:.1} ms, p95 {:.1} ms ({:.2}x idle at p50)",
        percentile(&idle, 0.5),
        percentile(&idle, 0.95),
        percentile(&busy, 0.5),
        percentile(&busy, 0.95),
        percentile(&busy, 0.5) / percentile(&idle, 0.5).max(f64::EPSILON)
    );
    match python {
        Ok(rounds) => {
            let rates: Vec<f64> = rounds.iter().map(|r| r.tokens_per_s).collect();
            let query_p50: Vec<f64> = rounds.iter().map(|r| r.query_p50_ms).collect();
            let python_rate = median(&rates);
            let per_round: Vec<String> = one_rates
                .iter()
                .zip(&rates)
                .map(|(lore, python)| format!("{:.2}x", lore / python))
                .collect();
            println!(
                "python onnxruntime baseline (same model, 1 thread, batch 1): {:.1} passages/s ({python_rate:.0} tokens/s, median of {EMBEDDING_ROUNDS} rounds taken in turn with lore's), question p50 {:.1} ms; lore is {:.2}x with 1 worker (rounds: {}), {:.2}x with {}",
                python_rate * passages_per_token,
                median(&query_p50),
                one_rate / python_rate,
                per_round.join(", "),
                all_rate / python_rate,
                config.embedding.workers,
            );
        }
        Err(err) => println!("python baseline skipped: {err:#}"),
    }
    Ok(())
}

/// The median of a few unsorted figures.
fn median(figures: &[f64]) -> f64 {
    let mut sorted = figures.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 0.5)
}

/// p50, p95 and p99 of sorted latencies in milliseconds, in the form every latency line of the
/// store part prints.
pub(crate) struct Spread {
    p50: f64,
    p95: f64,
    p99: f64,
}

impl Spread {
    pub(crate) fn of(sorted_ms: &[f64]) -> Self {
        Self {
            p50: percentile(sorted_ms, 0.5),
            p95: percentile(sorted_ms, 0.95),
            p99: percentile(sorted_ms, 0.99),
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            self.p50, self.p95, self.p99
        )
    }
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
