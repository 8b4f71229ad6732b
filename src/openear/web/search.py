"""Post search for the explorer, the API and exports: the query language (:mod:`openear.query`) plus facets.

Facets (category, sentiment, language, source, kind, day range) narrow the same ``posts`` rows; nothing here
selects, groups or sorts by author (guardrail 5). On SQLite, a query that one FTS5 expression says exactly, with no
facet, is counted by the FTS5 index and, when its matches are frequent, paged by walking at most :data:`WALK_ROWS`
entries of ``ix_posts_created_at`` (:func:`_find_fts`): the same rows, order and total as the general plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Select, and_, func, or_, select

from openear.query import QuerySyntaxError, parse, to_sql
from openear.query.sql import FtsSearch, ensure_functions, fts_search
from openear.store import queries as q
from openear.store.schema import posts

__all__ = ["COLUMNS", "SearchError", "find_posts", "iter_posts", "make_filter"]

MAX_QUERY = 500
WALK_ROWS = 20_000  # the most index entries a newest-first walk reads, unless walking them all costs less than sorting
SORT_ENTRIES = 15  # sorting a match costs about as much as walking this many index entries (2 vs 0.13 µs, 1M posts)
COUNT_ROWS = 2_000  # up to this many FTS5 matches, counting the matching rows costs no more than the index count
COLUMNS = q.LIST_COLUMNS  # what a list or an export of posts carries: never the author pseudonym


class SearchError(ValueError):
    """The query text is not valid; the message says where and why."""


def make_filter(
    *,
    category: str | None = None,
    sentiment: str | None = None,
    lang: str | None = None,
    source: str | None = None,
    kind: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> q.PostFilter:
    """A facet filter; ``until`` is an inclusive day."""

    def day(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=UTC)

    return q.PostFilter(
        category=category or None,
        sentiment=sentiment or None,
        lang=lang or None,
        source=source or None,
        kind=kind or None,
        since=day(since) if since else None,
        until=day(until) + timedelta(days=1) if until and until < date.max else None,
    )


def _condition(conn: Connection, text: str) -> ColumnElement[bool] | None:
    """The query language's WHERE clause, ``None`` for no text."""
    text = text.strip()[:MAX_QUERY]
    if not text:
        return None
    try:
        query = parse(text)
    except QuerySyntaxError as exc:
        raise SearchError(str(exc)) from None
    ensure_functions(conn)
    return to_sql(query, conn.dialect.name)


def _select(conn: Connection, text: str, flt: q.PostFilter, stmt: Select[Any]) -> Select[Any]:
    facets = replace(flt, q=None)
    conds: list[ColumnElement[bool]] = []
    for name in ("category", "sentiment", "lang", "source", "kind"):
        value = getattr(facets, name)
        if value:
            conds.append(posts.c[name] == value)
    if facets.since is not None:
        conds.append(posts.c.created_at >= facets.since.astimezone(UTC).replace(tzinfo=None))
    if facets.until is not None:
        conds.append(posts.c.created_at < facets.until.astimezone(UTC).replace(tzinfo=None))
    cond = _condition(conn, text)
    if cond is not None:
        conds.append(cond)
    return stmt.where(*conds) if conds else stmt


