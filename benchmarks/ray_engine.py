#!/usr/bin/env python3
"""Throughput of the Ray engine on 1 and 2 local workers, against the local engine (issue 7).

    .venv/bin/python benchmarks/ray_engine.py --n 4000 [--mode fast|rules] [--workers 1,2] [--json figures.json]

1. Generates N synthetic posts with ``scripts/make_demo_data.py`` (the demo's mix) as JSON Lines.
2. Backfills them into a fresh SQLite workspace with ``--engine local`` (guard and enrichers in this process, one
   batch at a time): the baseline, posts read per second.
3. Starts a private local Ray (``ray.init(num_cpus=max workers)``) and, for each worker count k, backfills the same
   file into another fresh store through a pool of k actors. Starting Ray and the actors (each loads the models
   once) is reported as start-up, not counted in the rate.
4. Prints each rate, its ratio to the local rate and per worker, and the scaling against one Ray worker (the
   issue's goal, ``rate on k workers >= 0.7 x k x rate on 1 worker``; JSON ``scaling``, measured when 1 is among
   ``--workers``). The local engine's sentence encoder uses every core the process may use (BLAS threads), while
   a Ray actor gets ``OMP_NUM_THREADS`` = its one CPU, so "per worker" against local understates the scaling.

The driver (normalise, near-duplicate clustering, SQLite writes) runs in this process alongside the workers, so
on a machine with C cores at most C - 1 workers have a core of their own.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _generate(n: int, path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_demo_data", ROOT / "scripts" / "make_demo_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_demo_data"] = module
    spec.loader.exec_module(module)
    # fixed dates: retention counts from the day after them, so every post is kept on any day (as pipeline.py)
    os.environ.setdefault("OPENEAR_NOW", (module.ANCHOR + timedelta(days=1)).isoformat())
    module.write_jsonl(module.generate(n), path)


def _run(settings: Any, path: Path, db: Path, engine: Any, batch: int) -> tuple[float, int, int]:
    from openear.backfill import backfill
    from openear.distributed import BatchPipeline
    from openear.settings import SourceSpec
    from openear.store import Store

    store = Store(f"sqlite:///{db}")
    store.migrate()
    # declared news so that the generated news rows stay news; every row states its kind (social rows are social)
    spec = SourceSpec("bench", connector="files", visibility="public", kind="news")
    pipeline = BatchPipeline(store, engine, batch_size=batch)
    t = time.perf_counter()
    result = backfill(store, path, "jsonl", spec, pipeline)
    dt = time.perf_counter() - t
    store.close()
    return dt, result.stats.read, result.stats.stored


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--mode", default="fast", choices=("fast", "rules"))
    ap.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated")
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]

    from openear.distributed import LocalEngine, RayEngine
    from openear.workspace import init_workspace

    os.environ.pop("OPENEAR_DATABASE_URL", None)
    tmp = Path(tempfile.mkdtemp(prefix="openear-ray-bench-"))
    path = tmp / "posts.jsonl"
    _generate(args.n, path)
    settings = init_workspace(tmp / "ws").settings
    figures: dict[str, Any] = {
        "n": args.n,
        "mode": args.mode,
        "batch": args.batch,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": os.getloadavg()[0],
    }

    t = time.perf_counter()
    local = LocalEngine(settings, mode=args.mode)
    figures["local_startup_s"] = time.perf_counter() - t
    dt, read, stored = _run(settings, path, tmp / "local.sqlite", local, args.batch)
    base = read / dt
    figures["local"] = {"seconds": dt, "posts_per_s": base, "stored": stored}
    print(f"local engine      : {base:8.0f} posts/s ({read} read, {stored} stored, {dt:.1f} s)")

    import ray

    ray.init(
        address="local",
        num_cpus=max(counts),
        include_dashboard=False,
        logging_level=logging.WARNING,
        _system_config={"automatic_object_spilling_enabled": False},
    )
    one_worker: float | None = None
    for k in counts:
        t = time.perf_counter()
        pool = RayEngine(settings, workers=k, mode=args.mode)
        startup = time.perf_counter() - t
        dt, read, stored_k = _run(settings, path, tmp / f"ray{k}.sqlite", pool, args.batch)
        pool.close()
        rate = read / dt
        assert stored_k == stored, "the Ray run stored a different number of posts"
        if k == 1:
            one_worker = rate
        scaling = rate / one_worker / k if one_worker else None
        figures[f"ray_{k}"] = {
            "seconds": dt,
            "posts_per_s": rate,
            "ratio_to_local": rate / base,
            "per_worker": rate / base / k,
            "scaling": scaling,
            "startup_s": startup,
        }
        print(
            f"ray, {k} worker(s)  : {rate:8.0f} posts/s  = {rate / base:.2f} x local, "
            f"{rate / base / k:.2f} per worker"
            + (f", {scaling:.2f} x k x 1 worker" if scaling is not None and k > 1 else "")
            + f" (start-up {startup:.1f} s)"
        )
    ray.shutdown()
    figures["load_after"] = os.getloadavg()[0]
    print(
        f"load average before/after: {figures['load_before']:.1f} / {figures['load_after']:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
