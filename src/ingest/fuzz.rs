//! Property tests: every extractor, fed random bytes and mutations of real and broken files
//! (fixtures/docs, fixtures/broken), returns text or a clear error and never panics, and the
//! splitter takes whatever an extractor returns. A panic here would be a crashed ingestion job,
//! an upload lost as "internal error", where the person who uploaded it needed a reason.

use std::io::{Read, Write};
use std::sync::{Arc, LazyLock};

use proptest::prelude::*;

use super::extract::{Format, extract};
use super::split::Splitter;
use crate::config::ChunkingConfig;
use crate::error::ErrorCode;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Small real files of every format, and the broken ones: the seeds of the mutations. (The
/// large PDFs are left out: each mutated case would parse megabytes.)
static SEEDS: LazyLock<Vec<(&'static str, Vec<u8>)>> = LazyLock::new(|| {
    let html = fixture("docs/wikipedia_mozilla_en.html");
    let text = fixture("docs/cmrc_dev_first30_utf8.txt");
    vec![
        ("a.docx", fixture("docs/npp_psr_part1_drafting_notes_zh.docx")),
        ("a.html", html[..html.len().min(32 * 1024)].to_vec()),
        ("a.txt", text[..4096].to_vec()),
        ("a.txt", fixture("docs/cmrc_dev_first30_gb18030.txt")[..4096].to_vec()),
        ("a.md", "# 退款\n\n| 天数 | 规则 |\n|---|---|\n| 7 | 无理由 |\n\n- 一\n  - 二\n> 引用\n```\ncode\n```\n".into()),
        ("a.pdf", fixture("broken/truncated.pdf")),
        ("a.pdf", fixture("broken/random.pdf")),
        ("a.docx", fixture("broken/empty.docx")),
    ]
});

static SPLITTER: LazyLock<Splitter> = LazyLock::new(|| {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/models/tiny-e5/tokenizer.json"
    );
    let tokenizer = Arc::new(
        crate::tokenize::load(std::path::Path::new(path)).expect("tiny tokenizer fixture"),
    );
    Splitter::new(
        tokenizer,
        &ChunkingConfig {
            size_tokens: 64,
            overlap_tokens: 8,
        },
    )
});

/// Extraction ends in text or in one of the errors an upload may report, with a message that
/// names the file; and whatever text comes out can be split.
fn check(name: &str, bytes: &[u8]) {
    match extract(name, bytes) {
        Ok(extracted) => {
            assert!(
                !extracted.text.trim().is_empty(),
                "{name}: empty text is an error"
            );
            SPLITTER
                .split(&extracted)
                .unwrap_or_else(|e| panic!("{name}: the splitter failed: {e:#}"));
        }
        Err(err) => {
            assert!(
                matches!(
                    err.code(),
                    ErrorCode::InvalidRequest | ErrorCode::UnsupportedFormat | ErrorCode::EmptyFile
                ),
                "{name}: {:?}",
                err
            );
            assert!(err.message().contains(name), "{name}: {}", err.message());
        }
    }
}

/// A change to a seed file: the kinds of damage files suffer in transit and in bad tools.
#[derive(Debug, Clone)]
enum Mutation {
    /// Bytes overwritten at positions (fractions of the length).
    Flip(Vec<(f64, u8)>),
    /// Cut at a fraction of the length.
    Truncate(f64),
    /// Random bytes inserted at a fraction of the length.
    Insert(f64, Vec<u8>),
    /// A span copied over another (repeated structure, as in a doubled XML element).
    Splice(f64, f64, f64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        prop::collection::vec((0.0..1.0, any::<u8>()), 1..16).prop_map(Mutation::Flip),
        (0.0..1.0).prop_map(Mutation::Truncate),
        ((0.0..1.0), prop::collection::vec(any::<u8>(), 1..256))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        ((0.0..1.0), (0.0..1.0), (0.0..0.2)).prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
    ]
}

fn at(len: usize, fraction: f64) -> usize {
    ((len as f64 * fraction) as usize).min(len)
}

