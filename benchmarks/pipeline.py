#!/usr/bin/env python3
"""End-to-end throughput of ``openear import`` (read -> normalise -> guard -> enrich -> store) on SQLite.

    .venv/bin/python benchmarks/pipeline.py --n 20000 [--mode fast|rules|accurate]

1. Generates N synthetic posts with ``scripts/make_demo_data.py`` (the demo's mix: EN/ES, news, protected
   topics, private items, copy-pasta, personal data) and writes them as JSON Lines to a temporary folder.
2. Creates a fresh workspace there (``openear.workspace.init_workspace``) and loads the pipeline's models
   (reported as start-up, not counted in the rate). ``--mode`` picks the sentiment mode
   (``Pipeline.for_settings(mode=...)``, as ``import_file(mode=...)`` does); without it, the workspace's
   ``sentiment_mode`` (``fast``). The mode and its sentiment model are printed and in the JSON.
3. Imports the file with ``openear.pipeline.import_file`` and reports posts read per second: the end-to-end rate.
4. Imports it again into a second fresh workspace with every stage wrapped in a timer, for the per-stage
   breakdown (the wrappers add a few microseconds per call; the breakdown's total is shown next to its wall time).
5. Inserts the rows the pipeline stored (same columns, read back from ``posts``) into an empty SQLite table with
   the same definition and indexes, with ``executemany`` in batches of 500, one transaction per batch, and the
   store's pragmas (WAL, synchronous=NORMAL): the raw insert rate, an upper bound for the store stage. That table
   has none of the store's triggers (FTS5 index, rollups, data_version), so the store can never reach it.
6. Inserts the same rows the same way into ``posts`` of a second fresh workspace (freshly migrated, empty, every
   trigger in place; its ``runs`` and ``clusters`` rows are copied first, untimed, for the foreign keys), with all
   the store's pragmas (foreign_keys too): the store bound, what ``posts`` alone costs with its triggers.

Prints the rates, their ratios to end to end, the breakdown and peak RSS, and the CPU time the end-to-end import
used (``time.process_time``: all of this process's threads), per post, with the rate it would cap a perfectly
parallel pipeline at on this machine's cores (JSON ``end_to_end.cpu_s``). ``--json PATH`` also writes the figures
as JSON (the keys of earlier versions, plus ``mode``, ``mode_given``, ``sentiment_model``, ``database``,
``store_bound``, ``store_bound_copy`` (PostgreSQL only, else null) and ``load_average``).

``--database-url postgresql+psycopg://USER@HOST/DB`` runs the same benchmark on PostgreSQL (issue 7): each
workspace uses that database, emptied first (``DROP SCHEMA public CASCADE``: give it a database of its own), and
the raw insert goes into ``raw_posts`` (``LIKE posts`` with its defaults and indexes, no search trigger, as the
SQLite copy has no FTS triggers), 500 rows per transaction with psycopg's ``executemany``. Also prints the stored
bytes per post (posts, labels, clusters and the search index). The store bound runs in a scratch database
(``<db>_store_bound``, created from the benchmark's URL, migrated by ``init_workspace`` and dropped after) with
psycopg's ``executemany`` (one ``INSERT``, so one firing of each statement trigger, per row), and then again with
``COPY`` (``store_bound_copy``: what ``Store.write_batch`` uses, the triggers fire once per batch) after emptying
``posts``, its search index and rollups.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BATCH = 500


def _load_generator() -> Any:
    """``scripts/make_demo_data.py`` as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_demo_data", ROOT / "scripts" / "make_demo_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_demo_data"] = module
    spec.loader.exec_module(module)
    # the generated posts carry the generator's fixed dates: count retention from the day after them, so that
    # every post is kept (and measured) on any day the benchmark runs
    os.environ.setdefault("OPENEAR_NOW", (module.ANCHOR + timedelta(days=1)).isoformat())
    return module


def _pg_version(url: str) -> str:
    import psycopg

    with psycopg.connect(_pg_dsn(url)) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]  # type: ignore[index]


