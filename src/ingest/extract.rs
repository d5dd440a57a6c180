//! Extraction: the first step of ingestion, from a file's bytes to its text and title.
//!
//! The format is a closed enum decided from the file's content and name together, so a renamed
//! binary is not read as text. Text in UTF-8, UTF-16 (with BOM) and GB18030/GBK is decoded;
//! Windows tools in China still export GBK.

use std::sync::LazyLock;

use regex::Regex;

use crate::error::{Error, ErrorCode, Result};

/// Formats lore can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Text,
}

/// The text of a document, ready to split.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub format: Format,
    /// From front matter, the first heading, or the file name.
    pub title: String,
    /// Markdown for [`Format::Markdown`], plain text otherwise.
    pub text: String,
}

const SUPPORTED: &str = ".md, .markdown, .mdx, .txt";

impl Format {
    /// Decides the format from the content first (magic numbers), then the extension.
    pub fn detect(name: &str, bytes: &[u8]) -> Result<Self> {
        if let Some(kind) = sniff_binary(bytes) {
            return Err(unsupported(name, kind));
        }
        match extension(name).as_deref() {
            Some("md" | "markdown" | "mdx") => Ok(Self::Markdown),
            Some("txt" | "text") | None => Ok(Self::Text),
            Some(other) => Err(unsupported(name, other)),
        }
    }
}

/// Whether a path's extension names a format lore reads (for walking folders).
pub fn has_supported_extension(path: &std::path::Path) -> bool {
    let name = path.to_string_lossy();
    matches!(
        extension(&name).as_deref(),
        Some("md" | "markdown" | "mdx" | "txt" | "text")
    )
}

fn extension(name: &str) -> Option<String> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    file.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| !ext.is_empty())
}

/// Names binary formats by their magic numbers.
fn sniff_binary(bytes: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 7] = [
        (b"%PDF-", "pdf"),
        (b"PK\x03\x04", "zip (docx/xlsx/pptx)"),
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

/// Extracts the text and title of one file.
pub fn extract(name: &str, bytes: &[u8]) -> Result<Extracted> {
    if bytes.is_empty() {
        return Err(Error::new(
            ErrorCode::EmptyFile,
            format!("'{name}' is empty"),
        ));
    }
    let format = Format::detect(name, bytes)?;
    let text = decode_text(bytes).ok_or_else(|| unsupported(name, "binary data"))?;
    let (title, text) = match format {
        Format::Markdown => markdown(&text),
        Format::Text => (None, normalize_newlines(&text)),
    };
    if text.trim().is_empty() {
        return Err(Error::new(
            ErrorCode::EmptyFile,
            format!("'{name}' has no text"),
        ));
    }
    let title = title.unwrap_or_else(|| file_stem(name));
    Ok(Extracted {
        format,
        title,
        text,
    })
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
fn collapse_blank_lines(text: &str) -> String {
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
        let err = Format::detect("fake.txt", b"%PDF-1.7 ...").unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnsupportedFormat);
        assert!(err.message().contains("pdf"), "{}", err.message());
        let err = Format::detect("photo.exe", b"MZ..").unwrap_err();
        assert!(err.message().contains("exe"));
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
