//! Fusion: one relevance score in [0, 1] from the dense and keyword halves of a query.
//!
//! The score must mean the same thing for every question and knowledge base, because users set
//! one threshold (in Dify, or lore's `answer.min_score`) and expect it to hold. Rank-based fusion
//! (RRF) cannot do that: its values depend on list lengths, not relevance. So the fused value is
//! a weighted sum of the cosine (absolute, comparable across queries) and the keyword score
//! relative to the best keyword score of the same query, mapped through a logistic curve whose
//! parameters are fitted on the development set (`scripts/fit-calibration`). The map is monotone,
//! so ranking by fused value and by score agree.

use crate::store::Candidate;

/// Parameters of the fused score and its calibration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Weight of the relative keyword score next to the cosine.
    pub keyword_weight: f32,
    /// Logistic slope.
    pub slope: f32,
    /// Fused value that maps to 0.5.
    pub midpoint: f32,
}

/// Fitted by `scripts/fit-calibration` on `lore eval --dump` of en_squad and docs_qa_zh.dev
/// (top-10 chunks per question, each set weighted equally; see BENCHMARKS.md). A score is the
/// estimated probability that the chunk comes from a document that answers the question.
impl Default for Calibration {
    fn default() -> Self {
        Self {
            keyword_weight: 0.1,
            slope: 31.14,
            midpoint: 0.9844,
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

/// A candidate with its fused value and calibrated score.
#[derive(Debug, Clone)]
pub struct Fused {
    pub candidate: Candidate,
    /// The uncalibrated fused value (what calibration is fitted on).
    pub fused: f32,
    /// Calibrated relevance in [0, 1].
    pub score: f32,
}

/// Scores every candidate and sorts them best first.
pub fn fuse(candidates: Vec<Candidate>, calibration: &Calibration, ranking: Ranking) -> Vec<Fused> {
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
            let score = calibration.score(fused);
            Fused {
                candidate,
                fused,
                score,
            }
        })
        .collect();
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
    scored
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
            fuse(candidates.clone(), &calibration, ranking)
                .iter()
                .map(|f| f.candidate.chunk.chunk_index)
                .collect()
        };
        assert_eq!(order(Ranking::Hybrid), [1, 0, 2]);
        assert_eq!(order(Ranking::Dense), [0, 1, 2]);
        assert_eq!(order(Ranking::Keyword)[0], 1);
        let fused = fuse(candidates.clone(), &calibration, Ranking::Hybrid);
        assert!(fused.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn a_keyword_score_means_the_same_whatever_its_scale() {
        let calibration = Calibration::default();
        let small = fuse(
            vec![candidate(0, 0.8, Some(0.5))],
            &calibration,
            Ranking::Hybrid,
        );
        let large = fuse(
            vec![candidate(0, 0.8, Some(50.0))],
            &calibration,
            Ranking::Hybrid,
        );
        assert_eq!(small[0].score, large[0].score);
    }
}
