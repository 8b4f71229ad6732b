"""Search benchmark: a store of N synthetic posts (bulk inserts, not the enrichers), then timed queries.

    .venv/bin/python benchmarks/search.py --n 1000000

Prints the median milliseconds of several runs of a 5-term boolean query with a proximity operator, both for the
first page (newest 50, what ``openear search`` and the posts page ask for) and for counting every match.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from openear.query import parse, search, to_sql
from openear.store import Store
from openear.store.schema import posts

QUERY = "(tips OR propinas) NEAR/5 missing AND app -refund"
EXTRA = ["tips", "propinas", "missing", "app", "refund", "stolen", "desactivación", "Pago", "niño", "tarifa"]
COLUMNS = ("source", "external_id", "platform", "kind", "visibility", "created_at", "text", "title", "lang", "country",
           "sentiment", "category", "content_hash", "run_id", "stored_at", "updated_at")


def vocabulary(rnd: random.Random, n: int = 20000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rnd.choice(letters) for _ in range(rnd.randint(2, 9))) for _ in range(n)]


def build(path: Path, n: int, seed: int = 1) -> Store:
    """A migrated store with ``n`` posts of 8-40 words each (Zipf-like word frequencies, some topical words)."""
    store = Store(f"sqlite:///{path}")
    store.migrate()
    run_id = store.start_run("benchmark", None)
    rnd = random.Random(seed)
    vocab = vocabulary(rnd)
    weights = [1 / (i + 1) for i in range(len(vocab))]
    cum = list(__import__("itertools").accumulate(weights))
    start, now = datetime(2025, 1, 1), datetime(2026, 1, 1).isoformat(" ")
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    sql = f"INSERT INTO posts ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    batch = []
    for i in range(n):
        words = rnd.choices(vocab, cum_weights=cum, k=rnd.randint(8, 40))
        for _ in range(rnd.randint(0, 3)):
            words.insert(rnd.randrange(len(words) + 1), rnd.choice(EXTRA))
        kind = "news" if i % 20 == 0 else "social"
        created = (start + timedelta(seconds=rnd.randrange(365 * 86400))).isoformat(" ")
        batch.append(("bench", str(i), "bench", kind, "public", created, " ".join(words),
                      " ".join(rnd.choices(vocab, k=6)) if kind == "news" else None, rnd.choice(("en", "es")),
                      None, None, None, "h", run_id, now, now))
        if len(batch) == 50_000:
            db.executemany(sql, batch)
            db.commit()
            batch.clear()
    if batch:
        db.executemany(sql, batch)
    db.commit()
    db.execute("INSERT INTO posts_fts(posts_fts) VALUES ('optimize')")
    db.commit()
    db.close()
    return store


def timed(fn, runs: int) -> tuple[float, object]:
    fn()  # warm the page cache
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="posts to store (default 100000)")
    ap.add_argument("--runs", type=int, default=7, help="timed runs per query (median printed)")
    ap.add_argument("--db", type=Path, help="reuse or create the store here (default: a temporary folder)")
    ap.add_argument("--query", default=QUERY)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    path = args.db or Path(tmp.name) / "bench.sqlite"
    t = time.perf_counter()
    store = Store(f"sqlite:///{path}") if path.exists() else build(path, args.n)
    built = time.perf_counter() - t
    q = parse(args.query)
    with store.connect() as conn:
        total = conn.execute(select(func.count()).select_from(posts)).scalar_one()
        page_ms, rows = timed(lambda: search(conn, q, limit=50), args.runs)
        count_ms, count = timed(
            lambda: conn.execute(select(func.count()).select_from(posts).where(to_sql(q))).scalar_one(), args.runs
        )
    store.close()
    print(f"posts: {total:,} (built in {built:.0f} s)")
    print(f"query: {args.query}")
    print(f"first page (newest 50): {page_ms:.1f} ms median of {args.runs}, {len(rows)} rows")  # type: ignore[arg-type]
    print(f"count all matches:      {count_ms:.1f} ms median of {args.runs}, {count} posts")


if __name__ == "__main__":
    main()
