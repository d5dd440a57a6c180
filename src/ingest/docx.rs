//! DOCX extraction: part of step 1 of ingestion (see `extract.rs`), for Word files.
//!
//! A `.docx` is a zip of XML parts; the text is in `word/document.xml`, what its paragraph styles
//! mean in `word/styles.xml`. We stream the XML (quick-xml) and write Markdown:
//!
//! - paragraphs whose style is a heading (`Heading 1`..`9`, `标题 1`.., or any style, inherited
//!   through `basedOn`, with an outline level) become `#` headings; levels are renumbered from the
//!   shallowest one used, so a template whose chapters sit at outline level 2 still starts at `#`;
//! - tables become Markdown tables, first row as header; cells merged across columns keep their
//!   text in the first column, cells merged down repeat the text above (a row read alone still
//!   says which group it belongs to); a table of one row or one column is layout, not data, and
//!   its cells become paragraphs;
//! - table-of-contents paragraphs, tracked deletions, field codes and the fallback copies of text
//!   boxes are left out; headers and footers (separate parts) are never read.
//!
//! A zip can expand enormously (a "zip bomb"), so every part is read through a cap: 50 MB in all,
//! and at most 100 times its compressed size (the fixtures compress 8-20x).

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use zip::ZipArchive;
use zip::result::ZipError;

use super::extract::{Body, collapse_whitespace, escape_markdown_line, markdown_table, unreadable};
use crate::error::{Error, ErrorCode, Result};

/// Uncompressed bytes read from one DOCX at most.
const MAX_EXPANDED: u64 = 50 * 1024 * 1024;
/// Expansion ratio above which a part is taken for a zip bomb...
const MAX_RATIO: u64 = 100;
/// ...once it is larger than this (small parts of repetitive XML compress very well).
const RATIO_FLOOR: u64 = 1024 * 1024;

/// Extracts a Word document's text as Markdown.
pub(crate) fn extract(name: &str, bytes: &[u8]) -> Result<Body> {
    let mut archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| unreadable(name, &format!("it is not a valid Word (zip) file ({e})")))?;
    let mut budget = MAX_EXPANDED;
    let document =
        read_part(name, &mut archive, "word/document.xml", &mut budget)?.ok_or_else(|| {
            unreadable(
                name,
                "it has no word/document.xml, so it is not a Word document",
            )
        })?;
    let styles = read_part(name, &mut archive, "word/styles.xml", &mut budget)?
        .map(|xml| Styles::parse(&xml))
        .unwrap_or_default();
    let core_title = read_part(name, &mut archive, "docProps/core.xml", &mut budget)?
        .and_then(|xml| core_title(&xml));
    let doc = Walker::new(&styles)
        .run(&document)
        .map_err(|e| unreadable(name, &format!("its XML is damaged ({e})")))?;
    Ok(doc.into_body(core_title))
}

/// Reads one part of the archive as text, within the expansion caps. `None` when absent.
fn read_part(
    name: &str,
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    part: &str,
    budget: &mut u64,
) -> Result<Option<String>> {
    let file = match archive.by_name(part) {
        Ok(file) => file,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(unreadable(name, &format!("{part} cannot be opened ({e})"))),
    };
    let ratio_limit = file
        .compressed_size()
        .saturating_mul(MAX_RATIO)
        .max(RATIO_FLOOR);
    let limit = ratio_limit.min(*budget);
    let too_big = |size: u64| -> Error {
        if size > ratio_limit {
            unreadable(
                name,
                &format!(
                    "{part} expands more than {MAX_RATIO} times its compressed size; \
                     refused as a likely zip bomb"
                ),
            )
        } else {
            Error::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "'{name}' expands to more than {} MB; refused",
                    MAX_EXPANDED / (1024 * 1024)
                ),
            )
        }
    };
    // The declared size may lie; it only lets us refuse early. The read itself is capped.
    if file.size() > limit {
        return Err(too_big(file.size()));
    }
    let mut data = Vec::with_capacity(file.size() as usize);
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| unreadable(name, &format!("{part} is damaged ({e})")))?;
    if data.len() as u64 > limit {
        return Err(too_big(data.len() as u64));
    }
    *budget -= data.len() as u64;
    let text = match encoding_rs::Encoding::for_bom(&data) {
        Some((encoding, bom)) => encoding
            .decode_without_bom_handling(data.get(bom..).unwrap_or_default())
            .0
            .into_owned(),
        None => String::from_utf8(data)
            .map_err(|_| unreadable(name, &format!("{part} is not UTF-8 XML")))?,
    };
    Ok(Some(text))
}

