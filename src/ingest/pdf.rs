//! PDF extraction: part of step 1 of ingestion (see `extract.rs`), for `.pdf` files.
//!
//! `pdf-extract` (over `lopdf`) interprets each page's content stream and hands us every glyph with
//! its position; we rebuild lines and paragraphs ourselves because its own plain-text output neither
//! separates pages nor knows about running headers or CJK line breaks. The steps:
//!
//! 1. Glyphs become lines, in content-stream order (the order the author's tool wrote, which for
//!    multi-column layouts is column by column). A page whose order jumps upwards again and again
//!    (tables written column-major, like `ca-warn-report.pdf`) is re-read row by row instead, and
//!    wide gaps inside a row become ` | ` so cells stay apart.
//! 2. Running headers and footers go: lines near the top or bottom of a page whose text, digits
//!    aside, repeats on at least 40% of the pages (titles, "12/51" page numbers). Table-of-contents
//!    lines (dot leaders then a page number) go too: they repeat the headings without content.
//! 3. Lines broken mid-sentence are joined: a line that reaches the right edge of its column and
//!    does not end a sentence continues into the next one, across page breaks too. No space goes
//!    between CJK characters; Latin words get one.
//! 4. Lines set clearly larger than the body text, short and not ending a sentence, become Markdown
//!    headings (`#` by size rank), so chunks carry "一、编程规约 > (一) 命名风格" like any
//!    Markdown document. The output is therefore Markdown (body lines that would read as Markdown
//!    headings or fences are escaped).
//!
//! pdf-extract panics on some malformed files and can loop for long on pathological ones, so it runs
//! on its own thread under `catch_unwind` (each page on its own, so one bad page loses only itself)
//! with a time limit; a timed-out thread stops at its next glyph.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::LazyLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pdf_extract::{Document, MediaBox, Object, OutputDev, OutputError, Transform};
use regex::Regex;

use super::extract::{
    Body, collapse_blank_lines, escape_markdown_line, is_cjk, join_broken_line, markdown_table,
};
use crate::error::Result;

/// How long one PDF may take before it fails (to become a config value).
pub(crate) const TIME_LIMIT: Duration = Duration::from_secs(60);
/// Glyphs read from one PDF at most (about 10x a 1,000-page book): bounds memory.
const MAX_GLYPHS: usize = 20_000_000;
/// Stack of the extraction thread: the PDF parser recurses into nested objects.
const STACK_BYTES: usize = 64 << 20;

/// Extracts a PDF's text as Markdown.
pub(crate) fn extract(name: &str, bytes: &[u8]) -> Result<Body> {
    extract_within(name, bytes, TIME_LIMIT)
}

fn extract_within(name: &str, bytes: &[u8], limit: Duration) -> Result<Body> {
    let fail = |reason: &str| super::extract::unreadable(name, reason);
    if !bytes
        .get(..1024)
        .unwrap_or(bytes)
        .windows(5)
        .any(|w| w == b"%PDF-")
    {
        return Err(fail("it is not a PDF file (no %PDF header)"));
    }
    let owned = bytes.to_vec();
    let deadline = Instant::now() + limit;
    let (send, receive) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("pdf-extract".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                read_pages(&owned, deadline, limit).map(|doc| Body {
                    title: doc.title,
                    text: assemble(doc.pages),
                })
            }))
            .unwrap_or_else(|_| Err("the PDF reader failed on this file".to_owned()));
            // The receiver is gone only when the caller already gave up.
            let _ = send.send(outcome);
        });
    if let Err(error) = spawned {
        return Err(crate::error::Error::internal(error));
    }
    // A little beyond the deadline: the reader notices it at its next glyph and reports itself.
    match receive.recv_timeout(limit + Duration::from_secs(2)) {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(reason)) => Err(fail(&reason)),
        Err(_) => Err(fail(&too_long(limit))),
    }
}

fn too_long(limit: Duration) -> String {
    format!("reading it took longer than {} s", limit.as_secs())
}

/// A PDF's pages as lines, and its title.
struct Pages {
    title: Option<String>,
    pages: Vec<Vec<Line>>,
}

