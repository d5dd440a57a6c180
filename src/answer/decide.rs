//! The verdict, decided before any model call: answer, say "not in the knowledge base", or ask
//! which of several distinct things the question means.
//!
//! Pure and deterministic, so it is unit-tested and measured on the development set in CI. The
//! chat model is not trusted to refuse or to ask (small local models do neither reliably); by
//! the time it is called, lore has decided that the passages answer the question.
//!
//! Signals, all language-level (no word of any particular document):
//! - the best calibrated score (a floor: below it nothing is relevant);
//! - coverage: the weighted share of the question's content (its words, without question and
//!   function words; literals such as "0.15.3" or "127.0.0.1" matched verbatim) found in the best
//!   tied document. Single-character words weigh a quarter (mostly particles or fragments),
//!   words that every hit contains half (the neighbourhood's common vocabulary, such as the
//!   product's name). Near-miss questions ("客服电话是多少？" over docs that never give a phone
//!   number) retrieve the right topic with a high score, but their key terms are missing;
//! - focus: the same share within one window of two consecutive sentences, read under their
//!   headings. A near-miss often has all its words somewhere in a page, never together;
//! - the kind of fact asked for: a price needs a currency, a quantity a number, in the window
//!   or the sentences right after it (windows without it do not count for focus);
//! - for clarification: near-tied variants of the best document (same title, or much text in
//!   common), compared point by point: each one's best sentence is looked up in the other, and
//!   a different number, a negation, or no similar sentence is a disagreement. Where the
//!   variants repeat each other the question is answered, and a question that names one variant
//!   (the part of the file name that tells them apart, as the options show it) is about it.
//!
//! `lore eval --dump` and the replay tests in `eval.rs` measure every rule change in seconds.

use std::collections::BTreeSet;

use crate::document::Hit;

/// Thresholds of the verdict, from config (`answer.*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecideConfig {
    /// Below this best calibrated score, nothing retrieved is relevant.
    pub min_score: f32,
    /// Below this weighted share of the question's content found in the best document: not found.
    pub min_coverage: f32,
    /// Below this weighted share of the question's content found together in one passage window
    /// (a few consecutive sentences under their headings): not found.
    pub min_focus: f32,
    /// Hits within this score of the best count as tied.
    pub tie_margin: f32,
    /// Best-matching sentences at least this similar (character bigram Dice) agree.
    pub agree_similarity: f32,
    /// Most options in a clarifying question.
    pub max_options: usize,
}

impl Default for DecideConfig {
    fn default() -> Self {
        Self {
            min_score: 0.05,
            min_coverage: 0.5,
            min_focus: 0.45,
            tie_margin: 0.4,
            agree_similarity: 0.7,
            max_options: 3,
        }
    }
}

/// One alternative of a clarifying question.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClarifyOption {
    /// What the user sees: the document's title, made unique when titles collide.
    pub label: String,
    pub document_id: String,
    pub document_name: String,
}

/// The decision and the hits it rests on.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The hits (best first, from the chosen document first) answer the question.
    Answer(Vec<Hit>),
    NotFound,
    Clarify {
        options: Vec<ClarifyOption>,
    },
}

impl Verdict {
    /// The wire name: "answer", "not_found", "clarify".
    pub fn name(&self) -> &'static str {
        match self {
            Self::Answer(_) => "answer",
            Self::NotFound => "not_found",
            Self::Clarify { .. } => "clarify",
        }
    }
}

/// The measured signals, returned for evaluation and logs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Signals {
    pub best_score: f32,
    /// Weighted share of the question's content found anywhere in the best tied document.
    pub coverage: f32,
    /// Weighted share of the question's content found in the best single passage window.
    pub focus: f32,
    /// The asked-for kind of fact (a number, a price) is in the best window.
    pub fact_present: bool,
    pub tied_documents: usize,
    pub disagreement: bool,
}

