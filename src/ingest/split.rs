//! Splitting: the second step of ingestion, from a document's text to chunks that fit the model.
//!
//! Sizes are counted in tokens of the embedding model's own tokenizer, so a chunk never gets cut
//! by the model's length limit. text-splitter keeps the largest semantic units that fit:
//! Markdown sections, paragraphs, then sentences; Unicode sentence rules end Chinese sentences at
//! 。！？ without needing spaces. Each chunk records the headings above it, so a chunk about
//! "收费标准" under "## 企业版" still says which plan it describes.

use std::sync::Arc;

use text_splitter::{ChunkConfig, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

use crate::config::ChunkingConfig;
use crate::ingest::extract::{Extracted, Format};

/// One chunk of text and the headings above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub text: String,
    pub heading_path: Vec<String>,
}

/// Splits documents into chunks of a configured token size.
#[derive(Clone)]
pub struct Splitter {
    tokenizer: Arc<Tokenizer>,
    size_tokens: usize,
    overlap_tokens: usize,
}

impl Splitter {
    pub fn new(tokenizer: Arc<Tokenizer>, config: &ChunkingConfig) -> Self {
        Self {
            tokenizer,
            size_tokens: config.size_tokens,
            overlap_tokens: config.overlap_tokens,
        }
    }

    /// Splits a document. Never returns an empty chunk.
    pub fn split(&self, doc: &Extracted) -> anyhow::Result<Vec<Piece>> {
        let config = ChunkConfig::new(self.size_tokens)
            .with_sizer(self.tokenizer.as_ref())
            .with_overlap(self.overlap_tokens)?;
        let spans: Vec<(usize, &str)> = match doc.format {
            Format::Markdown => MarkdownSplitter::new(config)
                .chunk_indices(&doc.text)
                .collect(),
            Format::Text => TextSplitter::new(config).chunk_indices(&doc.text).collect(),
        };
        let headings = match doc.format {
            Format::Markdown => markdown_headings(&doc.text),
            Format::Text => Vec::new(),
        };
        Ok(spans
            .into_iter()
            .filter(|(_, text)| !text.trim().is_empty())
            .map(|(offset, text)| Piece {
                text: text.to_owned(),
                heading_path: heading_path_at(&headings, offset),
            })
            .collect())
    }
}

/// A Markdown ATX heading: byte offset of its line, level (1-6) and text.
#[derive(Debug, PartialEq)]
struct Heading {
    offset: usize,
    level: usize,
    text: String,
}

/// Finds ATX headings outside fenced code blocks.
fn markdown_headings(text: &str) -> Vec<Heading> {
    let mut headings = Vec::new();
    let mut in_fence = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        } else if !in_fence {
            let level = trimmed.chars().take_while(|&c| c == '#').count();
            let rest = &trimmed[level..];
            if (1..=6).contains(&level) && rest.starts_with([' ', '\t']) {
                let text = rest.trim().trim_end_matches('#').trim().to_owned();
                if !text.is_empty() {
                    headings.push(Heading {
                        offset,
                        level,
                        text,
                    });
                }
            }
        }
        offset += line.len();
    }
    headings
}

/// The headings in force at `offset`: for each level, the latest heading before it, dropping
/// deeper ones whenever a shallower heading starts a new section.
fn heading_path_at(headings: &[Heading], offset: usize) -> Vec<String> {
    let mut stack: Vec<&Heading> = Vec::new();
    for heading in headings.iter().take_while(|h| h.offset < offset) {
        while stack.last().is_some_and(|top| top.level >= heading.level) {
            stack.pop();
        }
        stack.push(heading);
    }
    stack.into_iter().map(|h| h.text.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_tokenizer() -> Arc<Tokenizer> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/models/tiny-e5/tokenizer.json"
        );
        Arc::new(Tokenizer::from_file(path).expect("tiny tokenizer fixture"))
    }

    fn splitter(size: usize, overlap: usize) -> Splitter {
        Splitter::new(
            tiny_tokenizer(),
            &ChunkingConfig {
                size_tokens: size,
                overlap_tokens: overlap,
            },
        )
    }

    fn doc(format: Format, text: &str) -> Extracted {
        Extracted {
            format,
            title: "t".into(),
            text: text.into(),
        }
    }

    #[test]
    fn heading_paths_follow_section_nesting() {
        let text = "# A\nintro\n## B\nbody b\n### C\nbody c\n## D\nbody d\n";
        let headings = markdown_headings(text);
        let at = |needle: &str| heading_path_at(&headings, text.find(needle).unwrap());
        assert_eq!(at("intro"), ["A"]);
        assert_eq!(at("body c"), ["A", "B", "C"]);
        assert_eq!(at("body d"), ["A", "D"]);
    }

    #[test]
    fn hashes_in_code_blocks_are_not_headings() {
        let text = "# Real\n```bash\n# not a heading\n```\n";
        let texts: Vec<String> = markdown_headings(text)
            .into_iter()
            .map(|h| h.text)
            .collect();
        assert_eq!(texts, ["Real"]);
    }

    #[test]
    fn chinese_text_splits_at_sentence_ends_within_the_token_budget() {
        let sentence = "活动期间充值满一百元即可获得五十元代金券，每个账号限领一次。";
        let text = sentence.repeat(40);
        let tokenizer = tiny_tokenizer();
        let pieces = splitter(60, 0).split(&doc(Format::Text, &text)).unwrap();
        assert!(
            pieces.len() > 2,
            "expected several chunks, got {}",
            pieces.len()
        );
        for piece in &pieces {
            let tokens = tokenizer
                .encode_fast(piece.text.as_str(), false)
                .unwrap()
                .len();
            assert!(tokens <= 60, "chunk of {tokens} tokens exceeds the budget");
            assert!(
                piece.text.ends_with('。'),
                "chunk cut mid-sentence: {}",
                piece.text
            );
            assert!(
                !piece.text.contains(' '),
                "a space was inserted between CJK characters"
            );
        }
    }

    #[test]
    fn overlap_repeats_text_across_neighbouring_chunks() {
        let text: String = (0..60)
            .map(|i| format!("第{i}条规则说明了一个事实。"))
            .collect::<Vec<_>>()
            .join("");
        let pieces = splitter(50, 15).split(&doc(Format::Text, &text)).unwrap();
        assert!(pieces.len() > 2);
        let shared = pieces.windows(2).filter(|w| {
            let first_sentence_of_next = w[1].text.split_inclusive('。').next().unwrap_or("");
            w[0].text.contains(first_sentence_of_next)
        });
        assert!(
            shared.count() > 0,
            "no chunk shares text with its neighbour"
        );
    }

    #[test]
    fn markdown_chunks_carry_their_headings() {
        let body = "这是一段关于套餐价格的说明。".repeat(12);
        let text = format!("# 价格\n\n## 企业版\n\n{body}\n\n## 个人版\n\n{body}\n");
        let pieces = splitter(60, 0)
            .split(&doc(Format::Markdown, &text))
            .unwrap();
        let last = pieces.last().unwrap();
        assert_eq!(last.heading_path.first().map(String::as_str), Some("价格"));
        assert!(
            pieces
                .iter()
                .any(|p| p.heading_path.contains(&"企业版".to_owned()))
        );
        assert!(
            pieces
                .iter()
                .any(|p| p.heading_path.contains(&"个人版".to_owned()))
        );
    }
}