fn read_pages(
    bytes: &[u8],
    deadline: Instant,
    limit: Duration,
) -> std::result::Result<Pages, String> {
    let mut doc = Document::load_mem(bytes).map_err(|e| format!("it is damaged ({e})"))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err("it is protected by a password".to_owned());
    }
    let title = info_title(&doc);
    let numbers: Vec<u32> = doc.get_pages().into_keys().collect();
    if numbers.is_empty() {
        return Err("it has no pages".to_owned());
    }
    let mut collector = Collector::new(deadline);
    let mut first_error = None;
    for number in numbers {
        collector.begin();
        let page = catch_unwind(AssertUnwindSafe(|| {
            pdf_extract::output_doc_page(&doc, &mut collector, number)
        }));
        match collector.stopped {
            Some(Stop::Time) => return Err(too_long(limit)),
            Some(Stop::Size) => return Err("it holds too much text".to_owned()),
            None => {}
        }
        match page {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(_) => {
                first_error.get_or_insert_with(|| "the PDF reader failed on a page".to_owned());
            }
        }
        collector.finish_page();
    }
    if collector.pages.iter().all(Vec::is_empty)
        && let Some(error) = first_error
    {
        return Err(format!("no page could be read ({error})"));
    }
    Ok(Pages {
        title,
        pages: collector.pages,
    })
}

/// The document's own title from its Info dictionary, when it is a real title.
fn info_title(doc: &Document) -> Option<String> {
    let info = match doc.trailer.get(b"Info").ok()? {
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        Object::Dictionary(dict) => dict,
        _ => return None,
    };
    let raw = match info.get(b"Title").ok()? {
        Object::String(bytes, _) => bytes.clone(),
        _ => return None,
    };
    let title = match raw.strip_prefix(b"\xFE\xFF") {
        Some(utf16) => encoding_rs::UTF_16BE
            .decode_without_bom_handling(utf16)
            .0
            .into_owned(),
        None => raw.iter().map(|&b| char::from(b)).collect(),
    };
    let title = title
        .trim_start_matches("Microsoft Word - ")
        .trim()
        .trim_end_matches(".docx")
        .trim_end_matches(".doc")
        .trim()
        .to_owned();
    let useless = title.is_empty()
        || title.chars().any(char::is_control)
        || title.eq_ignore_ascii_case("untitled")
        || title.starts_with("PowerPoint");
    (!useless).then_some(title)
}

/// One line of text on a page; coordinates in points, `y` growing downwards.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    x0: f64,
    x1: f64,
    y: f64,
    size: f64,
    text: String,
    /// A row of a table read row by row: never joined with its neighbours.
    row: bool,
}

/// One glyph as pdf-extract reports it.
#[derive(Debug, Clone)]
struct Glyph {
    x: f64,
    end: f64,
    y: f64,
    size: f64,
    /// A space glyph came right before this one.
    spaced: bool,
    text: String,
}

/// Receives the glyphs of one page at a time.
struct Collector {
    deadline: Instant,
    height: f64,
    glyphs: Vec<Glyph>,
    space_pending: bool,
    total: usize,
    pages: Vec<Vec<Line>>,
    /// Why reading stopped early.
    stopped: Option<Stop>,
}

/// The limits that stop reading a PDF early.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Time,
    Size,
}

impl Collector {
    fn new(deadline: Instant) -> Self {
        Self {
            deadline,
            height: 0.0,
            glyphs: Vec::new(),
            space_pending: false,
            total: 0,
            pages: Vec::new(),
            stopped: None,
        }
    }

    fn begin(&mut self) {
        self.glyphs.clear();
        self.space_pending = false;
    }

    fn finish_page(&mut self) {
        let glyphs = std::mem::take(&mut self.glyphs);
        self.pages.push(page_lines(glyphs));
    }

    fn stop(&mut self, reason: Stop) -> std::result::Result<(), OutputError> {
        self.stopped = Some(reason);
        Err(OutputError::FormatError(std::fmt::Error))
    }
}

impl OutputDev for Collector {
    fn begin_page(
        &mut self,
        _page: u32,
        media_box: &MediaBox,
        _art_box: Option<(f64, f64, f64, f64)>,
    ) -> std::result::Result<(), OutputError> {
        self.height = media_box.ury - media_box.lly;
        Ok(())
    }

