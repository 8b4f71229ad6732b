"""The store: SQLAlchemy Core over ``sqlite:///`` (WAL, one writer) or ``postgresql://``.

Writes are idempotent: posts are upserted by ``(source, external_id)``; a post whose guarded content did not change
is counted as unchanged and left alone. A batch, its labels, its guard counts and its source cursor commit in one
transaction, so a crash between batches loses nothing and duplicates nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, text, update
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError

from openear.errors import ConfigError
from openear.models import EnrichedPost, GuardedPost, Rejection, RunStats
from openear.store import schema
from openear.store.schema import (
    alerts,
    case_clusters,
    case_events,
    case_posts,
    cases,
    clusters,
    cursors,
    deliveries,
    guard_counts,
    guard_seen,
    labels,
    posts,
    report_archive,
    runs,
    sources,
    topics,
)

__all__ = ["BatchResult", "Store", "open_store", "utcnow"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    """Now, as the store keeps times: naive UTC, to the microsecond."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_naive_utc(value: datetime) -> datetime:
    """As the store keeps times: naive UTC (a naive input is taken to be UTC already)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def to_aware_utc(value: datetime) -> datetime:
    """A time as an aware UTC datetime, for output with its offset (a naive input, as the store keeps times, is
    taken to be UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class BatchResult:
    stored: int
    unchanged: int
    deleted: int = 0


class Store:
    """One database. Cheap to create; share one per process."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        elif self.dialect == "postgresql":
            kwargs["pool_pre_ping"] = True  # a server restart costs the pool its connections, not the caller a batch
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:  # a typo in OPENEAR_DATABASE_URL
            raise ConfigError(_bad_url(url, exc)) from None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        from openear.store.queries import AggregateCache

        self.aggregates = AggregateCache()  # the dashboard's figures, until the data changes (queries.data_version)

    # -- schema ---------------------------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        if self.dialect == "sqlite":
            db_path = self.url.split("///", 1)[-1]
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")  # each capability's migration branches from 0001; all are applied

    def revision(self) -> str | None:
        """The applied migration heads, comma-separated, or ``None`` on an empty database."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
        return ",".join(sorted(heads)) or None

    @staticmethod
    def script_heads() -> str:
        """The heads of the shipped migrations: what :meth:`revision` is after :meth:`migrate`."""
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        return ",".join(sorted(ScriptDirectory.from_config(cfg).get_heads()))

    def check_ready(self) -> None:
        """Raise :class:`ConfigError` unless the schema exists."""
        try:
            rev = self.revision()
        except OperationalError as exc:
            raise ConfigError(f"cannot open the database: {exc.orig}") from None
        if rev is None:
            raise ConfigError("the database has no schema; run 'openear init' first")

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    # -- the pseudonym key ----------------------------------------------------------------------------------------
    def key_fingerprint(self) -> str | None:
        """The fingerprint of the key the stored authors were pseudonymised with; ``None`` before the first write."""
        with self.connect() as conn:
            return conn.execute(
                select(schema.store_meta.c.value).where(schema.store_meta.c.name == "pseudonym_key")
            ).scalar_one_or_none()

    def bind_key(self, fingerprint: str, *, replace: bool = False) -> str | None:
        """Record ``fingerprint`` (:func:`openear.guard.key_fingerprint`) as the store's key, or check it against the
        recorded one: :class:`ConfigError` when they differ, unless ``replace`` (``openear key accept``: new posts
        get new pseudonyms on purpose). Returns the fingerprint recorded before (``None``: none yet)."""
        meta = schema.store_meta
        now = datetime.now(UTC).replace(tzinfo=None)
        for _ in range(2):  # a writer that starts at the same moment may record it first: then check against it
            before = self.key_fingerprint()
            if before == fingerprint:
                return before
            if before is not None and not replace:
                raise ConfigError(
                    f"the stored authors were pseudonymised with another key (fingerprint {before}; this "
                    f"workspace's key is {fingerprint}): use that key (the key file of the workspace the database "
                    "came from, or $OPENEAR_PSEUDONYM_KEY), or run 'openear key accept' to give new posts new "
                    "pseudonyms from now on"
                )
            try:
                with self.begin() as conn:
                    if before is None:
                        conn.execute(insert(meta).values(name="pseudonym_key", value=fingerprint, updated_at=now))
                    else:
                        conn.execute(
                            update(meta)
                            .where(meta.c.name == "pseudonym_key")
                            .values(value=fingerprint, updated_at=now)
                        )
                return before
            except IntegrityError:
                continue
        raise ConfigError("the pseudonym key's fingerprint could not be recorded")  # pragma: no cover

    # -- runs and sources -----------------------------------------------------------------------------------
    def declare_source(
        self, name: str, *, connector: str, visibility: str, kind: str, country: str | None = None
    ) -> None:
        if visibility not in ("public", "consented"):
            raise ValueError(f"a source is 'public' or 'consented', not {visibility!r}")
        now = utcnow()
        with self.begin() as conn:
            row = conn.execute(select(sources.c.name).where(sources.c.name == name)).first()
            values = {"connector": connector, "visibility": visibility, "kind": kind, "country": country}
            if row is None:
                conn.execute(insert(sources).values(name=name, first_seen_at=now, **values))
            else:
                conn.execute(update(sources).where(sources.c.name == name).values(**values))

    def start_run(self, kind: str, source: str | None) -> int:
        with self.begin() as conn:
            result = conn.execute(
                insert(runs).values(kind=kind, source=source, started_at=utcnow(), status="running")
            )
            return int(result.inserted_primary_key[0])

    def finish_run(self, run_id: int, stats: RunStats, status: str = "ok") -> None:
        now = utcnow()
        with self.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(finished_at=now, status=status, stats=json.dumps(stats.as_dict()))
            )
            source = conn.execute(select(runs.c.source).where(runs.c.id == run_id)).scalar()
            if source:
                conn.execute(update(sources).where(sources.c.name == source).values(last_run_at=now))

    def get_cursor(self, source: str) -> str | None:
        with self.connect() as conn:
            return conn.execute(select(cursors.c.value).where(cursors.c.source == source)).scalar()

    # -- the write path -------------------------------------------------------------------------------------
    def write_batch(
        self,
        run_id: int,
        batch: Sequence[EnrichedPost],
        *,
        rejections: Iterable[Rejection] = (),
        cursor: tuple[str, str] | None = None,
        deletions: tuple[str, Sequence[str]] | None = None,
    ) -> BatchResult:
        """Upsert a batch of enriched posts, the guard's counts and the source cursor in one transaction.

        Scrubs are counted for posts stored (new or changed) only, and rejections once per item digest, so a
        re-delivered batch changes nothing. ``deletions`` (source, external ids the source deleted) are applied
        first, in the same transaction: a deletion and the cursor that covers it commit together or not at all.

        A batch costs a fixed handful of statements, whatever its size: rows go to the driver as plain tuples
        (:class:`_Raw`), and only the clusters whose posts changed are refreshed (docs/performance.md).
        """
        for item in batch:
            if not isinstance(item, EnrichedPost) or not isinstance(item.post, GuardedPost):
                raise TypeError("the store accepts only GuardedPost (via EnrichedPost) built by openear.guard")
        # The same post twice in one batch (an edit delivered with its original): the last version wins and the
        # earlier ones count as unchanged, as if they had been stored and then replaced in the same instant.
        last = {(i.post.source, i.post.external_id): n for n, i in enumerate(batch)}
        superseded = len(batch) - len(last)
        if superseded:
            batch = [i for n, i in enumerate(batch) if last[(i.post.source, i.post.external_id)] == n]
        now = utcnow()
        deleted = 0
        with self.begin() as conn:
            self._write_lock(conn)
            if deletions is not None:
                deleted = self._delete(conn, deletions[0], deletions[1])
            with _Raw(conn) as raw:
                stored, unchanged = _upsert(raw, run_id, batch, rejections, now)
            if cursor is not None:
                self._save_cursor(conn, cursor[0], cursor[1], now)
        return BatchResult(stored=stored, unchanged=unchanged + superseded, deleted=deleted)

    def _write_lock(self, conn: Connection) -> None:
        """On PostgreSQL, one batch writer at a time until the transaction ends (SQLite has one writer anyway).

        Upserts read, then insert: two writers racing on the same post, cluster key or guard count would otherwise
        collide on a unique key. Enrichment runs outside this lock, so parallel workers still scale.
        """
        if self.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7007)"))

    @staticmethod
    def _save_cursor(conn: Connection, source: str, value: str, now: datetime) -> None:
        done = conn.execute(
            update(cursors).where(cursors.c.source == source).values(value=value, updated_at=now)
        ).rowcount
        if not done:
            conn.execute(insert(cursors).values(source=source, value=value, updated_at=now))

    # -- reads the pipeline needs ---------------------------------------------------------------------------
    def recent_signatures(self, since: datetime) -> Iterator[tuple[str, str, bytes]]:
        """(cluster key, post key, MinHash bytes) of posts created since ``since``, for the deduper."""
        q = (
            select(clusters.c.key, posts.c.source, posts.c.external_id, posts.c.minhash)
            .join(clusters, clusters.c.id == posts.c.cluster_id)
            .where(posts.c.created_at >= to_naive_utc(since), posts.c.minhash.is_not(None))
        )
        with self.connect() as conn:
            for key, src, ext, mh in conn.execute(q):
                yield key, f"{src}\x1f{ext}", bytes(mh)

    def purge(self, before: datetime, *, dry_run: bool = False) -> dict[str, Any]:
        """Delete posts created before ``before`` with their labels, index entries and emptied clusters, and what
        was derived from posts of then (guardrail 6).

        Also forgets the guard's item digests from before then. Aggregate guard counts, the per-day rollups and the
        audit log are kept: they name no post. Derived data that quotes or points at posts goes too: archived
        reports whose period ended by then (rows only: their paths, relative to the archive folder, are returned as
        ``report_paths`` for the caller to delete the files, the store knows no files), cases closed (resolved or
        dismissed) before then with their events and links, alerts on buckets that started before then and are no
        longer open, topics of days before then, and deliveries made before then or about a deleted case, alert or
        report. Open cases and open alerts are work in progress: kept whatever their age, and those from before
        then counted as ``open_cases_kept`` and ``open_alerts_kept``. Returns what was (or, with ``dry_run``, would
        be) deleted; a dry run does not count the clusters.
        """
        cutoff = to_naive_utc(before)
        day = cutoff.strftime("%Y-%m-%d")
        with self.begin() as conn:
            self._write_lock(conn)
            n_posts = conn.execute(
                select(func.count()).select_from(posts).where(posts.c.created_at < cutoff)
            ).scalar_one()
            n_seen = conn.execute(
                select(func.count()).select_from(guard_seen).where(guard_seen.c.day < day)
            ).scalar_one()
            touched = set(
                conn.execute(
                    select(posts.c.cluster_id).where(posts.c.created_at < cutoff, posts.c.cluster_id.is_not(None))
                    .distinct()
                ).scalars()
            )
            derived = _purge_derived(conn, cutoff, day, dry_run=dry_run)
            if dry_run:
                return {"posts": int(n_posts), "guard_digests": int(n_seen), **derived}
            old_ids = select(posts.c.id).where(posts.c.created_at < cutoff).scalar_subquery()
            conn.execute(labels.delete().where(labels.c.post_id.in_(old_ids)))
            conn.execute(posts.delete().where(posts.c.created_at < cutoff))
            conn.execute(guard_seen.delete().where(guard_seen.c.day < day))
            with _Raw(conn) as raw:
                _refresh_clusters(raw, touched)
            live = select(posts.c.cluster_id).where(posts.c.cluster_id.is_not(None)).distinct()
            n_clusters = conn.execute(clusters.delete().where(clusters.c.id.not_in(live))).rowcount
        return {"posts": int(n_posts), "guard_digests": int(n_seen), "clusters": int(n_clusters), **derived}

    def count(self, table: str = "posts") -> int:
        with self.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(schema.metadata.tables[table])).scalar_one())


    # ---- live sources (issue 4): deletions at the source -----------------------------------------------------
    def delete_posts(self, source: str, external_ids: Iterable[str]) -> int:
        """Delete posts of ``source`` that the source deleted or removed, with their labels and index entries.

        Returns how many were deleted; ids not stored are ignored. Clusters left empty are removed.
        """
        ids = sorted(set(external_ids))
        if not ids:
            return 0
        with self.begin() as conn:
            return self._delete(conn, source, ids)

    def _delete(self, conn: Connection, source: str, external_ids: Iterable[str]) -> int:
        """Delete posts of ``source`` by external id inside ``conn``'s transaction; returns how many."""
        ids = sorted(set(external_ids))
        deleted = 0
        touched: set[int] = set()
        for chunk in _chunks(ids, 500):
            where = (posts.c.source == source) & posts.c.external_id.in_(chunk)
            rows = conn.execute(select(posts.c.id, posts.c.cluster_id, posts.c.title, posts.c.text).where(where)).all()
            if not rows:
                continue
            touched.update(r.cluster_id for r in rows if r.cluster_id is not None)
            _retitle_cases(conn, {r.id: (r.title, r.text) for r in rows})
            conn.execute(labels.delete().where(labels.c.post_id.in_([r.id for r in rows])))
            deleted += conn.execute(posts.delete().where(where)).rowcount
        if touched:
            with _Raw(conn) as raw:
                _refresh_clusters(raw, touched)
            live = select(posts.c.cluster_id).where(posts.c.cluster_id.in_(sorted(touched))).distinct()
            conn.execute(clusters.delete().where(clusters.c.id.in_(sorted(touched)), clusters.c.id.not_in(live)))
        return deleted
    # ---- end live sources --------------------------------------------------------------------------------------


