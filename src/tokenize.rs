//! The embedding model's tokenizer, with its Unigram vocabulary held compactly.
//!
//! Why not `tokenizers::Tokenizer` as loaded from tokenizer.json: its Unigram model keeps the
//! vocabulary in a byte trie whose every node is a hash map. For multilingual-e5's 250,002
//! pieces that is ~320 MB resident, more than the three ONNX sessions together and a third of
//! what an idle lore holds. Here the pieces sit in a finite-state transducer (`fst`, a few MB)
//! walked the same way: at every character, the pieces starting there are the prefixes of the
//! rest that the transducer accepts, found shortest first as the trie finds them, so scores,
//! ties and ids come out the same (checked against the crate on every text of the evaluation
//! set by `tokenize_matches_the_reference` below).
//! Normalizer, pre-tokenizer, post-processor and added tokens are the `tokenizers` crate's own,
//! read from the same file; models other than Unigram are used as the crate loads them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokenizers::models::ModelWrapper;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::unigram::UnigramTrainer;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    Token, TokenizerBuilder, TokenizerImpl,
};

/// The tokenizer lore counts and embeds with.
pub type Tokenizer = TokenizerImpl<
    Vocabulary,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// What an unknown character costs below the rarest piece (sentencepiece's and the crate's value).
const UNK_PENALTY: f64 = 10.0;

/// Loads tokenizer.json.
pub fn load(path: &Path) -> anyhow::Result<Tokenizer> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the tokenizer {}", path.display()))?;
    from_json(&text).with_context(|| format!("cannot load the tokenizer {}", path.display()))
}

/// Reads a tokenizer from the text of a tokenizer.json.
pub fn from_json(text: &str) -> anyhow::Result<Tokenizer> {
    let mut json: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let model = json
        .get_mut("model")
        .map(serde_json::Value::take)
        .context("tokenizer.json has no model")?;
    let vocabulary = if model["type"] == "Unigram" {
        Vocabulary::Unigram(CompactUnigram::from_json(&model)?)
    } else {
        Vocabulary::Other(Box::new(
            serde_json::from_value(model).context("the tokenizer's model is not readable")?,
        ))
    };
    // Everything around the model, read by the crate itself (with a one-piece stand-in model).
    // Its added tokens are added below, against the real vocabulary.
    let added_tokens = json
        .get_mut("added_tokens")
        .map(|tokens| std::mem::replace(tokens, serde_json::json!([])))
        .unwrap_or_default();
    json["model"] =
        serde_json::json!({ "type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]] });
    let frame: tokenizers::Tokenizer = serde_json::from_value(json)
        .map_err(|e| anyhow::anyhow!("the tokenizer is not readable: {e}"))?;
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(vocabulary)
        .with_normalizer(frame.get_normalizer().cloned())
        .with_pre_tokenizer(frame.get_pre_tokenizer().cloned())
        .with_post_processor(frame.get_post_processor().cloned())
        .with_decoder(frame.get_decoder().cloned())
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the tokenizer: {e}"))?;
    let added: Vec<AddedToken> = added_tokens
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let flag = |name: &str| t[name].as_bool().unwrap_or(false);
            Some(
                AddedToken::from(t["content"].as_str()?, flag("special"))
                    .single_word(flag("single_word"))
                    .lstrip(flag("lstrip"))
                    .rstrip(flag("rstrip"))
                    .normalized(flag("normalized")),
            )
        })
        .collect();
    let (special, plain): (Vec<_>, Vec<_>) = added.into_iter().partition(|t| t.special);
    let added =
        |e: tokenizers::Error| anyhow::anyhow!("cannot add the tokenizer's added tokens: {e}");
    tokenizer.add_special_tokens(special).map_err(added)?;
    tokenizer.add_tokens(plain).map_err(added)?;
    Ok(tokenizer)
}

/// The tokenizer's model: a compact Unigram, or whatever else the file holds.
pub enum Vocabulary {
    Unigram(CompactUnigram),
    Other(Box<ModelWrapper>),
}

/// Unigram pieces and their scores, with a transducer from piece to id (see the module doc).
pub struct CompactUnigram {
    /// Id -> (piece, log probability).
    pieces: Vec<(Box<str>, f64)>,
    /// Piece -> id, as a finite-state transducer: a few MB, walked byte by byte like a trie.
    ids: fst::Map<Vec<u8>>,
    unk_id: u32,
    /// Score of an unknown character: the rarest piece's, minus the penalty.
    unk_score: f64,
}