    fn end_page(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        ch: &str,
    ) -> std::result::Result<(), OutputError> {
        self.total += 1;
        if self.total.is_multiple_of(4096) && Instant::now() > self.deadline {
            return self.stop(Stop::Time);
        }
        if self.total > MAX_GLYPHS {
            return self.stop(Stop::Size);
        }
        let size = font_size * (trm.m11 * trm.m22 - trm.m12 * trm.m21).abs().sqrt();
        // Rotated or mirrored text (watermarks, vertical margin notes) is left out.
        let upright = trm.m11 > 0.0 && trm.m12.abs() <= 0.2 * trm.m11;
        if !(size.is_finite() && size > 0.0 && upright) {
            return Ok(());
        }
        if ch.chars().all(char::is_whitespace) {
            self.space_pending = true;
            return Ok(());
        }
        let text: String = ch.chars().filter(|c| !c.is_control()).collect();
        if text.is_empty() {
            return Ok(());
        }
        let (x, y) = (trm.m31, self.height - trm.m32);
        // Fake bold: the same glyph drawn again a hair to the side.
        if let Some(last) = self.glyphs.last()
            && last.text == text
            && (last.x - x).abs() < 0.15 * size
            && (last.y - y).abs() < 0.15 * size
        {
            return Ok(());
        }
        self.glyphs.push(Glyph {
            x,
            end: x + width * size,
            y,
            size,
            spaced: std::mem::take(&mut self.space_pending),
            text,
        });
        Ok(())
    }

    fn begin_word(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }

    fn end_word(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> std::result::Result<(), OutputError> {
        Ok(())
    }
}

/// A stretch of glyphs on one baseline without a wide gap: a line, or one cell of a table row.
#[derive(Debug, Clone)]
struct Run {
    x0: f64,
    x1: f64,
    y: f64,
    size: f64,
    text: String,
}

/// Gap, in font sizes, that separates table cells or columns rather than words.
const CELL_GAP: f64 = 0.8;

/// Builds a page's lines from its glyphs: content order normally, row by row for pages whose
/// content order is scrambled.
fn page_lines(glyphs: Vec<Glyph>) -> Vec<Line> {
    let runs = runs(glyphs);
    // Moves to another line, and how many of them go up. Text in reading order moves up only to
    // start a new column or a footnote block.
    let (mut moves, mut upward) = (0, 0);
    for w in runs.windows(2) {
        let size = w[0].size.max(w[1].size);
        if (w[1].y - w[0].y).abs() > 0.5 * size {
            moves += 1;
            if w[1].y < w[0].y - 0.8 * size {
                upward += 1;
            }
        }
    }
    if upward >= 6 && upward * 4 >= moves {
        rows(runs)
    } else {
        content_lines(runs)
    }
}

fn runs(glyphs: Vec<Glyph>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for glyph in glyphs {
        if let Some(run) = runs.last_mut() {
            let same_baseline = (glyph.y - run.y).abs() < 0.5 * glyph.size.max(run.size);
            let gap = glyph.x - run.x1;
            if same_baseline && gap > -0.5 * glyph.size && gap < CELL_GAP * glyph.size {
                if needs_space(&run.text, &glyph.text, gap / glyph.size, glyph.spaced) {
                    run.text.push(' ');
                }
                run.text.push_str(&glyph.text);
                run.x1 = run.x1.max(glyph.end);
                run.size = run.size.max(glyph.size);
                continue;
            }
        }
        runs.push(Run {
            x0: glyph.x,
            x1: glyph.end,
            y: glyph.y,
            size: glyph.size,
            text: glyph.text,
        });
    }
    runs
}

/// Whether a space separates two neighbouring glyphs: an explicit space glyph or a gap of more
/// than ~0.15 em between Latin glyphs; between CJK glyphs only a real gap (half an em) counts.
fn needs_space(before: &str, next: &str, gap_em: f64, spaced: bool) -> bool {
    if before.ends_with(' ') {
        return false;
    }
    let last = before.chars().next_back();
    if last.is_some_and(is_cjk) && next.chars().next().is_some_and(is_cjk) {
        // Full-width punctuation carries its own spacing; some PDFs add a space glyph after it.
        let punctuation = last.is_some_and(is_cjk_punctuation);
        gap_em > if punctuation { 1.5 } else { 0.5 }
    } else {
        spaced || gap_em > 0.15
    }
}

/// CJK symbols and punctuation, and the full-width forms of ASCII punctuation.
fn is_cjk_punctuation(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x303F | 0xFF01..=0xFF0F | 0xFF1A..=0xFF20 | 0xFF3B..=0xFF40 | 0xFF5B..=0xFF65)
}

