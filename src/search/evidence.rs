//! Sentence evidence: how much of a question one sentence of a chunk says.
//!
//! A support question is usually answered by one sentence: a rule, a figure, a step. BM25 scores
//! a chunk by the question's words anywhere in it, so a chunk that mentions each word in a
//! different place can outrank the chunk whose one sentence says them together. Evidence is the
//! share of the question's keyword weight that the chunk's best sentence holds, each word weighed
//! by the IDF the keyword half gives it, so rare words count and common ones barely do.
//!
//! On the SQuAD development set (questions written from one sentence of a paragraph) it lifted
//! hybrid hit@1 by about three points; see BENCHMARKS.md, "Sentence evidence".

use std::collections::{HashMap, HashSet};

/// The question's keyword tokens, each with its weight.
#[derive(Debug, Clone)]
pub struct QuestionTerms {
    weights: HashMap<u32, f32>,
    total: f32,
}

impl QuestionTerms {
    /// Weighs each token of the question by its IDF in the knowledge base. A token no chunk
    /// holds gets the largest IDF of the others: it is at least as rare as any of them, and
    /// leaving it out would let a chunk look complete while missing the question's subject.
    pub fn new(tokens: &[u32], idf: &HashMap<u32, f32>) -> Self {
        let rarest = idf
            .values()
            .copied()
            .filter(|w| w.is_finite())
            .fold(0.0_f32, f32::max);
        let weights: HashMap<u32, f32> = tokens
            .iter()
            .map(|t| {
                let weight = idf
                    .get(t)
                    .copied()
                    .filter(|w| w.is_finite())
                    .unwrap_or(rarest);
                (*t, weight.max(0.0))
            })
            .collect();
        let total = weights.values().sum();
        Self { weights, total }
    }

    /// The share in [0, 1] of the question's weight that the best sentence of `text` holds;
    /// `tokens` turns a sentence into its keyword tokens (the ones chunks are indexed with).
    pub fn evidence<I>(&self, text: &str, tokens: impl Fn(&str) -> I) -> f32
    where
        I: IntoIterator<Item = u32>,
    {
        if self.total <= 0.0 {
            return 0.0;
        }
        let best = sentences(text)
            .map(|sentence| {
                let present: HashSet<u32> = tokens(sentence).into_iter().collect();
                present
                    .iter()
                    .filter_map(|t| self.weights.get(t))
                    .sum::<f32>()
            })
            .fold(0.0_f32, f32::max);
        (best / self.total).clamp(0.0, 1.0)
    }
}

/// Splits text into sentences: at Chinese and Latin sentence ends, semicolons and line breaks
/// (a table row or list item is one statement). A full stop ends a sentence only before white
/// space, so "3.5" and "docs.dify.ai" stay whole.
pub fn sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let ends = match c {
            '。' | '！' | '？' | '；' | '!' | '?' | ';' | '\n' => true,
            '.' => chars.peek().is_none_or(|(_, next)| next.is_whitespace()),
            _ => false,
        };
        if ends {
            let end = at + c.len_utf8();
            pieces.push(&text[start..end]);
            start = end;
        }
    }
    pieces.push(&text[start..]);
    pieces.into_iter().filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens for the tests: one id per lower-cased word.
    fn words(text: &str) -> Vec<u32> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| {
                w.to_lowercase()
                    .bytes()
                    .fold(7_u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
            })
            .collect()
    }

    fn terms(question: &str, idf: &[(&str, f32)]) -> QuestionTerms {
        let idf = idf.iter().map(|(w, v)| (words(w)[0], *v)).collect();
        QuestionTerms::new(&words(question), &idf)
    }

    #[test]
    fn sentences_split_at_chinese_and_latin_ends_but_not_inside_numbers() {
        let split: Vec<&str> =
            sentences("版本 3.5 发布。支持 Docker！Price: 1.5 yuan. Next line\nrow; end")
                .map(str::trim)
                .collect();
        assert_eq!(
            split,
            [
                "版本 3.5 发布。",
                "支持 Docker！",
                "Price: 1.5 yuan.",
                "Next line",
                "row;",
                "end"
            ]
        );
        assert_eq!(sentences("  \n ").count(), 0);
    }

    #[test]
    fn words_said_together_beat_words_spread_over_sentences() {
        let question = terms(
            "when was the castle rebuilt",
            &[
                ("castle", 2.0),
                ("rebuilt", 3.0),
                ("when", 0.1),
                ("was", 0.1),
                ("the", 0.1),
            ],
        );
        let together = "The castle was rebuilt in 1420. It has a tower.";
        let spread = "The castle has a tower. The town was rebuilt in 1420.";
        let a = question.evidence(together, words);
        let b = question.evidence(spread, words);
        assert!(a > 0.95, "{a}");
        assert!(b < 0.7, "{b}");
    }

    #[test]
    fn rare_words_weigh_more_than_common_ones() {
        let question = terms(
            "the refund deadline",
            &[("the", 0.05), ("refund", 2.0), ("deadline", 2.0)],
        );
        let common = question.evidence("The the the.", words);
        let rare = question.evidence("Refund deadline.", words);
        assert!(common < 0.05 && rare > 0.95, "{common} {rare}");
    }

    #[test]
    fn a_word_no_chunk_holds_counts_as_the_rarest() {
        // "goddess" is not in the knowledge base: a sentence with the other words still lacks
        // the question's most specific word.
        let question = terms(
            "goddess festival reward",
            &[("festival", 1.0), ("reward", 1.0)],
        );
        let evidence = question.evidence("Festival reward: a coupon.", words);
        assert!((evidence - 2.0 / 3.0).abs() < 1e-6, "{evidence}");
    }

    #[test]
    fn no_weights_mean_no_evidence() {
        let question = QuestionTerms::new(&[], &HashMap::new());
        assert_eq!(question.evidence("anything.", words), 0.0);
        let unknown = QuestionTerms::new(&words("who"), &HashMap::new());
        assert_eq!(unknown.evidence("who.", words), 0.0);
    }
}
