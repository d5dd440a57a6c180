//! HTML extraction: part of step 1 of ingestion (see `extract.rs`), for saved web pages.
//!
//! A saved page is mostly not the article: menus, banners, sidebars, footers, scripts, forms, and
//! on wikis infoboxes, navigation boxes and reference lists. We keep the main content only:
//!
//! 1. the bytes are decoded by BOM, then `<meta charset>`, then UTF-8 or GB18030 (`decode_text`);
//! 2. html5ever (through `scraper`) parses them the way a browser would;
//! 3. the content root is the first of `#mw-content-text`, `main`, `article`, `[role=main]`,
//!    `#content`... holding a fair share of the page's paragraph text, else (readability's idea)
//!    the element whose `<p>` children hold the most text;
//! 4. inside it, boilerplate is skipped by tag (`nav`, `header`, `footer`, `aside`, `script`,
//!    `style`, `noscript`, `form`...), by ARIA role, by `hidden`, and by class or id words
//!    (`navbox`, `infobox`, `toc`, `reference`, `sidebar`, `comment`...);
//! 5. what is left becomes Markdown: `h1`-`h6` as `#` headings, tables as Markdown tables (first
//!    row as header, `colspan` padded, `rowspan` repeated), `pre` as fenced code, the rest as
//!    paragraphs. Layout tables (one row or one column, `role=presentation`) are read as text.

use std::sync::LazyLock;

use regex::Regex;
use scraper::{ElementRef, Html, Node, Selector};

use super::extract::{Body, collapse_whitespace, decode_text, markdown_table};
use crate::error::Result;

/// Elements nested deeper than this are read as plain text (guards the recursion's stack).
const MAX_DEPTH: usize = 200;

/// Nesting beyond which a page is refused: html5ever's time grows with the square of the depth
/// (100,000 nested `<div>`s take ~40 s), and real pages nest a few dozen deep.
const MAX_NESTING: usize = 10_000;

/// Extracts a web page's main text as Markdown.
pub(crate) fn extract(name: &str, bytes: &[u8]) -> Result<Body> {
    let source = decode(bytes);
    if nesting(&source) > MAX_NESTING {
        return Err(super::extract::unreadable(
            name,
            &format!("its elements nest more than {MAX_NESTING} deep"),
        ));
    }
    let html = Html::parse_document(&source);
    let root = content_root(&html);
    let mut writer = Writer::default();
    writer.block(root, 0);
    writer.flush();
    Ok(Body {
        title: title(&html, root),
        text: writer.blocks.join("\n\n"),
    })
}

static META_CHARSET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9_:.\-]+)"#).expect("valid regex")
});

/// Decodes a page: BOM, then the charset its `<meta>` declares, then UTF-8 or GB18030.
fn decode(bytes: &[u8]) -> String {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return encoding
            .decode_without_bom_handling(bytes.get(bom..).unwrap_or_default())
            .0
            .into_owned();
    }
    let head = String::from_utf8_lossy(bytes.get(..4096).unwrap_or(bytes)).into_owned();
    let declared = META_CHARSET
        .captures(&head)
        .and_then(|c| encoding_rs::Encoding::for_label(c[1].as_bytes()))
        // A page that could declare UTF-16 in ASCII is not UTF-16 (HTML spec: use UTF-8).
        .map(|e| e.output_encoding());
    match declared {
        Some(encoding) if encoding != encoding_rs::UTF_8 => {
            encoding.decode_without_bom_handling(bytes).0.into_owned()
        }
        _ => decode_text(bytes).unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned()),
    }
}

static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)<!--.*?-->|<(/?)([A-Za-z][A-Za-z0-9:-]*)[^>]*?(/?)>").expect("valid regex")
});

