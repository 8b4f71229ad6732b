#!/usr/bin/env python3
"""Posts per second of each enrichment mode: the whole default model set, and the sentiment model alone.

    .venv/bin/python benchmarks/models.py --n 3000 [--json PATH]

1. Generates N synthetic posts with ``scripts/make_demo_data.py`` (EN/ES, social and news, titles) and passes them
   through the guard (``openear.guard.Guard``); the posts it lets through are the input.
2. For each mode (``fast``, the default; ``rules``, for bulk backfills; ``accurate``, opt-in) builds
   ``Enrichment(mode=...)`` (its load time is reported as start-up, not counted) and enriches the posts in batches
   of 500, as the pipeline does: language, near-duplicates, taxonomy rules and sentiment. That is the "whole default
   model set" rate of issue 8 (targets on 2 cores: ``fast`` >= 300 posts/s, ``accurate`` >= 50).
3. Times the mode's sentiment model alone on the same texts, for the breakdown.

Run it on an otherwise idle machine: the figures scale with free cores (the load average is printed with them).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
BATCH = 500

from openear.enrich import Enrichment  # noqa: E402
from openear.enrich.sentiment import MODES, load_sentiment  # noqa: E402
from openear.errors import ConfigError  # noqa: E402
from openear.guard import Guard  # noqa: E402
from openear.models import GuardedPost, Post  # noqa: E402


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_demo_data", ROOT / "scripts" / "make_demo_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_demo_data"] = module
    spec.loader.exec_module(module)
    return module


def guarded_posts(n: int) -> list[GuardedPost]:
    guard = Guard(b"benchmark-models-key-0123456789")
    out: list[GuardedPost] = []
    for row in _load_generator().generate(n):
        post = Post(source=row["source"], external_id=row["id"], platform="benchmark", kind=row["kind"],
                    visibility=row["visibility"],
                    created_at=datetime.strptime(row["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
                    text=row["text"], title=row.get("title"), url=row.get("url") or None,
                    author_id=row.get("author"), lang_hint=row.get("lang"), country=row.get("country"))
        verdict = guard.check(post, "public")
        if verdict.post is not None:
            out.append(verdict.post)
    return out


def measure(mode: str, posts: list[GuardedPost]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        enrichment = Enrichment(mode=mode)
    except ConfigError as exc:
        return {"mode": mode, "skipped": str(exc)}
    for attribute in ("encoder", "e5"):  # encoders read their weights on first use: count that as start-up
        encoder = getattr(enrichment.sentiment, attribute, None)
        if encoder is not None:
            encoder.warm()
    startup = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(0, len(posts), BATCH):
        enrichment.enrich(posts[i:i + BATCH])
    whole = time.perf_counter() - start
    model = load_sentiment(mode)
    texts = [p.text if not p.title else f"{p.title}. {p.text}" for p in posts]
    langs = [p.lang_hint or "en" for p in posts]
    start = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        model.predict(texts[i:i + BATCH], langs[i:i + BATCH])
    alone = time.perf_counter() - start
    return {"mode": mode, "sentiment_model": model.enricher, "startup_s": round(startup, 2),
            "posts_per_s": round(len(posts) / whole), "sentiment_posts_per_s": round(len(posts) / alone)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="synthetic posts to generate (default 3000)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    posts = guarded_posts(args.n)
    mean_chars = sum(len(p.text) + len(p.title or "") for p in posts) / max(1, len(posts))
    print(f"{len(posts)} guarded posts (of {args.n} generated), {mean_chars:.0f} characters on average; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, Python {platform.python_version()}")
    rows = [measure(mode, posts) for mode in ("fast", "rules", "accurate") if mode in MODES]
    print(f"{'mode':<9} {'sentiment model':<22} {'start-up s':>10} {'posts/s (all)':>14} {'sentiment alone':>16}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['mode']:<9} skipped: {r['skipped']}")
        else:
            print(f"{r['mode']:<9} {r['sentiment_model']:<22} {r['startup_s']:>10.2f} {r['posts_per_s']:>14,} "
                  f"{r['sentiment_posts_per_s']:>16,}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss_mb:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps({"posts": len(posts), "modes": rows, "peak_rss_mb": round(rss_mb)},
                                        indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