/// What paragraph styles mean, from `word/styles.xml`.
#[derive(Debug, Default)]
struct Styles {
    by_id: HashMap<String, Style>,
    default_paragraph: Option<String>,
}

#[derive(Debug, Default, Clone)]
struct Style {
    name: String,
    outline: Option<u8>,
    based_on: Option<String>,
}

/// What a paragraph style makes of a paragraph.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Body,
    /// Outline level, 0 the top.
    Heading(u8),
    Title,
    TableOfContents,
}

impl Styles {
    /// Parses the paragraph styles; a damaged styles part just means no headings.
    fn parse(xml: &str) -> Self {
        let mut styles = Self::default();
        let mut reader = Reader::from_str(xml);
        let mut current: Option<(String, Style)> = None;
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.local_name().as_ref() {
                    "style" => {
                        let paragraph = attr(&e, "type").as_deref() == Some("paragraph");
                        let id = attr(&e, "styleId");
                        if let (true, Some(id)) = (paragraph, id) {
                            if attr(&e, "default").is_some_and(|v| v == "1" || v == "true") {
                                styles.default_paragraph = Some(id.clone());
                            }
                            current = Some((id, Style::default()));
                        }
                    }
                    "name" => {
                        if let (Some((_, style)), Some(v)) = (current.as_mut(), attr(&e, "val")) {
                            style.name = v;
                        }
                    }
                    "basedOn" => {
                        if let (Some((_, style)), Some(v)) = (current.as_mut(), attr(&e, "val")) {
                            style.based_on = Some(v);
                        }
                    }
                    "outlineLvl" => {
                        if let (Some((_, style)), Some(v)) = (current.as_mut(), attr(&e, "val")) {
                            style.outline = v.parse().ok();
                        }
                    }
                    _ => {}
                },
                Ok(Event::End(e)) if e.local_name().as_ref() == "style" => {
                    if let Some((id, style)) = current.take() {
                        styles.by_id.insert(id, style);
                    }
                }
                Ok(Event::Eof) | Err(_) => break,
                Ok(_) => {}
            }
        }
        styles
    }

    /// The role of a paragraph of style `id` (or the default style), following `basedOn`.
    fn role(&self, id: Option<&str>) -> Role {
        let mut id = id.or(self.default_paragraph.as_deref());
        // basedOn chains are short; the bound guards against cycles.
        for _ in 0..16 {
            let Some(style) = id.and_then(|id| self.by_id.get(id)) else {
                break;
            };
            let name = style.name.trim().to_lowercase();
            if name.starts_with("toc ") || name.starts_with("目录 ") || name == "toc heading" {
                return Role::TableOfContents;
            }
            if name == "title" || name == "标题" {
                return Role::Title;
            }
            if let Some(level) = heading_number(&name) {
                return Role::Heading(level - 1);
            }
            if let Some(outline) = style.outline {
                return if outline < 9 {
                    Role::Heading(outline)
                } else {
                    Role::Body
                };
            }
            id = style.based_on.as_deref();
        }
        Role::Body
    }
}

/// "heading 2" / "Heading2" / "标题 2" -> 2.
fn heading_number(name: &str) -> Option<u8> {
    let rest = name
        .strip_prefix("heading")
        .or_else(|| name.strip_prefix("标题"))?;
    let level: u8 = rest.trim().parse().ok()?;
    (1..=9).contains(&level).then_some(level)
}