# -- the write path's statements ------------------------------------------------------------------------------
POST_COLUMNS = (
    "source", "external_id", "platform", "kind", "visibility", "created_at", "text", "title", "url",
    "author_pseudonym", "lang", "country", "sentiment", "category", "content_hash", "cluster_id", "minhash",
    "run_id", "stored_at", "updated_at",
)
LABEL_COLUMNS = ("post_id", "name", "value", "score", "enricher")
ANALYST = "analyst@%"  # the enricher of an analyst's override: such labels outlive re-enrichment


class _Raw:
    """The write path's statements on the DBAPI cursor of ``conn``, inside its transaction.

    SQLAlchemy's per-row handling of parameters (binding dicts, one processor call per value) cost more than the
    database's own insert: rows go to the driver as tuples instead, and only what the dialect needs converting is
    converted, as SQLAlchemy would (SQLite keeps times as ``YYYY-MM-DD HH:MM:SS.ffffff`` text). Statements are
    written with ``?`` placeholders and no ``%`` literal (PostgreSQL's psycopg takes ``%s``); a list of values is
    matched with ``IN (?, ...)`` on SQLite and ``= ANY(?)`` (one array) on PostgreSQL.
    """

    def __init__(self, conn: Connection) -> None:
        self.pg = conn.dialect.name == "postgresql"
        self.dialect = conn.dialect
        self.driver = conn.connection.driver_connection
        self.cur = self.driver.cursor()  # type: ignore[union-attr]
        to_text = posts.c.created_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        self.dt: Any = to_text or (lambda v: v)
        score = labels.c.score.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        self.score: Any = score or (lambda v: v)

    def __enter__(self) -> _Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cur.close()

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.pg else statement

    def any(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A ``column`` in ``values`` test and its parameters (at most 500 values on SQLite)."""
        if self.pg:
            return f"{column} = ANY(?)", [list(values)]
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    def all(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        self.cur.execute(self.sql(statement), params)
        return self.cur.fetchall()

    def run(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.cur.execute(self.sql(statement), params)

    def many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(self.sql(statement), rows)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows``: ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

        On PostgreSQL, psycopg's executemany sends one ``INSERT`` per row, each firing the search index's (and the
        rollups') statement trigger once; ``COPY ... FROM STDIN`` sends them all in one statement, so the
        triggers run once, over all rows.
        """
        if not rows:
            return
        names = ", ".join(f'"{c}"' for c in columns)
        if not self.pg:
            self.cur.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})', rows)
            return
        with self.cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
            for r in rows:
                copy.write_row(r)

    def pg_array(self, column: Any) -> str:
        """``?::TYPE[]``: a parameter holding an array of ``column``'s values (PostgreSQL's ``unnest``)."""
        return f"?::{column.type.compile(dialect=self.dialect)}[]"


