"""The collector: runs live sources through the pipeline, once or on their intervals.

:func:`collect_source` does one pass of one source: read its cursor, stream the connector's items through the
pipeline (guard, enrichers, store; the cursor commits with its batch, and so do the deletions the stream reports),
re-check recent posts for deletion (Reddit), and record the source's health in ``source_status``. A source that fails
``DEGRADED_AFTER`` times in a row is marked degraded until a pass succeeds.

:class:`Collector` runs many sources, each in its own thread with its own pipeline, so one failing or hanging
source never blocks the others. :meth:`Collector.stop` (wired to SIGTERM and SIGINT by the CLI) ends every source
cleanly: the stream ends, the batch in hand is flushed with its cursor, and the threads return.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from openear.connectors.base import Connector, Deleted, Item, make_connector
from openear.connectors.http import Stopped
from openear.errors import ConfigError, OpenearError
from openear.models import CursorMark, InvalidItem, RawItem, RunStats
from openear.pipeline import DEFAULT_BATCH, Pipeline
from openear.settings import Settings, SourceSpec
from openear.store import Store, utcnow
from openear.store.schema import posts, source_status

log = logging.getLogger("openear.collector")

DEGRADED_AFTER = 3
RECHECK_WINDOW = timedelta(days=7)
RECHECK_MAX = 500
MAX_BACKOFF_FACTOR = 8
DB_FIRST_WAIT = 0.5  # seconds before the first retry when the database is unavailable, doubling up to DB_MAX_WAIT
DB_MAX_WAIT = 30.0

Progress = Callable[[str, int], None]  # (source name, items just processed)


@dataclass
class SourceResult:
    """What one pass of one source did."""

    source: str
    stats: RunStats = field(default_factory=RunStats)
    deleted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    state: str = "ok"  # ok, failing, degraded
    stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def live_sources(settings: Settings, names: Iterable[str] = ()) -> list[SourceSpec]:
    """The declared live sources (not ``files``), or those named; raises :class:`ConfigError` for an unknown one."""
    names = list(names)
    for n in names:
        spec = settings.source(n)
        if spec is None:
            raise ConfigError(f"source {n!r} is not declared in {settings.config_path}")
        if spec.connector == "files":
            raise ConfigError(f"source {n!r} is a 'files' source; use 'openear import'")
    return [s for s in settings.sources if s.connector != "files" and (not names or s.name in names)]


def _stream(items: Iterator[Item], stop: threading.Event | None,
            result: SourceResult) -> Iterator[RawItem | InvalidItem | CursorMark | Deleted]:
    """The connector's items for the pipeline, ended cleanly when asked to stop."""
    try:
        for item in items:
            yield item
            if stop is not None and stop.is_set():
                result.stopped = True
                return
    except Stopped:
        result.stopped = True


