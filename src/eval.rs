//! `lore eval`: retrieval quality on a labelled set, through the real search path.
//!
//! Ingests a corpus (a `corpus.jsonl` of `{"id","title","text"}` rows, one document each, or a
//! folder of documents) into a fresh knowledge base in a temporary data directory, runs every
//! question of a `queries.jsonl` and reports hit@1/5/10 and MRR@10 for dense only, keyword only
//! and hybrid ranking in the same run. A hit is a chunk of a gold document in the top k.
//! Gold documents are `gold_ids` (corpus ids) or `source_files` (file names). When questions
//! have a `type`, it also reports the top score of answerable and other questions, which is
//! what a threshold has to separate.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::json;

use crate::answer::decide;
use crate::config::Config;
use crate::document::{DocumentStatus, Hit, Metadata};
use crate::kb::{KnowledgeBase, NewKb, SearchRequest, Upload};
use crate::search::{Fused, Ranking};

const KB: &str = "eval";
const DEPTH: usize = 10;

#[derive(Debug, Deserialize)]
struct CorpusRow {
    id: String,
    #[serde(default)]
    title: String,
    text: String,
}

#[derive(Debug, Deserialize)]
struct Query {
    id: String,
    question: String,
    #[serde(default)]
    gold_ids: Vec<String>,
    #[serde(default)]
    source_files: Vec<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// What to evaluate.
pub struct EvalArgs {
    /// `corpus.jsonl` or a folder of documents.
    pub corpus: PathBuf,
    pub queries: PathBuf,
    /// Writes one JSON line per (question, retrieved chunk) with the fused value and whether it
    /// is relevant: the input of `scripts/fit-calibration`. The lines also carry the question,
    /// the calibrated score and the whole chunk, so [`replay_verdicts`] can re-run `decide`
    /// over them without embedding anything.
    pub dump: Option<PathBuf>,
    /// Prints each question's verdict and signals.
    pub verbose: bool,
}

/// Hit rates of one ranking.
#[derive(Debug, Default, Clone, Copy)]
struct Metrics {
    hit1: f64,
    hit5: f64,
    hit10: f64,
    mrr10: f64,
    count: usize,
}

impl Metrics {
    fn add(&mut self, rank: Option<usize>) {
        self.count += 1;
        if let Some(rank) = rank {
            self.hit1 += f64::from(u8::from(rank < 1));
            self.hit5 += f64::from(u8::from(rank < 5));
            self.hit10 += f64::from(u8::from(rank < 10));
            self.mrr10 += 1.0 / (rank as f64 + 1.0);
        }
    }

    fn row(&self, name: &str) -> String {
        let n = self.count.max(1) as f64;
        format!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} |",
            self.hit1 / n,
            self.hit5 / n,
            self.hit10 / n,
            self.mrr10 / n
        )
    }
}

/// A service over a temporary data directory with one empty knowledge base, `kb`; the
/// directory lives as long as the returned guard.
pub(crate) async fn scratch_service(
    mut config: Config,
    kb: &str,
) -> anyhow::Result<(tempfile::TempDir, Arc<KnowledgeBase>)> {
    let data = tempfile::tempdir()?;
    config.data_dir = data.path().to_path_buf();
    let service = KnowledgeBase::open(config).await?;
    let new = NewKb {
        id: kb.to_owned(),
        name: None,
        description: None,
    };
    service.create_kb(new).await?;
    Ok((data, service))
}

/// The `p` quantile (0..=1) of sorted values, nearest rank; 0 for none.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(rank).copied().unwrap_or_default()
}