def _upsert(
    raw: _Raw, run_id: int, batch: Sequence[EnrichedPost], rejections: Iterable[Rejection], now: datetime
) -> tuple[int, int]:
    """Write the batch's posts, labels, clusters and guard counts; returns (stored, unchanged)."""
    stored = unchanged = 0
    existing = _existing(raw, batch)
    cluster_ids = _clusters_for(raw, batch, now)
    at = raw.dt(now)
    new_rows: list[tuple[Any, ...]] = []
    new_items: list[EnrichedPost] = []
    changed: list[tuple[int, EnrichedPost, tuple[Any, ...]]] = []
    stored_items: list[EnrichedPost] = []
    touched: set[int] = set()  # the clusters that gain, lose or change a post
    for item in batch:
        p = item.post
        prior = existing.get((p.source, p.external_id))
        if prior is not None and prior[1] == item.content_hash:
            unchanged += 1
            continue
        cid = cluster_ids.get(item.cluster_key)
        row = _post_values(item, run_id, at, raw.dt(to_naive_utc(p.created_at)), cid)
        stored += 1
        stored_items.append(item)
        if cid is not None:
            touched.add(cid)
        if prior is None:
            new_rows.append(row)
            new_items.append(item)
        else:
            if prior[2] is not None:  # a re-delivery may move the post out of its cluster
                touched.add(prior[2])
            changed.append((prior[0], item, row))
    label_items: list[tuple[int, EnrichedPost]] = []
    if changed:
        _update_changed(raw, changed)
        label_items.extend((pid, item) for pid, item, _ in changed)
    if new_rows:
        raw.insert("posts", POST_COLUMNS, new_rows)
        ids = _ids_for(raw, [(i.post.source, i.post.external_id) for i in new_items])
        label_items.extend((ids[(i.post.source, i.post.external_id)], i) for i in new_items)
    _insert_labels(raw, label_items)
    # Unchanged posts kept their clusters, which every write path keeps exact: only the touched ones need it.
    _refresh_clusters(raw, touched)
    counts: dict[tuple[str, str, str, str], int] = {}
    for r in _unseen(raw, rejections):
        k = (r.source, r.day, r.action, r.reason)
        counts[k] = counts.get(k, 0) + 1
    for item in stored_items:
        day = item.post.created_at.strftime("%Y-%m-%d")
        for kind in item.post.scrubbed:
            k = (item.post.source, day, "scrubbed", kind)
            counts[k] = counts.get(k, 0) + 1
    _add_guard_counts(raw, counts)
    return stored, unchanged


