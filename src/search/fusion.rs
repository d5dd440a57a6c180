//! Fusion: one relevance score in [0, 1] from the dense and keyword halves of a query.
//!
//! The score must mean the same thing for every question and knowledge base, because users set
//! one threshold (in Dify, or lore's `answer.min_score`) and expect it to hold. Rank-based fusion
//! (RRF) cannot do that: its values depend on list lengths, not relevance. So the fused value is
//! a weighted sum of the cosine (absolute, comparable across queries), the keyword score
//! relative to the best keyword score of the same query, and the sentence evidence (the share of
//! the question's keyword weight one sentence of the chunk holds, see [`super::evidence`]),
//! mapped through a logistic curve whose parameters are fitted on the development set
//! (`scripts/fit-calibration`). The map is monotone, so ranking by fused value and by score
//! agree.

use crate::store::Candidate;

/// Weights of the fused value and its calibration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Weight of the relative keyword score next to the cosine.
    pub keyword_weight: f32,
    /// Weight of the sentence evidence next to the cosine.
    pub evidence_weight: f32,
    /// Logistic slope.
    pub slope: f32,
    /// Fused value that maps to 0.5.
    pub midpoint: f32,
}

/// The weights were chosen by `scripts/sweep-fusion` and the curve fitted by
/// `scripts/fit-calibration`, both on `lore eval --dump` of en_squad and docs_qa_zh.dev (top-10
/// chunks per question, each set weighted equally; see BENCHMARKS.md). A score is the estimated
/// probability that the chunk comes from a document that answers the question.
impl Default for Calibration {
    fn default() -> Self {
        Self {
            keyword_weight: 0.075,
            evidence_weight: 0.1,
            slope: 34.57,
            midpoint: 0.9924,
        }
    }
}