/// Content order: runs on the same baseline, left to right, form one line; a gap of two ems or
/// more between them (table columns, in a table written row by row) becomes ` | `.
fn content_lines(runs: Vec<Run>) -> Vec<Line> {
    const COLUMN_GAP: f64 = 2.0;
    let mut lines: Vec<Line> = Vec::new();
    for run in runs {
        if let Some(line) = lines.last_mut()
            && (run.y - line.y).abs() < 0.5 * run.size.max(line.size)
            && run.x0 >= line.x1 - 0.5 * run.size
        {
            let gap_em = (run.x0 - line.x1) / run.size;
            if gap_em >= COLUMN_GAP {
                line.text.push_str(" | ");
                line.row = true;
            } else if needs_space(&line.text, &run.text, gap_em, true) {
                line.text.push(' ');
            }
            line.text.push_str(&run.text);
            line.x1 = run.x1;
            line.size = line.size.max(run.size);
            continue;
        }
        lines.push(Line {
            x0: run.x0,
            x1: run.x1,
            y: run.y,
            size: run.size,
            text: run.text,
            row: false,
        });
    }
    lines
}

/// Row order: runs whose baselines agree form a row, read left to right, cells apart by ` | `.
fn rows(mut runs: Vec<Run>) -> Vec<Line> {
    runs.sort_by(|a, b| a.y.total_cmp(&b.y).then(a.x0.total_cmp(&b.x0)));
    let mut rows: Vec<Vec<Run>> = Vec::new();
    for run in runs {
        match rows.last_mut() {
            Some(row) if (run.y - row[0].y).abs() < 0.4 * run.size.max(row[0].size) => {
                row.push(run);
            }
            _ => rows.push(vec![run]),
        }
    }
    rows.into_iter()
        .map(|mut row| {
            row.sort_by(|a, b| a.x0.total_cmp(&b.x0));
            let mut line = Line {
                x0: row[0].x0,
                x1: row[0].x1,
                y: row[0].y,
                size: row[0].size,
                text: String::new(),
                row: false,
            };
            for (i, run) in row.into_iter().enumerate() {
                if i > 0 {
                    if run.x0 - line.x1 >= CELL_GAP * run.size {
                        line.text.push_str(" | ");
                        line.row = true;
                    } else {
                        line.text.push(' ');
                    }
                }
                line.text.push_str(&run.text);
                line.x1 = line.x1.max(run.x1);
                line.size = line.size.max(run.size);
            }
            line
        })
        .collect()
}