def collect_source(
    settings: Settings,
    store: Store,
    spec: SourceSpec,
    *,
    pipeline: Pipeline | None = None,
    connector: Connector | None = None,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> SourceResult:
    """One pass of one source. Never raises for a source's failure: it is recorded and returned."""
    result = SourceResult(spec.name)
    own = connector is None
    try:
        if connector is None:
            connector = make_connector(spec, env=env, stop=stop)
        if pipeline is None:
            pipeline = Pipeline.for_settings(settings, store, batch_size=_batch_size(spec))
        items = _stream(connector.fetch(store.get_cursor(spec.name)), stop, result)
        report = (lambda n: progress(spec.name, n)) if progress else None

        def count_deleted(n: int) -> None:
            result.deleted += n

        _, result.stats = pipeline.run(spec, items, connector.normalise, kind="collect", progress=report,
                                       on_deleted=count_deleted)
        if not result.stopped:
            gone = list(connector.recheck(_recent_ids(store, spec.name)))
            result.deleted += store.delete_posts(spec.name, gone)
        result.skipped = dict(connector.skipped)
    except Stopped:
        result.stopped = True
        result.skipped = dict(connector.skipped) if connector else {}
    except OpenearError as exc:
        result.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        result.skipped = dict(connector.skipped) if connector else {}
    except (OperationalError, InterfaceError):  # the database's fault, not the source's: Collector waits or stops
        raise
    except Exception as exc:  # a bug in one connector must not stop the others
        log.error("source %s: %s", spec.name, traceback.format_exc())
        result.error = f"internal error: {type(exc).__name__}: {exc}"[:500]
    finally:
        if own and connector is not None:
            connector.close()
    if connector is not None and result.error:
        result.error = connector.client.redact(result.error)
    result.state = record_status(store, result)
    return result


def storage_full(exc: BaseException) -> str | None:
    """A one-line problem if ``exc`` says the database's disk is full (or failing), else ``None``."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    low = text.lower()
    if getattr(orig, "sqlstate", None) == "53100" or "disk is full" in low or "no space left" in low:
        return f"database: disk full ({text[:200]}); free space, then run again: nothing stored is lost"
    if "disk i/o error" in low:
        return f"database: disk I/O error ({text[:200]}); check the disk (full?), then run again"
    return None


def _batch_size(spec: SourceSpec) -> int:
    value = spec.options.get("batch_size", DEFAULT_BATCH)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"source {spec.name!r}: batch_size: must be a whole number >= 1")
    return value


def _recent_ids(store: Store, source: str) -> list[str]:
    since = utcnow() - RECHECK_WINDOW
    q = (select(posts.c.external_id).where(posts.c.source == source, posts.c.created_at >= since)
         .order_by(posts.c.created_at.desc()).limit(RECHECK_MAX))
    with store.connect() as conn:
        return list(conn.execute(q).scalars())


# ------------------------------------------------------------------------------------------------------------
# Health


def record_status(store: Store, result: SourceResult) -> str:
    """Update ``source_status`` after a pass; returns the source's state (ok, failing or degraded)."""
    now = utcnow()
    with store.begin() as conn:
        row = conn.execute(select(source_status).where(source_status.c.source == result.source)).mappings().first()
        failures = 0 if result.ok else (int(row["failures"]) if row else 0) + 1
        state = "ok" if result.ok else ("degraded" if failures >= DEGRADED_AFTER else "failing")
        skipped = json.loads(row["skipped"]) if row and row["skipped"] else {}
        for k, v in result.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
        values: dict[str, Any] = {
            "state": state,
            "failures": failures,
            "last_attempt_at": now,
            "skipped": json.dumps(skipped, sort_keys=True),
            "deleted": (int(row["deleted"]) if row else 0) + result.deleted,
        }
        if result.ok:
            values["last_ok_at"] = now
        else:
            values["last_error"] = result.error
        if row is None:
            conn.execute(insert(source_status).values(source=result.source, **values))
        else:
            conn.execute(update(source_status).where(source_status.c.source == result.source).values(**values))
    return state


def source_statuses(store: Store) -> list[dict[str, Any]]:
    """Every live source's health (for the dashboard): source, state, failures, last_error, times, skipped, deleted."""
    with store.connect() as conn:
        rows = conn.execute(select(source_status).order_by(source_status.c.source)).mappings().all()
    out = []
    for r in rows:
        d = dict(r)
        d["skipped"] = json.loads(d["skipped"]) if d["skipped"] else {}
        out.append(d)
    return out


# ------------------------------------------------------------------------------------------------------------
# Many sources


class Collector:
    """Runs sources, each in its own thread: once (``once=True``) or forever on their intervals until stopped."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        specs: Iterable[SourceSpec],
        *,
        once: bool = False,
        env: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        on_result: Callable[[SourceResult], None] | None = None,
        pipeline_factory: Callable[[int], Pipeline] | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline_factory = pipeline_factory  # batch size -> pipeline (the Ray engine's); default: in-process
        self.fatal: str | None = None  # why every source stopped (the database's disk is full)
        self.store = store
        self.specs = list(specs)
        self.once = once
        self.env = env
        self.progress = progress
        self.on_result = on_result
        self.stop_event = threading.Event()
        self.totals: dict[str, SourceResult] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        for spec in self.specs:  # fail fast on a bad declaration, before any thread starts
            make_connector(spec, env=env).close()
            _batch_size(spec)

    def stop(self) -> None:
        self.stop_event.set()

    def _interval(self, spec: SourceSpec) -> float:
        from openear.connectors.base import parse_interval

        # A streaming (Jetstream) pass ends after max_seconds/max_events or when idle: the next one follows at once.
        default = 1.0 if spec.options.get("jetstream") is True else None
        return parse_interval(spec.options.get("interval", default), f"source {spec.name!r}: interval")

    def _worker(self, spec: SourceSpec) -> None:
        pipeline: Pipeline | None = None
        outages = 0
        while not self.stop_event.is_set():
            try:
                if pipeline is None:
                    try:
                        pipeline = (self.pipeline_factory(_batch_size(spec)) if self.pipeline_factory
                                    else Pipeline.for_settings(self.settings, self.store, batch_size=_batch_size(spec)))
                    except OpenearError as exc:
                        result = SourceResult(spec.name, error=str(exc))
                        result.state = record_status(self.store, result)
                        self._add(result)
                        return
                result = collect_source(self.settings, self.store, spec, pipeline=pipeline, env=self.env,
                                        stop=self.stop_event, progress=self.progress)
                self._add(result)
                if self.once or result.stopped:
                    return
                interval = self._interval(spec)
                if not result.ok:  # back off a failing source: 2, 4, 8 intervals (at most MAX_BACKOFF_FACTOR)
                    failures = max(1, self._failures(spec.name))
                    interval *= min(MAX_BACKOFF_FACTOR, 2 ** min(failures, 3))
                outages = 0
            except (OperationalError, InterfaceError) as exc:
                problem = storage_full(exc)
                if problem is not None:  # waiting will not free the disk: stop every source, say why
                    log.error("source %s: %s; stopping", spec.name, problem)
                    with self._lock:
                        self.fatal = self.fatal or problem
                    self.stop()
                    return
                # The database is down or restarting: nothing of the pass in hand was committed past its last
                # batch, so the next pass resumes from the saved cursor. The pipeline is rebuilt from the store.
                interval = min(DB_MAX_WAIT, DB_FIRST_WAIT * 2**outages)
                outages += 1
                log.warning("source %s: database unavailable (%s); retrying in %.1fs", spec.name,
                            str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200] if str(exc) else "", interval)
                pipeline = None
            self.stop_event.wait(interval)

    def _failures(self, name: str) -> int:
        with self.store.connect() as conn:
            return int(conn.execute(select(source_status.c.failures)
                                    .where(source_status.c.source == name)).scalar() or 0)

    def _add(self, result: SourceResult) -> None:
        with self._lock:
            total = self.totals.setdefault(result.source, SourceResult(result.source))
            _merge(total.stats, result.stats)
            total.deleted += result.deleted
            for k, v in result.skipped.items():
                total.skipped[k] = total.skipped.get(k, 0) + v
            total.error = result.error
            total.state = result.state
        if self.on_result:
            self.on_result(result)

    def start(self) -> None:
        for spec in self.specs:
            t = threading.Thread(target=self._worker, args=(spec,), name=f"collect-{spec.name}", daemon=True)
            t.start()
            self._threads.append(t)

    def wait(self, grace: float = 30.0) -> bool:
        """Wait for the threads; after :meth:`stop`, at most ``grace`` seconds. True if all returned."""
        while any(t.is_alive() for t in self._threads):
            if self.stop_event.is_set():
                for t in self._threads:
                    t.join(grace)
                break
            for t in self._threads:
                t.join(0.2)
        return not any(t.is_alive() for t in self._threads)

    def run(self) -> dict[str, SourceResult]:
        self.start()
        self.wait()
        return self.totals


def _merge(into: RunStats, add: RunStats) -> None:
    for name in ("read", "stored", "unchanged", "withheld", "scrubbed", "invalid", "expired"):
        setattr(into, name, getattr(into, name) + getattr(add, name))
    for k, v in add.rejected.items():
        into.rejected[k] = into.rejected.get(k, 0) + v
    for k, v in add.withheld_by_reason.items():
        into.withheld_by_reason[k] = into.withheld_by_reason.get(k, 0) + v
    into.errors.extend(add.errors[: max(0, 100 - len(into.errors))])