impl CompactUnigram {
    fn from_json(model: &serde_json::Value) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !model["byte_fallback"].as_bool().unwrap_or(false),
            "Unigram tokenizers with byte fallback are not supported"
        );
        let vocab = model["vocab"]
            .as_array()
            .context("the Unigram model has no vocab")?;
        let mut pieces = Vec::with_capacity(vocab.len());
        for entry in vocab {
            let piece = entry[0]
                .as_str()
                .context("a vocab entry without its piece")?;
            let score = entry[1]
                .as_f64()
                .context("a vocab entry without its score")?;
            pieces.push((Box::<str>::from(piece), score));
        }
        let unk_id = model["unk_id"]
            .as_u64()
            .filter(|&id| (id as usize) < pieces.len())
            .context("the Unigram model has no valid unk_id")? as u32;
        // Sorted, one id per piece: as the crate, a piece listed twice maps to its later id.
        let mut sorted: Vec<(&[u8], u64)> = pieces
            .iter()
            .enumerate()
            .map(|(id, (piece, _))| (piece.as_bytes(), id as u64))
            .collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
        sorted.dedup_by(|later, kept| later.0 == kept.0);
        let ids = fst::Map::from_iter(sorted).context("cannot index the vocabulary")?;
        let rarest = pieces.iter().map(|(_, s)| *s).fold(f64::INFINITY, f64::min);
        Ok(Self {
            pieces,
            ids,
            unk_id,
            unk_score: rarest - UNK_PENALTY,
        })
    }

    /// The best segmentation of `sentence` (Viterbi over pieces), unknown runs fused.
    fn encode(&self, sentence: &str) -> Vec<(u32, std::ops::Range<usize>)> {
        #[derive(Clone, Copy)]
        struct Best {
            id: u32,
            score: f64,
            from: Option<usize>,
        }
        let size = sentence.len();
        let mut best = vec![
            Best {
                id: 0,
                score: 0.0,
                from: None,
            };
            size + 1
        ];
        let fst = self.ids.as_fst();
        for (start, ch) in sentence.char_indices() {
            let here = best[start].score;
            let char_len = ch.len_utf8();
            let mut single = false;
            // The pieces starting here: walk the transducer along the rest of the sentence,
            // shortest first, as the crate's trie does (pieces are whole UTF-8 characters).
            let mut node = fst.root();
            let mut output = fst::raw::Output::zero();
            for (offset, &byte) in sentence.as_bytes()[start..].iter().enumerate() {
                let Some(index) = node.find_input(byte) else {
                    break;
                };
                let transition = node.transition(index);
                output = output.cat(transition.out);
                node = fst.node(transition.addr);
                if !node.is_final() {
                    continue;
                }
                let id = output.cat(node.final_output()).value() as u32;
                let end = offset + 1;
                let score = self.pieces[id as usize].1 + here;
                let target = &mut best[start + end];
                if target.from.is_none() || score > target.score {
                    *target = Best {
                        id,
                        score,
                        from: Some(start),
                    };
                }
                single |= end == char_len;
            }
            if !single {
                let score = self.unk_score + here;
                let target = &mut best[start + char_len];
                if target.from.is_none() || score > target.score {
                    *target = Best {
                        id: self.unk_id,
                        score,
                        from: Some(start),
                    };
                }
            }
        }
        let mut out: Vec<(u32, std::ops::Range<usize>)> = Vec::new();
        let mut end = size;
        while end > 0 {
            let node = best[end];
            let start = node.from.unwrap_or(0);
            match out.last_mut() {
                // Walking backwards: an unknown piece right before an unknown run joins it.
                Some((id, range)) if *id == self.unk_id && node.id == self.unk_id => {
                    range.start = start;
                }
                _ => out.push((node.id, start..end)),
            }
            end = start;
        }
        out.reverse();
        out
    }
}

impl tokenizers::Model for Vocabulary {
    type Trainer = TrainerWrapper;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        match self {
            Self::Unigram(model) => Ok(model
                .encode(sequence)
                .into_iter()
                .map(|(id, range)| {
                    Token::new(
                        id,
                        sequence[range.clone()].to_owned(),
                        (range.start, range.end),
                    )
                })
                .collect()),
            Self::Other(model) => model.tokenize(sequence),
        }
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            Self::Unigram(model) => model.ids.get(token).map(|id| id as u32),
            Self::Other(model) => model.token_to_id(token),
        }
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        match self {
            Self::Unigram(model) => model.pieces.get(id as usize).map(|(p, _)| p.to_string()),
            Self::Other(model) => model.id_to_token(id),
        }
    }

    fn get_vocab(&self) -> std::collections::HashMap<String, u32> {
        match self {
            Self::Unigram(model) => model
                .pieces
                .iter()
                .enumerate()
                .map(|(id, (piece, _))| (piece.to_string(), id as u32))
                .collect(),
            Self::Other(model) => model.get_vocab(),
        }
    }

    fn get_vocab_size(&self) -> usize {
        match self {
            Self::Unigram(model) => model.pieces.len(),
            Self::Other(model) => model.get_vocab_size(),
        }
    }

    fn save(&self, folder: &Path, prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        match self {
            Self::Unigram(_) => Err("saving a compact Unigram model is not supported".into()),
            Self::Other(model) => model.save(folder, prefix),
        }
    }

    fn get_trainer(&self) -> TrainerWrapper {
        match self {
            Self::Unigram(_) => TrainerWrapper::UnigramTrainer(UnigramTrainer::default()),
            Self::Other(model) => model.get_trainer(),
        }
    }
}

