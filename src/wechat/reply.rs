//! Turning lore's replies into WeChat text, and reading the user's choice after a clarifying
//! question. Pure functions, so the chat rules are unit-tested without a server.

use crate::answer::respond::Reply;
use crate::answer::{ClarifyOption, Language};

/// The text of a reply as a WeChat message: the answer without `[n]` markers (WeChat shows no
/// links), then the source names, within `max_bytes` (cut at a sentence end).
pub fn answer_text(reply: &Reply, language: Language, max_bytes: usize) -> String {
    if reply.verdict == "clarify" && !reply.options.is_empty() {
        return fit(&clarify_text(&reply.options, language), max_bytes);
    }
    let body = strip_markers(&reply.answer);
    let mut sources: Vec<String> = Vec::new();
    if reply.verdict == "answer" {
        // The passages the answer cites by number; without markers, the best passage.
        let mut cited = markers(&reply.answer);
        if cited.is_empty() {
            cited.push(1);
        }
        for citation in cited.iter().filter_map(|n| reply.citations.get(n - 1)) {
            let name = short_name(&citation.document_name);
            if !sources.contains(&name) {
                sources.push(name);
            }
        }
    }
    if sources.is_empty() {
        return fit(&body, max_bytes);
    }
    let footer = match language {
        Language::Chinese => format!("\n\n来源：{}", sources.join("、")),
        Language::English => format!("\n\nSources: {}", sources.join(", ")),
    };
    let room = max_bytes.saturating_sub(footer.len());
    format!("{}{footer}", fit(&body, room))
}

/// The clarifying question with numbered options, so "1" or "第一个" is enough to choose.
pub fn clarify_text(options: &[ClarifyOption], language: Language) -> String {
    let list: Vec<String> = options
        .iter()
        .enumerate()
        .map(|(i, o)| format!("{}. {}", i + 1, o.label))
        .collect();
    match language {
        Language::Chinese => format!("您问的是哪一个？\n{}\n请回复序号或名称。", list.join("\n")),
        Language::English => format!(
            "Which one do you mean?\n{}\nReply with its number or name.",
            list.join("\n")
        ),
    }
}

/// Which option a reply to a clarifying question picks: a number ("2", "第二个", "二"),
/// "前者"/"后者", "the first"/"the last", or words of one option's label ("女神节的").
/// `None` when the reply picks none (then it is a new question).
pub fn pick_option(text: &str, options: &[ClarifyOption]) -> Option<usize> {
    let t: String = text
        .trim()
        .trim_matches(|c: char| c.is_ascii_punctuation() || "。！？，、 　".contains(c))
        .to_lowercase();
    if t.is_empty() || options.is_empty() {
        return None;
    }
    let core = t
        .trim_start_matches('第')
        .trim_start_matches("no.")
        .trim_start_matches("option")
        .trim_end_matches(['的', '吧', '呀', '啊'])
        .trim_end_matches(['个', '项', '种', '条', '位'])
        .trim();
    let ordinal = match core {
        "前者" | "first" | "the first" | "the first one" | "first one" => Some(1),
        "后者" | "last" | "the last" | "the last one" | "last one" | "the second one" => {
            Some(options.len())
        }
        _ => number(core),
    };
    if let Some(n) = ordinal {
        return (1..=options.len()).contains(&n).then(|| n - 1);
    }
    by_label(&t, options)
}

fn number(text: &str) -> Option<usize> {
    let ascii: String = text
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            _ => c,
        })
        .collect();
    if let Ok(n) = ascii.parse() {
        return Some(n);
    }
    "一二三四五六七八九十"
        .chars()
        .position(|c| text == c.to_string())
        .map(|i| i + 1)
}

/// The one option whose label shares the most characters pairs (or words) with the text.
fn by_label(text: &str, options: &[ClarifyOption]) -> Option<usize> {
    let wanted = pieces(text);
    let mut scores: Vec<(usize, usize)> = options
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let label = pieces(&o.label.to_lowercase());
            (wanted.iter().filter(|p| label.contains(p)).count(), i)
        })
        .collect();
    scores.sort_by(|a, b| b.cmp(a));
    match scores.as_slice() {
        [(best, i), rest @ ..] if *best > 0 && rest.first().is_none_or(|(s, _)| s < best) => {
            Some(*i)
        }
        _ => None,
    }
}

