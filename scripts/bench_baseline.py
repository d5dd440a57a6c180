#!/usr/bin/env python3
"""The Python baseline of `lore bench`: the same ONNX model, tokenizer and passages, driven
from Python's onnxruntime as a plain Python stack would (one intra-op thread, batch 1, which
measured fastest there), and BM25 keyword search with rank_bm25 over the same passages.

Reads a JSON file {"model_dir", "texts": [...], "queries": [...]} and prints one JSON line:
{"passages_per_s", "tokens_per_s", "query_p50_ms", "bm25_p50_ms"|null}.
Run by `lore bench` with $LORE_HOME/venv/bin/python (set up by scripts/setup-models).
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort
import tokenizers


def main() -> None:
    job = json.load(open(sys.argv[1], encoding="utf-8"))
    tok = tokenizers.Tokenizer.from_file(job["model_dir"] + "/tokenizer.json")
    tok.enable_truncation(512)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(job["model_dir"] + "/model.onnx", options)

    def embed(text: str) -> np.ndarray:
        ids = np.array([tok.encode(text).ids], dtype=np.int64)
        hidden = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        vector = hidden.mean(0)
        return vector / np.linalg.norm(vector)

    texts = ["passage: " + t for t in job["texts"]]
    tokens = sum(len(tok.encode(t).ids) for t in texts)
    started = time.perf_counter()
    for text in texts:
        embed(text)
    seconds = time.perf_counter() - started

    latencies = []
    for query in job["queries"]:
        asked = time.perf_counter()
        embed("query: " + query)
        latencies.append((time.perf_counter() - asked) * 1000)

    bm25_p50 = None
    try:
        from rank_bm25 import BM25Okapi

        def grams(text: str) -> list[str]:
            chars = [c for c in text if not c.isspace()]
            return chars + [a + b for a, b in zip(chars, chars[1:])]

        index = BM25Okapi([grams(t) for t in job["texts"]])
        bm25 = []
        for query in job["queries"]:
            asked = time.perf_counter()
            scores = index.get_scores(grams(query))
            np.argsort(scores)[-5:]
            bm25.append((time.perf_counter() - asked) * 1000)
        bm25_p50 = float(np.median(bm25))
    except ImportError:
        pass

    print(json.dumps({
        "passages_per_s": len(texts) / seconds,
        "tokens_per_s": tokens / seconds,
        "query_p50_ms": float(np.median(latencies)),
        "bm25_p50_ms": bm25_p50,
    }))


if __name__ == "__main__":
    main()
