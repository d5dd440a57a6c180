//! Answering: decide (pure), build the grounded prompt (pure), call the chat model within the
//! deadline (chat), and fall back to an extractive answer when the model cannot make it.

pub mod chat;
pub mod decide;
pub mod prompt;
pub mod respond;

pub use decide::{ClarifyOption, DecideConfig, Signals, Tokens, Verdict, decide};
pub use prompt::{Language, Message, Role, grounded_prompt};

/// The reply when the knowledge base has no answer, by the question's language.
pub fn not_found_message(language: Language) -> &'static str {
    match language {
        Language::Chinese => "抱歉，知识库中没有找到与这个问题相关的内容。",
        Language::English => "Sorry, the knowledge base does not cover this question.",
    }
}

/// One short clarifying question listing the options, in the question's language.
pub fn clarify_message(language: Language, options: &[ClarifyOption]) -> String {
    let labels: Vec<String> = options.iter().map(|o| format!("「{}」", o.label)).collect();
    match language {
        Language::Chinese => match labels.as_slice() {
            [one, two] => format!("您问的是{one}还是{two}？"),
            _ => format!("您问的是以下哪一项：{}？", labels.join("、")),
        },
        Language::English => {
            let labels: Vec<String> = options.iter().map(|o| format!("\"{}\"", o.label)).collect();
            format!("Which one do you mean: {}?", labels.join(" or "))
        }
    }
}