def _rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class Timers:
    """Accumulated seconds and calls per stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, dt: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + dt
        self.calls[name] = self.calls.get(name, 0) + 1

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, clock() - t0)

        return timed

    def patch(self, obj: Any, attr: str, name: str) -> bool:
        """Time ``obj.attr`` calls under ``name``; False where the object does not allow it."""
        try:
            setattr(obj, attr, self.wrap(name, getattr(obj, attr)))
        except (AttributeError, TypeError):
            return False
        return True

    def iterate(self, name: str, items: Iterator[Any]) -> Iterator[Any]:
        clock = time.perf_counter
        while True:
            t0 = clock()
            try:
                item = next(items)
            except StopIteration:
                self.add(name, clock() - t0)
                return
            self.add(name, clock() - t0)
            yield item


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _pg_reset(url: str) -> None:
    """Empty the benchmark's PostgreSQL database: every object in its public schema."""
    import psycopg

    with psycopg.connect(_pg_dsn(url), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def _workspace(root: Path, name: str) -> tuple[Any, Any]:
    from openear.store import Store
    from openear.workspace import init_workspace

    url = os.environ.get("OPENEAR_DATABASE_URL")
    if url:
        _pg_reset(url)

    init = init_workspace(root / name, organisation="openear benchmark")
    return init.settings, Store(init.settings.database_url)


def _spec() -> Any:
    from openear.settings import SourceSpec

    # One source for the whole file, declared news so that its news rows stay news: every generated row states its
    # kind, and a row that says "social" is social (guarded as such); private items are rejected.
    return SourceSpec("bench", connector="files", visibility="public", kind="news")


def run_end_to_end(root: Path, path: Path, n: int, mode: str | None = None) -> dict[str, Any]:
    from openear.pipeline import Pipeline, import_file

    settings, store = _workspace(root, "ws-e2e")
    try:
        t0 = time.perf_counter()
        # import_file(mode=...) builds its pipeline the same way; built here so that start-up is timed apart
        pipe = Pipeline.for_settings(settings, store, mode=mode)
        startup = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        _, stats = import_file(settings, store, path, "jsonl", _spec(), pipeline=pipe)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        db_path = Path(settings.database_url.split("///", 1)[-1])
        stored_bytes = _stored_bytes(store)
    finally:
        store.close()
    return {"startup_s": startup, "wall_s": wall, "rate": n / wall, "cpu_s": cpu, "stats": stats.as_dict(),
            "db": db_path, "stored_bytes": stored_bytes, "mode": pipe.enrichment.mode,
            "sentiment_model": str(getattr(pipe.enrichment.sentiment, "enricher", type(pipe.enrichment.sentiment)))}


def _stored_bytes(store: Any) -> int:
    """Bytes the store holds for the posts: the SQLite file (and WAL), or PostgreSQL's posts, labels, clusters and
    search index relations (with their indexes and TOAST)."""
    if store.dialect == "postgresql":
        from sqlalchemy import text

        with store.connect() as conn:
            return int(conn.execute(text(
                "SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY['posts', 'labels', 'clusters', "
                "'posts_search']::regclass[]) AS c")).scalar_one())
    path = Path(store.url.split("///", 1)[-1])
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def run_breakdown(root: Path, path: Path, n: int, mode: str | None = None) -> dict[str, Any]:
    """The same import with every stage timed (read+parse, normalise, guard, enrichers, store)."""
    from openear.connectors import files
    from openear.pipeline import Pipeline

    settings, store = _workspace(root, "ws-stages")
    timers = Timers()
    try:
        pipe = Pipeline.for_settings(settings, store, mode=mode)
        e = pipe.enrichment
        targets = {
            "guard": (pipe.guard, "check"),
            "detector": (pipe.guard.detector, "detect"),
            "enrich": (e, "enrich"),
            "language": (e.language, "detect"),
            "sentiment": (e.sentiment, "predict"),
            "classify": (e.classifier, "classify"),
            "dedupe": (e.deduper, "assign"),
            "store": (store, "write_batch"),
        }
        patched = {key: timers.patch(obj, attr, key) for key, (obj, attr) in targets.items()}
        spec = _spec()
        items = timers.iterate("read", iter(files.read_items(path, "jsonl", spec.name)))
        normalise = timers.wrap("normalise", lambda raw: files.normalise(raw, "jsonl", spec))
        t0 = time.perf_counter()
        pipe.run(spec, items, normalise, kind="import")
        wall = time.perf_counter() - t0
    finally:
        store.close()
    return {"wall_s": wall, "rate": n / wall, "seconds": timers.seconds, "calls": timers.calls,
            "not_timed": sorted(k for k, ok in patched.items() if not ok)}


# (timer key, label, is a part of the line above it)
STAGES = (
    ("read", "read + JSON parse (connectors.files)", False),
    ("normalise", "normalise (fields, dates)", False),
    ("guard", "guard (visibility, topics, scrub, pseudonym)", False),
    ("detector", "protected-topic detector", True),
    ("enrich", "enrich (all enrichers)", False),
    ("language", "language", True),
    ("sentiment", "sentiment", True),
    ("classify", "categories", True),
    ("dedupe", "near-duplicates (MinHash LSH)", True),
    ("store", "store (write_batch: posts, labels, clusters, counts)", False),
)


def run_raw_insert(root: Path, source_db: Path) -> dict[str, Any]:
    """executemany of the stored rows into an empty copy of the ``posts`` table, 500 rows per transaction."""
    src = sqlite3.connect(source_db)
    try:
        ddl = src.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'posts'").fetchone()[0]
        index_ddl = [r[0] for r in src.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'posts' AND sql IS NOT NULL")]
        cols = [r[1] for r in src.execute("PRAGMA table_info(posts)") if r[1] != "id"]
        rows = src.execute(f"SELECT {', '.join(cols)} FROM posts ORDER BY id").fetchall()
    finally:
        src.close()
    dst = sqlite3.connect(root / "raw.db", isolation_level=None)
    try:
        dst.execute("PRAGMA journal_mode=WAL")
        dst.execute("PRAGMA synchronous=NORMAL")
        dst.execute(ddl)
        for sql in index_ddl:
            dst.execute(sql)
        insert = f"INSERT INTO posts ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        t0 = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            dst.execute("BEGIN")
            dst.executemany(insert, rows[i : i + BATCH])
            dst.execute("COMMIT")
        wall = time.perf_counter() - t0
    finally:
        dst.close()
    return {"rows": len(rows), "wall_s": wall, "rate": len(rows) / wall if wall else float("inf"),
            "columns": len(cols)}


def run_raw_insert_pg(url: str) -> dict[str, Any]:
    """The PostgreSQL raw insert: the stored rows into ``raw_posts`` (``LIKE posts``), 500 rows per transaction."""
    import psycopg

    with psycopg.connect(_pg_dsn(url)) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = 'posts' AND column_name <> 'id' ORDER BY ordinal_position")]
        rows = conn.execute(f"SELECT {', '.join(cols)} FROM posts ORDER BY id").fetchall()
        conn.execute("DROP TABLE IF EXISTS raw_posts")
        conn.execute("CREATE TABLE raw_posts (LIKE posts INCLUDING DEFAULTS INCLUDING INDEXES)")
        conn.execute("CREATE SEQUENCE raw_posts_id_seq OWNED BY raw_posts.id")
        conn.execute("ALTER TABLE raw_posts ALTER COLUMN id SET DEFAULT nextval('raw_posts_id_seq')")
        conn.commit()
        insert = f"INSERT INTO raw_posts ({', '.join(cols)}) VALUES ({', '.join('%s' for _ in cols)})"
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            for i in range(0, len(rows), BATCH):
                cur.executemany(insert, rows[i : i + BATCH])
                conn.commit()
        wall = time.perf_counter() - t0
        conn.execute("DROP TABLE raw_posts")
        conn.commit()
    return {"rows": len(rows), "wall_s": wall, "rate": len(rows) / wall if wall else float("inf"),
            "columns": len(cols)}


def _fresh_store(root: Path, name: str, url: str | None = None) -> str:
    """A freshly migrated, empty store made as the benchmark makes its workspaces (``init_workspace``), on SQLite
    or on the PostgreSQL database ``url``; returns its database URL."""
    from openear.workspace import init_workspace

    saved = os.environ.pop("OPENEAR_DATABASE_URL", None)
    if url:
        os.environ["OPENEAR_DATABASE_URL"] = url
    try:
        return init_workspace(root / name, organisation="openear benchmark").settings.database_url
    finally:
        os.environ.pop("OPENEAR_DATABASE_URL", None)
        if saved is not None:
            os.environ["OPENEAR_DATABASE_URL"] = saved


def _timed_batches(rows: list[Any], insert: Callable[[list[Any]], None], commit: Callable[[], None]) -> float:
    """Seconds to insert ``rows`` in batches of ``BATCH``, one transaction (``commit``) per batch."""
    t0 = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        insert(rows[i : i + BATCH])
        commit()
    return time.perf_counter() - t0


def _bound(rows: int, wall: float, columns: int, **extra: Any) -> dict[str, Any]:
    return {"rows": rows, "wall_s": wall, "rate": rows / wall if wall else float("inf"), "columns": columns, **extra}


def run_store_insert(root: Path, source_db: Path) -> dict[str, Any]:
    """executemany of the stored rows into ``posts`` of a fresh, migrated, empty SQLite store (its FTS5, rollup
    and data_version triggers included), 500 rows per transaction, with the store's own pragmas."""
    from openear.store import _sqlite_pragmas  # the store's connect hook: WAL, synchronous, foreign_keys, timeout

    src = sqlite3.connect(source_db)
    try:
        cols = [r[1] for r in src.execute("PRAGMA table_info(posts)") if r[1] != "id"]
        rows = src.execute(f"SELECT {', '.join(cols)} FROM posts ORDER BY id").fetchall()
        # the rows' foreign keys (posts.run_id, posts.cluster_id) need their runs and clusters
        parents = {t: (src.execute(f"SELECT * FROM {t}").fetchall(),
                       [r[1] for r in src.execute(f"PRAGMA table_info({t})")]) for t in ("runs", "clusters")}
    finally:
        src.close()
    url = _fresh_store(root, "ws-store-bound")
    dst = sqlite3.connect(url.split("///", 1)[-1], isolation_level=None)
    try:
        _sqlite_pragmas(dst, None)
        dst.execute("BEGIN")
        for table, (parent_rows, names) in parents.items():
            dst.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                            parent_rows)
        dst.execute("COMMIT")
        triggers = [r[0] for r in dst.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'posts' "
            "AND sql LIKE '%AFTER INSERT ON posts%' ORDER BY name")]
        insert = f"INSERT INTO posts ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"

        def batch(chunk: list[Any]) -> None:
            dst.execute("BEGIN")
            dst.executemany(insert, chunk)

        wall = _timed_batches(rows, batch, lambda: dst.execute("COMMIT"))
        stored = dst.execute("SELECT count(*) FROM posts").fetchone()[0]
    finally:
        dst.close()
    assert stored == len(rows), f"store bound: {stored} of {len(rows)} rows in posts"
    return _bound(len(rows), wall, len(cols), triggers=triggers)


