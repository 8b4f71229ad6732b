"""Dashboard benchmark: p50/p95/p99 and req/s of the overview and the posts explorer at N stored posts, with wrk
and 50 concurrent clients on loopback, side by side with Datasette serving the same SQLite file.

    .venv/bin/python benchmarks/web.py --posts 1000000 [--duration 20] [--connections 50] [--dir DIR]

Builds (once, cached under ``--dir``, default ``$OPENEAR_BENCH_DIR`` or ``/tmp/openear-bench``) a migrated SQLite
store of N synthetic posts over the last 180 days by bulk ``executemany`` through the store's own tables and
triggers (search index, rollups), with near-duplicate clusters, labels and guard counts; then starts
``openear serve`` on it, signs in as an analyst with httpx and drives each page with wrk (a Lua script sends the
session cookie and prints the percentiles as JSON). Datasette (``--datasette``, a separate virtualenv: it is not
an openear dependency) serves the same file; its canned query is the overview's volume by category per day over
the last 30 days. Also prints the stored bytes per post, per table with ``dbstat``. ``--profile`` instead times the
queries behind the overview in-process (where a recomputed overview spends its time).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAYS = 180
SOURCES = (  # name, kind, share of posts
    ("reddit-couriers", "social", 0.30),
    ("mastodon-gig", "social", 0.15),
    ("bluesky-gig", "social", 0.20),
    ("forum-drivers", "social", 0.15),
    ("appstore-reviews", "social", 0.12),
    ("news-es", "news", 0.04),
    ("news-en", "news", 0.04),
)
CATEGORIES = (  # primary category, weight (None: uncategorised)
    ("pay_tips", 22),
    ("app_issue", 18),
    ("scheduling_offers", 12),
    ("delivery_operations", 11),
    ("account_status", 9),
    ("support", 8),
    ("safety", 5),
    ("working_conditions", 5),
    ("media_coverage", 3),
    ("other", 3),
    (None, 4),
)
SENTIMENTS = (("negative", 50), ("neutral", 35), ("positive", 15))
TOPICAL = {
    "pay_tips": ["pay", "tips", "tip", "paid", "rate", "propinas", "pago"],
    "app_issue": ["app", "crash", "update", "login", "gps", "error"],
    "scheduling_offers": ["blocks", "offers", "shift", "schedule"],
    "delivery_operations": ["route", "station", "packages", "address"],
    "account_status": ["deactivated", "rating", "account"],
    "support": ["support", "ticket", "chat", "agent"],
    "safety": ["dog", "unsafe", "accident", "heat"],
    "working_conditions": ["hours", "breaks", "tired"],
}
POST_COLS = (
    "source",
    "external_id",
    "platform",
    "kind",
    "visibility",
    "created_at",
    "text",
    "title",
    "url",
    "author_pseudonym",
    "lang",
    "country",
    "sentiment",
    "category",
    "content_hash",
    "cluster_id",
    "minhash",
    "run_id",
    "stored_at",
    "updated_at",
)
LUA = """
local cookie = os.getenv("OE_COOKIE")
if cookie and cookie ~= "" then wrk.headers["Cookie"] = cookie end
local statuses = {}
response = function(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
done = function(summary, latency, requests)
  local bad = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format('WRKJSON {"requests": %d, "seconds": %.3f, "socket_errors": %d, "non2xx": %d, '
    .. '"p50": %.3f, "p95": %.3f, "p99": %.3f, "max": %.3f}\\n', summary.requests, summary.duration / 1e6, bad,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""
# Every request a different period start (a microsecond apart), so no two requests share cached figures.
COLD_LUA = LUA + """
local counter = 0
local pattern = os.getenv("OE_COLD_PATH")
request = function()
  counter = counter + 1
  return wrk.format(nil, string.format(pattern, counter % 1000000))
end
"""


# -- the store --------------------------------------------------------------------------------------------------
def _weighted(rnd: random.Random, items: tuple[tuple[Any, float], ...], k: int) -> list[Any]:
    return rnd.choices([i[0] for i in items], weights=[i[1] for i in items], k=k)


def build(path: Path, n: int, seed: int = 7) -> float:
    """Create the store at ``path`` with ``n`` posts ending now; returns the seconds it took."""
    from openear.store import Store

    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".building")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    store = Store(f"sqlite:///{tmp}")
    store.migrate()
    for name, kind, _ in SOURCES:
        store.declare_source(name, connector="files", visibility="public", kind=kind)
    run_id = store.start_run("benchmark", None)
    store.close()

    rnd = random.Random(seed)
    end = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    start = end - timedelta(days=DAYS)
    # Posts per day grow by half over the period, with quieter weekends; times of day peak in the evening.
    day_w = [(1 + 0.5 * d / DAYS) * (0.7 if (start + timedelta(days=d)).weekday() >= 5 else 1.0) for d in range(DAYS)]
    hour_w = [
        0.3,
        0.2,
        0.15,
        0.1,
        0.1,
        0.2,
        0.4,
        0.7,
        0.9,
        1.0,
        1.0,
        1.0,
        1.1,
        1.0,
        1.0,
        1.0,
        1.1,
        1.2,
        1.4,
        1.6,
        1.7,
        1.5,
        1.0,
        0.6,
    ]
    days = rnd.choices(range(DAYS), weights=day_w, k=n)
    hours = rnd.choices(range(24), weights=hour_w, k=n)
    times = sorted(
        start + timedelta(days=d, hours=h, seconds=rnd.randrange(3600)) for d, h in zip(days, hours, strict=True)
    )
    times = [min(t, end - timedelta(seconds=1)) for t in times]
    src = _weighted(rnd, tuple((s, w) for s, _, w in SOURCES), n)
    kinds = dict((s, k) for s, k, _ in SOURCES)
    cats = _weighted(rnd, CATEGORIES, n)
    sents = _weighted(rnd, SENTIMENTS, n)
    vocab = ["".join(rnd.choice("abcdefghijklmnoprstuvy") for _ in range(rnd.randint(2, 8))) for _ in range(5000)]
    cum = []
    acc = 0.0
    for i in range(len(vocab)):
        acc += 1 / (i + 1)
        cum.append(acc)

    db = sqlite3.connect(tmp)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-200000")
    post_sql = f"INSERT INTO posts ({', '.join(POST_COLS)}) VALUES ({', '.join('?' * len(POST_COLS))})"
    label_sql = "INSERT INTO labels (post_id, name, value, score, enricher) VALUES (?, ?, ?, ?, ?)"
    # Near-duplicates: about 8% of posts repeat a recent post's text (copy-pasta, reposts) in clusters of 2 to ~40.
    cluster_text: dict[int, str] = {}
    recent: list[int] = []
    clusters: dict[int, list[Any]] = {}  # id -> [size, first, last, rep]
    new_clusters: list[tuple[Any, ...]] = []
    now_s = end.isoformat(" ")
    batch: list[tuple[Any, ...]] = []
    labels: list[tuple[Any, ...]] = []
    next_id = 1
    for i in range(n):
        t = times[i]
        cat, sent = cats[i], sents[i]
        if recent and rnd.random() < 0.08:
            cid = recent[int(len(recent) * rnd.random() ** 2)] if rnd.random() < 0.7 else rnd.choice(recent)
            text = cluster_text[cid]
        else:
            words = rnd.choices(vocab, cum_weights=cum, k=rnd.randint(8, 40))
            for w in rnd.sample(TOPICAL.get(cat or "", ["thing"]), k=min(2, len(TOPICAL.get(cat or "", ["x"])))):
                words.insert(rnd.randrange(len(words) + 1), w)
            text = " ".join(words)
            cid = next_id  # its own cluster; later posts may repeat it
            cluster_text[cid] = text
            new_clusters.append((cid, f"c{cid}", t.isoformat(" "), t.isoformat(" "), cid))
            recent.append(cid)
            if len(recent) > 2000:
                del cluster_text[recent.pop(0)]
        pid = next_id
        next_id += 1
        c = clusters.get(cid)
        if c is None:
            clusters[cid] = [1, t, t, pid]
        else:
            c[0] += 1
            c[2] = t
        kind = kinds[src[i]]
        lang = "es" if src[i] == "news-es" or rnd.random() < 0.35 else "en"
        batch.append(
            (
                src[i],
                f"{pid}",
                src[i].split("-")[0],
                kind,
                "public",
                t.isoformat(" "),
                text,
                " ".join(rnd.choices(vocab, k=7)) if kind == "news" else None,
                f"https://example.org/{pid}" if kind == "news" else None,
                f"{rnd.getrandbits(64):016x}",
                lang,
                None,
                sent,
                cat,
                f"{rnd.getrandbits(128):032x}",
                cid,
                rnd.randbytes(512),
                run_id,
                now_s,
                now_s,
            )
        )
        labels.append((pid, "lang", lang, 0.97, "lingua@1"))
        if cat:
            labels.append((pid, "category", cat, 0.8, "taxonomy-rules@1"))
            labels.append((pid, "primary", cat, 0.8, "taxonomy-rules@1"))
        labels.append((pid, "sentiment", sent, 0.7, "sentiment-fast@1"))
        if len(batch) == 20_000 or i == n - 1:
            db.executemany(
                "INSERT INTO clusters (id, key, size, first_seen, last_seen, representative_post_id) "
                "VALUES (?, ?, 1, ?, ?, ?)",
                new_clusters,
            )
            db.executemany(post_sql, batch)
            db.executemany(label_sql, labels)
            db.commit()
            batch.clear()
            labels.clear()
            new_clusters.clear()
    multi = [(v[0], v[1].isoformat(" "), v[2].isoformat(" "), k) for k, v in clusters.items() if v[0] > 1]
    db.executemany("UPDATE clusters SET size = ?, first_seen = ?, last_seen = ? WHERE id = ?", multi)
    days_seen = sorted({t.strftime("%Y-%m-%d") for t in times[:: max(1, n // 5000)]})
    guard = [
        (s, d, a, r, rnd.randint(1, 9))
        for d in days_seen
        for s, _, _ in SOURCES[:3]
        for a, r in (("withheld", "collective_action"), ("rejected", "private"), ("scrubbed", "email"))
    ]
    db.executemany("INSERT INTO guard_counts (source, day, action, reason, n) VALUES (?, ?, ?, ?, ?)", guard)
    db.commit()
    db.execute("INSERT INTO posts_fts(posts_fts) VALUES ('optimize')")
    db.execute("ANALYZE")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    tmp.rename(path)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    (path.parent / f"{path.name}.json").write_text(json.dumps({"posts": n, "end": end.isoformat(), "seed": seed}))
    return time.perf_counter() - t0


def stored_bytes(path: Path) -> tuple[int, int, dict[str, int]]:
    """(file bytes with WAL, posts, {table or index group: bytes}) via dbstat where SQLite has it."""
    size = path.stat().st_size + (Path(f"{path}-wal").stat().st_size if Path(f"{path}-wal").exists() else 0)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    n = db.execute("SELECT count(*) FROM posts").fetchone()[0]
    groups: dict[str, int] = {}
    try:
        owner = {name: tbl for name, tbl in db.execute("SELECT name, tbl_name FROM sqlite_master")}
        for name, pgsize in db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            key = owner.get(name, name)
            key = "posts_fts (search index)" if key.startswith("posts_fts") else key
            groups[key] = groups.get(key, 0) + int(pgsize)
    except sqlite3.OperationalError:  # SQLite built without SQLITE_ENABLE_DBSTAT_VTAB
        pass
    db.close()
    return size, n, groups


# -- where a recomputed overview spends its time ----------------------------------------------------------------
def profile(db: Path, runs: int = 15) -> dict[str, float]:
    """Median milliseconds of each query behind the overview, in this process, for the last 30 days (a period
    start a microsecond earlier each run, as the benchmark's uncached requests send), and of all of them."""
    import statistics

    from openear.store import Store
    from openear.store import queries as q
    from openear.web.pages import _overview_figures

    store = Store(f"sqlite:///{db}")
    now = datetime.now(UTC)
    steps: dict[str, Any] = {
        "clusters_page (top 8 and count)": lambda c, p: q.clusters_page(c, p, 8),
        "period_counts (volume and splits)": q.period_counts,
        "guard_summary": q.guard_summary,
        "all overview figures": _overview_figures,
    }
    out: dict[str, float] = {}
    with store.connect() as conn:
        for name, step in steps.items():
            times = []
            for i in range(runs):
                period = q.Period(now - timedelta(days=30, microseconds=i + 1), now)
                t0 = time.perf_counter()
                step(conn, period)
                times.append((time.perf_counter() - t0) * 1000)
            out[name] = statistics.median(times)
            print(f"  {name:<36} {out[name]:7.1f} ms (median of {runs})")
    store.close()
    return out


# -- serving and loading -----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}: {url}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server did not answer in {timeout:.0f} s: {url}")


def settle(base: str, limit: float = 60.0) -> None:
    """Wait until the server answers ``/healthz`` at once again (its queue of earlier requests is drained)."""
    import httpx

    deadline = time.monotonic() + limit
    fast = 0
    while time.monotonic() < deadline and fast < 3:  # three quick answers in a row: both processes idle
        t0 = time.perf_counter()
        httpx.get(f"{base}/healthz", timeout=limit)
        fast = fast + 1 if time.perf_counter() - t0 < 0.02 else 0
        time.sleep(0.2)


def wrk(url: str, *, cookie: str, connections: int, threads: int, duration: int, script: Path) -> dict[str, Any]:
    """One wrk run; returns its JSON line plus req/s. A URL with ``%06d`` runs the cold script: a new period
    start per request, so the overview's cache never answers."""
    env = {**os.environ, "OE_COOKIE": cookie}
    if "%06d" in url:
        env["OE_COLD_PATH"] = "/" + url.split("://", 1)[1].split("/", 1)[1]
        script = script.with_name("cold.lua")
        url = url.split("?", 1)[0]
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no figures:\n{out.stdout}\n{out.stderr}")
    res = json.loads(line[len("WRKJSON ") :])
    res["rps"] = res["requests"] / res["seconds"] if res["seconds"] else 0.0
    return res


def openear_server(db: Path, work: Path, port: int, workers: int = 1) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env = {**os.environ, "OPENEAR_HOME": str(work / "ws"), "OPENEAR_DATABASE_URL": f"sqlite:///{db}"}
    exe = Path(sys.executable).parent / "openear"
    openear = [str(exe) if exe.exists() else shutil.which("openear") or "openear"]
    subprocess.run([*openear, "init"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*openear, "users", "add", "bench", "--role", "analyst", "--password-stdin"],
        env=env,
        input=b"bench-password-123456\n",
        capture_output=True,
    )  # already there on a rerun: fine
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*openear, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, env


def sign_in(base: str) -> str:
    import httpx

    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
        r = client.post(
            "/login",
            data={"username": "bench", "password": "bench-password-123456", "next": "/"},
            headers={"Origin": base},
        )
        if r.status_code != 303 or not client.cookies:
            raise SystemExit(f"sign-in failed: {r.status_code} {r.text[:200]}")
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def datasette_server(ds: str, db: Path, work: Path, port: int) -> subprocess.Popen[bytes]:
    meta = {
        "databases": {
            db.stem: {
                "queries": {
                    "volume": {
                        "sql": "SELECT strftime('%Y-%m-%d', created_at) AS day, "
                        "coalesce(category, 'uncategorised') AS category, count(*) AS n FROM posts "
                        "WHERE created_at >= :since AND created_at < :until GROUP BY day, category ORDER BY day, "
                        "category"
                    },
                    "volume_rollup": {
                        "sql": "SELECT day, value AS category, sum(n) AS n FROM post_rollups WHERE dim = 'category' "
                        "AND day >= :first AND day <= :last GROUP BY day, value ORDER BY day, value"
                    },
                }
            }
        }
    }
    (work / "datasette.json").write_text(json.dumps(meta))
    log = (work / "datasette.log").open("wb")
    return subprocess.Popen(
        [
            ds,
            "serve",
            str(db),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metadata",
            str(work / "datasette.json"),
            "--setting",
            "sql_time_limit_ms",
            "60000",
            "--setting",
            "num_sql_threads",
            "3",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=1_000_000, help="posts in the store (default 1000000)")
    ap.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("OPENEAR_BENCH_DIR", "/tmp/openear-bench")),
        help="where the store is built and kept between runs",
    )
    ap.add_argument("--duration", type=int, default=20, help="seconds per wrk run (default 20)")
    ap.add_argument(
        "--connections", default="1,50", help="concurrent clients, comma-separated for several runs (default 1,50)"
    )
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument(
        "--workers", type=int, default=1, help="openear serve processes (default 1, as serve's default on SQLite)"
    )
    ap.add_argument(
        "--datasette",
        default=os.environ.get("DATASETTE", "/tmp/dsvenv/bin/datasette"),
        help="the datasette command (its own virtualenv); 'none' to skip the peer",
    )
    ap.add_argument("--rebuild", action="store_true", help="build the store again even if it is cached")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--profile", action="store_true", help="time the queries behind the overview in-process, then stop"
    )
    ap.add_argument(
        "--only",
        default="",
        help="run only the pages whose label contains this text, e.g. 'q=pay' for the search page (default all)",
    )
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    db = args.dir / f"web-{args.posts}.sqlite"
    built = None
    if args.rebuild or not db.exists():
        built = build(db, args.posts)
    info = json.loads((args.dir / f"{db.name}.json").read_text())
    size, n, groups = stored_bytes(db)
    work = Path(tempfile.mkdtemp(prefix="web-", dir=args.dir))
    script = work / "report.lua"
    script.write_text(LUA)
    cold_script = work / "cold.lua"
    cold_script.write_text(COLD_LUA)
    figures: dict[str, Any] = {
        "posts": n,
        "built_s": built,
        "data_end": info["end"],
        "bytes": size,
        "tables": groups,
        "connections": args.connections,
        "workers": args.workers,
        "duration_s": args.duration,
        "runs": {},
    }
    print(
        f"store: {db} ({n:,} posts over {DAYS} days to {info['end']} UTC"
        + (f", built in {built:.0f} s)" if built else ", cached)")
    )
    print(f"stored bytes per post: {size / n:,.0f} B ({size / 2**20:,.0f} MiB file with WAL)")
    for name, b in sorted(groups.items(), key=lambda kv: -kv[1]):
        if b / n >= 1:
            print(f"  {name:<28} {b / n:>8,.0f} B/post")

    load = os.getloadavg()
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    if args.profile:
        print("the overview's queries, last 30 days:")
        profile(db)
        shutil.rmtree(work, ignore_errors=True)
        return
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc, _ = openear_server(db, work, port, args.workers)
    print(f"openear serve --workers {args.workers}")
    ds_proc = None
    try:
        wait_up(f"{base}/healthz", proc)
        cookie = sign_in(base)
        month_ago = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S")
        targets = [
            ("openear GET / (overview, 30 days)", f"{base}/"),
            ("openear GET / (overview, uncached)", f"{base}/?since={month_ago}.%06d"),
            ("openear GET /posts (explorer, newest 25)", f"{base}/posts"),
            ("openear GET /posts?q=pay AND tips", f"{base}/posts?q=pay+AND+tips"),
            ("openear GET /api/v1/aggregates (30 days)", f"{base}/api/v1/aggregates?since=30d"),
        ]
        if args.datasette != "none":
            ds_port = free_port()
            ds_proc = datasette_server(args.datasette, db, work, ds_port)
            ds = f"http://127.0.0.1:{ds_port}"
            wait_up(f"{ds}/-/versions.json", ds_proc)
            until = datetime.now(UTC).replace(tzinfo=None)
            since = until - timedelta(days=30)
            qs = f"since={since.isoformat(' ')}&until={until.isoformat(' ')}".replace(" ", "%20").replace(":", "%3A")
            first = (since.date() + timedelta(days=1)).isoformat()
            targets += [
                ("datasette canned query: GROUP BY posts", f"{ds}/{db.stem}/volume.json?{qs}&_shape=array"),
                (
                    "datasette canned query: post_rollups",
                    f"{ds}/{db.stem}/volume_rollup.json?first={first}&last={until.date().isoformat()}&_shape=array",
                ),
            ]
        import httpx

        targets = [(label, url) for label, url in targets if args.only in label]
        for label, url in targets:
            r = httpx.get(url.replace("%06d", "000000"), headers={"Cookie": cookie}, timeout=120)  # warm up, check
            if r.status_code != 200:
                raise SystemExit(f"{label}: {r.status_code} {r.text[:300]}")
            for conns in [int(c) for c in args.connections.split(",")]:
                res = wrk(
                    url,
                    cookie=cookie,
                    connections=conns,
                    threads=min(args.threads, conns),
                    duration=args.duration,
                    script=script,
                )
                figures["runs"][f"{label} @{conns}"] = res
                settle(base)  # a saturating run leaves requests queued: let them drain before the next one
                print(
                    f"{label:<44} {conns:>3} clients  p50 {res['p50']:7.1f} ms  p95 {res['p95']:7.1f} ms  "
                    f"p99 {res['p99']:7.1f} ms  {res['rps']:6.1f} req/s  ({res['requests']} requests, "
                    f"{res['non2xx']} non-2xx, {res['socket_errors']} socket errors)"
                )
    finally:
        stop(proc)
        if ds_proc is not None:
            stop(ds_proc)
    runs = figures["runs"]
    for conns in [int(c) for c in args.connections.split(",")]:
        ours = runs.get(f"openear GET /api/v1/aggregates (30 days) @{conns}")
        peer = runs.get(f"datasette canned query: GROUP BY posts @{conns}")
        if not (ours and peer):
            continue
        print(f"{conns} clients: ", end="")
        print(
            f"ratio p95 datasette GROUP BY / openear aggregates API: {peer['p95'] / ours['p95']:.1f}x; "
            f"req/s openear / datasette: {ours['rps'] / peer['rps']:.1f}x"
        )
    load = os.getloadavg()
    figures["loadavg"] = load
    print(f"load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