def _post_values(
    item: EnrichedPost, run_id: int, now: Any, created_at: Any, cluster_id: int | None
) -> tuple[Any, ...]:
    """A ``posts`` row in :data:`POST_COLUMNS` order (times already converted by :attr:`_Raw.dt`)."""
    p = item.post
    return (
        p.source, p.external_id, p.platform, p.kind, p.visibility, created_at, p.text, p.title, p.url,
        p.author_pseudonym, item.lang, p.country, item.sentiment, item.category, item.content_hash, cluster_id,
        item.minhash, run_id, now, now,
    )


def _existing(raw: _Raw, batch: Sequence[EnrichedPost]) -> dict[tuple[str, str], tuple[int, str, int | None]]:
    """(id, content hash, cluster id) of the batch's posts already stored, by (source, external id)."""
    by_source: dict[str, list[str]] = {}
    for item in batch:
        by_source.setdefault(item.post.source, []).append(item.post.external_id)
    found: dict[tuple[str, str], tuple[int, str, int | None]] = {}
    for source, ids in by_source.items():
        for chunk in _chunks(ids, 500):
            where, params = raw.any("external_id", chunk)
            for pid, ext, h, cid in raw.all(
                f"SELECT id, external_id, content_hash, cluster_id FROM posts WHERE source = ? AND {where}",
                [source, *params],
            ):
                found[(source, ext)] = (pid, h, cid)
    return found