def _pg_scratch_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return u.set(database=f"{u.database}_store_bound").render_as_string(hide_password=False)


def run_store_insert_pg(root: Path, url: str) -> dict[str, dict[str, Any]] | None:
    """The PostgreSQL store bound, in a scratch database (``<db>_store_bound``, dropped after): the stored rows
    into ``posts`` of a freshly migrated store, 500 rows per transaction, with psycopg's ``executemany``
    (``executemany``) and then, after emptying posts, its search index and rollups, with ``COPY`` (``copy``, as
    ``Store.write_batch`` writes). None, with a message, where the scratch database cannot be created."""
    import psycopg
    from sqlalchemy.engine import make_url

    with psycopg.connect(_pg_dsn(url)) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = 'posts' AND column_name <> 'id' ORDER BY ordinal_position")]
        rows = conn.execute(f"SELECT {', '.join(cols)} FROM posts ORDER BY id").fetchall()
        parents: dict[str, tuple[list[Any], list[str]]] = {}
        for table in ("runs", "clusters"):
            cur = conn.execute(f"SELECT * FROM {table}")
            parents[table] = (cur.fetchall(), [d.name for d in cur.description or ()])
    scratch = _pg_scratch_url(url)
    name = make_url(scratch).database
    try:
        with psycopg.connect(_pg_dsn(url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        print(f"store bound skipped: cannot create the scratch database {name}: {exc}".strip(), file=sys.stderr)
        return None
    try:
        _fresh_store(root, "ws-store-bound", scratch)
        names = ", ".join(cols)
        with psycopg.connect(_pg_dsn(scratch)) as conn:
            for table, (parent_rows, parent_cols) in parents.items():
                with conn.cursor() as cur:
                    cur.executemany(f"INSERT INTO {table} ({', '.join(parent_cols)}) "
                                    f"VALUES ({', '.join('%s' for _ in parent_cols)})", parent_rows)
            conn.commit()
            triggers = [r[0] for r in conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'posts'::regclass AND NOT tgisinternal "
                "AND tgtype & 4 <> 0 ORDER BY 1")]  # TRIGGER_TYPE_INSERT
            insert = f"INSERT INTO posts ({names}) VALUES ({', '.join('%s' for _ in cols)})"
            with conn.cursor() as cur:
                wall = _timed_batches(rows, lambda chunk: cur.executemany(insert, chunk), conn.commit)
            many = _bound(len(rows), wall, len(cols), triggers=triggers,
                          search_rows=conn.execute("SELECT count(*) FROM posts_search").fetchone()[0])  # type: ignore[index]
            conn.execute("TRUNCATE posts, posts_search, post_rollups RESTART IDENTITY CASCADE")
            conn.commit()

            def copy(chunk: list[Any]) -> None:
                with conn.cursor() as cur, cur.copy(f"COPY posts ({names}) FROM STDIN") as out:
                    for r in chunk:
                        out.write_row(r)

            wall = _timed_batches(rows, copy, conn.commit)
            copied = _bound(len(rows), wall, len(cols), triggers=triggers,
                            search_rows=conn.execute("SELECT count(*) FROM posts_search").fetchone()[0])  # type: ignore[index]
    finally:
        with psycopg.connect(_pg_dsn(url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {"executemany": many, "copy": copied}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="posts to generate and import (default %(default)s)")
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: the demo's)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the timed second import")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    from openear.settings import SENTIMENT_MODES

    parser.add_argument("--mode", choices=SENTIMENT_MODES, default=None,
                        help="sentiment mode of the pipeline (default: the workspace's sentiment_mode, fast)")
    parser.add_argument("--database-url", help="run on this PostgreSQL database instead of SQLite; it is EMPTIED "
                        "first (postgresql+psycopg://USER@HOST:PORT/DB)")
    args = parser.parse_args(argv)
    pg = args.database_url
    if pg:
        if not pg.startswith("postgresql"):
            parser.error("--database-url: a postgresql+psycopg:// URL (SQLite is the default)")
        os.environ["OPENEAR_DATABASE_URL"] = pg
    else:
        os.environ.pop("OPENEAR_DATABASE_URL", None)

    gen = _load_generator()
    root = Path(tempfile.mkdtemp(prefix="openear-bench-"))
    os.environ.pop("OPENEAR_PSEUDONYM_KEY", None)  # each workspace makes its own key file
    try:
        t0 = time.perf_counter()
        rows = gen.generate(args.n, **({"seed": args.seed} if args.seed is not None else {}))
        path = root / "posts.jsonl"
        gen.write_jsonl(rows, path)
        gen_s = time.perf_counter() - t0
        size = path.stat().st_size
        del rows
        rss_before = _rss_mib()

        e2e = run_end_to_end(root, path, args.n, args.mode)
        rss_e2e = _rss_mib()
        raw = run_raw_insert_pg(pg) if pg else run_raw_insert(root, e2e["db"])
        bounds = run_store_insert_pg(root, pg) if pg else {"executemany": run_store_insert(root, e2e["db"])}
        store_bound = bounds["executemany"] if bounds else None
        stages = None if args.no_breakdown else run_breakdown(root, path, args.n, args.mode)
        rss_peak = _rss_mib()

        stats = e2e["stats"]
        print(f"openear pipeline benchmark  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
              + (f"PostgreSQL {_pg_version(pg)} (psycopg)" if pg else f"SQLite {sqlite3.sqlite_version}")
              + ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        print(f"mode: {e2e['mode']}" + ("" if args.mode else " (the workspace's default)")
              + f", sentiment model {e2e['sentiment_model']}")
        print(f"input: {args.n} synthetic posts, {size / 1e6:.1f} MB JSON Lines (generated in {gen_s:.1f} s)")
        print(f"run: read {stats['read']}, stored {stats['stored']}, withheld {stats['withheld']}, "
              f"rejected {sum(stats['rejected'].values())}, scrubbed {stats['scrubbed']}, invalid {stats['invalid']}")
        print()
        print(f"pipeline start-up (models, deduper warm-up): {e2e['startup_s']:8.2f} s")
        print(f"end to end (import_file):   {e2e['wall_s']:8.2f} s  {e2e['rate']:10,.0f} posts/s")
        cpu_us = 1e6 * e2e["cpu_s"] / args.n
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        print(f"CPU of this process:        {e2e['cpu_s']:8.2f} s  {cpu_us:10,.0f} us/post (all its threads"
              + ("; the PostgreSQL server's own work is not in it" if pg else "")
              + f"): at most {cores * 1e6 / cpu_us:,.0f} posts/s on {cores} cores even if every stage ran in parallel")
        raw_name = f"raw {'PostgreSQL' if pg else 'SQLite'} executemany:"
        print(f"{raw_name:<27} {raw['wall_s']:8.2f} s  {raw['rate']:10,.0f} rows/s "
              f"({raw['rows']} rows x {raw['columns']} columns, batches of {BATCH})")
        print(f"ratio raw / end to end:     {raw['rate'] / e2e['rate']:8.1f} x")
        for key, how in (("executemany", "executemany"), ("copy", "COPY")):
            bound = (bounds or {}).get(key)
            if bound is None:
                continue
            name = f"store bound ({how}):"
            ratio = f"ratio {'bound' if key == 'executemany' else how} / end to end:"
            print(f"{name:<27} {bound['wall_s']:8.2f} s  {bound['rate']:10,.0f} rows/s "
                  f"(posts of a fresh store, insert triggers: {', '.join(bound['triggers'])})")
            print(f"{ratio:<27} {bound['rate'] / e2e['rate']:8.1f} x")
        stored = max(stats["stored"], 1)
        print(f"stored bytes per post:      {e2e['stored_bytes'] / stored:8,.0f} B "
              f"({e2e['stored_bytes'] / 1e6:.1f} MB for {stats['stored']} posts, labels, clusters, search index)")
        print(f"peak RSS: {rss_peak:.0f} MiB (after generating the input {rss_before:.0f} MiB, "
              f"after the end-to-end import {rss_e2e:.0f} MiB)")
        if stages is not None:
            print()
            total = stages["wall_s"]
            print(f"per stage (timed run: {total:.2f} s, {stages['rate']:,.0f} posts/s; us/post = per input post)")
            top = 0.0
            for key, label, part in STAGES:
                sec = stages["seconds"].get(key)
                if sec is None:
                    continue
                top += 0.0 if part else sec
                name = ("  - " if part else "") + label
                print(f"  {name:<56} {sec:8.2f} s  {100 * sec / total:5.1f} %  {1e6 * sec / args.n:8.1f} us/post"
                      f"  ({stages['calls'][key]} calls)")
            print(f"  {'other (pipeline loop, run bookkeeping)':<56} {total - top:8.2f} s  "
                  f"{100 * (total - top) / total:5.1f} %")
            if stages["not_timed"]:
                print(f"  (not timed: {', '.join(stages['not_timed'])})")
        if args.json:
            e2e = {k: v for k, v in e2e.items() if k != "db"}
            args.json.write_text(json.dumps({
                "n": args.n, "mode": e2e["mode"], "mode_given": args.mode, "sentiment_model": e2e["sentiment_model"],
                "database": "postgresql" if pg else "sqlite", "end_to_end": e2e, "raw": raw,
                "store_bound": store_bound, "store_bound_copy": (bounds or {}).get("copy"), "stages": stages,
                "peak_rss_mib": rss_peak, "load_average": os.getloadavg()}, indent=2, default=str))
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
