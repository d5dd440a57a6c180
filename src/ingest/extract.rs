//! Extraction: the first step of ingestion, from a file's bytes to its text and title.
//!
//! The format is a closed enum decided from the file's content and name together, so a renamed
//! binary is not read as text. Text in UTF-8, UTF-16 (with BOM) and GB18030/GBK is decoded;
//! Windows tools in China still export GBK. Each binary or markup format has its own module
//! (`pdf.rs`, `docx.rs`, `html.rs`); they all hand back Markdown-ish text, headings as `#` lines
//! and tables as Markdown tables (header row first), so the splitter keeps headings as context
//! and repeats a long table's header row in every chunk of it (see `split.rs`).

use std::sync::LazyLock;

use regex::Regex;

use crate::error::{Error, ErrorCode, Result};

/// Formats lore can read: the format of the uploaded file.
///
/// [`Format::Text`] alone extracts to plain text; every other format extracts to Markdown
/// ([`Format::is_markdown`]), which is what the splitter needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Text,
    Pdf,
    Docx,
    Html,
}

/// The text of a document, ready to split.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    /// The format of the file the text came from.
    pub format: Format,
    /// From front matter, the document's own title, the first heading, or the file name.
    pub title: String,
    /// Markdown when [`Format::is_markdown`], plain text otherwise.
    pub text: String,
}

/// What a format module hands back; [`extract`] checks it and fills in the title.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Body {
    pub title: Option<String>,
    pub text: String,
}

const SUPPORTED: &str = ".md, .markdown, .mdx, .txt, .pdf, .docx, .html, .htm";

impl Format {
    /// Decides the format from the content first (magic numbers), then the extension.
    ///
    /// Only cheap checks happen here (it runs when an upload is accepted); whether a `.pdf` or
    /// `.docx` really is one is found out by extraction, which fails with a clear message.
    pub fn detect(name: &str, bytes: &[u8]) -> Result<Self> {
        let ext = extension(name);
        if is_pdf(bytes) {
            return Ok(Self::Pdf);
        }
        if is_zip(bytes) {
            // A Word file is a zip whose first entries include word/document.xml; the name of an
            // entry sits in plain text in its local header.
            let word = bytes
                .get(..bytes.len().min(64 * 1024))
                .is_some_and(|head| head.windows(9).any(|w| w == b"word/docu"));
            return if word || ext.as_deref() == Some("docx") {
                Ok(Self::Docx)
            } else {
                Err(unsupported(name, "zip (xlsx/pptx/zip)"))
            };
        }
        if let Some(kind) = sniff_binary(bytes) {
            return Err(unsupported(name, kind));
        }
        match ext.as_deref() {
            Some("md" | "markdown" | "mdx") => Ok(Self::Markdown),
            Some("pdf") => Ok(Self::Pdf),
            Some("docx") => Ok(Self::Docx),
            Some("html" | "htm" | "xhtml") => Ok(Self::Html),
            Some("txt" | "text") => Ok(Self::Text),
            None if looks_like_html(bytes) => Ok(Self::Html),
            None => Ok(Self::Text),
            Some(other) => Err(unsupported(name, other)),
        }
    }

    /// Whether extraction turns this format into Markdown (headings and tables the splitter
    /// understands) rather than plain text.
    pub fn is_markdown(self) -> bool {
        !matches!(self, Self::Text)
    }
}

/// Escapes a body line that Markdown would read as a heading, a fence or a table row, so text
/// extracted from PDF and Word keeps its meaning when split as Markdown.
pub(crate) fn escape_markdown_line(text: &str) -> String {
    let trimmed = text.trim_start();
    if trimmed.starts_with(['#', '|']) || trimmed.starts_with("```") || trimmed.starts_with("~~~") {
        format!("\\{trimmed}")
    } else {
        text.to_owned()
    }
}

/// Whether a path's extension names a format lore reads (for walking folders).
pub fn has_supported_extension(path: &std::path::Path) -> bool {
    let name = path.to_string_lossy();
    matches!(
        extension(&name).as_deref(),
        Some(
            "md" | "markdown" | "mdx" | "txt" | "text" | "pdf" | "docx" | "html" | "htm" | "xhtml"
        )
    )
}