def _ids_for(raw: _Raw, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Post ids by (source, external id)."""
    by_source: dict[str, list[str]] = {}
    for s, e in keys:
        by_source.setdefault(s, []).append(e)
    result: dict[tuple[str, str], int] = {}
    for source, ids in by_source.items():
        for chunk in _chunks(ids, 500):
            where, params = raw.any("external_id", chunk)
            for pid, ext in raw.all(f"SELECT id, external_id FROM posts WHERE source = ? AND {where}",
                                    [source, *params]):
                result[(source, ext)] = pid
    return result


def _clusters_for(raw: _Raw, batch: Sequence[EnrichedPost], now: datetime) -> dict[str | None, int]:
    """The cluster id of each of the batch's cluster keys; a new key gets an empty cluster (size 0) to fill."""
    keys = sorted({i.cluster_key for i in batch if i.cluster_key})
    ids: dict[str | None, int] = {}

    def lookup(some: Sequence[str]) -> None:
        for chunk in _chunks(some, 500):
            where, params = raw.any("key", chunk)
            for cid, key in raw.all(f"SELECT id, key FROM clusters WHERE {where}", params):
                ids[key] = cid

    lookup(keys)
    missing = [k for k in keys if k not in ids]
    if missing:
        at = raw.dt(now)
        raw.insert("clusters", ("key", "size", "first_seen", "last_seen"), [(k, 0, at, at) for k in missing])
        lookup(missing)
    return ids


def _update_changed(raw: _Raw, changed: list[tuple[int, EnrichedPost, tuple[Any, ...]]]) -> None:
    """Update changed posts in place (all columns but ``stored_at``) and drop their machine labels.

    An analyst's overrides outlive re-enrichment: their labels stay and the values they set are kept.
    """
    overrides: dict[int, dict[str, str]] = {}
    pids = [pid for pid, _, _ in changed]
    for chunk in _chunks(pids, 500):
        where, params = raw.any("post_id", chunk)
        for pid, name, value in raw.all(
            f"SELECT post_id, name, value FROM labels WHERE {where} AND enricher LIKE ? ORDER BY id",
            [*params, ANALYST],
        ):
            overrides.setdefault(pid, {})[name] = value
    columns = [c for c in POST_COLUMNS if c != "stored_at"]
    rows: list[list[Any]] = []
    for pid, _, values in changed:
        row = dict(zip(POST_COLUMNS, values, strict=True))
        kept = overrides.get(pid, {})
        if "primary" in kept:
            row["category"] = kept["primary"]
        if "sentiment" in kept:
            row["sentiment"] = kept["sentiment"]
        rows.append([row[c] for c in columns] + [pid])
    if not raw.pg:
        sets = ", ".join(f'"{c}" = ?' for c in columns)
        raw.many(f"UPDATE posts SET {sets} WHERE id = ?", rows)
    else:  # one statement: the search index's and rollups' statement triggers run once
        names = ", ".join(f'"{c}"' for c in columns)
        arrays = ", ".join(raw.pg_array(posts.c[c]) for c in [*columns, "id"])
        assigns = ", ".join(f'"{c}" = v."{c}"' for c in columns)
        raw.run(
            f"UPDATE posts SET {assigns} FROM unnest({arrays}) AS v({names}, id) WHERE posts.id = v.id",
            [list(col) for col in zip(*rows, strict=True)],
        )
    for chunk in _chunks(pids, 500):
        where, params = raw.any("post_id", chunk)
        raw.run(f"DELETE FROM labels WHERE {where} AND enricher NOT LIKE ?", [*params, ANALYST])


def _insert_labels(raw: _Raw, items: list[tuple[int, EnrichedPost]]) -> None:
    score = raw.score
    raw.insert("labels", LABEL_COLUMNS, [
        (pid, lb.name, lb.value, score(lb.score), lb.enricher) for pid, item in items for lb in item.labels
    ])


def _refresh_clusters(raw: _Raw, ids: set[int]) -> None:
    """Recompute size, first/last post time and representative of the clusters a write touched; one left
    without posts gets size 0 (its row stays: cases may link it). The overview relies on these being exact
    (``queries.clusters_page``)."""
    for chunk in _chunks(sorted(ids), 500):
        where, params = raw.any("cluster_id", chunk)
        stats = (
            "SELECT cluster_id, count(*) AS n, min(created_at) AS first_at, max(created_at) AS last_at, "
            f"min(id) AS rep FROM posts WHERE {where} GROUP BY cluster_id"
        )
        if raw.pg:  # in the database: two statements, each firing the data_version trigger once
            raw.run(
                "UPDATE clusters SET size = s.n, first_seen = s.first_at, last_seen = s.last_at, "
                f"representative_post_id = s.rep FROM ({stats}) AS s WHERE clusters.id = s.cluster_id",
                params,
            )
            raw.run(
                f"UPDATE clusters SET size = 0 WHERE {raw.any('id', chunk)[0]} "
                "AND NOT EXISTS (SELECT 1 FROM posts WHERE posts.cluster_id = clusters.id)",
                params,
            )
            continue
        rows = raw.all(stats, params)
        raw.many(
            "UPDATE clusters SET size = ?, first_seen = ?, last_seen = ?, representative_post_id = ? WHERE id = ?",
            [(n, first, last, rep, cid) for cid, n, first, last, rep in rows],
        )
        emptied = sorted(set(chunk) - {r[0] for r in rows})
        if emptied:
            where, params = raw.any("id", emptied)
            raw.run(f"UPDATE clusters SET size = 0 WHERE {where}", params)


def _unseen(raw: _Raw, rejections: Iterable[Rejection]) -> list[Rejection]:
    """The rejections not counted before (by item digest); remembers them."""
    fresh: dict[str, Rejection] = {}
    anonymous: list[Rejection] = []
    for r in rejections:
        if r.digest:
            fresh.setdefault(r.digest, r)
        else:
            anonymous.append(r)
    for chunk in _chunks(list(fresh), 500):
        where, params = raw.any("digest", chunk)
        for (d,) in raw.all(f"SELECT digest FROM guard_seen WHERE {where}", params):
            fresh.pop(d, None)
    raw.insert("guard_seen", ("digest", "day"), [(d, r.day) for d, r in fresh.items()])
    return anonymous + list(fresh.values())


def _add_guard_counts(raw: _Raw, counts: dict[tuple[str, str, str, str], int]) -> None:
    """Add ``counts`` (by source, day, action, reason) to ``guard_counts``: one upsert."""
    if not counts:
        return
    rows = [(*k, n) for k, n in sorted(counts.items())]
    upsert = (
        "ON CONFLICT (source, day, action, reason) DO UPDATE SET n = guard_counts.n + excluded.n"
    )
    if not raw.pg:
        raw.many(f"INSERT INTO guard_counts (source, day, action, reason, n) VALUES (?, ?, ?, ?, ?) {upsert}", rows)
        return
    arrays = ", ".join(raw.pg_array(guard_counts.c[c]) for c in ("source", "day", "action", "reason", "n"))
    raw.run(f"INSERT INTO guard_counts (source, day, action, reason, n) SELECT * FROM unnest({arrays}) {upsert}",
            [list(col) for col in zip(*rows, strict=True)])


def _retitle_cases(conn: Connection, gone: dict[int, tuple[str | None, str | None]]) -> None:
    """Cases titled with the opening words of a post the source deleted (``gone``: id -> title, text) lose them,
    in the case and in its history: the deletion takes the post's words wherever openear copied them."""
    from openear.triage import title_from  # triage builds on the store: imported when needed

    titles = {pid: title_from(title or text) for pid, (title, text) in gone.items()}
    linked = conn.execute(
        select(cases.c.id, cases.c.title, case_posts.c.post_id)
        .join(case_posts, case_posts.c.case_id == cases.c.id)
        .where(case_posts.c.post_id.in_(list(titles)))
    ).all()
    for case_id, title, post_id in linked:
        if title != titles[post_id]:
            continue  # a title a person wrote: theirs to keep
        new = f"Case {case_id} (the post it was titled from was deleted at its source)"
        conn.execute(update(cases).where(cases.c.id == case_id).values(title=new))
        events = conn.execute(
            select(case_events.c.id, case_events.c.detail).where(case_events.c.case_id == case_id)
        ).all()
        for event_id, detail in events:
            values = json.loads(detail or "{}")
            if isinstance(values, dict) and values.get("title") == title:
                values["title"] = new
                conn.execute(update(case_events).where(case_events.c.id == event_id).values(
                    detail=json.dumps(values, ensure_ascii=False)))


CLOSED_CASE_STATUSES = ("resolved", "dismissed")  # triage's statuses other than its OPEN_STATUSES


def _count(conn: Connection, table: Any, *where: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _purge_derived(conn: Connection, cutoff: datetime, day: str, *, dry_run: bool) -> dict[str, Any]:
    """The purge of what was derived from posts created before ``cutoff`` (see :meth:`Store.purge`), inside
    ``conn``'s transaction. Case links and events are deleted here, not left to the foreign keys' cascade."""
    # a period is [since, until): one that ends by the cutoff holds no post the purge keeps
    reports = conn.execute(
        select(report_archive.c.id, report_archive.c.path).where(report_archive.c.period_until <= cutoff)
    ).all()
    case_ids = list(conn.execute(
        select(cases.c.id).where(cases.c.status.in_(CLOSED_CASE_STATUSES), cases.c.closed_at < cutoff)
    ).scalars())
    alert_ids = list(conn.execute(
        select(alerts.c.id).where(alerts.c.bucket_start < cutoff, alerts.c.status != "open")
    ).scalars())
    refs = ([f"report:{i}" for i, _ in reports] + [f"case:{i}" for i in case_ids]
            + [f"alert:{i}" for i in alert_ids])
    old_deliveries = deliveries.c.at < cutoff
    done: dict[str, Any] = {
        "reports": len(reports),
        "cases": len(case_ids),
        "case_events": sum(_count(conn, case_events, case_events.c.case_id.in_(chunk))
                           for chunk in _chunks(case_ids, 500)),
        "alerts": len(alert_ids),
        "topics": _count(conn, topics, topics.c.day < day),
        "deliveries": _count(conn, deliveries, old_deliveries) + sum(
            _count(conn, deliveries, ~old_deliveries, deliveries.c.ref.in_(chunk)) for chunk in _chunks(refs, 500)
        ),
        "open_cases_kept": _count(conn, cases, cases.c.status.not_in(CLOSED_CASE_STATUSES),
                                  cases.c.created_at < cutoff),
        "open_alerts_kept": _count(conn, alerts, alerts.c.status == "open", alerts.c.bucket_start < cutoff),
        "report_paths": sorted(str(path) for _, path in reports),
    }
    if dry_run:
        return done
    for chunk in _chunks(case_ids, 500):
        for link in (case_events, case_posts, case_clusters):
            conn.execute(link.delete().where(link.c.case_id.in_(chunk)))
        conn.execute(update(alerts).where(alerts.c.case_id.in_(chunk)).values(case_id=None))
        conn.execute(cases.delete().where(cases.c.id.in_(chunk)))
    for chunk in _chunks(alert_ids, 500):
        conn.execute(alerts.delete().where(alerts.c.id.in_(chunk)))
    for chunk in _chunks([i for i, _ in reports], 500):
        conn.execute(report_archive.delete().where(report_archive.c.id.in_(chunk)))
    conn.execute(topics.delete().where(topics.c.day < day))
    conn.execute(deliveries.delete().where(old_deliveries))
    for chunk in _chunks(refs, 500):
        conn.execute(deliveries.delete().where(deliveries.c.ref.in_(chunk)))
    return done


def _chunks(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _bad_url(url: str, exc: Exception) -> str:
    """One line naming what is wrong with a database URL (without its password)."""
    from openear.settings import mask_url

    if isinstance(exc, NoSuchModuleError):  # before ArgumentError, its base class
        why = f"unknown database {url.split(':', 1)[0]!r}"
    elif isinstance(exc, ArgumentError):
        why = "not a database URL"
    else:
        why = f"its driver is not installed ({getattr(exc, 'name', None) or exc})"
    return (f"database URL {mask_url(url)!r}: {why}; use postgresql+psycopg://USER@HOST:PORT/DB "
            "(pip install 'openear[postgres]') or sqlite:///PATH")


def open_store(url: str, *, migrate: bool = False) -> Store:
    store = Store(url)
    if migrate:
        store.migrate()
    else:
        store.check_ready()
    return store
