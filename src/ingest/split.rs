//! Splitting: the second step of ingestion, from a document's text to chunks that fit the model.
//!
//! Sizes are counted in tokens of the embedding model's own tokenizer, so a chunk never gets cut
//! by the model's length limit. text-splitter keeps the largest semantic units that fit:
//! Markdown sections, paragraphs, then sentences; Unicode sentence rules end Chinese sentences at
//! 。！？ without needing spaces. Each chunk records the headings above it, so a chunk about
//! "收费标准" under "## 企业版" still says which plan it describes.

use std::sync::Arc;

use text_splitter::{ChunkConfig, MarkdownSplitter, TextSplitter};

use crate::config::ChunkingConfig;
use crate::ingest::extract::Extracted;
use crate::tokenize::{Sizer, Tokenizer};

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
            .with_sizer(Sizer(Arc::clone(&self.tokenizer)))
            .with_overlap(self.overlap_tokens)?;
        let markdown = doc.format.is_markdown();
        let spans: Vec<(usize, &str)> = if markdown {
            MarkdownSplitter::new(config)
                .chunk_indices(&doc.text)
                .collect()
        } else {
            TextSplitter::new(config).chunk_indices(&doc.text).collect()
        };
        let (headings, tables) = if markdown {
            (markdown_headings(&doc.text), markdown_tables(&doc.text))
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(spans
            .into_iter()
            .filter(|(_, text)| !text.trim().is_empty())
            .map(|(offset, text)| Piece {
                text: with_table_header(&tables, offset, text),
                heading_path: heading_path_at(&headings, offset),
            })
            .collect())
    }
}

/// A Markdown table: its header and delimiter lines, and the byte range of its body rows.
#[derive(Debug, PartialEq)]
struct Table {
    header: String,
    body: std::ops::Range<usize>,
}

/// Finds pipe tables (a header row, a `| --- |` delimiter row, body rows up to a blank line or a
/// line without `|`) outside fenced code blocks. Extraction writes every table this way.
fn markdown_tables(text: &str) -> Vec<Table> {
    let is_delimiter = |line: &str| {
        let line = line.trim();
        line.contains('-')
            && line.contains('|')
            && line
                .chars()
                .all(|c| matches!(c, '|' | '-' | ':' | ' ' | '\t'))
    };
    let mut lines = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        lines.push((offset, line));
        offset += line.len();
    }
    let mut tables = Vec::new();
    let mut in_fence = false;
    let mut i = 0;
    while i + 1 < lines.len() {
        let (_, line) = lines[i];
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        }
        if in_fence || !line.contains('|') || !is_delimiter(lines[i + 1].1) {
            i += 1;
            continue;
        }
        let header = format!("{}\n{}\n", line.trim_end(), lines[i + 1].1.trim_end());
        let start = i + 2;
        let mut end = start;
        while end < lines.len() && lines[end].1.contains('|') && !lines[end].1.trim().is_empty() {
            end += 1;
        }
        let body_start = lines.get(start).map_or(text.len(), |(o, _)| *o);
        let body_end = lines.get(end).map_or(text.len(), |(o, _)| *o);
        if body_end > body_start {
            tables.push(Table {
                header,
                body: body_start..body_end,
            });
        }
        i = end.max(i + 1);
    }
    tables
}

/// A chunk that starts among a table's body rows gets the table's header row in front, so a row
/// retrieved alone still says what its columns mean. The chunk grows by the header's tokens
/// (sizes stay well under the model's limit: chunks default to 300 tokens, e5 reads 512).
fn with_table_header(tables: &[Table], offset: usize, text: &str) -> String {
    match tables.iter().find(|t| t.body.contains(&offset)) {
        Some(table) if !text.starts_with(table.header.as_str()) => {
            format!("{}{text}", table.header)
        }
        _ => text.to_owned(),
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
    use crate::ingest::extract::Format;

    fn tiny_tokenizer() -> Arc<Tokenizer> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/models/tiny-e5/tokenizer.json"
        );
        Arc::new(crate::tokenize::load(std::path::Path::new(path)).expect("tiny tokenizer fixture"))
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

    /// A tokenizer counting words and punctuation runs, built in place (no fixture needed).
    fn word_tokenizer() -> Arc<Tokenizer> {
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
            "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,
            "decoder":null,"model":{"type":"WordLevel","vocab":{"[UNK]":0},"unk_token":"[UNK]"}}"#;
        Arc::new(crate::tokenize::from_json(json).expect("word-level tokenizer"))
    }

    #[test]
    fn every_chunk_of_a_long_table_repeats_its_header() {
        let mut text = String::from("# Layoffs\n\nNotices by company.\n\n");
        text.push_str("| Company | City | Employees |\n| --- | --- | --- |\n");
        for i in 0..60 {
            text.push_str(&format!("| Company {i} | City {i} | {} |\n", i * 7));
        }
        text.push_str("\nAfter the table.\n");
        let splitter = Splitter::new(
            word_tokenizer(),
            &ChunkingConfig {
                size_tokens: 80,
                overlap_tokens: 0,
            },
        );
        let pieces = splitter.split(&doc(Format::Pdf, &text)).unwrap();
        let rows: Vec<&Piece> = pieces
            .iter()
            .filter(|p| p.text.contains("| Company 3"))
            .collect();
        assert!(pieces.len() > 3, "{pieces:#?}");
        assert!(rows.len() > 2, "{pieces:#?}");
        for piece in pieces.iter().filter(|p| p.text.contains("| Company ")) {
            assert!(
                piece
                    .text
                    .starts_with("| Company | City | Employees |\n| --- | --- | --- |\n")
                    || piece.text.starts_with("# Layoffs"),
                "{}",
                piece.text
            );
            assert_eq!(piece.heading_path, ["Layoffs"]);
        }
    }

    #[test]
    fn tables_are_found_outside_code_only() {
        let text = "intro\n\n| a | b |\n|---|:-:|\n| 1 | 2 |\n| 3 | 4 |\n\n```\n| x |\n| - |\n| y |\n```\n";
        let tables = markdown_tables(text);
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].header, "| a | b |\n|---|:-:|\n");
        assert_eq!(&text[tables[0].body.clone()], "| 1 | 2 |\n| 3 | 4 |\n");
        let row = text.find("| 3").unwrap();
        assert_eq!(
            with_table_header(&tables, row, "| 3 | 4 |"),
            "| a | b |\n|---|:-:|\n| 3 | 4 |"
        );
        assert_eq!(with_table_header(&tables, 0, "intro"), "intro");
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