def _row(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    if d.get("created_at") is not None:
        d["created_at"] = d["created_at"].replace(tzinfo=UTC)
    return d


def _fts_search(conn: Connection, text: str, flt: q.PostFilter) -> FtsSearch | None:
    """On SQLite with no facet set, the one-FTS5-expression plan of ``text`` (:func:`openear.query.sql.fts_search`)."""
    text = text.strip()[:MAX_QUERY]
    if conn.dialect.name != "sqlite" or not text or any(getattr(flt, f.name) for f in fields(flt) if f.name != "q"):
        return None
    try:
        return fts_search(parse(text).root)
    except QuerySyntaxError as exc:
        raise SearchError(str(exc)) from None


Step = Literal["walk", "capped walk", "sort"]


@dataclass(frozen=True)
class FtsPlan:
    """How :func:`_find_fts` found a page, in ``steps``: ``"capped walk"`` read ``ix_posts_created_at`` newest first
    down to ``walk_edge`` at most (the :data:`WALK_ROWS`-th entry), ``"walk"`` as far as the page needed, ``"sort"``
    sorted every match."""

    hits: int
    steps: tuple[Step, ...]
    walk_edge: tuple[datetime, int] | None = None


def _walk_edge(conn: Connection) -> tuple[datetime, int] | None:
    """``(created_at, id)`` of the :data:`WALK_ROWS`-th post newest first (read from the index alone), where a walk
    stops; ``None`` when there are fewer posts."""
    stmt = select(posts.c.created_at, posts.c.id).order_by(posts.c.created_at.desc(), posts.c.id.desc())
    row = conn.execute(stmt.limit(1).offset(WALK_ROWS - 1)).first()
    return None if row is None else (row.created_at, row.id)


def _walk_bound(edge: tuple[datetime, int]) -> ColumnElement[bool]:
    """The posts at or newer than ``edge`` in newest-first order: a range of ``ix_posts_created_at`` (``id + 0``:
    never a rowid range instead)."""
    at, pid = edge
    return and_(posts.c.created_at >= at, or_(posts.c.created_at > at, posts.c.id + 0 >= pid))


def _find_fts(
    conn: Connection, found: FtsSearch, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int, FtsPlan]:
    """:func:`find_posts` for one FTS5 expression, and how the page was found. Counted by the index, less the few
    matches ``oe_match`` rejects, when there are more than :data:`COUNT_ROWS` (fewer are read as quickly). The rows
    by walking ``ix_posts_created_at`` newest first when matches are frequent enough to fill the page within
    :data:`WALK_ROWS` index entries (as expected from their share of the posts), else by sorting every match. The
    walk reads at most :data:`WALK_ROWS` entries, unless walking every entry would cost no more than sorting every
    match (:data:`SORT_ENTRIES`): when the matches are frequent but old, it falls short of a full page (the total
    says how many rows the page must have) and every match is sorted after all. At worst, a page costs about the
    cheaper of walking every entry and sorting every match, plus :data:`WALK_ROWS` entries."""
    ensure_functions(conn)
    hits = int(conn.execute(found.hits()).scalar_one())
    if not hits:
        return [], 0, FtsPlan(0, ())
    count = select(func.count()).select_from(posts)
    if hits > COUNT_ROWS:
        total = hits - int(conn.execute(count.where(found.rejected())).scalar_one())
    else:
        total = int(conn.execute(count.where(found.condition())).scalar_one())
    last_id = conn.execute(select(func.max(posts.c.id))).scalar_one() or 0
    order = (posts.c.created_at.desc(), posts.c.id.desc())

    def page(cond: ColumnElement[bool]) -> list[Any]:
        return list(conn.execute(select(*COLUMNS).where(cond).order_by(*order).limit(limit).offset(offset)).all())

    if WALK_ROWS <= 0 or (limit + offset) * last_id > WALK_ROWS * hits:
        return [_row(r) for r in page(found.condition())], total, FtsPlan(hits, ("sort",))
    walk = found.condition(walk=True)
    if hits * SORT_ENTRIES >= last_id:  # walking every entry costs no more than sorting every match: walk freely
        return [_row(r) for r in page(walk)], total, FtsPlan(hits, ("walk",))
    edge = _walk_edge(conn) if last_id > WALK_ROWS else None  # ids start at 1: at most last_id posts
    if edge is None:  # no more posts than the cap
        return [_row(r) for r in page(walk)], total, FtsPlan(hits, ("walk",))
    rows = page(and_(walk, _walk_bound(edge)))
    if len(rows) == max(0, min(limit, total - offset)):  # the page is full, or holds the last match
        return [_row(r) for r in rows], total, FtsPlan(hits, ("capped walk",), edge)
    return [_row(r) for r in page(found.condition())], total, FtsPlan(hits, ("capped walk", "sort"), edge)


def find_posts(
    conn: Connection, text: str, flt: q.PostFilter, limit: int = 25, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Matching posts, newest first, and how many match in all. Raises :class:`SearchError` for bad syntax."""
    limit, offset = max(limit, 0), max(offset, 0)
    found = _fts_search(conn, text, flt)
    if found is not None:
        rows, total, _plan = _find_fts(conn, found, limit, offset)
        return rows, total
    stmt = _select(conn, text, flt, select(*COLUMNS))
    rows = conn.execute(stmt.order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(limit).offset(offset)).all()
    if text.strip():
        total = conn.execute(_select(conn, text, flt, select(func.count()).select_from(posts))).scalar_one()
    else:  # facets only: the rollups answer without counting every row (store.queries.count_posts)
        total = q.count_posts(conn, flt)
    return [_row(r) for r in rows], int(total)


def iter_posts(conn: Connection, text: str, flt: q.PostFilter, limit: int) -> Iterator[dict[str, Any]]:
    """Up to ``limit`` matching posts, newest first, fetched in batches (for exports)."""
    stmt = _select(conn, text, flt, select(*COLUMNS)).order_by(posts.c.created_at.desc(), posts.c.id.desc())
    result = conn.execution_options(yield_per=1000).execute(stmt.limit(limit))
    for row in result:
        yield _row(row)