impl Calibration {
    /// The calibrated score of a fused value.
    pub fn score(&self, fused: f32) -> f32 {
        let score = 1.0 / (1.0 + (-self.slope * (fused - self.midpoint)).exp());
        if score.is_finite() {
            score.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// How candidates are ranked: hybrid (the product), or one half alone (for evaluation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    Hybrid,
    Dense,
    Keyword,
}

/// A candidate with the parts of its fused value, and its calibrated score.
#[derive(Debug, Clone)]
pub struct Fused {
    pub candidate: Candidate,
    /// The keyword score relative to the query's best, in [0, 1].
    pub keyword: f32,
    /// Sentence evidence in [0, 1]; 0 unless hybrid ranking worked it out (see [`fuse`]).
    pub evidence: f32,
    /// The uncalibrated fused value (what calibration is fitted on).
    pub fused: f32,
    /// Calibrated relevance in [0, 1].
    pub score: f32,
}

/// How many of the best candidates sentence evidence re-ranks. Tokenizing a chunk into sentences
/// is the slow part of a query (about 0.5 ms for a Chinese passage), and the evaluation sets gain
/// as much from re-ranking the first 10 as from all candidates (BENCHMARKS.md).
pub const EVIDENCE_DEPTH: usize = 10;

/// Scores every candidate and sorts them best first. For hybrid ranking, the first
/// [`EVIDENCE_DEPTH`] by cosine and keyword score then get their sentence evidence (from
/// `evidence`) added and are sorted again. Evidence only adds, so they stay ahead of the rest,
/// and order and score still agree.
pub fn fuse(
    candidates: Vec<Candidate>,
    evidence: impl Fn(&Candidate) -> f32,
    calibration: &Calibration,
    ranking: Ranking,
) -> Vec<Fused> {
    let best_keyword = candidates
        .iter()
        .filter_map(|c| c.keyword)
        .fold(0.0_f32, f32::max);
    let mut scored: Vec<Fused> = candidates
        .into_iter()
        .map(|candidate| {
            let keyword = match (candidate.keyword, best_keyword > 0.0) {
                (Some(k), true) => k / best_keyword,
                _ => 0.0,
            };
            let fused = match ranking {
                Ranking::Hybrid => candidate.dense + calibration.keyword_weight * keyword,
                Ranking::Dense => candidate.dense,
                // Keyword order first, cosine only to break ties among chunks without keywords.
                Ranking::Keyword => keyword + 0.001 * candidate.dense,
            };
            Fused {
                candidate,
                keyword,
                evidence: 0.0,
                fused,
                score: 0.0,
            }
        })
        .collect();
    sort(&mut scored);
    if ranking == Ranking::Hybrid {
        let depth = EVIDENCE_DEPTH.min(scored.len());
        let first = &mut scored[..depth];
        for f in first.iter_mut() {
            f.evidence = evidence(&f.candidate);
            f.fused += calibration.evidence_weight * f.evidence;
        }
        sort(first);
    }
    for f in &mut scored {
        f.score = calibration.score(f.fused);
    }
    scored
}

/// Best fused value first; ties in document and chunk order, so results are repeatable.
fn sort(scored: &mut [Fused]) {
    scored.sort_by(|a, b| {
        b.fused
            .total_cmp(&a.fused)
            .then_with(|| {
                a.candidate
                    .chunk
                    .document_id
                    .cmp(&b.candidate.chunk.document_id)
            })
            .then_with(|| {
                a.candidate
                    .chunk
                    .chunk_index
                    .cmp(&b.candidate.chunk.chunk_index)
            })
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Chunk;

    fn candidate(index: usize, dense: f32, keyword: Option<f32>) -> Candidate {
        Candidate {
            chunk: Chunk {
                document_id: "d".into(),
                document_name: "d.md".into(),
                title: "d".into(),
                chunk_index: index,
                heading_path: vec![],
                text: String::new(),
                metadata: Default::default(),
            },
            version: 1,
            dense,
            keyword,
        }
    }

    #[test]
    fn scores_stay_in_unit_range_and_are_monotone() {
        let calibration = Calibration::default();
        let mut previous = -1.0;
        for step in -200..=300 {
            let score = calibration.score(step as f32 / 100.0);
            assert!((0.0..=1.0).contains(&score));
            assert!(score >= previous, "not monotone at {step}");
            previous = score;
        }
        assert!(calibration.score(f32::NAN) == 0.0);
    }

    #[test]
    fn keyword_evidence_lifts_a_chunk_above_an_equal_cosine() {
        let candidates = vec![
            candidate(0, 0.85, None),
            candidate(1, 0.85, Some(3.0)),
            candidate(2, 0.80, None),
        ];
        let calibration = Calibration::default();
        let order = |ranking| -> Vec<usize> {
            fuse(candidates.clone(), |_| 0.0, &calibration, ranking)
                .iter()
                .map(|f| f.candidate.chunk.chunk_index)
                .collect()
        };
        assert_eq!(order(Ranking::Hybrid), [1, 0, 2]);
        assert_eq!(order(Ranking::Dense), [0, 1, 2]);
        assert_eq!(order(Ranking::Keyword)[0], 1);
        let fused = fuse(candidates.clone(), |_| 0.0, &calibration, Ranking::Hybrid);
        assert!(fused.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn a_keyword_score_means_the_same_whatever_its_scale() {
        let calibration = Calibration::default();
        let small = fuse(
            vec![candidate(0, 0.8, Some(0.5))],
            |_| 0.0,
            &calibration,
            Ranking::Hybrid,
        );
        let large = fuse(
            vec![candidate(0, 0.8, Some(50.0))],
            |_| 0.0,
            &calibration,
            Ranking::Hybrid,
        );
        assert_eq!(small[0].score, large[0].score);
    }

    #[test]
    fn sentence_evidence_lifts_a_chunk_in_hybrid_ranking_only() {
        let candidates = vec![candidate(0, 0.85, Some(2.0)), candidate(1, 0.85, Some(2.0))];
        let calibration = Calibration {
            evidence_weight: 0.1,
            ..Calibration::default()
        };
        let evidence = |c: &Candidate| if c.chunk.chunk_index == 1 { 0.9 } else { 0.2 };
        let hybrid = fuse(candidates.clone(), evidence, &calibration, Ranking::Hybrid);
        assert_eq!(hybrid[0].candidate.chunk.chunk_index, 1);
        assert_eq!(hybrid[0].evidence, 0.9);
        assert!(hybrid[0].score > hybrid[1].score);
        for ranking in [Ranking::Dense, Ranking::Keyword] {
            let fused = fuse(
                candidates.clone(),
                |_| panic!("evidence is only worked out for hybrid ranking"),
                &calibration,
                ranking,
            );
            assert!(fused.iter().all(|f| f.evidence == 0.0));
        }
    }

    #[test]
    fn evidence_re_ranks_only_the_first_candidates_and_they_stay_first() {
        let candidates: Vec<Candidate> = (0..EVIDENCE_DEPTH + 5)
            .map(|i| candidate(i, 0.9 - 0.001 * i as f32, None))
            .collect();
        let asked = std::cell::RefCell::new(Vec::new());
        let evidence = |c: &Candidate| {
            asked.borrow_mut().push(c.chunk.chunk_index);
            // The lowest of the re-ranked gets the most evidence and rises to the top.
            if c.chunk.chunk_index == EVIDENCE_DEPTH - 1 {
                1.0
            } else {
                0.0
            }
        };
        let fused = fuse(
            candidates,
            evidence,
            &Calibration::default(),
            Ranking::Hybrid,
        );
        let mut asked = asked.into_inner();
        asked.sort();
        assert_eq!(asked, (0..EVIDENCE_DEPTH).collect::<Vec<_>>());
        assert_eq!(fused[0].candidate.chunk.chunk_index, EVIDENCE_DEPTH - 1);
        let order: Vec<usize> = fused
            .iter()
            .map(|f| f.candidate.chunk.chunk_index)
            .collect();
        assert_eq!(
            &order[EVIDENCE_DEPTH..],
            (EVIDENCE_DEPTH..EVIDENCE_DEPTH + 5).collect::<Vec<_>>()
        );
        assert!(fused.windows(2).all(|w| w[0].score >= w[1].score));
    }
}
