#!/usr/bin/env python3
"""Serve lore's local chat model as an OpenAI-compatible API.

Run by scripts/llm-server with the python of $LORE_HOME/llm-venv (made by
scripts/setup-llm). llama.cpp's own HTTP server, embedded by xllamacpp, does
the work: xllamacpp.Server loads the model and serves /v1/chat/completions,
/v1/models and /health from a background thread of this process. This script
only configures it, waits until /health says ready, prints

    llm listening on http://127.0.0.1:PORT/v1

on stdout (the line tests and scripts wait for), and then keeps the process
alive until it is killed. llama.cpp's own log goes to stderr.
"""

import argparse
import json
import os
import signal
import sys
import time
import urllib.request

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_ALIAS = "qwen2.5-1.5b-instruct"
HOST = "127.0.0.1"  # local demos and tests only: never listen beyond loopback


def lore_home():
    # Same convention as scripts/setup-models and scripts/setup-llm.
    home = os.environ.get("LORE_HOME")
    if home:
        return home
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "lore")


def fail(message):
    print(f"llm-server: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def parse_args():
    parser = argparse.ArgumentParser(prog="llm-server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8081, help="TCP port on 127.0.0.1 (default 8081)")
    parser.add_argument(
        "--model",
        default=os.path.join(lore_home(), "models", MODEL_FILE),
        help="GGUF file (default: $LORE_HOME/models/%s)" % MODEL_FILE,
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU threads for generation and prompt processing (default 2)"
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=300, help="seconds to wait for the model to load (default 300)"
    )
    args = parser.parse_args()
    if not 1 <= args.port <= 65535:
        parser.error("--port must be between 1 and 65535")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def health(base):
    """True once llama.cpp answers /health with {"status": "ok"} (503 while loading)."""
    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as response:
            return response.status == 200 and json.load(response).get("status") == "ok"
    except (OSError, ValueError):  # refused, 503 (HTTPError is an OSError), bad JSON
        return False


def main():
    args = parse_args()
    if not os.path.isfile(args.model):
        fail(f"model file {args.model} is missing: run scripts/setup-llm")

    # llama.cpp's CPU backend here is built with OpenMP, whose threads spin
    # while waiting for each other. With every core busy (tests run beside
    # cargo builds) a spinning thread steals the core its partner needs, and
    # generation fell from ~13 to 1-3 tokens/s on 2 shared cores; passive
    # waiting kept ~13. libgomp reads this once, when xllamacpp is imported;
    # set OMP_WAIT_POLICY=active to get the spinning back on idle machines.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    try:
        import xllamacpp
    except ImportError:
        fail(f"xllamacpp is not importable by {sys.executable}: run scripts/setup-llm")

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.hostnames = [HOST]
    params.port = args.port
    # A set: a plain string would be taken as an iterable of one-letter aliases.
    params.model_alias = {MODEL_ALIAS}
    # 4096 tokens fit a RAG prompt (question plus a few retrieved chunks) and
    # the answer; the model's own 32k would only cost memory.
    params.n_ctx = 4096
    # One slot: requests are served one at a time, later ones queue. On two
    # cores parallel slots would only split the same compute, and each slot
    # would get n_ctx / n_parallel of the context.
    params.n_parallel = 1
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    # llama.cpp keeps the states of past prompts in RAM (up to 8 GiB by
    # default, ~28 KB per token for this model) to reuse shared prefixes.
    # The one slot already reuses the prefix of the previous request (the
    # fixed system prompt); cap the rest so a long test run cannot grow the
    # server by gigabytes next to the embedder and a cargo build.
    params.cache_ram_mib = 256

    # Killed is the normal way to stop: exit straight away. Letting SIGINT
    # unwind the interpreter would run the server's destructor while its HTTP
    # thread may still be answering, for no benefit (it holds no state).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))

    try:
        # Loads the model, then starts llama.cpp's HTTP server on a background thread.
        server = xllamacpp.Server(params)
    except Exception as error:  # e.g. a port in use or an unreadable model
        fail(f"llama.cpp server did not start on {HOST}:{args.port} ({error}); its log above says why")

    base = f"http://{HOST}:{args.port}"
    deadline = time.monotonic() + args.ready_timeout
    while not health(base):
        if time.monotonic() > deadline:
            fail(f"{base}/health did not report ready within {args.ready_timeout:g} s")
        time.sleep(0.2)
    print(f"llm listening on {base}/v1", flush=True)

    # The HTTP server lives on llama.cpp's threads; the main thread only has to
    # keep the process (and `server`) alive until a signal ends it.
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
