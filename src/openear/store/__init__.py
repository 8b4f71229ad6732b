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

from sqlalchemy import Connection, Engine, bindparam, create_engine, event, func, insert, select, text, update
from sqlalchemy.exc import OperationalError

from openear.errors import ConfigError
from openear.models import EnrichedPost, GuardedPost, Rejection, RunStats
from openear.store import schema
from openear.store.schema import clusters, cursors, guard_counts, guard_seen, labels, posts, runs, sources

__all__ = ["BatchResult", "Store", "open_store", "utcnow"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    """Now, as the store keeps times: naive UTC, to the microsecond."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


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
        self.engine: Engine = create_engine(url, **kwargs)
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
        stored = deleted = 0
        unchanged = superseded
        with self.begin() as conn:
            self._write_lock(conn)
            if deletions is not None:
                deleted = self._delete(conn, deletions[0], deletions[1])
            existing = self._existing(conn, batch)
            cluster_ids = self._clusters_for(conn, batch, now)
            new_rows: list[dict[str, Any]] = []
            new_items: list[EnrichedPost] = []
            stored_items: list[EnrichedPost] = []
            left: set[int] = set()
            for item in batch:
                p = item.post
                key = (p.source, p.external_id)
                prior = existing.get(key)
                if prior is not None and prior[1] == item.content_hash:
                    unchanged += 1
                    continue
                row = _post_row(item, run_id, now, cluster_ids.get(item.cluster_key))
                stored += 1
                stored_items.append(item)
                if prior is None:
                    new_rows.append(row)
                    new_items.append(item)
                else:
                    if prior[2] is not None:  # a re-delivery may move the post out of its cluster
                        left.add(prior[2])
                    del row["stored_at"]
                    # An analyst's overrides outlive re-enrichment: keep their labels and the values they set.
                    overrides = dict(conn.execute(
                        select(labels.c.name, labels.c.value).where(
                            labels.c.post_id == prior[0], labels.c.enricher.like("analyst@%")
                        )
                    ).all())
                    if "primary" in overrides:
                        row["category"] = overrides["primary"]
                    if "sentiment" in overrides:
                        row["sentiment"] = overrides["sentiment"]
                    conn.execute(update(posts).where(posts.c.id == prior[0]).values(**row))
                    conn.execute(labels.delete().where(
                        labels.c.post_id == prior[0], labels.c.enricher.not_like("analyst@%")
                    ))
                    self._insert_labels(conn, [(prior[0], item)])
            if new_rows:
                _bulk_insert(conn, posts, new_rows)
                ids = self._ids_for(conn, [(i.post.source, i.post.external_id) for i in new_items])
                self._insert_labels(conn, [(ids[(i.post.source, i.post.external_id)], i) for i in new_items])
            self._refresh_clusters(conn, left | {cluster_ids[i.cluster_key] for i in batch if i.cluster_key})
            counts: dict[tuple[str, str, str, str], int] = {}
            for r in self._unseen(conn, rejections):
                k = (r.source, r.day, r.action, r.reason)
                counts[k] = counts.get(k, 0) + 1
            for item in stored_items:
                day = item.post.created_at.strftime("%Y-%m-%d")
                for kind in item.post.scrubbed:
                    k = (item.post.source, day, "scrubbed", kind)
                    counts[k] = counts.get(k, 0) + 1
            self._add_guard_counts(conn, counts)
            if cursor is not None:
                self._save_cursor(conn, cursor[0], cursor[1], now)
        return BatchResult(stored=stored, unchanged=unchanged, deleted=deleted)

    def _write_lock(self, conn: Connection) -> None:
        """On PostgreSQL, one batch writer at a time until the transaction ends (SQLite has one writer anyway).

        Upserts read, then insert: two writers racing on the same post, cluster key or guard count would otherwise
        collide on a unique key. Enrichment runs outside this lock, so parallel workers still scale.
        """
        if self.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7007)"))

    @staticmethod
    def _unseen(conn: Connection, rejections: Iterable[Rejection]) -> list[Rejection]:
        """The rejections not counted before (by item digest); remembers them."""
        fresh: dict[str, Rejection] = {}
        anonymous: list[Rejection] = []
        for r in rejections:
            if r.digest:
                fresh.setdefault(r.digest, r)
            else:
                anonymous.append(r)
        digests = list(fresh)
        for chunk in _chunks(digests, 500):
            for (d,) in conn.execute(select(guard_seen.c.digest).where(guard_seen.c.digest.in_(chunk))):
                fresh.pop(d, None)
        if fresh:
            _bulk_insert(conn, guard_seen, [{"digest": d, "day": r.day} for d, r in fresh.items()])
        return anonymous + list(fresh.values())

    @staticmethod
    def _existing(
        conn: Connection, batch: Sequence[EnrichedPost]
    ) -> dict[tuple[str, str], tuple[int, str, int | None]]:
        """(id, content hash, cluster id) of the batch's posts already stored, by (source, external id)."""
        by_source: dict[str, list[str]] = {}
        for item in batch:
            by_source.setdefault(item.post.source, []).append(item.post.external_id)
        found: dict[tuple[str, str], tuple[int, str, int | None]] = {}
        for source, ids in by_source.items():
            for chunk in _chunks(ids, 500):
                rows = conn.execute(
                    select(posts.c.id, posts.c.external_id, posts.c.content_hash, posts.c.cluster_id).where(
                        posts.c.source == source, posts.c.external_id.in_(chunk)
                    )
                )
                for pid, ext, h, cid in rows:
                    found[(source, ext)] = (pid, h, cid)
        return found

    @staticmethod
    def _ids_for(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        result: dict[tuple[str, str], int] = {}
        by_source: dict[str, list[str]] = {}
        for s, e in keys:
            by_source.setdefault(s, []).append(e)
        for source, ids in by_source.items():
            for chunk in _chunks(ids, 500):
                for pid, ext in conn.execute(
                    select(posts.c.id, posts.c.external_id).where(
                        posts.c.source == source, posts.c.external_id.in_(chunk)
                    )
                ):
                    result[(source, ext)] = pid
        return result

    @staticmethod
    def _insert_labels(conn: Connection, items: list[tuple[int, EnrichedPost]]) -> None:
        rows = [
            {"post_id": pid, "name": lb.name, "value": lb.value, "score": lb.score, "enricher": lb.enricher}
            for pid, item in items
            for lb in item.labels
        ]
        if rows:
            _bulk_insert(conn, labels, rows)

    @staticmethod
    def _clusters_for(conn: Connection, batch: Sequence[EnrichedPost], now: datetime) -> dict[str | None, int]:
        keys = sorted({i.cluster_key for i in batch if i.cluster_key})
        ids: dict[str | None, int] = {}
        for chunk in _chunks(keys, 500):
            for cid, key in conn.execute(select(clusters.c.id, clusters.c.key).where(clusters.c.key.in_(chunk))):
                ids[key] = cid
        missing = [k for k in keys if k not in ids]
        if missing:
            rows = [{"key": k, "size": 0, "first_seen": now, "last_seen": now} for k in missing]
            _bulk_insert(conn, clusters, rows)
            for chunk in _chunks(missing, 500):
                for cid, key in conn.execute(
                    select(clusters.c.id, clusters.c.key).where(clusters.c.key.in_(chunk))
                ):
                    ids[key] = cid
        return ids

    @staticmethod
    def _refresh_clusters(conn: Connection, ids: set[int]) -> None:
        """Recompute size, first/last post time and representative of the clusters a write touched; one left
        without posts gets size 0 (its row stays: cases may link it). The overview relies on these being exact
        (``queries.clusters_page``)."""
        for chunk in _chunks(sorted(ids), 500):
            stats = conn.execute(
                select(
                    posts.c.cluster_id,
                    func.count(),
                    func.min(posts.c.created_at),
                    func.max(posts.c.created_at),
                    func.min(posts.c.id),
                )
                .where(posts.c.cluster_id.in_(chunk))
                .group_by(posts.c.cluster_id)
            ).all()
            if stats:
                conn.execute(
                    update(clusters)
                    .where(clusters.c.id == bindparam("cid"))
                    .values(size=bindparam("n"), first_seen=bindparam("first"), last_seen=bindparam("last"),
                            representative_post_id=bindparam("rep")),
                    [{"cid": cid, "n": n, "first": f, "last": la, "rep": rep} for cid, n, f, la, rep in stats],
                )
            emptied = set(chunk) - {row[0] for row in stats}
            if emptied:
                conn.execute(update(clusters).where(clusters.c.id.in_(sorted(emptied))).values(size=0))

    def _add_guard_counts(self, conn: Connection, counts: dict[tuple[str, str, str, str], int]) -> None:
        for (source, day, action, reason), n in sorted(counts.items()):
            where = (
                (guard_counts.c.source == source)
                & (guard_counts.c.day == day)
                & (guard_counts.c.action == action)
                & (guard_counts.c.reason == reason)
            )
            done = conn.execute(update(guard_counts).where(where).values(n=guard_counts.c.n + n)).rowcount
            if not done:
                conn.execute(insert(guard_counts).values(source=source, day=day, action=action, reason=reason, n=n))

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

    def purge(self, before: datetime, *, dry_run: bool = False) -> dict[str, int]:
        """Delete posts created before ``before`` with their labels, index entries and emptied clusters.

        Also forgets the guard's item digests from before then. Aggregate guard counts are kept: they name no
        post. Returns what was (or, with ``dry_run``, would be) deleted.
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
            if dry_run:
                return {"posts": int(n_posts), "guard_digests": int(n_seen)}
            old_ids = select(posts.c.id).where(posts.c.created_at < cutoff).scalar_subquery()
            conn.execute(labels.delete().where(labels.c.post_id.in_(old_ids)))
            conn.execute(posts.delete().where(posts.c.created_at < cutoff))
            conn.execute(guard_seen.delete().where(guard_seen.c.day < day))
            self._refresh_clusters(conn, touched)
            live = select(posts.c.cluster_id).where(posts.c.cluster_id.is_not(None)).distinct()
            n_clusters = conn.execute(clusters.delete().where(clusters.c.id.not_in(live))).rowcount
        return {"posts": int(n_posts), "guard_digests": int(n_seen), "clusters": int(n_clusters)}

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
            rows = conn.execute(select(posts.c.id, posts.c.cluster_id).where(where)).all()
            if not rows:
                continue
            touched.update(c for _, c in rows if c is not None)
            conn.execute(labels.delete().where(labels.c.post_id.in_([pid for pid, _ in rows])))
            deleted += conn.execute(posts.delete().where(where)).rowcount
        if touched:
            self._refresh_clusters(conn, touched)
            live = select(posts.c.cluster_id).where(posts.c.cluster_id.in_(sorted(touched))).distinct()
            conn.execute(clusters.delete().where(clusters.c.id.in_(sorted(touched)), clusters.c.id.not_in(live)))
        return deleted
    # ---- end live sources --------------------------------------------------------------------------------------

def _post_row(item: EnrichedPost, run_id: int, now: datetime, cluster_id: int | None) -> dict[str, Any]:
    p = item.post
    return {
        "source": p.source,
        "external_id": p.external_id,
        "platform": p.platform,
        "kind": p.kind,
        "visibility": p.visibility,
        "created_at": to_naive_utc(p.created_at),
        "text": p.text,
        "title": p.title,
        "url": p.url,
        "author_pseudonym": p.author_pseudonym,
        "lang": item.lang,
        "country": p.country,
        "sentiment": item.sentiment,
        "category": item.category,
        "content_hash": item.content_hash,
        "cluster_id": cluster_id,
        "minhash": item.minhash,
        "run_id": run_id,
        "stored_at": now,
        "updated_at": now,
    }


def _bulk_insert(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in the connection's transaction: ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

    On PostgreSQL, psycopg's executemany sends one ``INSERT`` per row, each firing the search index's statement
    trigger once; ``COPY ... FROM STDIN`` sends them all in one statement (the trigger runs once, over all rows).
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    cols = list(rows[0])
    if any(len(r) != len(cols) for r in rows):  # uneven rows: let SQLAlchemy fill in the defaults
        conn.execute(insert(table), rows)
        return
    names = ", ".join(f'"{c}"' for c in cols)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:  # type: ignore[union-attr]
        for r in rows:
            copy.write_row([r[c] for c in cols])


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


def open_store(url: str, *, migrate: bool = False) -> Store:
    store = Store(url)
    if migrate:
        store.migrate()
    else:
        store.check_ready()
    return store
