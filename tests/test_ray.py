"""The Ray engine (issue 7): the same results as one process, and nothing lost or doubled when a worker dies.

One local Ray cluster (4 logical CPUs) and one pool of 2 workers serve the whole module: starting Ray and loading
the models in each worker costs seconds. Runs use the library (``BatchPipeline`` on the pool) and the CLI.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from openear.backfill import backfill, checkpoint_key
from openear.cli import app
from openear.collector import Collector
from openear.distributed import BatchPipeline, LocalEngine, RayEngine, _Key, pipeline_factory
from openear.models import CursorMark, RawItem
from openear.settings import Settings, SourceSpec
from openear.store import Store
from openear.store.schema import clusters, guard_counts, labels, posts, runs
from openear.workspace import init_workspace

ray = pytest.importorskip("ray", reason="issue 7: the Ray engine needs ray (pip install -e '.[test]')")

DEMO = Path(__file__).resolve().parents[1] / "src" / "openear" / "data" / "demo" / "posts.jsonl"
SPEC = SourceSpec("demo", connector="files", visibility="public", kind="social")
# the demo file mixes news and social rows, each stating its kind: a news source keeps both (a social one would
# refuse its news rows)
DEMO_SPEC = SourceSpec("demo", connector="files", visibility="public", kind="news")
WORDS = ("late", "pay", "route", "app", "tip", "wait", "station", "order", "map", "support", "shift", "block")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A workspace's settings (key, taxonomy): the local and the Ray runs use the same."""
    return init_workspace(tmp_path_factory.mktemp("ws") / "home").settings


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Iterator[RayEngine]:
    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        logging_level=logging.WARNING,
        _system_config={"automatic_object_spilling_enabled": False},
    )
    pool = RayEngine(settings, workers=2)
    try:
        yield pool
    finally:
        pool.close()
        ray.shutdown()


def new_store(request: pytest.FixtureRequest, tmp_path: Path, kind: str, name: str) -> Store:
    if kind == "sqlite":
        store = Store(f"sqlite:///{tmp_path / name}")
        store.migrate()
        return store
    return Store(request.getfixturevalue("pg_database")())


