"""The benchmarks in ``benchmarks/`` still run and write the figures ``docs/performance.md`` quotes.

Each runs as a user runs it (a subprocess, the documented flags) at a tiny size. Nothing here times anything: the
assertions are on what each benchmark counts and on the shape of its JSON, so a refactor of openear that breaks
a benchmark fails here instead of on the day someone next measures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared_data import shared_path

ROOT = Path(__file__).resolve().parents[1]


def bench(script: str, *args: str, tmp_path: Path) -> tuple[str, Any]:
    """Run ``benchmarks/<script>`` with ``args`` (plus ``--json``); its stdout and its JSON, parsed strictly."""
    out = tmp_path / f"{script}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENEAR_NOW", "OPENEAR_HOME", "OPENEAR_DATABASE_URL")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args, "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out.read_text(encoding="utf-8"), parse_constant=_no_nan)


def _no_nan(constant: str) -> None:
    raise AssertionError(f"not strict JSON: {constant}")


def test_pipeline_benchmark(tmp_path: Path) -> None:
    stdout, figures = bench("pipeline.py", "--n", "80", "--mode", "rules", "--no-breakdown", tmp_path=tmp_path)
    assert (figures["mode"], figures["database"], figures["sentiment_model"]) == ("rules", "sqlite",
                                                                                  "sentiment-hashlr@1")
    stats = figures["end_to_end"]["stats"]
    assert stats["stored"] > 0 and stats["invalid"] == 0 and stats["expired"] == 0  # retention counts from ANCHOR
    assert stats["withheld"] > 0 and stats["rejected"]  # the generator's protected-topic and private items
    # the bounds insert exactly the rows the import stored, with the store's triggers
    assert figures["raw"]["rows"] == figures["store_bound"]["rows"] == stats["stored"]
    assert "posts_fts_ai" in figures["store_bound"]["triggers"]
    assert figures["end_to_end"]["rate"] > 0 and figures["end_to_end"]["stored_bytes"] > 0
    assert "end to end (import_file)" in stdout and "store bound" in stdout


def test_models_benchmark(tmp_path: Path) -> None:
    _, figures = bench("models.py", "--n", "60", tmp_path=tmp_path)
    modes = {row["mode"]: row for row in figures["modes"]}
    assert set(modes) == {"fast", "rules", "accurate"}
    assert modes["fast"]["sentiment_model"] == "sentiment-fast@1"
    for row in modes.values():
        assert "skipped" not in row, row
        assert row["posts_per_s"] > 0 and row["sentiment_posts_per_s"] > 0


def test_encoder_bound_benchmark(tmp_path: Path) -> None:
    """The arithmetic per token is the model's, fixed by its weight shapes; per post it follows the token count."""
    stdout, figures = bench("encoder_bound.py", "--n", "40", tmp_path=tmp_path)
    assert figures["mflop_per_token"] == pytest.approx(3.407872)
    assert figures["gflops"] > 0
    synthetic = figures["sets"]["synthetic (pipeline benchmark)"]
    assert synthetic["tokens_per_post"] > 2  # at least the start and end tokens
    assert synthetic["mflop_per_post"] == pytest.approx(synthetic["tokens_per_post"] * 3.407872 + 3.350528)
    assert synthetic["bound_posts_per_s"] == pytest.approx(figures["gflops"] * 1e3 / synthetic["mflop_per_post"])
    assert synthetic["goal_tflops"] == pytest.approx(10_000 * synthetic["mflop_per_post"] / 1e6)
    assert synthetic["measured_posts_per_s"] > 0
    assert "10,000 posts/s would need" in stdout


def test_alerts_benchmark_writes_strict_json(tmp_path: Path) -> None:
    """Few series may hold no detected spike: the mean delay is then null, not NaN (which is not JSON)."""
    _, figures = bench("alerts.py", "--series", "4", "--weeks", "3", tmp_path=tmp_path)
    assert (figures["series"], figures["weeks"]) == (4, 3)
    assert {row["detector"] for row in figures["rows"]} >= {"seasonal (medium)", "seasonal (low)"}
    for row in figures["rows"]:
        assert 0 <= row["recall"] <= 1


def test_train_benchmark(tmp_path: Path) -> None:
    shared_path("data", "driver-feedback", "dev.jsonl")  # skips, naming the reason, where ../shared is absent
    _, rows = bench("train.py", "--copies", "1", tmp_path=tmp_path)
    assert rows and all(0 <= row["combined_macro_f1"] <= 1 and row["examples"] > 0 for row in rows)


def test_search_benchmark(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENEAR_HOME", "OPENEAR_DATABASE_URL")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search.py"), "--n", "300", "--runs", "1",
                           "--db", str(tmp_path / "search.db")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "posts: 300" in done.stdout and "count all matches" in done.stdout