/// Turns text into its set of keyword tokens (lore passes its BM25 tokenizer: Chinese words
/// from a jieba dictionary, English stems). Deterministic, so `decide` stays pure.
pub type Tokens<'a> = &'a dyn Fn(&str) -> BTreeSet<u32>;

/// Decides what to do with a question, given its hits sorted best first.
pub fn decide(
    question: &str,
    hits: &[Hit],
    config: &DecideConfig,
    tokens: Tokens<'_>,
) -> (Verdict, Signals) {
    let mut signals = Signals::default();
    let Some(best) = hits.first() else {
        return (Verdict::NotFound, signals);
    };
    signals.best_score = best.score;
    let mut asked = Asked::new(question, tokens);
    asked.damp_common_terms(hits, tokens);
    let tied = tied_documents(hits, config);
    signals.tied_documents = tied.len();
    // Coverage, focus and the asked-for fact are judged on the best of the tied documents: a
    // question about one of several near-duplicates is covered if any of them covers it.
    let texts: Vec<String> = tied
        .iter()
        .map(|h| document_text(hits, &h.chunk.document_id))
        .collect();
    signals.coverage = texts
        .iter()
        .map(|text| asked.coverage(text, tokens))
        .fold(0.0, f32::max);
    let windows: Vec<Window> = tied
        .iter()
        .map(|h| best_window(&asked, hits, &h.chunk.document_id, tokens))
        .collect();
    signals.focus = windows.iter().map(|w| w.coverage).fold(0.0, f32::max);
    signals.fact_present = windows.iter().any(|w| w.fact);
    // Only variants of the best document can make the question ambiguous: documents on the same
    // subject (same title, or much text in common). A different subject that happens to score
    // close is just a weaker hit.
    let variants: Vec<usize> = (0..tied.len())
        .filter(|&i| {
            i == 0
                || tied[i].chunk.title == best.chunk.title
                || dice(&bigrams(&texts[i]), &bigrams(&texts[0])) >= VARIANT_SIMILARITY
        })
        .collect();
    let lowered = question.to_lowercase();
    // A question that names one variant (by the part of its file name that tells it from
    // another, as the clarifying options show it) is not about the other.
    let named = |i: usize, pair: &[&str]| {
        let part = distinguishing_part(&tied[i].chunk.document_name, pair).to_lowercase();
        part.chars().count() >= 2 && lowered.contains(&part)
    };
    let variants: Vec<usize> = variants
        .iter()
        .copied()
        .filter(|&i| {
            !variants.iter().any(|&o| {
                let pair = [
                    tied[o].chunk.document_name.as_str(),
                    tied[i].chunk.document_name.as_str(),
                ];
                o != i && named(o, &pair) && !named(i, &pair)
            })
        })
        .collect();
    let chosen = variants[0];
    signals.tied_documents = variants.len();
    if variants.len() > 1 {
        let first = &windows[chosen];
        let first_sentences = document_sentences(hits, &tied[chosen].chunk.document_id);
        // Each side's best sentence is looked up in the other: both must be repeated there.
        signals.disagreement = variants.iter().filter(|&&i| i != chosen).any(|&i| {
            let other = &windows[i];
            let other_sentences = document_sentences(hits, &tied[i].chunk.document_id);
            !agrees_with(&first.sentence, &other_sentences, config.agree_similarity)
                || !agrees_with(&other.sentence, &first_sentences, config.agree_similarity)
        });
    }

    let found = signals.best_score >= config.min_score
        && signals.coverage >= config.min_coverage
        && signals.focus >= config.min_focus
        && signals.fact_present;
    if !found {
        return (Verdict::NotFound, signals);
    }
    if signals.disagreement {
        let tied: Vec<&Hit> = variants.iter().map(|&i| tied[i]).collect();
        let options = options(&tied, config.max_options);
        return (Verdict::Clarify { options }, signals);
    }
    let answer_document = &tied[chosen].chunk.document_id;
    let mut ordered: Vec<Hit> = hits
        .iter()
        .filter(|h| &h.chunk.document_id == answer_document)
        .cloned()
        .collect();
    ordered.extend(
        hits.iter()
            .filter(|h| &h.chunk.document_id != answer_document)
            .cloned(),
    );
    (Verdict::Answer(ordered), signals)
}