/// How deep the page's elements nest, roughly: a tag scan that counts elements which must be
/// closed (void elements and those whose end tag is optional do not count).
fn nesting(source: &str) -> usize {
    const UNCOUNTED: [&str; 32] = [
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody",
        "tfoot", "option", "optgroup", "rt", "rp", "colgroup", "caption", "html", "head",
    ];
    let (mut depth, mut deepest) = (0usize, 0usize);
    for tag in TAG.captures_iter(source) {
        let Some(name) = tag.get(2) else { continue };
        let name = name.as_str().to_ascii_lowercase();
        let group = |i: usize| tag.get(i).map_or("", |m| m.as_str());
        if UNCOUNTED.contains(&name.as_str()) || name == "body" || group(3) == "/" {
            continue;
        }
        if group(1) == "/" {
            depth = depth.saturating_sub(1);
        } else {
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    deepest
}

fn selector(css: &str) -> Option<Selector> {
    Selector::parse(css).ok()
}

/// Where the article is: a known container holding a fair share of the paragraph text, else
/// the element whose own paragraphs hold the most text, else `<body>`.
fn content_root(html: &Html) -> ElementRef<'_> {
    const KNOWN: [&str; 10] = [
        "#mw-content-text",
        "main",
        "article",
        "[role=main]",
        "#content",
        "#main-content",
        "#main",
        ".post-content",
        ".entry-content",
        ".article-body",
    ];
    let Some(p) = selector("p") else {
        return html.root_element();
    };
    let paragraphs: Vec<ElementRef<'_>> = html.select(&p).filter(|p| !in_boilerplate(*p)).collect();
    let total: usize = paragraphs.iter().map(|p| text_len(*p)).sum();
    let paragraph_text = |root: ElementRef<'_>| -> usize {
        root.select(&p)
            .filter(|p| !in_boilerplate(*p))
            .map(text_len)
            .sum()
    };
    for css in KNOWN {
        let Some(sel) = selector(css) else { continue };
        let best = html
            .select(&sel)
            .map(|candidate| (paragraph_text(candidate), candidate))
            .max_by_key(|(len, _)| *len);
        if let Some((len, candidate)) = best
            && len > 0
            && len * 4 >= total
        {
            return candidate;
        }
    }
    // Readability's idea: a paragraph's text counts for its parent, half for its grandparent.
    let mut scores = std::collections::HashMap::new();
    for p in &paragraphs {
        let len = text_len(*p);
        let mut ancestors = p.ancestors().filter_map(ElementRef::wrap);
        if let Some(parent) = ancestors.next() {
            scores.entry(parent.id()).or_insert((0usize, parent)).0 += 2 * len;
        }
        if let Some(grandparent) = ancestors.next() {
            scores
                .entry(grandparent.id())
                .or_insert((0usize, grandparent))
                .0 += len;
        }
    }
    scores
        .into_values()
        .max_by_key(|(score, _)| *score)
        .map(|(_, element)| element)
        .or_else(|| selector("body").and_then(|b| html.select(&b).next()))
        .unwrap_or_else(|| html.root_element())
}

fn text_len(element: ElementRef<'_>) -> usize {
    element.text().map(|t| t.trim().chars().count()).sum()
}

fn in_boilerplate(element: ElementRef<'_>) -> bool {
    std::iter::once(element)
        .chain(element.ancestors().filter_map(ElementRef::wrap))
        .any(is_boilerplate)
}

/// Tags that never hold article text.
const SKIPPED_TAGS: [&str; 23] = [
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
    "button", "select", "textarea", "input", "iframe", "svg", "canvas", "object", "embed", "audio",
    "video", "map", "dialog", "menu",
];