def input_file(tmp_path: Path, n: int) -> Path:
    """The first ``n`` demo posts (EN/ES, news, protected topics, private items, copy-pasta, personal data), an
    unreadable line and a re-delivered post."""
    lines = DEMO.read_text(encoding="utf-8").splitlines()[:n]
    lines[10:10] = ['{"id": "broken", "text": ', lines[3]]
    path = tmp_path / "backfill.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def snapshot(store: Store) -> dict[str, Any]:
    """Everything a run leaves behind that must not depend on the engine (ids and times aside)."""
    with store.connect() as c:
        post_rows = c.execute(
            select(
                posts.c.external_id,
                posts.c.text,
                posts.c.title,
                posts.c.url,
                posts.c.author_pseudonym,
                posts.c.lang,
                posts.c.sentiment,
                posts.c.category,
                posts.c.content_hash,
                posts.c.minhash,
                clusters.c.key,
            )
            .join(clusters, clusters.c.id == posts.c.cluster_id, isouter=True)
            .order_by(posts.c.id)
        ).all()
        label_rows = c.execute(
            select(posts.c.external_id, labels.c.name, labels.c.value, labels.c.score, labels.c.enricher)
            .join(posts, posts.c.id == labels.c.post_id)
            .order_by(labels.c.id)
        ).all()
        counts = c.execute(
            select(
                guard_counts.c.source,
                guard_counts.c.day,
                guard_counts.c.action,
                guard_counts.c.reason,
                guard_counts.c.n,
            ).order_by(guard_counts.c.source, guard_counts.c.day, guard_counts.c.action, guard_counts.c.reason)
        ).all()
        cluster_rows = c.execute(select(clusters.c.key, clusters.c.size).order_by(clusters.c.key)).all()
        stats = [json.loads(s) for s in c.execute(select(runs.c.stats).order_by(runs.c.id)).scalars()]
    return {
        "posts": [tuple(r) for r in post_rows],
        "labels": [tuple(r) for r in label_rows],
        "guard_counts": [tuple(r) for r in counts],
        "clusters": [tuple(r) for r in cluster_rows],
        "run_stats": stats,
    }


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_backfill_on_ray_equals_the_local_engine_exactly(
    kind: str, engine: RayEngine, settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = input_file(tmp_path, 400)
    results = {}
    for name, pool in (("local", LocalEngine(settings)), ("ray", engine)):
        store = new_store(request, tmp_path, kind, f"{name}.sqlite")
        r = backfill(store, path, "jsonl", DEMO_SPEC, BatchPipeline(store, pool, batch_size=100))
        results[name] = (r.stats, snapshot(store))
        store.close()
    (local_stats, local), (ray_stats, on_ray) = results["local"], results["ray"]
    assert local_stats.invalid == 1 and local_stats.withheld > 0 and local_stats.rejected and local_stats.scrubbed
    assert local_stats.unchanged == 1  # the re-delivered post
    assert ray_stats.as_dict() == local_stats.as_dict()
    assert len(local["posts"]) == local_stats.stored and any(size > 1 for _, size in local["clusters"])
    for part in ("posts", "labels", "guard_counts", "clusters", "run_stats"):
        assert on_ray[part] == local[part], part


def plain_posts(path: Path, n: int) -> set[str]:
    """``n`` posts the guard lets through (no personal data, no protected topic); returns their ids."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            words = " ".join(WORDS[(i * 7 + k * 5) % len(WORDS)] for k in range(6))
            fh.write(
                json.dumps(
                    {
                        "id": f"q{i}",
                        "text": f"{words} again {WORDS[i % 12]}",
                        "author": f"a{i % 50}",
                        "created_at": f"2026-10-{(i % 28) + 1:02d}T08:00:00Z",
                    }
                )
                + "\n"
            )
    return {f"q{i}" for i in range(n)}


def stored(store: Store, source: str) -> tuple[int, set[str], int, int]:
    """(posts, distinct external ids, labels, distinct labels (post, name, value, enricher))."""
    with store.connect() as c:
        n = c.execute(select(func.count()).select_from(posts).where(posts.c.source == source)).scalar_one()
        ids = set(c.execute(select(posts.c.external_id).where(posts.c.source == source)).scalars())
        lab = c.execute(select(labels.c.post_id, labels.c.name, labels.c.value, labels.c.enricher)).all()
    return n, ids, len(lab), len(set(lab))


class Held:
    """A worker process stopped by :func:`held`: every batch sent to it stays unfinished until :meth:`kill`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.killed = False

    def stopped(self) -> bool:
        """Whether the process is stopped (True where ``/proc`` cannot tell)."""
        stat = Path(f"/proc/{self.pid}/stat")
        return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")

    def kill(self) -> None:
        """Kill the worker (once), still stopped: the batches it holds die with it, unfinished."""
        if not self.killed:
            assert self.stopped(), f"worker {self.pid} ran on"
            os.kill(self.pid, signal.SIGKILL)
            self.killed = True


@contextlib.contextmanager
def held(pid: int) -> Iterator[Held]:
    """Stop the worker process ``pid`` (SIGSTOP) for the block, however fast or loaded the machine: it finishes no
    batch until the block calls ``kill()``; one the block did not kill goes on (SIGCONT).

    On an idle pool (``engine.pids()``: every worker answered) the first batch goes to worker 0 and the second to
    worker 1 (the least loaded, then the lowest index); the driver keeps ``2 x workers`` batches in flight, so
    with worker 1 held the first batch is written while worker 1 holds batches it cannot have finished."""
    worker = Held(pid)
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10
        while not worker.stopped():
            assert time.monotonic() < deadline, f"worker {pid} did not stop"
            time.sleep(0.01)
        yield worker
    finally:
        if not worker.killed:
            os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(
    kind: str, engine: RayEngine, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "plain.jsonl"
    expected = plain_posts(path, 500)
    store = new_store(request, tmp_path, kind, "kill.sqlite")
    before, resent = engine.pids(), engine.resubmitted
    with held(before[1]) as worker:  # killed after the first batch is written, holding unfinished ones
        r = backfill(store, path, "jsonl", SPEC, BatchPipeline(store, engine, batch_size=25),
                     progress=lambda _n: worker.kill())
    assert worker.killed and engine.resubmitted > resent  # the batches of the dead worker were sent again
    n, ids, n_labels, distinct_labels = stored(store, "demo")
    assert r.stats.stored == n == len(expected) and ids == expected
    assert n_labels == distinct_labels
    after = engine.pids()  # the killed actor was restarted, the other one kept
    assert after[1] != before[1] and after[0] == before[0]
    store.close()


def test_run_engine_ray_collects_a_live_source_exactly_once_despite_a_killed_worker(
    engine: RayEngine, settings: Settings, tmp_path: Path
) -> None:
    from test_collector import SeqSource, seq_options

    total = 900
    src = SeqSource(total)
    store = Store(f"sqlite:///{tmp_path / 'live.sqlite'}")
    store.migrate()
    options = seq_options(src.url, page_size=40, batch_size=40, max_pages=100)
    spec = SourceSpec("seq", connector="mastodon", options=options)
    pids, resent = engine.pids(), engine.resubmitted
    try:
        with held(pids[1]) as worker:  # killed after the first batch is written, holding unfinished ones
            collector = Collector(settings, store, [spec], once=True, progress=lambda _name, _n: worker.kill(),
                                  pipeline_factory=pipeline_factory(store, engine))
            totals = collector.run()
    finally:
        src.close()
    assert worker.killed and engine.resubmitted > resent and totals["seq"].error is None
    n, ids, n_labels, distinct_labels = stored(store, "seq")
    assert n == total and ids == {str(i) for i in range(1, total + 1)} and n_labels == distinct_labels
    assert json.loads(store.get_cursor("seq") or "{}") == {"seq": str(total)}
    store.close()


def test_cli_backfill_resumes_from_its_checkpoint_on_either_engine(
    engine: RayEngine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "big.jsonl"
    expected = plain_posts(path, 300)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:120]))
    env = {"OPENEAR_HOME": str(settings.home)}
    args = [
        "backfill",
        str(path),
        "--source",
        "bulk",
        "--visibility",
        "public",
        "--mode",
        "rules",
        "--batch-size",
        "50",
        "--json",
    ]
    # On Ray (this process's cluster; the CLI starts a worker of its own on a free CPU).
    first = CliRunner().invoke(app, [*args, "--engine", "ray", "--workers", "1"], env=env)
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout.strip().splitlines()[-1])
    assert (out["engine"], out["read"], out["stored"], out["skipped"]) == ("ray", 120, 120, 0)
    store = Store(settings.database_url)
    key = checkpoint_key(path, "bulk")
    assert json.loads(store.get_cursor(key) or "{}")["line"] == 120
    # The file grows; a re-run on the local engine goes on after line 120.
    path.write_text("".join(lines))
    second = CliRunner().invoke(app, [*args, "--engine", "local"], env=env)
    assert second.exit_code == 0, second.output
    out = json.loads(second.stdout.strip().splitlines()[-1])
    assert (out["read"], out["stored"], out["skipped"]) == (180, 180, 120)
    n, ids, _, _ = stored(store, "bulk")
    assert n == 300 and ids == expected
    # --restart reads everything again and changes nothing.
    third = CliRunner().invoke(app, [*args, "--restart"], env=env)
    out = json.loads(third.stdout.strip().splitlines()[-1])
    assert (out["read"], out["stored"], out["unchanged"]) == (300, 0, 300)
    bad = CliRunner().invoke(app, [*args, "--engine", "spark"], env=env)
    assert bad.exit_code == 2 and "--engine: must be one of local, ray" in bad.output
    store.close()