/// What a question asks about: its content terms with weights, its literals, and the kind of
/// fact it wants.
struct Asked {
    /// Keyword tokens of the question without its question words, with their weights.
    terms: Vec<(u32, f32)>,
    /// Numbers, versions, addresses and identifiers (runs with a digit), matched verbatim: the
    /// tokenizer drops most of them, yet they are the most specific thing a question can say.
    literals: Vec<String>,
    kind: Option<FactKind>,
}

/// Weight of a token that is a single Chinese character. Such words are mostly function words
/// or fragments of words the dictionary does not know ("最", "上", "版"), so they say little
/// about what is asked; whole words and Latin terms weigh 1.
const SINGLE_CHARACTER_WEIGHT: f32 = 0.25;

/// Weight factor of a term every hit contains (see [`Asked::damp_common_terms`]).
const COMMON_TERM_WEIGHT: f32 = 0.5;

impl Asked {
    fn new(question: &str, tokens: Tokens<'_>) -> Self {
        let stripped = strip_question_words(question);
        let single: BTreeSet<u32> = stripped
            .chars()
            .filter(|c| is_cjk(*c))
            .flat_map(|c| {
                let t = tokens(&c.to_string());
                if t.len() == 1 { t } else { BTreeSet::new() }
            })
            .collect();
        let function: BTreeSet<u32> = CJK_FUNCTION_CHARACTERS
            .chars()
            .flat_map(|c| tokens(&c.to_string()))
            .collect();
        let terms = tokens(&stripped)
            .into_iter()
            .filter(|t| !function.contains(t))
            .map(|t| {
                let weight = if single.contains(&t) {
                    SINGLE_CHARACTER_WEIGHT
                } else {
                    1.0
                };
                (t, weight)
            })
            .collect();
        let literals = question
            .split(|c: char| !(c.is_ascii_alphanumeric() || ".:/_-".contains(c)))
            .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
            .filter(|w| w.chars().any(|c| c.is_ascii_digit()) && w.len() >= 2)
            .map(str::to_lowercase)
            .collect();
        Self {
            terms,
            literals,
            kind: fact_kind(question),
        }
    }

    /// Halves the weight of terms that every hit contains. Such a term is the common vocabulary
    /// of the neighbourhood the question retrieved (the product's name, the subject of the
    /// page): it shows the topic is right, not that the asked point is there. (A full inverse
    /// document frequency over the hits was measured too: it also punishes the question's own
    /// paraphrases, which no passage contains, and lost 7 of 24 answerable questions.)
    fn damp_common_terms(&mut self, hits: &[Hit], tokens: Tokens<'_>) {
        let sets: Vec<BTreeSet<u32>> = hits
            .iter()
            .map(|h| {
                tokens(&format!(
                    "{} {}\n{}",
                    h.chunk.title,
                    h.chunk.heading_path.join(" "),
                    h.chunk.text
                ))
            })
            .collect();
        for (t, w) in &mut self.terms {
            if sets.len() > 1 && sets.iter().all(|s| s.contains(t)) {
                *w *= COMMON_TERM_WEIGHT;
            }
        }
    }

    /// Weighted share of the question's terms and literals that a text contains.
    fn coverage(&self, text: &str, tokens: Tokens<'_>) -> f32 {
        self.coverage_of(&tokens(text), text)
    }

    fn coverage_of(&self, text_tokens: &BTreeSet<u32>, text: &str) -> f32 {
        let total: f32 =
            self.terms.iter().map(|(_, w)| w).sum::<f32>() + self.literals.len() as f32;
        if total <= 0.0 {
            return 1.0;
        }
        let lowered = text.to_lowercase();
        let found: f32 = self
            .terms
            .iter()
            .filter(|(t, _)| text_tokens.contains(t))
            .map(|(_, w)| w)
            .sum::<f32>()
            + self
                .literals
                .iter()
                .filter(|l| lowered.contains(l.as_str()))
                .count() as f32;
        found / total
    }
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c)
}