/// Runs the evaluation and prints a Markdown report.
pub async fn run(config: Config, args: EvalArgs) -> anyhow::Result<()> {
    let (_data, service) = scratch_service(config, KB).await?;
    let uploads = corpus_uploads(&args.corpus)?;
    let started = std::time::Instant::now();
    ingest(&service, uploads).await?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    let queries = read_jsonl::<Query>(&args.queries)?;

    let mut dump = match &args.dump {
        Some(path) => Some(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => None,
    };
    let rankings = [
        ("dense", Ranking::Dense),
        ("keyword", Ranking::Keyword),
        ("hybrid", Ranking::Hybrid),
    ];
    let mut metrics = [Metrics::default(); 3];
    let mut top_scores: std::collections::BTreeMap<String, Vec<f32>> = Default::default();
    let mut latencies_ms = Vec::with_capacity(queries.len());
    let mut verdicts: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<&'static str, usize>,
    > = Default::default();
    let mut details = Vec::new();
    let decide_config = service.config().answer.decide_config();
    let bar = progress(queries.len(), "questions");
    for query in &queries {
        bar.inc(1);
        let gold: HashSet<String> = query
            .gold_ids
            .iter()
            .chain(&query.source_files)
            .cloned()
            .collect();
        let answerable = query.kind.as_deref().is_none_or(|k| k == "answerable");
        for (slot, (_, ranking)) in rankings.iter().enumerate() {
            let asked = std::time::Instant::now();
            let found = retrieve(&service, &query.question, *ranking).await?;
            if *ranking == Ranking::Hybrid {
                latencies_ms.push(asked.elapsed().as_secs_f64() * 1000.0);
            }
            if *ranking == Ranking::Hybrid
                && let Some(kind) = &query.kind
            {
                let hits: Vec<Hit> = found
                    .iter()
                    .take(service.config().answer.top_k)
                    .map(|f| Hit {
                        chunk: f.candidate.chunk.clone(),
                        score: f.score,
                    })
                    .collect();
                let tokens = |text: &str| service.keyword_tokens(text);
                let (verdict, signals) = decide(&query.question, &hits, &decide_config, &tokens);
                *verdicts
                    .entry(kind.clone())
                    .or_default()
                    .entry(verdict.name())
                    .or_default() += 1;
                details.push(format!(
                    "| {} | {kind} | {} | {:.3} | {:.2} | {:.2} | {} | {} | {} |",
                    query.id,
                    verdict.name(),
                    signals.best_score,
                    signals.coverage,
                    signals.focus,
                    signals.fact_present,
                    signals.tied_documents,
                    signals.disagreement
                ));
            }
            if *ranking == Ranking::Hybrid {
                let kind = query.kind.clone().unwrap_or_else(|| "answerable".into());
                top_scores
                    .entry(kind.clone())
                    .or_default()
                    .push(found.first().map_or(0.0, |f| f.score));
                if let Some(out) = dump.as_mut() {
                    for (rank, f) in found.iter().enumerate() {
                        let relevant = answerable && is_gold(f, &gold);
                        let line = json!({ "query": query.id, "type": kind, "rank": rank,
                            "fused": f.fused, "dense": f.candidate.dense, "relevant": relevant,
                            "question": query.question, "score": f.score,
                            "keyword": f.candidate.keyword, "keyword_relative": f.keyword,
                            "evidence": f.evidence, "chunk": f.candidate.chunk });
                        std::io::Write::write_all(out, format!("{line}\n").as_bytes())?;
                    }
                }
            }
            if gold.is_empty() || !answerable {
                continue;
            }
            metrics[slot].add(first_gold_document_rank(&found, &gold));
        }
    }
    bar.finish_and_clear();

    let chunks: usize = service.documents(KB)?.iter().map(|d| d.chunk_count).sum();
    latencies_ms.sort_by(f64::total_cmp);
    println!(
        "corpus: {} ({chunks} chunks, ingested in {ingest_seconds:.1} s: {:.1} chunks/s)",
        args.corpus.display(),
        chunks as f64 / ingest_seconds.max(1e-9)
    );
    println!(
        "hybrid retrieval latency (embed query + search): p50 {:.1} ms, p95 {:.1} ms",
        percentile(&latencies_ms, 0.5),
        percentile(&latencies_ms, 0.95)
    );
    println!(
        "queries: {} ({} with gold documents)\n",
        args.queries.display(),
        metrics[2].count
    );
    println!("| ranking | hit@1 | hit@5 | hit@10 | MRR@10 |\n|---|---|---|---|---|");
    for (slot, (name, _)) in rankings.iter().enumerate() {
        println!("{}", metrics[slot].row(name));
    }
    if !verdicts.is_empty() {
        println!(
            "\nverdicts by question type (expected: answerable -> answer, unanswerable -> not_found, ambiguous -> clarify):\n"
        );
        println!("| type | n | answer | not_found | clarify |\n|---|---|---|---|---|");
        for (kind, counts) in &verdicts {
            let n: usize = counts.values().sum();
            let rate =
                |v: &str| counts.get(v).copied().unwrap_or_default() as f64 / n.max(1) as f64;
            println!(
                "| {kind} | {n} | {:.3} | {:.3} | {:.3} |",
                rate("answer"),
                rate("not_found"),
                rate("clarify")
            );
        }
        if args.verbose {
            println!(
                "\n| id | type | verdict | top score | coverage | focus | fact | tied docs | disagree |"
            );
            println!("|---|---|---|---|---|---|---|---|---|");
            for line in &details {
                println!("{line}");
            }
        }
    }
    if top_scores.len() > 1 {
        println!("\ntop-1 hybrid score by question type:\n");
        println!("| type | n | min | p25 | median | p75 | max |\n|---|---|---|---|---|---|---|");
        for (kind, scores) in &mut top_scores {
            scores.sort_by(f32::total_cmp);
            let q = |p: f64| scores[((scores.len() - 1) as f64 * p).round() as usize];
            println!(
                "| {kind} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
                scores.len(),
                q(0.0),
                q(0.25),
                q(0.5),
                q(0.75),
                q(1.0)
            );
        }
    }
    Ok(())
}

/// One dumped (question, retrieved chunk) line, as [`replay_verdicts`] reads it back.
#[derive(Debug, Deserialize)]
struct DumpedHit {
    query: String,
    #[serde(rename = "type")]
    kind: String,
    question: String,
    rank: usize,
    score: f32,
    chunk: crate::document::Chunk,
}

/// One question's verdict replayed from a dump.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub id: String,
    /// "answerable", "unanswerable" or "ambiguous".
    pub kind: String,
    pub verdict: &'static str,
    pub signals: decide::Signals,
}