/// Chunk sizes for text-splitter: tokens without the special ones, as its own implementation
/// for `tokenizers::Tokenizer` counts them.
pub struct Sizer(pub std::sync::Arc<Tokenizer>);

impl text_splitter::ChunkSizer for Sizer {
    fn size(&self, chunk: &str) -> usize {
        self.0
            .encode_fast(chunk, false)
            .map_or(chunk.len(), |encoding| encoding.get_ids().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/tiny-e5/tokenizer.json")
    }

    fn same_ids(path: &Path, texts: &[String]) {
        let reference = tokenizers::Tokenizer::from_file(path).expect("reference");
        let compact = load(path).expect("compact");
        for text in texts {
            let want = reference.encode(text.as_str(), true).expect("encodes");
            let got = compact.encode(text.as_str(), true).expect("encodes");
            assert_eq!(got.get_ids(), want.get_ids(), "{text}");
            assert_eq!(got.get_offsets(), want.get_offsets(), "{text}");
        }
    }

    fn eval_texts(limit: usize) -> Vec<String> {
        let eval = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval");
        let mut texts = Vec::new();
        for set in ["zh_cmrc2018", "en_squad"] {
            for file in ["corpus.jsonl", "queries.jsonl"] {
                let Ok(content) = std::fs::read_to_string(eval.join(set).join(file)) else {
                    continue;
                };
                for line in content.lines().take(limit) {
                    let row: serde_json::Value = serde_json::from_str(line).expect("json");
                    for key in ["text", "question", "title"] {
                        if let Some(text) = row[key].as_str() {
                            texts.push(text.to_owned());
                        }
                    }
                }
            }
        }
        if let Ok(dir) = std::fs::read_dir(eval.join("docs/md_zh")) {
            for entry in dir.flatten() {
                texts.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        texts
    }

    /// Odd input: unknown characters (fused), added tokens written in the text, spaces.
    fn odd_texts() -> Vec<String> {
        [
            "",
            " ",
            "退款 refund 😀😀 \u{10FFFF}\u{E000}x",
            "<s>hello</s> <mask> <pad> world",
            "  多个   空格\t\n换行",
            "ＡＢＣ１２３（全角）",
            "a\u{0301}e\u{0301} ﬁ ligature",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    #[test]
    fn tokenize_matches_the_reference_on_the_tiny_model() {
        let mut texts = odd_texts();
        texts.extend(eval_texts(50));
        same_ids(&tiny(), &texts);
    }

    /// Speed against the crate on the whole evaluation set, in the same run.
    #[test]
    #[ignore = "a measurement: cargo test --lib tokenize_speed -- --ignored --nocapture"]
    fn tokenize_speed() {
        let config = crate::config::Config::load(Some(Path::new("/dev/null"))).expect("config");
        let path = config.model_dir().join("tokenizer.json");
        let texts = eval_texts(usize::MAX);
        let reference = tokenizers::Tokenizer::from_file(&path).expect("reference");
        let compact = load(&path).expect("compact");
        let time = |count: &dyn Fn(&str) -> usize| {
            let started = std::time::Instant::now();
            let tokens: usize = texts.iter().map(|t| count(t)).sum();
            (tokens, started.elapsed().as_secs_f64())
        };
        for round in 0..2 {
            let (tokens, by_crate) = time(&|t| reference.encode(t, true).map_or(0, |e| e.len()));
            let (same, by_compact) = time(&|t| compact.encode(t, true).map_or(0, |e| e.len()));
            assert_eq!(tokens, same);
            eprintln!(
                "round {round}: {tokens} tokens: crate {by_crate:.3} s, compact {by_compact:.3} s"
            );
        }
    }

    /// The real model (scripts/setup-models), on every text of the evaluation set.
    #[test]
    fn tokenize_matches_the_reference() {
        let config = crate::config::Config::load(Some(Path::new("/dev/null"))).expect("config");
        let path = config.model_dir().join("tokenizer.json");
        if !path.is_file() {
            panic!("{} is missing: run scripts/setup-models", path.display());
        }
        let mut texts = odd_texts();
        texts.extend(eval_texts(usize::MAX));
        same_ids(&path, &texts);
    }
}