/// Turns the pages' lines into the document's Markdown text.
fn assemble(mut pages: Vec<Vec<Line>>) -> String {
    remove_running_lines(&mut pages);
    let heading_levels = heading_sizes(&pages);
    let lines: Vec<(&Line, f64)> = pages
        .iter()
        .flat_map(|page| {
            // Finding columns is quadratic in the page's lines: a page of thousands of lines (a
            // dense table) is taken as one column.
            let page_right =
                (page.len() > 2000).then(|| page.iter().map(|l| l.x1).fold(f64::MIN, f64::max));
            page.iter().map(move |line| {
                let right = page_right.unwrap_or_else(|| column_right_edge(page, line));
                (line, right)
            })
        })
        .collect();
    let mut out = String::new();
    let mut previous: Option<(&Line, f64)> = None;
    let mut last_table: Option<(Vec<String>, usize)> = None;
    let mut i = 0;
    while i < lines.len() {
        let (line, right) = lines[i];
        // Three or more table rows in a row (across pages too) become one Markdown table whose
        // first row is the header, so the splitter can repeat it in every chunk of the table. A
        // row with more cells than the header starts another table.
        let cells = |l: &Line| l.text.matches(" | ").count() + 1;
        let table_len = lines[i..]
            .iter()
            .take_while(|(l, _)| l.row && cells(l) <= cells(line))
            .count();
        if table_len >= 3 {
            let mut rows: Vec<Vec<String>> = lines[i..i + table_len]
                .iter()
                .map(|(l, _)| l.text.split(" | ").map(str::to_owned).collect())
                .collect();
            // A table interrupted by a few lines (a cell's text wrapping onto lines of its own)
            // goes on under the header it started with.
            if let Some((header, end)) = &last_table
                && i - end <= 5
                && header.len() >= rows[0].len()
            {
                rows.insert(0, header.clone());
            }
            last_table = Some((rows[0].clone(), i + table_len));
            push_block(&mut out, &markdown_table(&rows));
            previous = None;
            i += table_len;
            continue;
        }
        let level = heading_level(&heading_levels, line, right);
        match (level, previous) {
            (None, Some((before, before_right))) if continues(before, before_right, line) => {
                join_broken_line(&mut out, &line.text);
            }
            (Some(level), _) => {
                push_block(
                    &mut out,
                    &format!("{} {}", "#".repeat(level), line.text.trim()),
                );
            }
            (None, _) => {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&escape_markdown_line(&line.text));
            }
        }
        previous = level.is_none().then_some((line, right));
        i += 1;
    }
    collapse_blank_lines(&out)
}

/// Appends a block (heading, table) set apart by blank lines.
fn push_block(out: &mut String, block: &str) {
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(block);
    out.push_str("\n\n");
}

/// Whether `next` continues the sentence `line` was cut in.
fn continues(line: &Line, right_edge: f64, next: &Line) -> bool {
    // A line reaching its column's right edge was wrapped; so was one whose successor starts in
    // lower case (ragged English columns wrap well before the edge).
    let full = line.x1 >= right_edge - 2.0 * line.size.max(1.0)
        || next
            .text
            .trim_start()
            .starts_with(|c: char| c.is_lowercase());
    let same_size = (line.size - next.size).abs() <= 0.15 * line.size;
    let near = next.y - line.y <= 3.0 * line.size || next.y < line.y;
    full && same_size
        && near
        && !line.row
        && !next.row
        && !ends_paragraph(&line.text)
        && !starts_item(&next.text)
}

/// Whether a line that ends so ends its paragraph: like [`ends_sentence`] but for "；" and ";",
/// which end list items but also fall at the end of lines wrapped mid-paragraph.
fn ends_paragraph(text: &str) -> bool {
    ends_sentence(text) && !text.trim_end().ends_with(['；', ';'])
}

fn ends_sentence(text: &str) -> bool {
    let text = text
        .trim_end()
        .trim_end_matches(['”', '’', '"', '\'', ')', '）', '」', '』']);
    text.ends_with(['。', '！', '？', '；', '：', '.', '!', '?', ';', ':', '|'])
}

static ITEM_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?:[-•·*●○■□◆◇▪►✓]|\d{1,3}[.)、）]|\d{1,3}\.\d|[（(][0-9一二三四五六七八九十]{1,3}[)）]|[一二三四五六七八九十]{1,3}、|第[0-9一二三四五六七八九十百]+[章节条部]|【|\|)",
    )
    .expect("valid regex")
});

fn starts_item(text: &str) -> bool {
    ITEM_START.is_match(text)
}

/// The right edge of the column `line` sits in: the furthest any line of similar size reaches
/// among those overlapping it horizontally (lines of other columns do not overlap it).
fn column_right_edge(page: &[Line], line: &Line) -> f64 {
    page.iter()
        .filter(|other| {
            other.x0 < line.x1
                && other.x1 > line.x0
                && (other.size - line.size).abs() <= 0.15 * line.size
        })
        .map(|other| other.x1)
        .fold(line.x1, f64::max)
}

static DIGITS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+").expect("valid regex"));
static TOC_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:[.．·…]\s?){6,}\s*[0-9ivxlcIVXLC]+\s*$").expect("valid regex")
});