/// The value of attribute `key` (any namespace prefix), unescaped.
fn attr(e: &BytesStart<'_>, key: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == key)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// The document's title from `docProps/core.xml`.
fn core_title(xml: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => in_title = e.local_name().as_ref() == "title",
            Ok(Event::Text(t)) if in_title => title.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) if in_title => push_reference(&mut title, &r),
            Ok(Event::End(_)) => in_title = false,
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let title = title.trim().to_owned();
    (!title.is_empty()).then_some(title)
}

pub(crate) fn push_reference(text: &mut String, reference: &quick_xml::events::BytesRef<'_>) {
    if let Ok(Some(c)) = reference.resolve_char_ref() {
        text.push(c);
        return;
    }
    let c = match reference.as_ref() {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return,
    };
    text.push(c);
}

/// A block of the output, in document order.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    Heading(u8, String),
    Paragraph(String),
    Table(Vec<Vec<String>>),
}

#[derive(Debug, Default)]
struct Paragraph {
    style: Option<String>,
    outline: Option<u8>,
    text: String,
}

#[derive(Debug, Default)]
struct Cell {
    text: String,
    span: usize,
    /// `Some(true)` starts a vertical merge, `Some(false)` continues the one above.
    merge: Option<bool>,
}

#[derive(Debug, Default)]
struct Table {
    rows: Vec<Vec<Cell>>,
    row: Vec<Cell>,
    cell: Option<Cell>,
}

/// Walks `word/document.xml`, collecting blocks.
struct Walker<'s> {
    styles: &'s Styles,
    blocks: Vec<Block>,
    paragraphs: Vec<Paragraph>,
    tables: Vec<Table>,
    in_text: bool,
    runs: usize,
    title: Option<String>,
}

/// Elements whose whole content is left out: tracked deletions, the fallback copy of a text box
/// or drawing, field instructions, content-control properties.
const SKIPPED: [&str; 5] = ["del", "Fallback", "instrText", "sdtPr", "delText"];

impl<'s> Walker<'s> {
    fn new(styles: &'s Styles) -> Self {
        Self {
            styles,
            blocks: Vec::new(),
            paragraphs: Vec::new(),
            tables: Vec::new(),
            in_text: false,
            runs: 0,
            title: None,
        }
    }