fn mutate(mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    let len = bytes.len();
    match mutation {
        Mutation::Flip(flips) => {
            for &(position, byte) in flips {
                if let Some(b) = bytes.get_mut(at(len, position)) {
                    *b = byte;
                }
            }
        }
        Mutation::Truncate(position) => bytes.truncate(at(len, *position)),
        Mutation::Insert(position, inserted) => {
            let i = at(len, *position);
            bytes.splice(i..i, inserted.iter().copied());
        }
        Mutation::Splice(from, to, size) => {
            let (from, to) = (at(len, *from), at(len, *to));
            let end = (from + at(len, *size)).min(len);
            let span = bytes[from..end].to_vec();
            bytes.splice(to..to, span);
        }
    }
    bytes
}

/// A Word file whose `word/document.xml` is replaced: the XML reader sees damaged markup
/// instead of the zip reader refusing a bad checksum.
fn docx_with(document_xml: &[u8]) -> Vec<u8> {
    let seed = fixture("docs/npp_psr_part1_drafting_notes_zh.docx");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(seed)).expect("zip");
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("entry");
        let name = entry.name().expect("entry name").into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read entry");
        out.start_file(name.as_str(), options).expect("start");
        if name == "word/document.xml" {
            out.write_all(document_xml).expect("write");
        } else {
            out.write_all(&data).expect("write");
        }
    }
    out.finish().expect("finish").into_inner()
}

static DOCUMENT_XML: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let seed = fixture("docs/npp_psr_part1_drafting_notes_zh.docx");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(seed)).expect("zip");
    let mut xml = Vec::new();
    archive
        .by_name("word/document.xml")
        .expect("document.xml")
        .read_to_end(&mut xml)
        .expect("read");
    xml
});

/// The starts of files that decide their format before the name does.
const MAGIC: [&[u8]; 6] = [
    b"%PDF-1.7\n",
    b"PK\x03\x04",
    b"\xEF\xBB\xBF",
    b"\xFF\xFE",
    b"<!DOCTYPE html>",
    b"<html><body>",
];

const NAMES: [&str; 9] = [
    "a.md",
    "a.txt",
    "a.pdf",
    "a.docx",
    "a.html",
    "a.htm",
    "a.xyz",
    "noext",
    "a.markdown",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_under_any_name(name in prop::sample::select(&NAMES[..]),
                                   bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(name, &bytes);
    }

    #[test]
    fn random_bytes_behind_each_magic_number(
        magic in prop::sample::select(&MAGIC[..]),
        rest in prop::collection::vec(any::<u8>(), 0..2048),
        name in prop::sample::select(&NAMES[..]),
    ) {
        let mut bytes = magic.to_vec();
        bytes.extend(rest);
        check(name, &bytes);
    }

    #[test]
    fn mutated_real_and_broken_files(seed in 0..SEEDS.len(),
                                     mutations in prop::collection::vec(mutation(), 1..4)) {
        let (name, bytes) = &SEEDS[seed];
        let bytes = mutations.iter().fold(bytes.clone(), mutate);
        check(name, &bytes);
    }

    #[test]
    fn markup_and_text_of_any_characters(text in any::<String>(),
                                         name in prop::sample::select(&["a.md", "a.txt", "a.html"][..])) {
        check(name, text.as_bytes());
    }

    #[test]
    fn html_of_random_tags(parts in prop::collection::vec(prop::sample::select(&[
        "<div>", "</div>", "<table>", "</table>", "<tr>", "<td colspan=\"9999999\">", "</td>",
        "<th rowspan=0>", "<h1>", "</h1>", "<h7>", "<ul>", "<li>", "<pre>", "<script>", "</script>",
        "<nav>", "<a href=x>", "<br>", "<p>", "退款", "text", "&amp;", "&#xFFFFFF;", "<!--", "-->",
        "<![CDATA[", "<math>", "<svg>", "<template>", "<title>", "</title>", "\0",
    ][..]), 0..200)) {
        check("page.html", parts.concat().as_bytes());
    }

    #[test]
    fn markdown_of_random_blocks(parts in prop::collection::vec(prop::sample::select(&[
        "# ", "###### ", "####### ", "\n", "\n\n", "| a | b |\n", "|---|---|\n", "|", "- ", "  ",
        "> ", "```", "~~~", "---\n", "title: x\n", "[x]: ", "![", "](", "\\", "<div>", "退款。",
        "text", "\t", "\r\n", "*", "_", "1. ", "\u{200b}", "\u{feff}",
    ][..]), 0..200)) {
        check("doc.md", parts.concat().as_bytes());
    }

    #[test]
    fn docx_with_damaged_document_xml(mutations in prop::collection::vec(mutation(), 1..4)) {
        let xml = mutations.iter().fold(DOCUMENT_XML.clone(), mutate);
        check("a.docx", &docx_with(&xml));
    }

    #[test]
    fn docx_of_random_elements(parts in prop::collection::vec(prop::sample::select(&[
        "<w:p>", "</w:p>", "<w:r>", "</w:r>", "<w:t>", "</w:t>", "<w:tbl>", "</w:tbl>", "<w:tr>",
        "</w:tr>", "<w:tc>", "</w:tc>", "<w:gridSpan w:val=\"99999999\"/>", "<w:vMerge/>",
        "<w:pStyle w:val=\"Heading1\"/>", "<w:outlineLvl w:val=\"-1\"/>", "<w:br/>", "<w:tab/>",
        "退款", "&amp;", "&bogus;", "<w:pPr>", "</w:pPr>", "<w:numPr>", "</w:numPr>",
    ][..]), 0..200)) {
        let xml = format!(
            "<?xml version=\"1.0\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{}</w:body></w:document>",
            parts.concat()
        );
        check("a.docx", &docx_with(xml.as_bytes()));
    }
}