/// Words of class names and ids that mark boilerplate ("navbox-inner", "mw-editsection",
/// "site-footer", "sr-only").
const BOILERPLATE_WORDS: [&str; 48] = [
    "nav",
    "navbar",
    "navbox",
    "navigation",
    "menu",
    "sidebar",
    "footer",
    "header",
    "masthead",
    "breadcrumb",
    "breadcrumbs",
    "toc",
    "toctitle",
    "infobox",
    "reference",
    "references",
    "reflist",
    "editsection",
    "jump",
    "hatnote",
    "metadata",
    "ambox",
    "mbox",
    "sistersitebox",
    "noprint",
    "catlinks",
    "printfooter",
    "backlink",
    "share",
    "sharing",
    "social",
    "comment",
    "comments",
    "cookie",
    "cookies",
    "advert",
    "advertisement",
    "ads",
    "sponsor",
    "sponsored",
    "related",
    "pagination",
    "pager",
    "sitesub",
    "contentsub",
    "indicators",
    "banner",
    "popup",
];

fn is_boilerplate(element: ElementRef<'_>) -> bool {
    let el = element.value();
    if SKIPPED_TAGS.contains(&el.name()) {
        return true;
    }
    if el.attr("hidden").is_some() || el.attr("aria-hidden") == Some("true") {
        return true;
    }
    if let Some(style) = el.attr("style") {
        let style: String = style.chars().filter(|c| !c.is_whitespace()).collect();
        if style.to_ascii_lowercase().contains("display:none") {
            return true;
        }
    }
    if let Some(role) = el.attr("role")
        && matches!(
            role,
            "navigation"
                | "banner"
                | "contentinfo"
                | "complementary"
                | "search"
                | "menu"
                | "menubar"
                | "dialog"
                | "alert"
        )
    {
        return true;
    }
    let names = el.classes().chain(el.id());
    for name in names {
        let name = name.to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "sr-only" | "visually-hidden" | "screen-reader-text"
        ) {
            return true;
        }
        if name
            .split(['-', '_'])
            .any(|word| BOILERPLATE_WORDS.contains(&word))
        {
            return true;
        }
    }
    false
}

/// The page title: the first `<h1>` of the content, else of the page outside boilerplate (a
/// site logo is often an `<h1>` in the header), else `<title>` up to a " - Site" suffix.
fn title(html: &Html, root: ElementRef<'_>) -> Option<String> {
    let first = |mut headings: Box<dyn Iterator<Item = ElementRef<'_>> + '_>| {
        headings.find_map(|h| {
            let text = collapse_whitespace(&inline_text(h));
            (!text.is_empty()).then_some(text)
        })
    };
    let heading = selector("h1").and_then(|h1| {
        first(Box::new(root.select(&h1)))
            .or_else(|| first(Box::new(html.select(&h1).filter(|h| !in_boilerplate(*h)))))
    });
    heading.or_else(|| {
        let sel = selector("title")?;
        let title = collapse_whitespace(&html.select(&sel).next()?.text().collect::<String>());
        let title = [" - ", " | ", " – ", " — ", "_"]
            .iter()
            .find_map(|sep| {
                title
                    .split_once(sep)
                    .map(|(head, _)| head.trim().to_owned())
            })
            .unwrap_or(title);
        (!title.is_empty()).then_some(title)
    })
}

/// The text inside an element, boilerplate left out, as one line.
fn inline_text(element: ElementRef<'_>) -> String {
    let mut text = String::new();
    push_inline(element, &mut text, 0);
    text
}

fn push_inline(element: ElementRef<'_>, text: &mut String, depth: usize) {
    for child in element.children() {
        match child.value() {
            Node::Text(t) => text.push_str(t),
            Node::Element(el) => {
                let Some(child) = ElementRef::wrap(child) else {
                    continue;
                };
                if is_boilerplate(child) {
                    continue;
                }
                match el.name() {
                    "br" | "p" | "div" | "li" | "td" | "th" | "tr" => text.push(' '),
                    _ => {}
                }
                if depth < MAX_DEPTH {
                    push_inline(child, text, depth + 1);
                } else {
                    text.extend(child.text());
                }
            }
            _ => {}
        }
    }
}