/// Consecutive sentences of one passage considered together.
const WINDOW_SENTENCES: usize = 2;

/// The passage window of one document that covers the most of the question.
#[derive(Debug, Default)]
struct Window {
    coverage: f32,
    /// The window's single sentence that covers the most of the question.
    sentence: String,
    /// Whether the window, or as many sentences after it, holds the asked-for kind of fact (an
    /// answer follows the heading or sentence that matches the question). Only such windows
    /// count for questions that ask for a number or a price.
    fact: bool,
}

/// The best window of a document's hits: up to [`WINDOW_SENTENCES`] consecutive sentences of one
/// chunk, read with the document title, the chunk's heading path and the Markdown heading above
/// them (headings scope what their sentences say). A question whose words are all in one
/// document but never near each other is not what that document answers.
fn best_window(asked: &Asked, hits: &[Hit], document_id: &str, tokens: Tokens<'_>) -> Window {
    let mut best = Window::default();
    let mut best_len = usize::MAX;
    for hit in hits.iter().filter(|h| h.chunk.document_id == document_id) {
        let scope = format!("{} {}", hit.chunk.title, hit.chunk.heading_path.join(" "));
        let mut heading = String::new();
        let sentences: Vec<(String, &str)> = split_sentences(&hit.chunk.text)
            .map(|s| {
                if s.starts_with('#') {
                    heading = s.trim_start_matches('#').trim().to_owned();
                }
                (heading.clone(), s)
            })
            .collect();
        let sentence_tokens: Vec<BTreeSet<u32>> =
            sentences.iter().map(|(_, s)| tokens(s)).collect();
        let scope_tokens = tokens(&scope);
        for start in 0..sentences.len() {
            let end = (start + WINDOW_SENTENCES).min(sentences.len());
            let heading = &sentences[start].0;
            let mut window_tokens = scope_tokens.clone();
            window_tokens.extend(tokens(heading));
            let mut text = format!("{scope} {heading}");
            for i in start..end {
                window_tokens.extend(sentence_tokens[i].iter().copied());
                text.push('\n');
                text.push_str(sentences[i].1);
            }
            let mut fact_text = text.clone();
            for (_, s) in sentences.iter().skip(end).take(WINDOW_SENTENCES) {
                fact_text.push('\n');
                fact_text.push_str(s);
            }
            if asked.kind.is_some_and(|k| !k.present_in(&fact_text)) {
                continue;
            }
            let coverage = asked.coverage_of(&window_tokens, &text);
            let len = text.len();
            if !best.fact
                || coverage > best.coverage
                || (coverage == best.coverage && len < best_len)
            {
                let sentence = (start..end)
                    .map(|i| {
                        let c = asked.coverage_of(&sentence_tokens[i], sentences[i].1);
                        (c, sentences[i].1)
                    })
                    .fold((-1.0_f32, ""), |a, b| if b.0 > a.0 { b } else { a })
                    .1
                    .to_owned();
                best = Window {
                    coverage,
                    sentence,
                    fact: true,
                };
                best_len = len;
            }
        }
    }
    best
}

/// The sentences (or lines) of a text, trimmed, without empty ones.
fn split_sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split(['。', '！', '？', '\n', '；'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The best hit of each document whose best hit is within the tie margin of the top score.
fn tied_documents<'a>(hits: &'a [Hit], config: &DecideConfig) -> Vec<&'a Hit> {
    let top = hits.first().map_or(0.0, |h| h.score);
    let mut seen = BTreeSet::new();
    hits.iter()
        .filter(|h| top - h.score <= config.tie_margin)
        .filter(|h| seen.insert(h.chunk.document_id.clone()))
        .collect()
}