fn extension(name: &str) -> Option<String> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    file.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| !ext.is_empty())
}

/// A PDF by its header. (Readers also accept a header after some junk, within the first KiB;
/// `pdf.rs` does for files named `.pdf`, but a text file quoting "%PDF-" stays text.)
fn is_pdf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"%PDF-")
}

/// A zip archive: a local file header, or the end record of an empty archive.
fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

fn looks_like_html(bytes: &[u8]) -> bool {
    let head = String::from_utf8_lossy(bytes.get(..512).unwrap_or(bytes)).to_ascii_lowercase();
    let head = head.trim_start_matches('\u{feff}').trim_start();
    head.starts_with("<!doctype html") || head.starts_with("<html")
}

/// Names binary formats lore does not read by their magic numbers.
fn sniff_binary(bytes: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 5] = [
        (b"\xD0\xCF\x11\xE0", "ole2 (doc/xls)"),
        (b"\x89PNG", "png"),
        (b"\xFF\xD8\xFF", "jpeg"),
        (b"GIF8", "gif"),
        (b"\x7FELF", "executable"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, kind)| *kind)
}

fn unsupported(name: &str, kind: &str) -> Error {
    Error::new(
        ErrorCode::UnsupportedFormat,
        format!("'{name}' is of an unsupported type ({kind}); supported: {SUPPORTED}"),
    )
}

/// A file of a supported format that is damaged, truncated or otherwise unreadable.
pub(crate) fn unreadable(name: &str, reason: &str) -> Error {
    Error::new(
        ErrorCode::InvalidRequest,
        format!("'{name}' could not be read: {reason}"),
    )
}

/// Extracts the text and title of one file. CPU-bound (a large PDF takes seconds): call it off
/// the async runtime.
pub fn extract(name: &str, bytes: &[u8]) -> Result<Extracted> {
    if bytes.is_empty() {
        return Err(Error::new(
            ErrorCode::EmptyFile,
            format!("'{name}' is empty"),
        ));
    }
    let format = Format::detect(name, bytes)?;
    let body = match format {
        Format::Markdown => {
            let text = decode_text(bytes).ok_or_else(|| unsupported(name, "binary data"))?;
            let (title, text) = markdown(&text);
            Body { title, text }
        }
        Format::Text => {
            let text = decode_text(bytes).ok_or_else(|| unsupported(name, "binary data"))?;
            Body {
                title: None,
                text: normalize_newlines(&text),
            }
        }
        Format::Pdf => super::pdf::extract(name, bytes)?,
        Format::Docx => super::docx::extract(name, bytes)?,
        Format::Html => super::html::extract(name, bytes)?,
    };
    if body.text.trim().is_empty() {
        // A PDF without text is nearly always a scan: say what to do about it.
        let hint = match format {
            Format::Pdf => " layer (a scanned PDF?); convert it with OCR first",
            _ => "",
        };
        return Err(Error::new(
            ErrorCode::EmptyFile,
            format!("'{name}' has no text{hint}"),
        ));
    }
    let title = body
        .title
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| file_stem(name));
    Ok(Extracted {
        format,
        title,
        text: body.text,
    })
}

/// Characters written without spaces between words: Han, kana, bopomofo, and the CJK
/// punctuation and full-width forms set among them. (Hangul is written with spaces.)
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF      // radicals
        | 0x3000..=0x303F    // CJK symbols and punctuation
        | 0x3040..=0x30FF    // hiragana, katakana
        | 0x3100..=0x312F    // bopomofo
        | 0x31F0..=0x31FF    // katakana extensions
        | 0x3400..=0x4DBF    // extension A
        | 0x4E00..=0x9FFF    // unified ideographs
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xFE30..=0xFE4F    // compatibility forms
        | 0xFF00..=0xFFEF    // full-width forms
        | 0x20000..=0x3134F  // extensions B-G
    )
}

