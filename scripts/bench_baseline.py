#!/usr/bin/env python3
"""The Python baselines of `lore bench`, on the same data as lore in the same run.

Reads a JSON job file and prints one JSON line. Two kinds of job:
- {"mode": "embedding", "model_dir", "texts", "queries"}: the same ONNX model and tokenizer
  driven from Python's onnxruntime as a plain Python stack would (one intra-op thread, batch 1,
  which measured fastest there) -> {"tokens_per_s", "query_p50_ms"};
- {"mode": "keyword", "texts", "documents", "queries"}: rank_bm25 over `documents` documents
  (the texts repeated, as lore's store holds them), tokens = characters and character bigrams
  (Chinese has no spaces) -> {"build_s", "p50_ms", "p95_ms", "peak_mb"}.
Run by `lore bench` with $LORE_HOME/venv/bin/python (built by scripts/setup-models).
"""
import json
import sys
import time

import numpy as np


def embedding(job: dict) -> dict:
    import onnxruntime as ort
    import tokenizers

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
    return {
        "tokens_per_s": tokens / seconds,
        "query_p50_ms": float(np.median(latencies)),
    }


def keyword(job: dict) -> dict:
    from rank_bm25 import BM25Okapi

    def grams(text: str) -> list[str]:
        chars = [c for c in text if not c.isspace()]
        return chars + [a + b for a, b in zip(chars, chars[1:])]

    texts = job["texts"]
    started = time.perf_counter()
    index = BM25Okapi([grams(texts[i % len(texts)]) for i in range(job["documents"])])
    build = time.perf_counter() - started
    latencies = []
    for query in job["queries"]:
        asked = time.perf_counter()
        scores = index.get_scores(grams(query))
        np.argsort(scores)[-5:]
        latencies.append((time.perf_counter() - asked) * 1000)
    return {
        "build_s": build,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "peak_mb": peak_mb(),
    }


def peak_mb() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries it over
    exec, so it would count the lore process this one was forked from."""
    for line in open("/proc/self/status", encoding="ascii"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    job = json.load(open(sys.argv[1], encoding="utf-8"))
    run = {"embedding": embedding, "keyword": keyword}[job["mode"]]
    print(json.dumps(run(job)))


if __name__ == "__main__":
    main()
