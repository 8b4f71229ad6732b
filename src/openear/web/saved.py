"""Saved searches: a user's named query text and facet filters. Each user sees and deletes only their own."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from openear.models import KINDS, SENTIMENTS
from openear.query import QuerySyntaxError, parse
from openear.store.schema import saved_searches
from openear.web.search import MAX_QUERY

__all__ = [
    "FILTER_KEYS",
    "MAX_PER_USER",
    "UNTIL_BEFORE_SINCE",
    "check_filters",
    "delete_search",
    "get_search",
    "list_searches",
    "save_search",
]

FILTER_KEYS = ("category", "sentiment", "lang", "source", "kind", "since", "until")
MAX_PER_USER = 100
UNTIL_BEFORE_SINCE = "before since (until is an inclusive last day, since the first day: no post can match)"


def check_filters(filters: dict[str, Any]) -> None:
    """``ValueError`` naming the first facet whose value ``GET /posts`` refuses: a ``since``/``until`` that is not
    a day (YYYY-MM-DD), a ``sentiment`` or ``kind`` outside its values, an ``until`` before ``since`` (a search
    that could never match). Empty values and keys outside :data:`FILTER_KEYS` are not looked at. Shared by the
    API's ``POST /searches`` (a 422) and the dashboard's save form (a 400 page), so both say the same."""
    for key in FILTER_KEYS:
        value = filters.get(key)
        if value in (None, ""):
            continue
        value = str(value)
        if key in ("since", "until"):
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{key}: expected a day as YYYY-MM-DD, not {value[:40]!r}") from None
        known = {"sentiment": SENTIMENTS, "kind": KINDS}.get(key)
        if known and value not in known:
            raise ValueError(f"{key}: {value[:40]!r} is not one of {', '.join(known)}")
    since, until = filters.get("since"), filters.get("until")
    if since and until and date.fromisoformat(str(until)) < date.fromisoformat(str(since)):
        raise ValueError(f"until: {UNTIL_BEFORE_SINCE}")


def _clean(filters: dict[str, Any]) -> dict[str, str]:
    return {k: str(v)[:100] for k, v in filters.items() if k in FILTER_KEYS and v not in (None, "")}


def _out(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    try:
        d["filters"] = _clean(json.loads(d["filters"]))
    except (ValueError, TypeError, AttributeError):
        d["filters"] = {}
    d["created_at"] = d["created_at"].replace(tzinfo=UTC)
    return d


def list_searches(conn: Connection, user_id: int) -> list[dict[str, Any]]:
    """The user's saved searches, by name."""
    rows = conn.execute(
        select(saved_searches.c.id, saved_searches.c.name, saved_searches.c.query, saved_searches.c.filters,
               saved_searches.c.created_at)
        .where(saved_searches.c.user_id == user_id)
        .order_by(saved_searches.c.name, saved_searches.c.id)
    )
    return [_out(r) for r in rows]


def get_search(conn: Connection, user_id: int, search_id: int) -> dict[str, Any] | None:
    """One of the user's saved searches, or ``None`` (also for another user's)."""
    row = conn.execute(
        select(saved_searches.c.id, saved_searches.c.name, saved_searches.c.query, saved_searches.c.filters,
               saved_searches.c.created_at)
        .where(saved_searches.c.id == search_id, saved_searches.c.user_id == user_id)
    ).first()
    return _out(row) if row is not None else None


def save_search(conn: Connection, user_id: int, name: str, query: str, filters: dict[str, Any]) -> int:
    """Save a search; ``ValueError`` for an empty name, a query that cannot be read (the query language's own
    message, as the explorer shows it), a facet :func:`check_filters` refuses (``until`` before ``since``) or too
    many saved searches."""
    name = " ".join(name.split())[:100]
    if not name:
        raise ValueError("Give the search a name.")
    query = query.strip()[:MAX_QUERY]
    if query:
        try:
            parse(query)
        except QuerySyntaxError as exc:
            raise ValueError(f"The search could not be read: {exc}") from None
    check_filters(filters)
    n = conn.execute(select(func.count()).where(saved_searches.c.user_id == user_id)).scalar_one()
    if n >= MAX_PER_USER:
        raise ValueError(f"At most {MAX_PER_USER} saved searches; delete one first.")
    result = conn.execute(
        insert(saved_searches).values(
            user_id=user_id,
            name=name,
            query=query,
            filters=json.dumps(_clean(filters), sort_keys=True),
            created_at=datetime.now(UTC).replace(tzinfo=None),
        )
    )
    return int(result.inserted_primary_key[0])


def delete_search(conn: Connection, user_id: int, search_id: int) -> bool:
    """Delete one of the user's saved searches; False if it is not theirs or not there."""
    result = conn.execute(
        delete(saved_searches).where(saved_searches.c.id == search_id, saved_searches.c.user_id == user_id)
    )
    return bool(result.rowcount)