/// Chinese character pairs and Latin words: enough to match "女神节的" to "女神节活动".
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let cjk: Vec<char> = text.chars().filter(|c| is_cjk(*c)).collect();
    out.extend(cjk.windows(2).map(|w| w.iter().collect::<String>()));
    out.extend(
        text.split(|c: char| !c.is_alphanumeric() || is_cjk(c))
            .filter(|w| w.len() > 1)
            .map(str::to_owned),
    );
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}')
}

/// `refund-policy.md` -> `refund-policy`: a short source name for chat.
fn short_name(document_name: &str) -> String {
    match document_name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 5 => stem.to_owned(),
        _ => document_name.to_owned(),
    }
}

/// The numbers of the citation markers in `text`, in order of first use.
fn markers(text: &str) -> Vec<usize> {
    let mut found = Vec::new();
    for piece in text.split('[').skip(1) {
        if let Some((number, _)) = piece.split_once(']')
            && let Ok(n) = number.parse::<usize>()
            && n > 0
            && !found.contains(&n)
        {
            found.push(n);
        }
    }
    found
}

/// Removes citation markers like `[1]` or `[2][3]`.
fn strip_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('[') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find(']') {
            Some(end) if end > 0 && after[..end].chars().all(|c| c.is_ascii_digit()) => {
                rest = &after[end + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// `text` within `max_bytes`: whole when it fits, else cut after the last sentence end that
/// fits (or at a character boundary when there is none) and marked with "…".
pub fn fit(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let room = max_bytes.saturating_sub('…'.len_utf8());
    let mut cut = 0;
    let mut sentence_end = None;
    for (i, c) in text.char_indices() {
        let next = i + c.len_utf8();
        if next > room {
            break;
        }
        cut = next;
        if "。！？!?\n".contains(c) || (c == '.' && text[next..].starts_with(' ')) {
            sentence_end = Some(next);
        }
    }
    let end = sentence_end.filter(|&e| e > room / 2).unwrap_or(cut);
    format!("{}…", text[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Citation;

    fn option(label: &str) -> ClarifyOption {
        ClarifyOption {
            label: label.into(),
            document_id: label.into(),
            document_name: format!("{label}.md"),
        }
    }

    #[test]
    fn picks_options_by_number_ordinal_or_name() {
        let options = [option("女神节活动"), option("氪金榜单活动")];
        for (text, expected) in [
            ("1", Some(0)),
            ("２", Some(1)),
            ("第一个", Some(0)),
            ("第二个。", Some(1)),
            ("二", Some(1)),
            ("后者", Some(1)),
            ("女神节的", Some(0)),
            ("氪金榜单", Some(1)),
            ("3", None),
            ("活动", None),
            ("退货怎么办", None),
            ("", None),
        ] {
            assert_eq!(pick_option(text, &options), expected, "{text}");
        }
        let en = [option("Cloud plan"), option("Self-hosted plan")];
        assert_eq!(pick_option("the first", &en), Some(0));
        assert_eq!(pick_option("self-hosted", &en), Some(1));
    }

    #[test]
    fn long_answers_end_at_a_sentence_within_the_limit() {
        let text = "第一句话。".repeat(300);
        let cut = fit(&text, 2048);
        assert!(cut.len() <= 2048);
        assert!(cut.ends_with("。…"), "{}", &cut[cut.len() - 12..]);
        assert_eq!(fit("短。", 2048), "短。");
        let unbroken = "长".repeat(1000);
        assert!(fit(&unbroken, 100).len() <= 100);
    }

    #[test]
    fn answers_drop_markers_and_name_their_sources_once() {
        let citation = |name: &str| Citation {
            document_id: name.into(),
            document_name: name.into(),
            title: String::new(),
            chunk_index: 0,
            score: 0.9,
            content: String::new(),
        };
        let reply = Reply {
            verdict: "answer",
            answer: "七日内可退货[1][3]，退款三个工作日到账[1]。".into(),
            citations: vec![
                citation("售后政策.md"),
                citation("other.md"),
                citation("faq.pdf"),
                citation("售后政策.md"),
            ],
            options: vec![],
            model: None,
            fallback: None,
            latency_ms: 0,
        };
        assert_eq!(
            answer_text(&reply, Language::Chinese, 2048),
            "七日内可退货，退款三个工作日到账。\n\n来源：售后政策、faq"
        );
        assert!(answer_text(&reply, Language::Chinese, 60).len() <= 60);
    }
}