/// Collects the Markdown blocks of the content.
#[derive(Default)]
struct Writer {
    blocks: Vec<String>,
    /// Text of the paragraph being read.
    inline: String,
}

/// Elements that start a new block of text.
const BLOCK_TAGS: [&str; 24] = [
    "p",
    "div",
    "section",
    "blockquote",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "address",
    "center",
    "details",
    "summary",
    "main",
    "article",
    "body",
    "hr",
    "caption",
    "tr",
    "td",
    "th",
];

impl Writer {
    fn flush(&mut self) {
        let text = collapse_whitespace(&std::mem::take(&mut self.inline));
        if text.is_empty() || text == "-" {
            return;
        }
        let trimmed = text.trim_start();
        let text = if trimmed.starts_with(['#', '|']) || trimmed.starts_with("```") {
            format!("\\{trimmed}")
        } else {
            text
        };
        self.blocks.push(text);
    }

    /// Reads the children of a block element.
    fn block(&mut self, element: ElementRef<'_>, depth: usize) {
        for child in element.children() {
            match child.value() {
                Node::Text(t) => self.inline.push_str(t),
                Node::Element(_) => {
                    if let Some(child) = ElementRef::wrap(child) {
                        self.element(child, depth + 1);
                    }
                }
                _ => {}
            }
        }
    }

    fn element(&mut self, element: ElementRef<'_>, depth: usize) {
        if is_boilerplate(element) {
            return;
        }
        let name = element.value().name();
        if depth > MAX_DEPTH {
            self.inline.push(' ');
            self.inline.extend(element.text());
            return;
        }
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.flush();
                let level = usize::from(name.as_bytes()[1] - b'0');
                let text = collapse_whitespace(&inline_text(element));
                if !text.is_empty() {
                    self.blocks.push(format!("{} {text}", "#".repeat(level)));
                }
            }
            "br" => self.flush(),
            "pre" => {
                self.flush();
                let code: String = element.text().collect();
                let code = code.trim_matches('\n');
                if !code.trim().is_empty() {
                    self.blocks.push(format!("```\n{code}\n```"));
                }
            }
            "table" => {
                self.flush();
                self.table(element, depth);
            }
            "li" => {
                self.flush();
                self.inline.push_str("- ");
                self.block(element, depth);
                self.flush();
            }
            "img" => {}
            _ if BLOCK_TAGS.contains(&name) => {
                self.flush();
                self.block(element, depth);
                self.flush();
            }
            _ => self.block(element, depth),
        }
    }

    /// A data table becomes a Markdown table; a layout table is read as blocks.
    fn table(&mut self, table: ElementRef<'_>, depth: usize) {
        let rows = table_rows(table);
        let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
        if rows.len() < 2 || columns < 2 || table.value().attr("role") == Some("presentation") {
            self.block(table, depth);
            self.flush();
            return;
        }
        if let Some(caption) = table
            .child_elements()
            .find(|c| c.value().name() == "caption")
        {
            let caption = collapse_whitespace(&inline_text(caption));
            if !caption.is_empty() {
                self.blocks.push(caption);
            }
        }
        self.blocks.push(markdown_table(&rows));
    }
}

