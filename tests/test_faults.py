"""Faults (issue 7): SIGKILL on PostgreSQL, sources that hang or flood, the database restarting, a full disk.

Sources are real HTTP servers on 127.0.0.1 (the sequence-numbered Mastodon timeline of ``test_collector``, a
socket that accepts and never answers, an endless response); databases are real: the session's PostgreSQL, a
private PostgreSQL instance this module starts (and restarts) itself, and SQLite on a 2 MiB tmpfs.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from openear.collector import Collector, SourceResult, source_statuses
from openear.connectors.http import MAX_RESPONSE_BYTES
from openear.settings import SourceSpec
from openear.store import Store
from openear.workspace import init_workspace
from test_collector import (
    SeqSource,
    _QuietServer,
    assert_exactly_once,
    cli,
    crash_run,
    seq_options,
    seq_source,
    write_sources,
)


# -- (a) the crash test on PostgreSQL ---------------------------------------------------------------------------
@pytest.mark.timeout(900)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_sigkill_at_10_random_points_on_postgresql_loses_nothing_and_duplicates_nothing(db_url: str, workspace) -> None:
    total, kills = 20_000, 10
    assert workspace.store.dialect == "postgresql"
    killed_at = crash_run(workspace, total, kills, seed=7)
    print(f"\ncrash test on PostgreSQL: {total} items, {kills} SIGKILLs; stored after each kill: {killed_at}")
    assert_exactly_once(workspace, total, kills, killed_at)


# -- (b) a source that hangs, one that floods ------------------------------------------------------------------
class HangingSource:
    """Accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.closed = True
        self.sock.close()
        for c in self.held:
            c.close()


class FloodingSource:
    """Answers 200 with an endless chunked body; counts the bytes it managed to send."""

    def __init__(self) -> None:
        self.sent = 0
        source = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                chunk = b"[" + b'{"id": "1", "content": "' + b"x" * 65_000 + b'"},' * 1
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    while True:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        source.sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass

        self.httpd = _QuietServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_hanging_and_flooding_sources_do_not_block_the_others_and_are_degraded(workspace) -> None:
    hang, flood, good = HangingSource(), FloodingSource(), SeqSource(60)
    specs = [
        SourceSpec("hang", connector="mastodon", options=seq_options(hang.url, timeout=1, retries=0)),
        SourceSpec("flood", connector="mastodon", options=seq_options(flood.url, timeout=5, retries=0)),
        SourceSpec("good", connector="mastodon", options=seq_options(good.url)),
    ]
    order: list[str] = []

    def on_result(r: SourceResult) -> None:
        order.append(r.source)

    collector = Collector(workspace.settings, workspace.store, specs, on_result=on_result)
    try:
        collector.start()
        deadline = time.monotonic() + 120  # a hang guard, not a timing assertion
        states: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            states = {s["source"]: s for s in source_statuses(workspace.store)}
            if all(states.get(n, {}).get("state") == "degraded" for n in ("hang", "flood")):
                break
            time.sleep(0.2)
        collector.stop()
        assert collector.wait(grace=15)
    finally:
        hang.close()
        flood.close()
        good.close()
    assert states["hang"]["state"] == "degraded" and "timed out" in states["hang"]["last_error"]
    assert states["flood"]["state"] == "degraded" and "response too large" in states["flood"]["last_error"]
    assert states["good"]["state"] == "ok" and order.count("good") >= 2  # it kept its pace meanwhile
    assert collector.totals["good"].stats.stored == 60
    # Memory stayed bounded: each pass read at most the cap (the sender got a little further into socket buffers).
    passes = order.count("flood")
    assert flood.sent <= passes * (MAX_RESPONSE_BYTES + (8 << 20))