/// Appends `next` to `text` where a line break cut a sentence: nothing in between when either
/// side is CJK (or the break followed a hyphen), one space between Latin words.
pub(crate) fn join_broken_line(text: &mut String, next: &str) {
    let trimmed_len = text.trim_end().len();
    text.truncate(trimmed_len);
    let next = next.trim_start();
    let (Some(last), Some(first)) = (text.chars().next_back(), next.chars().next()) else {
        text.push_str(next);
        return;
    };
    let hyphen = last == '-' && first.is_lowercase();
    if !(is_cjk(last) || is_cjk(first) || hyphen) {
        text.push(' ');
    }
    text.push_str(next);
}

/// Collapses each run of white space to one space, or to nothing where a line break falls
/// between two CJK characters (a wrapped line, not a word gap); trims both ends.
pub(crate) fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run: Option<bool> = None; // Some(contains a line break) while inside white space
    for c in text.chars() {
        if c.is_whitespace() {
            let newline = matches!(c, '\n' | '\r');
            run = Some(run.unwrap_or(false) || newline);
            continue;
        }
        if let Some(newline) = run.take() {
            let joined_cjk = newline && out.chars().next_back().is_some_and(is_cjk) && is_cjk(c);
            if !out.is_empty() && !joined_cjk {
                out.push(' ');
            }
        }
        out.push(c);
    }
    out
}

/// Renders rows as a Markdown table, the first row as its header: cells trimmed, `|` escaped,
/// line breaks turned into spaces, short rows padded. Callers pass at least one row.
pub(crate) fn markdown_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push('|');
        for c in 0..columns {
            let cell = row.get(c).map(String::as_str).unwrap_or("");
            let cell = collapse_whitespace(cell);
            out.push(' ');
            out.push_str(&cell.replace('|', "\\|"));
            out.push_str(" |");
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            out.push_str(&" --- |".repeat(columns));
            out.push('\n');
        }
    }
    out.pop();
    out
}

fn file_stem(name: &str) -> String {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    file.rsplit_once('.')
        .map(|(stem, _)| stem)
        .unwrap_or(file)
        .to_owned()
}

/// Decodes text by BOM, then strict UTF-8, then GB18030 (a superset of GBK and GB2312).
/// Returns `None` for data that is not text in any of them.
pub fn decode_text(bytes: &[u8]) -> Option<String> {
    if let Some((encoding, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, had_errors) =
            encoding.decode_without_bom_handling(bytes.get(bom_len..).unwrap_or_default());
        return (!had_errors && !looks_binary(&text)).then(|| text.into_owned());
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return (!looks_binary(text)).then(|| text.to_owned());
    }
    let text = encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes)?;
    (!looks_binary(&text)).then(|| text.into_owned())
}

/// Control characters other than whitespace do not occur in real text files.
fn looks_binary(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

static FRONT_MATTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)\A---\n(.*?)\n---\n").expect("valid regex"));
static FRONT_MATTER_TITLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?m)^title:\s*["']?(.+?)["']?\s*$"#).expect("valid regex"));
/// MDX/JSX component tags (capitalised names) and `import`/`export` lines.
static MDX_TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"</?[A-Z][A-Za-z0-9]*(?:\s[^<>]*)?/?>").expect("valid regex"));
static MDX_TITLE_ATTR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"\btitle="([^"]+)""#).expect("valid regex"));
static MDX_MODULE_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(?:import|export)\s.*$").expect("valid regex"));
static HTML_COMMENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)<!--.*?-->").expect("valid regex"));

/// Cleans Markdown/MDX: front matter becomes the title, component tags go, but a tag's `title`
/// attribute (a tab or card name users see) stays as a line of text.
fn markdown(raw: &str) -> (Option<String>, String) {
    let text = normalize_newlines(raw);
    let mut title = None;
    let body = match FRONT_MATTER.captures(&text) {
        Some(front) => {
            title = FRONT_MATTER_TITLE
                .captures(&front[1])
                .map(|c| c[1].trim().to_owned());
            text[front[0].len()..].to_owned()
        }
        None => text.clone(),
    };
    let body = HTML_COMMENT.replace_all(&body, "");
    let body = MDX_MODULE_LINE.replace_all(&body, "");
    let body = MDX_TAG.replace_all(&body, |tag: &regex::Captures<'_>| {
        MDX_TITLE_ATTR
            .captures(&tag[0])
            .map(|attr| format!("**{}**", &attr[1]))
            .unwrap_or_default()
    });
    let body = collapse_blank_lines(&body);
    let title = title.or_else(|| {
        body.lines()
            .find_map(|line| line.strip_prefix("# "))
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
    });
    (title, body)
}

