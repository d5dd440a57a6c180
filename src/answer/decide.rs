//! The verdict, decided before any model call: answer, say "not in the knowledge base", or ask
//! which of several distinct things the question means.
//!
//! Pure and deterministic, so it is unit-tested and measured on the development set in CI. The
//! chat model is not trusted to refuse or to ask (small local models do neither reliably); by
//! the time it is called, lore has decided that the passages answer the question.
//!
//! Signals, all language-level (no word of any particular document):
//! - the best calibrated score (a floor: below it nothing is relevant);
//! - coverage: how much of the question's content (its words, with question words removed)
//!   appears in the best document's passages. Near-miss questions ("客服电话是多少？" over docs
//!   that never give a phone number) retrieve the right topic with a high score, but their key
//!   terms are missing;
//! - the kind of fact asked for: a price needs a currency in the passage, a quantity a number;
//! - for clarification: strong hits from different documents with close scores, whose passages
//!   say different things about the question (the sentence that best matches the question
//!   differs). Where near-duplicate documents agree, the question is answered.

use std::collections::BTreeSet;

use crate::document::Hit;

/// Thresholds of the verdict, from config (`answer.*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecideConfig {
    /// Below this best calibrated score, nothing retrieved is relevant.
    pub min_score: f32,
    /// Below this share of the question's content found in the best document, it is not found.
    pub min_coverage: f32,
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
            tie_margin: 0.3,
            agree_similarity: 0.5,
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
    pub coverage: f32,
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
    let terms = tokens(&strip_question_words(question));
    let tied = tied_documents(hits, config);
    signals.tied_documents = tied.len();
    // Coverage and the asked-for fact are judged on the best of the tied documents: a question
    // about one of several near-duplicates is covered if any of them covers it.
    let texts: Vec<String> = tied
        .iter()
        .map(|h| document_text(hits, &h.chunk.document_id))
        .collect();
    signals.coverage = texts
        .iter()
        .map(|text| coverage(&terms, &tokens(text)))
        .fold(0.0, f32::max);
    let kind = fact_kind(question);
    signals.fact_present = texts
        .iter()
        .any(|text| kind.is_none_or(|k| k.present_in(text)));
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
    let tied: Vec<&Hit> = variants.iter().map(|&i| tied[i]).collect();
    let texts: Vec<String> = variants.iter().map(|&i| texts[i].clone()).collect();
    signals.tied_documents = tied.len();
    if tied.len() > 1 {
        let sentences: Vec<String> = texts
            .iter()
            .map(|text| best_sentence(&terms, text, tokens))
            .collect();
        signals.disagreement = sentences
            .iter()
            .skip(1)
            .any(|s| disagree(&sentences[0], s, config.agree_similarity));
    }

    let found = signals.best_score >= config.min_score
        && signals.coverage >= config.min_coverage
        && signals.fact_present;
    if !found {
        return (Verdict::NotFound, signals);
    }
    if signals.disagreement {
        let options = options(&tied, config.max_options);
        return (Verdict::Clarify { options }, signals);
    }
    let mut ordered: Vec<Hit> = hits
        .iter()
        .filter(|h| h.chunk.document_id == best.chunk.document_id)
        .cloned()
        .collect();
    ordered.extend(
        hits.iter()
            .filter(|h| h.chunk.document_id != best.chunk.document_id)
            .cloned(),
    );
    (Verdict::Answer(ordered), signals)
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
const CJK_FUNCTION_WORDS: [&str; 34] = [
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

/// The question with its question words blanked out.
pub fn strip_question_words(question: &str) -> String {
    let mut cleaned = question.to_owned();
    for word in CJK_FUNCTION_WORDS {
        cleaned = cleaned.replace(word, " ");
    }
    cleaned
}

/// Share of the question's tokens found in the text's tokens.
fn coverage(question: &BTreeSet<u32>, text: &BTreeSet<u32>) -> f32 {
    if question.is_empty() {
        return 1.0;
    }
    question.intersection(text).count() as f32 / question.len() as f32
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

/// Whether two best-matching sentences say different things: different numbers, one negated
/// and the other not, or little text in common.
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
        || dice(&bigrams(a), &bigrams(b)) < agree_similarity
}

/// Two documents sharing this much text (character bigram Dice) are variants of one subject.
const VARIANT_SIMILARITY: f32 = 0.4;

/// Words that turn a statement into its opposite.
const NEGATIONS: [&str; 10] = [
    "不", "无法", "没有", "未", "禁止", "非", "not ", "cannot", "n't", "no ",
];

/// The sentence (or line) of a text that shares the most tokens with the question.
fn best_sentence(terms: &BTreeSet<u32>, text: &str, tokens: Tokens<'_>) -> String {
    text.split(['。', '！', '？', '\n', '；'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| (terms.intersection(&tokens(s)).count(), s))
        .max_by(|(a, sa), (b, sb)| a.cmp(b).then_with(|| sb.len().cmp(&sa.len())))
        .map(|(_, s)| s.to_owned())
        .unwrap_or_default()
}

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