    fn run(mut self, xml: &str) -> std::result::Result<Self, quick_xml::Error> {
        let mut reader = Reader::from_str(xml);
        loop {
            match reader.read_event()? {
                Event::Start(e) => {
                    let local = e.local_name();
                    if SKIPPED.contains(&local.as_ref()) {
                        reader.read_to_end(e.name())?;
                        continue;
                    }
                    self.open(&e);
                }
                Event::Empty(e) => {
                    self.open(&e);
                    self.close(e.local_name().as_ref());
                }
                Event::End(e) => self.close(e.local_name().as_ref()),
                Event::Text(t) if self.in_text => {
                    let text = t.xml10_content();
                    self.push_text(&text);
                }
                Event::GeneralRef(r) if self.in_text => {
                    if let Some(p) = self.paragraphs.last_mut() {
                        push_reference(&mut p.text, &r);
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        Ok(self)
    }

    fn push_text(&mut self, text: &str) {
        if let Some(p) = self.paragraphs.last_mut() {
            p.text.push_str(text);
        }
    }

    fn open(&mut self, e: &BytesStart<'_>) {
        match e.local_name().as_ref() {
            "p" => self.paragraphs.push(Paragraph::default()),
            "pStyle" => {
                if let Some(p) = self.paragraphs.last_mut() {
                    p.style = attr(e, "val");
                }
            }
            "outlineLvl" => {
                if let Some(p) = self.paragraphs.last_mut() {
                    p.outline = attr(e, "val").and_then(|v| v.parse().ok());
                }
            }
            "r" => self.runs += 1,
            "t" => self.in_text = !self.paragraphs.is_empty(),
            // Tabs and breaks count only inside runs (pPr has tab-stop definitions).
            "tab" | "ptab" if self.runs > 0 => self.push_text("\t"),
            "br" | "cr" if self.runs > 0 => self.push_text("\n"),
            "noBreakHyphen" if self.runs > 0 => self.push_text("-"),
            "tbl" => self.tables.push(Table::default()),
            "tc" => {
                if let Some(table) = self.tables.last_mut() {
                    table.cell = Some(Cell {
                        span: 1,
                        ..Cell::default()
                    });
                }
            }
            "gridSpan" => {
                if let Some(cell) = self.tables.last_mut().and_then(|t| t.cell.as_mut()) {
                    cell.span = attr(e, "val")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1)
                        .clamp(1, 64);
                }
            }
            "vMerge" => {
                if let Some(cell) = self.tables.last_mut().and_then(|t| t.cell.as_mut()) {
                    cell.merge = Some(attr(e, "val").as_deref() == Some("restart"));
                }
            }
            _ => {}
        }
    }

    fn close(&mut self, local: &str) {
        match local {
            "t" => self.in_text = false,
            "r" => self.runs = self.runs.saturating_sub(1),
            "p" => {
                if let Some(p) = self.paragraphs.pop() {
                    self.finish_paragraph(p);
                }
            }
            "tc" => {
                if let Some(table) = self.tables.last_mut()
                    && let Some(cell) = table.cell.take()
                {
                    table.row.push(cell);
                }
            }
            "tr" => {
                if let Some(table) = self.tables.last_mut() {
                    let row = std::mem::take(&mut table.row);
                    table.rows.push(row);
                }
            }
            "tbl" => {
                if let Some(table) = self.tables.pop() {
                    self.finish_table(table);
                }
            }
            _ => {}
        }
    }

    fn finish_paragraph(&mut self, p: Paragraph) {
        let role = match p.outline {
            Some(level) if level < 9 => Role::Heading(level),
            _ => self.styles.role(p.style.as_deref()),
        };
        let text = p.text.trim();
        if text.is_empty() || role == Role::TableOfContents {
            return;
        }
        // Inside a table cell: the paragraph is part of the cell's text.
        if let Some(cell) = self.tables.last_mut().and_then(|t| t.cell.as_mut()) {
            if !cell.text.is_empty() {
                cell.text.push('\n');
            }
            cell.text.push_str(text);
            return;
        }
        let block = match role {
            Role::Heading(level) => Block::Heading(level, collapse_whitespace(text)),
            Role::Title => {
                let title = collapse_whitespace(text);
                self.title.get_or_insert_with(|| title.clone());
                Block::Heading(0, title)
            }
            Role::Body | Role::TableOfContents => Block::Paragraph(text.replace('\t', " ")),
        };
        self.blocks.push(block);
    }

    fn finish_table(&mut self, table: Table) {
        let rows = grid(table.rows);
        let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
        // Nested in another table's cell: its text joins that cell.
        if let Some(cell) = self.tables.last_mut().and_then(|t| t.cell.as_mut()) {
            for row in &rows {
                let line = row
                    .iter()
                    .filter(|c| !c.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ");
                if !line.is_empty() {
                    if !cell.text.is_empty() {
                        cell.text.push('\n');
                    }
                    cell.text.push_str(&line);
                }
            }
            return;
        }
        if rows.len() < 2 || columns < 2 {
            for cell in rows.into_iter().flatten() {
                for text in cell.lines().map(str::trim).filter(|t| !t.is_empty()) {
                    self.blocks.push(Block::Paragraph(text.to_owned()));
                }
            }
            return;
        }
        self.blocks.push(Block::Table(rows));
    }

    fn into_body(self, core_title: Option<String>) -> Body {
        let shallowest = self
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Heading(level, _) => Some(*level),
                _ => None,
            })
            .min()
            .unwrap_or(0);
        let mut text = String::new();
        for block in &self.blocks {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            match block {
                Block::Heading(level, heading) => {
                    let level = usize::from(level - shallowest + 1).min(6);
                    text.push_str(&"#".repeat(level));
                    text.push(' ');
                    text.push_str(heading);
                }
                Block::Paragraph(paragraph) => text.push_str(&escape_markdown_line(paragraph)),
                Block::Table(rows) => text.push_str(&markdown_table(rows)),
            }
        }
        // The core title only when the document itself shows it (templates leave placeholders
        // such as "标准名称" there).
        let title = self.title.or_else(|| {
            core_title.filter(|t| {
                self.blocks.iter().any(|b| match b {
                    Block::Heading(_, h) | Block::Paragraph(h) => h.trim() == t,
                    Block::Table(_) => false,
                })
            })
        });
        Body { title, text }
    }
}

/// Lays merged cells out on the table grid: text of a horizontal merge in its first column,
/// a vertical merge's text repeated in every row it spans. A cell's paragraphs stay lines.
fn grid(rows: Vec<Vec<Cell>>) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::with_capacity(rows.len());
    for row in rows {
        let mut line: Vec<String> = Vec::new();
        for cell in row {
            let column = line.len();
            let text = match cell.merge {
                Some(false) => out
                    .last()
                    .and_then(|above| above.get(column))
                    .cloned()
                    .unwrap_or_default(),
                _ => cell.text,
            };
            line.push(text);
            line.extend(std::iter::repeat_n(String::new(), cell.span - 1));
        }
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A zip holding `parts`, deflated.
    fn zip_of(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in parts {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    const DOC_START: &str = r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>"#;
    const DOC_END: &str = "</w:body></w:document>";

    fn para(style: &str, text: &str) -> String {
        format!(
            r#"<w:p><w:pPr><w:pStyle w:val="{style}"/></w:pPr><w:r><w:t>{text}</w:t></w:r></w:p>"#
        )
    }

    #[test]
    fn chinese_standard_reads_with_headings_and_tables() {
        let body = extract(
            "psr.docx",
            &fixture("docs/npp_periodic_safety_review_part1_general_zh.docx"),
        )
        .unwrap();
        assert!(body.text.contains("核电厂定期安全评价"), "{}", body.text);
        assert!(
            body.text.lines().any(|l| l.starts_with("# ")),
            "no headings"
        );
        assert!(body.text.contains("| --- |"), "no table");
    }

    #[test]
    fn table_rows_carry_a_header() {
        let body = extract(
            "psr.docx",
            &fixture("docs/npp_periodic_safety_review_part1_general_zh.docx"),
        )
        .unwrap();
        let lines: Vec<&str> = body.text.lines().collect();
        let row = lines
            .iter()
            .position(|l| l.starts_with("| 接受输入的安全要素 | SF3 |"))
            .expect("a row of the matrix, the merged first column repeated");
        let delimiter = lines[..row]
            .iter()
            .rposition(|l| l.starts_with("| --- |"))
            .expect("the table's delimiter row");
        assert!(lines[delimiter + 1..row].iter().all(|l| l.starts_with('|')));
        assert!(
            lines[delimiter - 1].contains("提供输入的安全要素"),
            "{}",
            lines[delimiter - 1]
        );
    }

    #[test]
    fn styles_make_headings_and_merged_cells_repeat() {
        let styles = r#"<w:styles xmlns:w="w">
            <w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/></w:style>
            <w:style w:type="paragraph" w:styleId="1"><w:name w:val="heading 1"/></w:style>
            <w:style w:type="paragraph" w:styleId="a5"><w:name w:val="章标题"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>
            <w:style w:type="paragraph" w:styleId="a6"><w:name w:val="条标题"/><w:basedOn w:val="a5"/></w:style>
            <w:style w:type="paragraph" w:styleId="TOC1"><w:name w:val="toc 1"/></w:style>
        </w:styles>"#;
        let table = r#"<w:tbl>
            <w:tr><w:tc><w:p><w:r><w:t>类别</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>项目</w:t></w:r></w:p></w:tc></w:tr>
            <w:tr><w:tc><w:tcPr><w:vMerge w:val="restart"/></w:tcPr><w:p><w:r><w:t>安全</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>甲 &amp; 乙</w:t></w:r></w:p></w:tc></w:tr>
            <w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc><w:tc><w:p><w:r><w:t>丙</w:t></w:r></w:p></w:tc></w:tr>
        </w:tbl>"#;
        let document = format!(
            "{DOC_START}{}{}{}{}{}<w:p><w:r><w:delText>删除</w:delText></w:r></w:p>{table}{DOC_END}",
            para("TOC1", "1 范围 ........ 1"),
            para("a5", "1 范围"),
            para("Normal", "正文一段。"),
            para("a6", "1.1 适用"),
            para("1", "附录"),
        );
        let bytes = zip_of(&[
            ("word/document.xml", document.as_bytes()),
            ("word/styles.xml", styles.as_bytes()),
        ]);
        let body = extract("t.docx", &bytes).unwrap();
        assert_eq!(
            body.text,
            "## 1 范围\n\n正文一段。\n\n## 1.1 适用\n\n# 附录\n\n\
             | 类别 | 项目 |\n| --- | --- |\n| 安全 | 甲 & 乙 |\n| 安全 | 丙 |"
        );
    }

    #[test]
    fn empty_and_broken_docx_fail_clearly() {
        let empty_zip = fixture("broken/empty.docx");
        let not_word = zip_of(&[("hello.txt", b"hi".as_slice())]);
        let real = fixture("docs/npp_psr_part1_drafting_notes_zh.docx");
        for (name, bytes) in [
            ("empty.docx", empty_zip),
            ("other.docx", not_word),
            ("cut.docx", real[..real.len() / 2].to_vec()),
            ("random.docx", fixture("broken/random.pdf")),
        ] {
            let err = extract(name, &bytes).unwrap_err();
            assert_eq!(
                err.code(),
                ErrorCode::InvalidRequest,
                "{name}: {}",
                err.message()
            );
            assert!(
                err.message()
                    .starts_with(&format!("'{name}' could not be read: ")),
                "{}",
                err.message()
            );
        }
        let no_text = format!("{DOC_START}<w:p/>{DOC_END}");
        let body = extract(
            "blank.docx",
            &zip_of(&[("word/document.xml", no_text.as_bytes())]),
        );
        assert_eq!(body.unwrap().text, "");
    }

    /// A DOCX-named zip whose document is 1 GiB of zeros (~1 MB deflated), built in memory.
    fn zip_bomb() -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1));
        writer.start_file("word/document.xml", options).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            writer.write_all(&zeros).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn zip_bomb_is_refused_quickly() {
        let bomb = zip_bomb();
        assert!(bomb.len() < 8 << 20, "bomb is {} bytes", bomb.len());
        let started = std::time::Instant::now();
        let err = extract("bomb.docx", &bomb).unwrap_err();
        assert!(started.elapsed().as_secs() < 5);
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert_eq!(
            err.message(),
            "'bomb.docx' could not be read: word/document.xml expands more than 100 times \
             its compressed size; refused as a likely zip bomb"
        );

        // The same bomb declaring a small size: the read itself is capped.
        let mut lying = bomb.clone();
        for (signature, size_at) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
            let header = lying
                .windows(4)
                .position(|w| w == signature.as_slice())
                .unwrap();
            lying[header + size_at..header + size_at + 4].copy_from_slice(&1000u32.to_le_bytes());
        }
        let started = std::time::Instant::now();
        let err = extract("lying.docx", &lying).unwrap_err();
        assert!(started.elapsed().as_secs() < 5);
        assert!(
            err.message().starts_with("'lying.docx' "),
            "{}",
            err.message()
        );
    }
}