/// Options named by document titles; colliding titles get the part of the file name that
/// tells them apart (e.g. "cloud" / "selfhost").
fn options(tied: &[&Hit], max: usize) -> Vec<ClarifyOption> {
    let tied: Vec<&Hit> = tied.iter().take(max).copied().collect();
    let names: Vec<&str> = tied
        .iter()
        .map(|h| h.chunk.document_name.as_str())
        .collect();
    tied.iter()
        .map(|hit| {
            let chunk = &hit.chunk;
            let duplicate = tied.iter().filter(|o| o.chunk.title == chunk.title).count() > 1;
            let label = if duplicate {
                format!(
                    "{}（{}）",
                    chunk.title,
                    distinguishing_part(&chunk.document_name, &names)
                )
            } else {
                chunk.title.clone()
            };
            ClarifyOption {
                label,
                document_id: chunk.document_id.clone(),
                document_name: chunk.document_name.clone(),
            }
        })
        .collect()
}

/// What remains of `name` once the prefix and suffix it shares with the other names are cut.
fn distinguishing_part(name: &str, names: &[&str]) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let chars: Vec<char> = stem.chars().collect();
    let others: Vec<Vec<char>> = names
        .iter()
        .filter(|n| **n != name)
        .map(|n| n.rsplit_once('.').map_or(*n, |(s, _)| s).chars().collect())
        .collect();
    let common_prefix = others
        .iter()
        .map(|o| chars.iter().zip(o).take_while(|(a, b)| a == b).count())
        .min()
        .unwrap_or(0);
    let common_suffix = others
        .iter()
        .map(|o| {
            chars
                .iter()
                .rev()
                .zip(o.iter().rev())
                .take_while(|(a, b)| a == b)
                .count()
        })
        .min()
        .unwrap_or(0);
    let end = chars.len().saturating_sub(common_suffix).max(common_prefix);
    let part: String = chars[common_prefix..end].iter().collect();
    let part = part.trim_matches(|c: char| !c.is_alphanumeric()).to_owned();
    if part.is_empty() {
        stem.to_owned()
    } else {
        part
    }
}

/// The text of every hit of one document, in retrieval order.
fn document_text(hits: &[Hit], document_id: &str) -> String {
    hits.iter()
        .filter(|h| h.chunk.document_id == document_id)
        .map(|h| {
            let headings = h.chunk.heading_path.join(" ");
            format!("{} {headings}\n{}", h.chunk.title, h.chunk.text)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Chinese question words and function words: they say what kind of answer is wanted, not
/// what it is about, so they do not count towards coverage. (English ones are BM25 stopwords.)
const CJK_FUNCTION_WORDS: [&str; 41] = [
    "为什么",
    "怎么办",
    "是不是",
    "能不能",
    "可不可以",
    "有没有",
    "需不需要",
    "什么",
    "怎么",
    "怎样",
    "如何",
    "多少",
    "哪些",
    "哪个",
    "哪里",
    "是否",
    "可以",
    "能否",
    "需要",
    "请问",
    "一下",
    "还能",
    "我们",
    "你们",
    "一个",
    "之后",
    "以后",
    "时候",
    "比如",
    "例如",
    "东西",
    "别人",
    "这个",
    "那个",
    "还是",
    "或者",
    "吗",
    "呢",
    "吧",
    "啊",
    "的",
];

/// Single characters that, as words of their own, are prepositions, particles, pronouns,
/// auxiliaries or measure words: tokens equal to one of them do not count as content. (Blanking
/// them out of the question like the words above would break the words they are part of.)
const CJK_FUNCTION_CHARACTERS: &str =
    "在上里中内用是有了对会到从给把被和与或及就都也还要能让将等个时后前我你他她它谁该";

/// The question with its question words blanked out.
pub fn strip_question_words(question: &str) -> String {
    let mut cleaned = question.to_owned();
    for word in CJK_FUNCTION_WORDS {
        cleaned = cleaned.replace(word, " ");
    }
    cleaned
}

/// The kind of fact a question asks for, when it needs a particular form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FactKind {
    Price,
    Quantity,
}

fn fact_kind(question: &str) -> Option<FactKind> {
    let q = question.to_lowercase();
    const PRICE: [&str; 8] = [
        "多少钱",
        "价格",
        "价钱",
        "费用是",
        "收费多少",
        "how much does",
        "price",
        "cost",
    ];
    const QUANTITY: [&str; 9] = [
        "多少", "几个", "几次", "几天", "多久", "多大", "how many", "how long", "how much",
    ];
    if PRICE.iter().any(|w| q.contains(w)) {
        Some(FactKind::Price)
    } else if QUANTITY.iter().any(|w| q.contains(w)) {
        Some(FactKind::Quantity)
    } else {
        None
    }
}

impl FactKind {
    fn present_in(self, text: &str) -> bool {
        match self {
            Self::Price => {
                text.contains(['$', '¥', '￥', '€', '£'])
                    || ["元", "美元", "usd", "rmb", "cny"]
                        .iter()
                        .any(|c| text.to_lowercase().contains(c))
            }
            Self::Quantity => text
                .chars()
                .any(|c| c.is_ascii_digit() || "一二两三四五六七八九十百千万".contains(c)),
        }
    }
}

/// The sentences of every hit of one document.
fn document_sentences<'a>(hits: &'a [Hit], document_id: &str) -> Vec<&'a str> {
    hits.iter()
        .filter(|h| h.chunk.document_id == document_id)
        .flat_map(|h| split_sentences(&h.chunk.text))
        .collect()
}