impl Replayed {
    /// Whether the verdict is the one the question's type expects.
    pub fn correct(&self) -> bool {
        self.verdict == expected_verdict(&self.kind)
    }
}

/// The verdict each question type expects.
pub fn expected_verdict(kind: &str) -> &'static str {
    match kind {
        "unanswerable" => "not_found",
        "ambiguous" => "clarify",
        _ => "answer",
    }
}

/// One question of a `--dump` file with its hybrid hits, best first.
#[derive(Debug, Clone)]
pub struct DumpedQuestion {
    pub id: String,
    pub kind: String,
    pub question: String,
    pub hits: Vec<Hit>,
}

/// The questions of a `--dump` file, in file order.
pub fn read_dump(path: &Path) -> anyhow::Result<Vec<DumpedQuestion>> {
    let mut questions: Vec<(DumpedQuestion, Vec<usize>)> = Vec::new();
    for row in read_jsonl::<DumpedHit>(path)? {
        if questions.last().is_none_or(|q| q.0.id != row.query) {
            let question = DumpedQuestion {
                id: row.query.clone(),
                kind: row.kind,
                question: row.question,
                hits: Vec::new(),
            };
            questions.push((question, Vec::new()));
        }
        if let Some((question, ranks)) = questions.last_mut() {
            ranks.push(row.rank);
            question.hits.push(Hit {
                chunk: row.chunk,
                score: row.score,
            });
        }
    }
    Ok(questions
        .into_iter()
        .map(|(mut question, ranks)| {
            let mut ranked: Vec<(usize, Hit)> = ranks.into_iter().zip(question.hits).collect();
            ranked.sort_by_key(|(rank, _)| *rank);
            question.hits = ranked.into_iter().map(|(_, h)| h).collect();
            question
        })
        .collect())
}