/// The rows of a table (not of tables nested in it), laid out on its grid: a `colspan` cell's
/// text in its first column, a `rowspan` cell's text repeated in each row it spans.
fn table_rows(table: ElementRef<'_>) -> Vec<Vec<String>> {
    let mut trs: Vec<ElementRef<'_>> = Vec::new();
    for child in table.child_elements() {
        match child.value().name() {
            "tr" => trs.push(child),
            "thead" | "tbody" | "tfoot" => {
                trs.extend(child.child_elements().filter(|c| c.value().name() == "tr"))
            }
            _ => {}
        }
    }
    // (text, rows still to cover) per column, for rowspans.
    let mut pending: Vec<Option<(String, usize)>> = Vec::new();
    let mut rows = Vec::with_capacity(trs.len());
    for tr in trs {
        let mut row: Vec<String> = Vec::new();
        let mut cells = tr
            .child_elements()
            .filter(|c| matches!(c.value().name(), "td" | "th"))
            .peekable();
        loop {
            let column = row.len();
            if let Some(Some((text, left))) = pending.get_mut(column) {
                row.push(text.clone());
                *left -= 1;
                if *left == 0 {
                    pending[column] = None;
                }
                continue;
            }
            let Some(cell) = cells.next() else { break };
            let span = |attr: &str| -> usize {
                cell.value()
                    .attr(attr)
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(1)
                    .clamp(1, 64)
            };
            let text = collapse_whitespace(&inline_text(cell));
            let (colspan, rowspan) = (span("colspan"), span("rowspan"));
            if rowspan > 1 {
                if pending.len() <= column {
                    pending.resize(column + 1, None);
                }
                pending[column] = Some((text.clone(), rowspan - 1));
            }
            row.push(text);
            row.extend(std::iter::repeat_n(String::new(), colspan - 1));
        }
        if row.iter().any(|c| !c.is_empty()) {
            rows.push(row);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn wikipedia_article_without_navigation() {
        let body = extract("mozilla.html", &fixture("docs/wikipedia_mozilla_en.html")).unwrap();
        assert_eq!(body.title.as_deref(), Some("Mozilla"));
        let text = &body.text;
        assert!(
            text.contains("Mozilla is a free-software community"),
            "{text}"
        );
        assert!(text.lines().any(|l| l == "## History"), "{text}");
        for line in text.lines() {
            let label = line.trim_start_matches('#').trim();
            for nav in [
                "Contents",
                "Navigation menu",
                "Main page",
                "Donate",
                "Log in",
            ] {
                assert_ne!(label, nav, "navigation kept: {line}");
            }
            for nav in ["Jump to", "Main page", "Log in", "[edit]", "From Wikipedia"] {
                assert!(!line.contains(nav), "navigation kept: {line}");
            }
        }
        // The infobox and the reference list are gone.
        assert!(!text.contains("Formation"), "infobox kept");
        assert!(!text.contains("Retrieved"), "references kept");
    }

    #[test]
    fn tables_headings_and_charset() {
        let page = "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=gbk\">\
            <title>价格 - 示例站</title></head><body><nav><a>首页</a></nav>\
            <div id=\"content\"><h2>套餐</h2><p>企业版\n适合团队。</p>\
            <table><tr><th>套餐</th><th>价格</th></tr>\
            <tr><td rowspan=2>企业版</td><td>100元</td></tr><tr><td>200元</td></tr></table>\
            </div><footer>版权所有</footer></body></html>";
        let (bytes, _, _) = encoding_rs::GBK.encode(page);
        let body = extract("p.html", &bytes).unwrap();
        assert_eq!(body.title.as_deref(), Some("价格"));
        assert_eq!(
            body.text,
            "## 套餐\n\n企业版适合团队。\n\n\
             | 套餐 | 价格 |\n| --- | --- |\n| 企业版 | 100元 |\n| 企业版 | 200元 |"
        );
    }

    #[test]
    fn deep_nesting_is_read_or_refused_but_never_overflows() {
        let page = format!("<body>{}<p>deep text</p></body>", "<div>".repeat(5_000));
        let body = extract("deep.html", page.as_bytes()).unwrap();
        assert!(body.text.contains("deep text"));
        let page = format!("<body>{}<p>deep text</p></body>", "<div>".repeat(100_000));
        let started = std::time::Instant::now();
        let err = extract("deeper.html", page.as_bytes()).unwrap_err();
        assert!(started.elapsed().as_secs() < 2);
        assert_eq!(err.code(), crate::error::ErrorCode::InvalidRequest);
        assert!(err.message().contains("nest"), "{}", err.message());
    }
}