/// Whether another document says the same as `sentence`: its most similar sentence (by shared
/// character bigrams) agrees with it. Near-duplicate documents are compared point by point, so a
/// variant that repeats the sentence (perhaps with a remark added) agrees, and one that states
/// the point otherwise (another number, a negation, other words) disagrees.
fn agrees_with(sentence: &str, others: &[&str], agree_similarity: f32) -> bool {
    let own = bigrams(sentence);
    let aligned = others
        .iter()
        .map(|o| (overlap(&own, &bigrams(o)), *o))
        .fold((-1.0_f32, ""), |a, b| if b.0 > a.0 { b } else { a })
        .1;
    !disagree(sentence, aligned, agree_similarity)
}

/// Whether two aligned sentences say different things: different numbers, one negated and the
/// other not, or little text in common (the shorter one's bigrams mostly absent from the longer).
fn disagree(a: &str, b: &str, agree_similarity: f32) -> bool {
    let numbers = |s: &str| -> BTreeSet<String> {
        s.split(|c: char| !c.is_ascii_digit() && c != '.')
            .map(|n| n.trim_matches('.').to_owned())
            .filter(|n| !n.is_empty())
            .collect()
    };
    let negated = |s: &str| NEGATIONS.iter().any(|n| s.contains(n));
    let (na, nb) = (numbers(a), numbers(b));
    (!na.is_empty() && !nb.is_empty() && na != nb)
        || negated(a) != negated(b)
        || overlap(&bigrams(a), &bigrams(b)) < agree_similarity
}

/// Overlap coefficient of two bigram sets: shared bigrams over the smaller set, 1 for an empty
/// set (nothing said, nothing contradicted).
fn overlap(a: &BTreeSet<(char, char)>, b: &BTreeSet<(char, char)>) -> f32 {
    let smaller = a.len().min(b.len());
    if smaller == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f32 / smaller as f32
}

/// Two documents sharing this much text (character bigram Dice over their hits) are variants
/// of one subject. (Measured: 0.4 let pages that share only a translated-by boilerplate and a
/// few steps count as variants, and their differing sentences asked needless questions.)
const VARIANT_SIMILARITY: f32 = 0.6;

/// Words that turn a statement into its opposite.
const NEGATIONS: [&str; 10] = [
    "不", "无法", "没有", "未", "禁止", "非", "not ", "cannot", "n't", "no ",
];