/// Removes running headers and footers, and table-of-contents lines.
fn remove_running_lines(pages: &mut [Vec<Line>]) {
    /// Lines at each end of a page that may be running headers or footers.
    const BAND: usize = 2;
    // The text with numbers masked (page numbers change), and where on the page it sits.
    let key = |line: &Line| -> (String, i64) {
        let text = DIGITS
            .replace_all(&line.text, "0")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        (text, (line.y / 4.0).round() as i64)
    };
    let edge_lines = |page: &[Line]| -> Vec<usize> {
        let mut order: Vec<usize> = (0..page.len()).collect();
        order.sort_by(|&a, &b| page[a].y.total_cmp(&page[b].y));
        let mut picked: Vec<usize> = order.iter().take(BAND).copied().collect();
        picked.extend(order.iter().rev().take(BAND));
        picked.sort_unstable();
        picked.dedup();
        picked
    };
    if pages.len() >= 3 {
        let mut counts: std::collections::HashMap<(String, i64), usize> = Default::default();
        for page in pages.iter() {
            let mut keys: Vec<(String, i64)> = edge_lines(page)
                .into_iter()
                .map(|i| key(&page[i]))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            for k in keys {
                *counts.entry(k).or_default() += 1;
            }
        }
        let needed = (pages.len() * 2).div_ceil(5).max(3);
        for page in pages.iter_mut() {
            let running: Vec<usize> = edge_lines(page)
                .into_iter()
                .filter(|&i| counts.get(&key(&page[i])).is_some_and(|&n| n >= needed))
                .collect();
            for i in running.into_iter().rev() {
                page.remove(i);
            }
        }
    }
    for page in pages.iter_mut() {
        page.retain(|line| !TOC_LINE.is_match(&line.text));
    }
}

/// Font sizes (rounded to half points) set clearly above the body size, largest first.
fn heading_sizes(pages: &[Vec<Line>]) -> Vec<f64> {
    let mut by_size: std::collections::BTreeMap<i64, usize> = Default::default();
    for line in pages.iter().flatten() {
        *by_size.entry(half_points(line.size)).or_default() += line.text.chars().count();
    }
    let Some((&body, _)) = by_size.iter().max_by_key(|&(_, &chars)| chars) else {
        return Vec::new();
    };
    by_size
        .keys()
        .rev()
        .filter(|&&size| size as f64 >= body as f64 * 1.2)
        .take(6)
        .map(|&size| size as f64 / 2.0)
        .collect()
}

fn half_points(size: f64) -> i64 {
    (size * 2.0).round() as i64
}