/// Re-runs `decide` over the hits of a `--dump` file (the first `top_k` of each question), with
/// the keyword tokenizer search uses: a verdict rule change is measured in seconds, without
/// embedding.
pub fn replay_verdicts(
    questions: &[DumpedQuestion],
    config: &decide::DecideConfig,
    top_k: usize,
) -> anyhow::Result<Vec<Replayed>> {
    let keywords = crate::search::Keywords::new()?;
    let tokens = |text: &str| -> std::collections::BTreeSet<u32> {
        keywords.query(text).indices.into_iter().collect()
    };
    Ok(questions
        .iter()
        .map(|q| {
            let hits = &q.hits[..q.hits.len().min(top_k)];
            let (verdict, signals) = decide(&q.question, hits, config, &tokens);
            Replayed {
                id: q.id.clone(),
                kind: q.kind.clone(),
                verdict: verdict.name(),
                signals,
            }
        })
        .collect())
}

/// Whether a retrieved chunk belongs to a gold document: gold labels are corpus ids (stored
/// as `{id}.md`) or file names.
fn is_gold(fused: &Fused, gold: &HashSet<String>) -> bool {
    let name = &fused.candidate.chunk.document_name;
    gold.contains(name) || name.strip_suffix(".md").is_some_and(|id| gold.contains(id))
}

/// Rank of the first chunk of a gold document, in the top `DEPTH` chunks.
fn first_gold_document_rank(found: &[Fused], gold: &HashSet<String>) -> Option<usize> {
    found.iter().take(DEPTH).position(|f| is_gold(f, gold))
}

async fn retrieve(
    service: &KnowledgeBase,
    question: &str,
    ranking: Ranking,
) -> anyhow::Result<Vec<Fused>> {
    let request = SearchRequest {
        query: question.to_owned(),
        top_k: Some(DEPTH),
        score_threshold: None,
        filter: None,
    };
    Ok(service.retrieve(KB, request, ranking).await?)
}

pub(crate) fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// One upload per corpus row (as Markdown with the title as heading), or per file in a folder.
fn corpus_uploads(corpus: &Path) -> anyhow::Result<Vec<Upload>> {
    if corpus.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| crate::ingest::extract::has_supported_extension(p))
            .collect();
        files.sort();
        return files
            .into_iter()
            .map(|path| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Ok(Upload {
                    name,
                    bytes: std::fs::read(&path)?,
                })
            })
            .collect();
    }
    Ok(read_jsonl::<CorpusRow>(corpus)?
        .into_iter()
        .map(|row| Upload {
            name: format!("{}.md", row.id),
            bytes: format!("# {}\n\n{}\n", row.title, row.text).into_bytes(),
        })
        .collect())
}