/// The body of a Word file with `body` inside `<w:body>`.
fn docx_body(body: &str) -> Vec<u8> {
    docx_with(
        format!(
            "<?xml version=\"1.0\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/\
             wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
        )
        .as_bytes(),
    )
}

// Nesting far deeper than any real document: the readers must not overflow the stack (the
// server's blocking threads have 2 MiB), and the splitter must not take forever.

#[test]
fn deeply_nested_html() {
    let depth = 100_000;
    let html = format!("{}退款{}", "<div>".repeat(depth), "</div>".repeat(depth));
    check("deep.html", html.as_bytes());
}

#[test]
fn deeply_nested_html_tables() {
    let tables = format!(
        "{}退款{}",
        "<table><tr><td>".repeat(5_000),
        "</td></tr></table>".repeat(5_000)
    );
    check("tables.html", tables.as_bytes());
}

/// 20,000 levels: the Markdown parser's time grows with the square of the quote depth (3 s here
/// in a debug build, 75 s at 100,000), so deeper is a slow upload, not a crash; only admin keys
/// upload.
#[test]
fn deeply_nested_markdown_quotes() {
    check("deep.md", format!("{}退款", "> ".repeat(20_000)).as_bytes());
}

#[test]
fn deeply_nested_markdown_lists() {
    let lists: String = (0..500)
        .map(|i| format!("{}- 退款\n", "  ".repeat(i)))
        .collect();
    check("lists.md", lists.as_bytes());
}

#[test]
fn deeply_nested_docx_tables() {
    let body = format!(
        "{}<w:p><w:r><w:t>退款</w:t></w:r></w:p>{}",
        "<w:tbl><w:tr><w:tc>".repeat(5_000),
        "</w:tc></w:tr></w:tbl>".repeat(5_000)
    );
    check("deep.docx", &docx_body(&body));
}

#[test]
fn every_seed_is_accepted_by_format_detection_as_expected() {
    // The seeds reach the extractor they are meant for, so the mutations test that extractor.
    for (name, bytes) in SEEDS.iter().filter(|(_, b)| !b.is_empty()) {
        let format = Format::detect(name, bytes);
        assert!(format.is_ok(), "{name}: {format:?}");
    }
}