fn bigrams(text: &str) -> BTreeSet<(char, char)> {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    chars.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Dice similarity of two bigram sets, 1 for two empty sets.
fn dice(a: &BTreeSet<(char, char)>, b: &BTreeSet<(char, char)>) -> f32 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let common = a.intersection(b).count() as f32;
    2.0 * common / (a.len() + b.len()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Chunk;

    fn hit(doc: &str, title: &str, text: &str, score: f32) -> Hit {
        Hit {
            chunk: Chunk {
                document_id: doc.into(),
                document_name: format!("{doc}.md"),
                title: title.into(),
                chunk_index: 0,
                heading_path: vec![],
                text: text.into(),
                metadata: Default::default(),
            },
            score,
        }
    }

    fn tokens(text: &str) -> BTreeSet<u32> {
        thread_local! {
            static KEYWORDS: crate::search::Keywords = crate::search::Keywords::new().unwrap();
        }
        KEYWORDS.with(|k| k.query(text).indices.into_iter().collect())
    }

    fn run(question: &str, hits: &[Hit]) -> (Verdict, Signals) {
        decide(question, hits, &DecideConfig::default(), &tokens)
    }

    fn verdict(question: &str, hits: &[Hit]) -> &'static str {
        run(question, hits).0.name()
    }

    fn verdict_of(question: &str, hits: &[Hit]) -> &'static str {
        verdict(question, hits)
    }

    #[test]
    fn question_words_do_not_count_as_content() {
        let stripped = tokens(&strip_question_words("请问官方客服电话多少？"));
        assert_eq!(stripped, tokens("官方客服电话"));
        assert!(stripped.is_subset(&tokens("官方客服电话为 400-123")));
    }

    #[test]
    fn nothing_retrieved_or_nothing_relevant_is_not_found() {
        assert_eq!(verdict("退款多久到账？", &[]), "not_found");
        let weak = [hit("a", "退款", "退款三天内到账。", 0.01)];
        assert_eq!(verdict("退款多久到账？", &weak), "not_found");
    }

    #[test]
    fn a_passage_on_the_topic_without_the_asked_fact_is_not_found() {
        let hits = [hit(
            "a",
            "联系我们",
            "如有问题请发送邮件到 support@example.com，我们会尽快回复。",
            0.6,
        )];
        assert_eq!(verdict("官方客服电话是多少？", &hits), "not_found");
        let price = [hit(
            "a",
            "套餐",
            "Team 套餐支持 50 个成员，详见定价页面。",
            0.6,
        )];
        assert_eq!(verdict("Team 套餐每月多少钱？", &price), "not_found");
        let priced = [hit(
            "a",
            "套餐",
            "Team 套餐每月 159 美元，支持 50 个成员。",
            0.6,
        )];
        assert_eq!(verdict("Team 套餐每月多少钱？", &priced), "answer");
    }

    #[test]
    fn near_tied_documents_that_disagree_ask_which_one() {
        let hits = [
            hit(
                "cloud__members",
                "管理团队成员",
                "工作空间所有者可以将所有权转让给其他成员，需邮箱验证。",
                0.7,
            ),
            hit(
                "selfhost__members",
                "管理团队成员",
                "自托管版本无法将工作空间所有权转让给其他成员。",
                0.65,
            ),
        ];
        let (verdict, signals) = run("工作空间的所有权可以转让吗？", &hits);
        assert!(signals.disagreement);
        let Verdict::Clarify { options } = verdict else {
            panic!("expected clarify, got {verdict:?}")
        };
        let labels: Vec<&str> = options.iter().map(|o| o.label.as_str()).collect();
        assert_eq!(
            labels,
            ["管理团队成员（cloud）", "管理团队成员（selfhost）"]
        );
    }

    #[test]
    fn near_tied_documents_that_agree_are_answered() {
        let same = "知识库创建后，其数据源无法更改。";
        let hits = [
            hit("cloud__kb", "导入数据", same, 0.7),
            hit("selfhost__kb", "导入数据", same, 0.68),
        ];
        assert_eq!(verdict("知识库创建后还能更换数据源吗？", &hits), "answer");
    }

    #[test]
    fn words_scattered_over_a_passage_do_not_answer_it() {
        // Every word of the question is in the passage, but never near the others.
        let scattered = [hit(
            "a",
            "计费",
            "取消操作在设置页完成。\n其他说明一。\n订阅按月计费。\n其他说明二。\n剩余额度会保留。\n其他说明三。\n天数按自然日计算。\n其他说明四。\n退款规则见条款。",
            0.6,
        )];
        let (verdict, signals) = run("取消订阅后能按剩余天数退款吗？", &scattered);
        assert_eq!(verdict.name(), "not_found", "{signals:?}");
        let together = [hit(
            "a",
            "计费",
            "取消操作在设置页完成。\n取消订阅后可以申请退款，按剩余天数计算。",
            0.6,
        )];
        assert_eq!(
            verdict_of("取消订阅后能按剩余天数退款吗？", &together),
            "answer"
        );
    }

    #[test]
    fn a_number_must_be_near_the_words_of_the_question() {
        // The page has numbers, but not where it speaks of what is asked.
        let hits = [hit(
            "a",
            "套餐",
            "免费版可以创建应用。\n团队版支持更多功能。\n其他说明。\n更多内容。\n\n## 成员\n团队版最多 50 个成员。",
            0.6,
        )];
        let (verdict, signals) = run("免费版最多可以创建多少个应用？", &hits);
        assert!(
            signals.coverage > 0.9 && signals.focus < 0.45,
            "{signals:?}"
        );
        assert_eq!(verdict.name(), "not_found");
    }

    #[test]
    fn words_every_hit_shares_weigh_less() {
        // "部署" is in every hit: it shows the topic, not the asked point (a GPU model).
        let hits = [
            hit(
                "a",
                "部署",
                "部署前准备：CPU 至少 2 核，内存至少 4 GiB。",
                0.7,
            ),
            hit("a", "部署", "部署时先克隆源代码，再启动容器。", 0.6),
        ];
        assert_eq!(verdict_of("部署需要什么型号的显卡？", &hits), "not_found");
    }

    #[test]
    fn variants_that_repeat_the_point_with_a_remark_agree() {
        let hits = [
            hit(
                "selfhost__kb",
                "上传文件",
                "单个文件最大支持 15 MB（通过 UPLOAD_FILE_SIZE_LIMIT 设置）。",
                0.7,
            ),
            hit("cloud__kb", "上传文件", "单个文件最大支持 15 MB。", 0.69),
        ];
        assert_eq!(verdict_of("上传的单个文件最大可以多大？", &hits), "answer");
    }

    #[test]
    fn a_question_that_names_a_variant_is_answered_from_it() {
        let hits = [
            hit(
                "selfhost__members",
                "管理团队成员",
                "工作空间可包含的成员数量不受限制。",
                0.7,
            ),
            hit(
                "cloud__members",
                "管理团队成员",
                "工作空间可包含的成员数量取决于订阅计划：Team 套餐 50 个成员。",
                0.68,
            ),
        ];
        assert_eq!(verdict_of("工作空间最多能有多少成员？", &hits), "clarify");
        let (verdict, _) = run("Cloud 上工作空间最多能有多少成员？", &hits);
        let Verdict::Answer(ordered) = verdict else {
            panic!("expected answer, got {verdict:?}")
        };
        assert_eq!(ordered[0].chunk.document_id, "cloud__members");
    }

    #[test]
    fn a_clear_winner_is_answered_from_its_document_first() {
        let hits = [
            hit("a", "退款", "购买七天内可无理由退款。", 0.8),
            hit("b", "配送", "下单后两天内发货。", 0.2),
            hit("a", "退款", "退款原路返回。", 0.5),
        ];
        let (verdict, _) = run("购买后几天内可以退款？", &hits);
        let Verdict::Answer(ordered) = verdict else {
            panic!("expected answer")
        };
        let docs: Vec<&str> = ordered
            .iter()
            .map(|h| h.chunk.document_id.as_str())
            .collect();
        assert_eq!(docs, ["a", "a", "b"]);
    }
}