/// Drops lines left blank by removed tags, keeping paragraph breaks single.
pub(crate) fn collapse_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let trimmed_end = line.trim_end();
        if trimmed_end.trim().is_empty() {
            blank_run += 1;
            if blank_run == 1 {
                out.push('\n');
            }
            continue;
        }
        blank_run = 0;
        out.push_str(trimmed_end);
        out.push('\n');
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_by_content_before_name() {
        assert_eq!(Format::detect("a.md", b"# hi").unwrap(), Format::Markdown);
        assert_eq!(Format::detect("notes", b"hello").unwrap(), Format::Text);
        let err = Format::detect("fake.txt", b"\x89PNG\r\n...").unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnsupportedFormat);
        assert!(err.message().contains("png"), "{}", err.message());
        let err = Format::detect("photo.exe", b"MZ..").unwrap_err();
        assert!(err.message().contains("exe"));
        // A PDF is a PDF whatever its name; a Word zip too.
        assert_eq!(
            Format::detect("scan.txt", b"%PDF-1.7 ...").unwrap(),
            Format::Pdf
        );
        let docx = fixture("docs/npp_psr_part1_drafting_notes_zh.docx");
        assert_eq!(Format::detect("report.zip", &docx).unwrap(), Format::Docx);
        assert_eq!(Format::detect("report.docx", &docx).unwrap(), Format::Docx);
        let err = Format::detect("sheet.xlsx", b"PK\x03\x04xl/workbook.xml").unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnsupportedFormat);
        assert!(err.message().contains("zip"), "{}", err.message());
        // The name decides for text formats; a nameless page is sniffed.
        assert_eq!(
            Format::detect("page.HTM", b"<p>x</p>").unwrap(),
            Format::Html
        );
        assert_eq!(
            Format::detect("saved", b"<!DOCTYPE html><p>x").unwrap(),
            Format::Html
        );
        assert_eq!(Format::detect("x.pdf", b"garbage").unwrap(), Format::Pdf);
        assert_eq!(Format::detect("x.docx", b"garbage").unwrap(), Format::Docx);
        assert!(Format::detect("x.doc", b"plain").is_err());
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn folders_walk_every_supported_extension() {
        for name in [
            "a.md", "b.txt", "c.pdf", "d.DOCX", "e.html", "f.htm", "g.mdx",
        ] {
            assert!(
                has_supported_extension(std::path::Path::new(name)),
                "{name}"
            );
        }
        for name in ["a.doc", "b.xlsx", "c.png", "noext"] {
            assert!(
                !has_supported_extension(std::path::Path::new(name)),
                "{name}"
            );
        }
    }

    #[test]
    fn every_format_extracts_to_markdown_but_text() {
        let cases = [
            (
                "java.pdf",
                "docs/java_dev_manual_huangshan_zh.pdf",
                Format::Pdf,
            ),
            (
                "psr.docx",
                "docs/npp_periodic_safety_review_part1_general_zh.docx",
                Format::Docx,
            ),
            (
                "mozilla.html",
                "docs/wikipedia_mozilla_en.html",
                Format::Html,
            ),
            ("cmrc.txt", "docs/cmrc_dev_first30_utf8.txt", Format::Text),
        ];
        for (name, path, format) in cases {
            let doc = extract(name, &fixture(path)).unwrap();
            assert_eq!(doc.format, format, "{name}");
            assert_eq!(doc.format.is_markdown(), format != Format::Text);
            assert!(!doc.title.is_empty() && doc.text.len() > 1000, "{name}");
        }
        assert_eq!(
            extract("mozilla.html", &fixture("docs/wikipedia_mozilla_en.html"))
                .unwrap()
                .title,
            "Mozilla"
        );
    }

    #[test]
    fn gb18030_and_utf8_copies_extract_identically() {
        let utf8 = extract("a.txt", &fixture("docs/cmrc_dev_first30_utf8.txt")).unwrap();
        let gb = extract("a.txt", &fixture("docs/cmrc_dev_first30_gb18030.txt")).unwrap();
        assert_eq!(utf8.text, gb.text);
        assert!(utf8.text.contains('。'));
    }

    #[test]
    fn empty_and_broken_documents_fail_alone_with_clear_errors() {
        let zero = fixture("broken/zero.docx");
        for name in ["zero.docx", "zero.pdf", "zero.html"] {
            let err = extract(name, &zero).unwrap_err();
            assert_eq!(err.code(), ErrorCode::EmptyFile, "{name}");
            assert_eq!(err.message(), format!("'{name}' is empty"));
        }
        let err = extract("empty.docx", &fixture("broken/empty.docx")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert!(
            err.message().contains("not a Word document"),
            "{}",
            err.message()
        );
        let err = extract("blank.html", b"<html><body><nav>Home</nav></body></html>").unwrap_err();
        assert_eq!(err.code(), ErrorCode::EmptyFile);
        let err = extract("truncated.pdf", &fixture("broken/truncated.pdf")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert!(
            err.message()
                .starts_with("'truncated.pdf' could not be read: ")
        );
        let err = extract("random.pdf", &fixture("broken/random.pdf")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert_eq!(
            err.message(),
            "'random.pdf' could not be read: it is not a PDF file (no %PDF header)"
        );
    }

    #[test]
    fn cjk_line_breaks_join_without_spaces() {
        let mut text = String::from("活动期间充值满一百元");
        join_broken_line(&mut text, "即可获得代金券");
        assert_eq!(text, "活动期间充值满一百元即可获得代金券");
        let mut text = String::from("the quick brown ");
        join_broken_line(&mut text, "fox");
        assert_eq!(text, "the quick brown fox");
        let mut text = String::from("使用");
        join_broken_line(&mut text, "Java 开发");
        assert_eq!(text, "使用Java 开发");
        assert_eq!(
            collapse_whitespace(" 企业版\n 适合 团队 \n"),
            "企业版适合 团队"
        );
        assert_eq!(collapse_whitespace("a\n b"), "a b");
    }

    #[test]
    fn empty_and_binary_files_fail_clearly() {
        assert_eq!(
            extract("a.txt", b"").unwrap_err().code(),
            ErrorCode::EmptyFile
        );
        assert_eq!(
            extract("a.txt", b" \n\n ").unwrap_err().code(),
            ErrorCode::EmptyFile
        );
        let err = extract("a.txt", &[0u8, 159, 146, 150, 1, 2]).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnsupportedFormat);
    }

    #[test]
    fn decodes_gb18030_and_utf16_like_utf8() {
        let text = "女神节活动：充值满100元送50元。";
        let (gbk, _, _) = encoding_rs::GB18030.encode(text);
        assert_eq!(decode_text(&gbk).unwrap(), text);
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode_text(&utf16).unwrap(), text);
        let mut utf8_bom = vec![0xEF, 0xBB, 0xBF];
        utf8_bom.extend(text.as_bytes());
        assert_eq!(decode_text(&utf8_bom).unwrap(), text);
    }

    #[test]
    fn markdown_loses_front_matter_and_mdx_tags_but_keeps_titles() {
        let raw = "---\ntitle: 测试检索\nsidebarTitle: 调试\n---\n\nimport X from './x'\n\n\
                   <Note>\n    提示内容。\n</Note>\n\n<Tab title=\"高质量\">\n正文\n</Tab>\n";
        let doc = extract("t.md", raw.as_bytes()).unwrap();
        assert_eq!(doc.title, "测试检索");
        assert!(
            !doc.text.contains("<Note>") && !doc.text.contains("import"),
            "{}",
            doc.text
        );
        assert!(doc.text.contains("提示内容。"));
        assert!(doc.text.contains("**高质量**"));
        assert!(!doc.text.contains("sidebarTitle"));
    }

    #[test]
    fn title_falls_back_to_heading_then_file_name() {
        assert_eq!(
            extract("x.md", b"intro\n# Heading\ntext").unwrap().title,
            "Heading"
        );
        assert_eq!(extract("dir/faq.txt", b"plain").unwrap().title, "faq");
    }
}