def test_the_pseudonym_key_stays_out_of_reprs_and_ray_logs(engine: RayEngine, settings: Settings) -> None:
    from openear.guard import load_key

    key = load_key(settings.key_path)
    assert key.hex() not in repr(_Key(key)) and "***" in repr(_Key(key))
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())  # this session's logs
    assert logs.is_dir()
    for f in logs.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert key.hex().encode() not in data and key not in data, f


def test_items_and_marks_flow_like_the_in_process_pipeline(engine: RayEngine, tmp_path: Path) -> None:
    """A mark closes the batch before it; an unreadable item is counted, not sent."""
    store = Store(f"sqlite:///{tmp_path / 'marks.sqlite'}")
    store.migrate()
    from openear.connectors import files

    items: list[Any] = []
    for i in range(7):
        items.append(
            RawItem(
                "m",
                {"id": f"m{i}", "text": f"route {WORDS[i]} wait", "author": "a", "created_at": "2026-10-01T08:00:00Z"},
                "m.jsonl",
                i + 1,
            )
        )
        items.append(CursorMark(str(i + 1)))
    spec = SourceSpec("m", connector="files", visibility="public", kind="social")
    _, stats = BatchPipeline(store, engine, batch_size=3).run(spec, items, lambda r: files.normalise(r, "jsonl", spec))
    assert stats.stored == 7 and store.get_cursor("m") == "7"
    store.close()


def test_workers_label_with_the_active_trained_model(engine: RayEngine, settings: Settings, tmp_path: Path) -> None:
    """The store's active `openear train` model travels to the workers (files need not exist where they run): Ray
    and the local engine label with `trained@vN`, as the single-process pipeline does."""
    from openear.train import activate, examples_from_file, save, train

    rows = [(f"the blue screen froze again {tail}", "app_issue") for tail in WORDS[:10]]
    rows += [(f"a loose dog chased me down the lane {tail}", "safety") for tail in WORDS[:10]]
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"text": t, "lang": "en", "primary": p}) + "\n" for t, p in rows))
    store = Store(f"sqlite:///{tmp_path / 'trained.sqlite'}")
    store.migrate()
    result = train(examples_from_file(labelled), version=1, features="tfidf", data_source="test")
    activate(store, save(store, settings.home, result, "test"), "test")
    post = tmp_path / "posts.jsonl"
    post.write_text(json.dumps({"id": "t1", "text": "the blue screen froze at noon", "author": "a",
                                "created_at": "2026-11-20T10:00:00Z"}) + "\n")
    pool = RayEngine(settings, workers=1, store=store)  # the module's cluster has 4 CPUs, 2 in use
    try:
        for name, eng in (("local", LocalEngine(settings, store=store)), ("ray", pool)):
            target = Store(f"sqlite:///{tmp_path / f'{name}.sqlite'}")
            target.migrate()
            backfill(target, post, "jsonl", SPEC, BatchPipeline(target, eng, batch_size=10))
            with target.connect() as c:
                got = set(c.execute(select(labels.c.name, labels.c.value, labels.c.enricher)).all())
            assert ("primary", "app_issue", "trained@v1") in got, name
            target.close()
    finally:
        pool.close()
        store.close()
    # without a store (or with no active model) the rules alone label it
    assert LocalEngine(settings).worker.enrichment.classifier.trained is None