/// The heading level of a line, if it looks like a heading: larger than the body, short, not
/// running up to the right edge (large body text, as in a preface, does), not a sentence.
fn heading_level(sizes: &[f64], line: &Line, right_edge: f64) -> Option<usize> {
    let text = line.text.trim();
    let chars = text.chars().count();
    let short = chars <= 25 || (chars <= 60 && line.x1 < right_edge - 2.0 * line.size);
    if !short || line.row || ends_sentence(text) || text.chars().all(|c| !c.is_alphabetic()) {
        return None;
    }
    let size = half_points(line.size) as f64 / 2.0;
    sizes.iter().position(|&s| s == size).map(|rank| rank + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn line(y: f64, x0: f64, x1: f64, text: &str) -> Line {
        Line {
            x0,
            x1,
            y,
            size: 10.0,
            text: text.to_owned(),
            row: false,
        }
    }

    #[test]
    fn chinese_manual_reads_without_stray_spaces_headers_or_page_numbers() {
        let body = extract(
            "java.pdf",
            &fixture("docs/java_dev_manual_huangshan_zh.pdf"),
        )
        .unwrap();
        let text = &body.text;
        assert!(
            text.contains("【强制】所有编程相关的命名均不能以下划线或美元符号开始"),
            "{}",
            &text[..2000]
        );
        // A sentence broken over two lines in the PDF is one line again, without a space.
        assert!(
            text.contains("二进制无法精确表示大部分的十进制小数"),
            "line join"
        );
        // The running title and the "7/51" page numbers are gone.
        assert!(
            !text.contains("Java 开发手册（黄山版）\n"),
            "running header kept"
        );
        assert!(
            !text.lines().any(|l| l.trim() == "7/51"),
            "page number kept"
        );
        // Chapter and section titles are Markdown headings.
        assert!(
            text.lines()
                .any(|l| l.starts_with('#') && l.contains("编程规约"))
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with('#') && l.contains("命名风格"))
        );
        // Table-of-contents lines (dot leaders) are dropped.
        assert!(!text.contains("........"));
    }

    #[test]
    fn column_major_table_is_read_row_by_row() {
        let body = extract("warn.pdf", &fixture("docs/ca-warn-report.pdf")).unwrap();
        let row = body
            .text
            .lines()
            .find(|l| l.contains("American Management Services LLC"))
            .expect("row present");
        assert!(row.contains("Monterey"), "{row}");
        assert!(row.contains(" | "), "{row}");
        assert!(row.contains("07/17/2015"), "{row}");
    }

    #[test]
    fn broken_pdfs_fail_clearly() {
        let real = fixture("docs/ca-warn-report.pdf");
        for (name, bytes) in [
            ("truncated.pdf", fixture("broken/truncated.pdf")),
            ("random.pdf", fixture("broken/random.pdf")),
            ("head.pdf", real[..2048].to_vec()),
        ] {
            let err = extract(name, &bytes).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest, "{name}");
            assert!(
                err.message()
                    .starts_with(&format!("'{name}' could not be read: ")),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn a_pdf_over_its_time_limit_fails_alone() {
        let bytes = fixture("docs/java_dev_manual_huangshan_zh.pdf");
        let err = extract_within("slow.pdf", &bytes, Duration::from_millis(1)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert!(
            err.message().contains("took longer than"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn running_headers_and_page_numbers_are_removed() {
        let words = ["alpha", "beta", "gamma", "delta", "epsilon"];
        let mut pages: Vec<Vec<Line>> = (1..=5)
            .map(|n| {
                let mut page = vec![line(20.0, 200.0, 300.0, "User Guide")];
                for (i, word) in words.iter().enumerate() {
                    let text = format!("{} {word}.", words[(n + i) % 5]);
                    page.push(line(100.0 + 15.0 * i as f64, 50.0, 500.0, &text));
                }
                page.push(line(800.0, 280.0, 300.0, &format!("{n}/5")));
                page
            })
            .collect();
        remove_running_lines(&mut pages);
        for page in &pages {
            assert_eq!(page.len(), 5, "{page:?}");
            assert!(
                page.iter()
                    .all(|l| !l.text.contains("Guide") && !l.text.contains('/'))
            );
        }
    }

    #[test]
    fn broken_lines_join_without_spaces_between_cjk() {
        let pages = vec![vec![
            line(100.0, 50.0, 500.0, "活动期间充值满一百元即可获得五十元代金"),
            line(115.0, 50.0, 120.0, "券，每个账号限领一次。"),
            line(
                130.0,
                50.0,
                500.0,
                "The quick brown fox jumps over the lazy",
            ),
            line(145.0, 50.0, 150.0, "dog."),
            line(160.0, 50.0, 500.0, "短行"),
        ]];
        let text = assemble(pages);
        assert_eq!(
            text,
            "活动期间充值满一百元即可获得五十元代金券，每个账号限领一次。\n\
             The quick brown fox jumps over the lazy dog.\n短行"
        );
    }

    #[test]
    #[ignore = "a measurement: cargo test --lib pdf_pages_per_second -- --ignored --nocapture"]
    fn pdf_pages_per_second() {
        let bytes = fixture("docs/java_dev_manual_huangshan_zh.pdf");
        let pages = Document::load_mem(&bytes).unwrap().get_pages().len() as f64;
        let runs = 5;
        let time = |f: &dyn Fn()| {
            let started = Instant::now();
            for _ in 0..runs {
                f();
            }
            started.elapsed().as_secs_f64() / f64::from(runs)
        };
        // Baseline: pdf-extract's own plain-text output of the same file, in the same run.
        let baseline = time(&|| {
            pdf_extract::extract_text_from_mem(&bytes).unwrap();
        });
        let ours = time(&|| {
            extract("java.pdf", &bytes).unwrap();
        });
        let peak = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM"))
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        println!(
            "{pages} pages: {ours:.3} s per run, {:.1} pages/s; pdf-extract plain text {baseline:.3} s \
             ({:.1} pages/s); ratio {:.2}; peak {peak}",
            pages / ours,
            pages / baseline,
            ours / baseline
        );
    }
}