async fn ingest(service: &Arc<KnowledgeBase>, uploads: Vec<Upload>) -> anyhow::Result<()> {
    let total = uploads.len();
    service.upload(KB, uploads, Metadata::new()).await?;
    let bar = progress(total, "documents ingested");
    loop {
        let documents = service.documents(KB)?;
        let done = documents
            .iter()
            .filter(|d| matches!(d.status, DocumentStatus::Ready | DocumentStatus::Failed))
            .count();
        bar.set_position(done as u64);
        if done == documents.len() {
            let failed: Vec<_> = documents
                .iter()
                .filter(|d| d.status == DocumentStatus::Failed)
                .collect();
            anyhow::ensure!(
                failed.is_empty(),
                "{} documents failed: {:?}",
                failed.len(),
                failed[0].error
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
    Ok(())
}

fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} ({{eta}} left)");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays the verdicts of a dump named by `LORE_VERDICT_DUMP` (from `lore eval --dump`),
    /// printing each question's signals and the rates by type:
    /// `LORE_VERDICT_DUMP=/tmp/docs.jsonl cargo test --lib replay -- --ignored --nocapture`.
    #[test]
    #[ignore = "needs a dump from lore eval --dump"]
    fn replay_dumped_verdicts() {
        let path = std::env::var("LORE_VERDICT_DUMP").expect("LORE_VERDICT_DUMP");
        let questions = read_dump(Path::new(&path)).unwrap();
        let config = crate::config::AnswerConfig::default();
        let replayed = replay_verdicts(&questions, &config.decide_config(), config.top_k).unwrap();
        for r in &replayed {
            println!(
                "{} {:12} {:9} {} {:?}",
                if r.correct() { " " } else { "X" },
                r.id,
                r.verdict,
                r.kind,
                r.signals
            );
        }
        for kind in ["answerable", "unanswerable", "ambiguous"] {
            let of: Vec<&Replayed> = replayed.iter().filter(|r| r.kind == kind).collect();
            let right = of.iter().filter(|r| r.correct()).count();
            println!("{kind}: {right}/{}", of.len());
        }
    }
    /// Sweeps the verdict thresholds over a dump, reporting the best dev fit and a leave-one-out
    /// estimate (thresholds chosen on the other questions, the left-out one judged):
    /// `LORE_VERDICT_DUMP=/tmp/docs.jsonl cargo test --lib sweep -- --ignored --nocapture`.
    #[test]
    #[ignore = "needs a dump from lore eval --dump"]
    fn sweep_verdict_thresholds() {
        let path = std::env::var("LORE_VERDICT_DUMP").expect("LORE_VERDICT_DUMP");
        let questions = read_dump(Path::new(&path)).unwrap();
        let base = crate::config::AnswerConfig::default();
        let mut grid = Vec::new();
        for min_coverage in [0.4, 0.45, 0.5, 0.55, 0.6] {
            for min_focus in [0.0, 0.35, 0.4, 0.45, 0.5, 0.55] {
                for tie_margin in [0.2, 0.3, 0.4] {
                    for agree_similarity in [0.4, 0.5, 0.6, 0.7] {
                        let mut config = base.decide_config();
                        config.min_coverage = min_coverage;
                        config.min_focus = min_focus;
                        config.tie_margin = tie_margin;
                        config.agree_similarity = agree_similarity;
                        let right: Vec<bool> = replay_verdicts(&questions, &config, base.top_k)
                            .unwrap()
                            .iter()
                            .map(Replayed::correct)
                            .collect();
                        grid.push((config, right));
                    }
                }
            }
        }
        let kinds: Vec<&str> = questions.iter().map(|q| q.kind.as_str()).collect();
        // Balanced accuracy: the mean of the three per-type rates.
        let score = |right: &[bool], skip: Option<usize>| -> f64 {
            let mut total = 0.0;
            for kind in ["answerable", "unanswerable", "ambiguous"] {
                let idx: Vec<usize> = (0..right.len())
                    .filter(|&i| kinds[i] == kind && Some(i) != skip)
                    .collect();
                let ok = idx.iter().filter(|&&i| right[i]).count();
                total += ok as f64 / idx.len().max(1) as f64;
            }
            total / 3.0
        };
        let best = grid
            .iter()
            .max_by(|a, b| score(&a.1, None).total_cmp(&score(&b.1, None)))
            .unwrap();
        println!("dev fit: {:.3} with {:?}", score(&best.1, None), best.0);
        let mut held_out = std::collections::BTreeMap::<&str, (usize, usize)>::new();
        for (i, kind) in kinds.iter().enumerate() {
            let chosen = grid
                .iter()
                .max_by(|a, b| score(&a.1, Some(i)).total_cmp(&score(&b.1, Some(i))))
                .unwrap();
            let entry = held_out.entry(kind).or_default();
            entry.0 += usize::from(chosen.1[i]);
            entry.1 += 1;
        }
        println!("leave-one-out: {held_out:?}");
    }
}