# -- (c) the database restarting under load ---------------------------------------------------------------------
class PrivatePostgres:
    """A PostgreSQL instance of this test only: ``initdb`` into a temporary folder, a free port, trust auth."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = bins[-1] if bins else shutil.which("initdb")
        if not initdb:
            pytest.skip("issue 7: the database-restart test needs PostgreSQL's initdb and pg_ctl")
        self.bin = Path(initdb).parent
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
            if shutil.which("runuser") is None:
                pytest.skip("issue 7: running as root without runuser; cannot start a private PostgreSQL")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.dir = Path(tempfile.mkdtemp(prefix="openear-pg-"))
        self.data = self.dir / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        yield pg
    finally:
        pg.close()


def count_seq(url: str) -> tuple[int, set[int]] | None:
    """(posts, ids) of source seq, or None while the database is down."""
    store = Store(url)
    try:
        from sqlalchemy import func, select

        from openear.store.schema import posts

        with store.connect() as conn:
            n = conn.execute(select(func.count()).select_from(posts).where(posts.c.source == "seq")).scalar_one()
            ids = {int(x) for x in conn.execute(select(posts.c.external_id).where(posts.c.source == "seq")).scalars()}
        return n, ids
    except Exception:
        return None
    finally:
        store.close()


@pytest.mark.timeout(600)
def test_the_collector_waits_for_a_restarting_database_and_resumes(
    private_pg: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENEAR_DATABASE_URL", private_pg.url)
    monkeypatch.delenv("OPENEAR_PSEUDONYM_KEY", raising=False)
    home = tmp_path / "ws"
    init_workspace(home)
    total = 3_000
    src = SeqSource(total, delay=0.05)
    write_sources(home, seq_source(src.url, page_size=100, batch_size=100, max_pages=1000))
    restarts = 0
    try:
        proc = cli(home, "collect", "--source", "seq", "--once", "--json")
        for threshold in (600, 1_600):  # restart it twice while the collector is writing
            while proc.poll() is None and ((count_seq(private_pg.url) or (0, set()))[0] < threshold):
                time.sleep(0.1)
            assert proc.poll() is None, "the collector finished before the restart"
            private_pg.stop()
            time.sleep(2)  # the collector meets a closed port for a while
            private_pg.start()
            restarts += 1
        _out, errs = proc.communicate(timeout=500)
    finally:
        src.close()
    assert proc.returncode == 0, errs.decode()[-3000:]
    assert b"database unavailable" in errs  # it waited, said so, and resumed
    n, ids = count_seq(private_pg.url) or (0, set())
    assert restarts == 2 and n == total and ids == set(range(1, total + 1))
    store = Store(private_pg.url)
    assert json.loads(store.get_cursor("seq") or "{}") == {"seq": str(total)}
    store.close()


# -- (d) disk full on SQLite ------------------------------------------------------------------------------------
@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 2 MiB tmpfs (root only); yields its mount point and unmounts it after the test."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("issue 7: the disk-full test mounts a 2 MiB tmpfs, which needs root")
    point = Path(tempfile.mkdtemp(prefix="openear-small-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(point)], capture_output=True)
    if done.returncode != 0:
        point.rmdir()
        pytest.skip(f"issue 7: cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
        shutil.rmtree(point, ignore_errors=True)


@pytest.mark.timeout(600)
def test_a_full_disk_stops_the_collector_cleanly_and_a_rerun_resumes(
    small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = small_disk / "openear.sqlite"
    url = f"sqlite:///{db}"
    monkeypatch.setenv("OPENEAR_DATABASE_URL", url)
    monkeypatch.delenv("OPENEAR_PSEUDONYM_KEY", raising=False)
    home = tmp_path / "ws"
    init_workspace(home)
    total = 4_000
    src = SeqSource(total)
    write_sources(home, seq_source(src.url, page_size=200, batch_size=200, max_pages=1000))
    try:
        proc = cli(home, "collect", "--source", "seq", "--once")
        _out, errs = proc.communicate(timeout=500)
        err_text = errs.decode()
        assert proc.returncode == 1, err_text[-3000:]
        assert "disk full" in err_text and "Traceback" not in err_text
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = {int(x) for (x,) in conn.execute("SELECT external_id FROM posts WHERE source = 'seq'")}
            cursor = conn.execute("SELECT value FROM cursors WHERE source = 'seq'").fetchone()
        assert 0 < len(stored) < total and stored == set(range(1, len(stored) + 1))  # whole batches, in order
        assert cursor is not None and int(json.loads(cursor[0])["seq"]) == len(stored)
        # Free space, run again: it goes on from the cursor.
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        proc = cli(home, "collect", "--source", "seq", "--once")
        _out, errs = proc.communicate(timeout=500)
        assert proc.returncode == 0, errs.decode()[-3000:]
    finally:
        src.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = [int(x) for (x,) in conn.execute("SELECT external_id FROM posts WHERE source = 'seq'")]
    assert len(ids) == total and set(ids) == set(range(1, total + 1))
