"""Post search for the explorer, the API and exports: the query language (:mod:`openear.query`) plus facets.

Facets (category, sentiment, language, source, kind, day range) narrow the same ``posts`` rows; nothing here
selects, groups or sorts by author (guardrail 5). Without the query package, plain words are searched with
:func:`openear.store.queries.search_posts`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, select

from openear.store import queries as q
from openear.store.schema import posts

__all__ = ["COLUMNS", "SearchError", "find_posts", "iter_posts", "make_filter"]

MAX_QUERY = 500
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
    """The query language's WHERE clause, ``None`` for no text; falls back to plain words without the package."""
    text = text.strip()[:MAX_QUERY]
    if not text:
        return None
    try:
        from openear.query import QuerySyntaxError, parse, to_sql
        from openear.query.sql import ensure_functions
    except ImportError:  # pragma: no cover - the query package is part of openear
        return q.fts_condition(conn, text)
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


def find_posts(
    conn: Connection, text: str, flt: q.PostFilter, limit: int = 25, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Matching posts, newest first, and how many match in all. Raises :class:`SearchError` for bad syntax."""
    stmt = _select(conn, text, flt, select(*COLUMNS))
    rows = conn.execute(
        stmt.order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(max(limit, 0)).offset(max(offset, 0))
    ).all()
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
