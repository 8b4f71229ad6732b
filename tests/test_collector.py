"""The collector: crash safety under SIGKILL, clean SIGTERM, isolation of failing and hanging sources, CLI.

The sources are real HTTP servers on 127.0.0.1: a sequence-numbered Mastodon-shaped hashtag timeline (status ids
1..N, ``min_id`` paging) and small replay routes. Collectors run as subprocesses (``python -m openear.cli``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from openear.cli import app
from openear.collector import Collector, SourceResult, collect_source, source_statuses
from openear.settings import SourceSpec
from openear.store.schema import posts

WORDS = ("app", "pay", "late", "route", "support", "station", "block", "tip", "map", "login", "wait", "order",
         "great", "slow", "fast", "broken", "update", "shift", "hours", "customer")
# Statuses are dated 60+ days back: outside the deduper's 30-day warm-up window, so 21 restarts of the crash test do
# not each re-load up to 100,000 signatures (that start-up cost is the pipeline's, measured in docs/performance.md).
OLD = datetime.now(UTC) - timedelta(days=90)
FAST = {"min_interval": 0, "backoff": 0.01, "timeout": 5, "retries": 5}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a killed collector resets its connection: expected here


class SeqSource:
    """A hashtag timeline of statuses 1..N on 127.0.0.1, served like Mastodon (``min_id``, newest first)."""

    def __init__(self, total: int, *, delay: float = 0.0, fail_every: int = 0) -> None:
        self.total = total
        self.delay = delay
        self.fail_every = fail_every  # every Nth request answers 503 (retried by the HTTP layer)
        self.served = 0  # the highest status id served since the last reset
        self.requests = 0
        self.lock = threading.Lock()
        source = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                with source.lock:
                    source.requests += 1
                    n = source.requests
                if source.fail_every and n % source.fail_every == 0:
                    body, status = b'{"error": "try again"}', 503
                else:
                    start = int(q.get("min_id", source.total))
                    limit = int(q.get("limit", 40))
                    ids = range(min(source.total, start + limit), start, -1)
                    body, status = json.dumps([source.status(i) for i in ids]).encode(), 200
                    if ids:
                        with source.lock:
                            source.served = max(source.served, ids[0])
                if source.delay:
                    time.sleep(source.delay)
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json; charset=utf-8")
                    self.send_header("x-ratelimit-limit", "300")
                    self.send_header("x-ratelimit-remaining", "299")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = _QuietServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @staticmethod
    def status(i: int) -> dict[str, Any]:
        rnd = random.Random(i)
        text = f"#{i} " + " ".join(rnd.choice(WORDS) for _ in range(3))
        return {
            "id": str(i), "created_at": (OLD + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "visibility": "public", "language": "en", "spoiler_text": "", "reblog": None,
            "url": f"https://seq.example/@user{i % 997}/{i}", "content": f"<p>{text}</p>",
            "account": {"id": str(i % 997), "username": f"user{i % 997}", "acct": f"user{i % 997}",
                        "uri": f"https://seq.example/users/user{i % 997}", "indexable": True, "noindex": False},
        }

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def seq_options(url: str, **options: Any) -> dict[str, Any]:
    return {"base_url": url, "hashtags": ["seq"], "backfill": True, "interval": "1s", **FAST, **options}


def seq_source(url: str, **options: Any) -> dict[str, Any]:
    return {"name": "seq", "connector": "mastodon", "visibility": "public", "kind": "social",
            **seq_options(url, **options)}


def write_sources(home: Path, *sources: dict[str, Any]) -> None:
    def value(v: Any) -> str:
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    cfg = home / "openear.toml"
    text = cfg.read_text()
    for s in sources:
        text += "\n[[sources]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in s.items())
    cfg.write_text(text)


def cli(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENEAR_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "openear.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stored_ids(workspace) -> tuple[int, set[int]]:
    with workspace.store.connect() as conn:
        n = conn.execute(select(func.count()).select_from(posts).where(posts.c.source == "seq")).scalar_one()
        ids = {int(x) for x in conn.execute(select(posts.c.external_id).where(posts.c.source == "seq")).scalars()}
    return n, ids


def crash_run(workspace, total: int, kills: int, seed: int) -> list[int]:
    """Collect ``total`` items from a flaky source, SIGKILL ``collect`` at ``kills`` random points, then let one run
    finish; returns the stored count after each kill. The caller checks what was stored."""
    src = SeqSource(total, fail_every=97)
    write_sources(workspace.home, seq_source(src.url, page_size=500, batch_size=1000, max_pages=1000))
    rnd = random.Random(seed)
    targets = sorted(rnd.sample(range(1_000, total - 2_000), kills))
    killed_at: list[int] = []
    try:
        for target in targets:
            src.served = 0
            proc = cli(workspace.home, "collect", "--source", "seq", "--once")
            while src.served < target and proc.poll() is None:
                time.sleep(0.005)
            time.sleep(rnd.uniform(0, 0.3))  # land anywhere: mid-fetch, mid-batch, mid-commit
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
            killed_at.append(stored_ids(workspace)[0])
        proc = cli(workspace.home, "collect", "--source", "seq", "--once", "--json")
        _out, errs = proc.communicate(timeout=600)
        assert proc.returncode == 0, errs.decode()[-3000:]
    finally:
        src.close()
    return killed_at


def assert_exactly_once(workspace, total: int, kills: int, killed_at: list[int]) -> None:
    """Every item stored once (no gaps, no duplicates), the cursor at the end, each kill kept what came before."""
    n, ids = stored_ids(workspace)
    assert len(killed_at) == kills and killed_at == sorted(killed_at) and killed_at[-1] < total
    assert n == total and ids == set(range(1, total + 1))  # exactly N: no gaps, no duplicates
    assert json.loads(workspace.store.get_cursor("seq")) == {"seq": str(total)}


@pytest.mark.timeout(900)
def test_sigkill_at_20_random_points_loses_nothing_and_duplicates_nothing(workspace) -> None:
    total, kills = 100_000, 20
    started = time.monotonic()
    killed_at = crash_run(workspace, total, kills, seed=4)
    print(f"\ncrash test: {total} items, {kills} SIGKILLs, {time.monotonic() - started:.1f}s; "
          f"stored after each kill: {killed_at}")
    assert_exactly_once(workspace, total, kills, killed_at)


def test_sigterm_stops_cleanly_after_the_current_batch(workspace) -> None:
    total = 3_000
    src = SeqSource(total, delay=0.05)
    write_sources(workspace.home, seq_source(src.url, page_size=100, batch_size=200, max_pages=1000))
    try:
        proc = cli(workspace.home, "run")
        while src.served < 600 and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        out, errs = proc.communicate(timeout=60)
        assert proc.returncode == 0, errs.decode()[-2000:]
        assert b"Collected" in out
        n, ids = stored_ids(workspace)
        cursor = int(json.loads(workspace.store.get_cursor("seq"))["seq"])
        assert 0 < n < total and ids == set(range(1, n + 1)) and cursor <= n
        proc = cli(workspace.home, "collect", "--once")
        proc.communicate(timeout=120)
        assert stored_ids(workspace) == (total, set(range(1, total + 1)))
    finally:
        src.close()


def test_a_failing_source_is_degraded_and_recovers(workspace) -> None:
    src = SeqSource(50, fail_every=1)
    spec = SourceSpec("seq", connector="mastodon", options=seq_options(src.url, retries=0))
    try:
        states = [collect_source(workspace.settings, workspace.store, spec).state for _ in range(3)]
        assert states == ["failing", "failing", "degraded"]
        status = source_statuses(workspace.store)[0]
        assert status["failures"] == 3 and "HTTP 503" in status["last_error"]
        src.fail_every = 0
        assert collect_source(workspace.settings, workspace.store, spec).state == "ok"
        assert source_statuses(workspace.store)[0]["state"] == "ok"
        assert workspace.store.count() == 50
    finally:
        src.close()


def test_a_hanging_source_does_not_block_the_others(workspace) -> None:
    slow, fast = SeqSource(10, delay=4.0), SeqSource(30)
    specs = [SourceSpec("slow", connector="mastodon", options=seq_options(slow.url, timeout=30)),
             SourceSpec("fast", connector="mastodon", options=seq_options(fast.url))]
    done: dict[str, float] = {}
    start = time.monotonic()

    def on_result(r: SourceResult) -> None:
        done[r.source] = time.monotonic() - start

    try:
        collector = Collector(workspace.settings, workspace.store, specs, on_result=on_result)
        collector.start()
        deadline = time.monotonic() + 3.5
        while "fast" not in done and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "fast" in done and "slow" not in done
        collector.stop()
        assert collector.wait(grace=10)
        assert collector.totals["fast"].stats.stored == 30
    finally:
        slow.close()
        fast.close()


def test_cli_collect_once_prints_a_summary(workspace) -> None:
    src = SeqSource(120)
    write_sources(workspace.home, seq_source(src.url, page_size=50))
    try:
        result = CliRunner().invoke(app, ["collect", "--once", "--json"], env={"OPENEAR_HOME": str(workspace.home)})
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["seq"]["stored"] == 120 and summary["seq"]["state"] == "ok"
        result = CliRunner().invoke(app, ["collect", "--source", "nope", "--once"],
                                    env={"OPENEAR_HOME": str(workspace.home)})
        assert result.exit_code == 2 and "not declared" in result.output
    finally:
        src.close()
