"""The read side of the store, shared by reports and the web app. Portable SQLAlchemy Core.

Every function takes an open :class:`~sqlalchemy.Connection`. Times go in as UTC datetimes (aware, or naive
UTC) and come out as aware UTC datetimes. Periods are half-open: ``since <= created_at < until``.

Guardrail 5: nothing here groups, filters or sorts by ``author_pseudonym``; only :func:`get_post` (one post)
returns it. The dialect-specific bits (full-text search, day bucketing) live in the small helpers
:func:`day_bucket` and :func:`fts_condition`.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Select,
    String,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    true,
)

from openear.store.schema import clusters, data_version, guard_counts, labels, post_rollups, posts, sources

__all__ = [
    "EXCERPT_CHARS",
    "GUARD_ACTIONS",
    "UNCATEGORISED",
    "UNKNOWN",
    "AggregateCache",
    "Period",
    "PostFilter",
    "category_split",
    "cluster_count",
    "clusters_page",
    "count_posts",
    "current_data_version",
    "day_bucket",
    "fts_condition",
    "fts_match_string",
    "get_cluster",
    "get_post",
    "guard_summary",
    "language_split",
    "list_sources",
    "media_coverage",
    "period_counts",
    "post_labels",
    "search_posts",
    "sentiment_split",
    "source_split",
    "top_clusters",
    "totals",
    "volume_by_category",
]

EXCERPT_CHARS = 280
UNCATEGORISED = "uncategorised"
UNKNOWN = "unknown"
GUARD_ACTIONS = ("withheld", "rejected", "scrubbed")
MAX_QUERY_WORDS = 32
_RELATIVE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$", re.IGNORECASE)
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)


# -- periods and filters -----------------------------------------------------------------------------------
def _utc(value: datetime) -> datetime:
    """An aware UTC datetime (naive input is taken to be UTC already)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _naive(value: datetime) -> datetime:
    """As the store keeps times: naive UTC."""
    return _utc(value).replace(tzinfo=None)


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


@dataclass(frozen=True)
class Period:
    """A half-open UTC time window ``[since, until)``."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", _utc(self.since))
        object.__setattr__(self, "until", _utc(self.until))
        if self.since >= self.until:
            raise ValueError(f"period: since ({self.since:%Y-%m-%d %H:%M}) must be before until")

    @classmethod
    def parse_since(cls, spec: str, now: datetime | None = None, *, field: str = "since") -> Period:
        """``"30d"``, ``"12h"``, ``"2w"`` back from ``now``, or from an ISO date/time (``"2026-01-01"``).

        A ``ValueError`` names ``field`` (the option or parameter the text came from)."""
        end = _utc(now) if now is not None else datetime.now(UTC)
        m = _RELATIVE.match(spec)
        if m:
            amount = int(m.group(1))
            if amount <= 0:
                raise ValueError(f"{field}: {spec!r}: must be a positive amount")
            try:
                return cls(end - timedelta(**{_UNITS[m.group(2).lower()]: amount}), end)
            except OverflowError:
                raise ValueError(f"{field}: {spec!r}: too far back (before the year 1)") from None
        try:
            start = datetime.fromisoformat(spec.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{field}: {spec!r}: expected e.g. 30d, 12h, 2w or 2026-01-01") from None
        return cls(start, end)

    @property
    def days(self) -> list[str]:
        """Every UTC day (``YYYY-MM-DD``) the period touches, in order."""
        first, last = self.first_day, self.last_day
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]

    @property
    def first_day(self) -> date:
        return self.since.date()

    @property
    def last_day(self) -> date:
        return (self.until - timedelta(microseconds=1)).date()


@dataclass(frozen=True)
class PostFilter:
    """What :func:`search_posts` narrows by. ``q``: plain words, all required, accent/case-insensitive."""

    q: str | None = None
    category: str | None = None
    sentiment: str | None = None
    lang: str | None = None
    source: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None


# -- dialect helpers ---------------------------------------------------------------------------------------
def day_bucket(conn: Connection, col: Any) -> ColumnElement[str]:
    """``YYYY-MM-DD`` of a timestamp column, in SQL, for the connection's dialect."""
    name = conn.dialect.name
    if name == "sqlite":
        return func.strftime("%Y-%m-%d", col)
    if name == "postgresql":
        return func.to_char(col, "YYYY-MM-DD")
    if name in ("mysql", "mariadb"):
        return func.date_format(col, "%Y-%m-%d")
    return func.substr(cast(col, String), 1, 10)  # ISO text


def fts_match_string(q: str | None) -> str | None:
    """A safe FTS5 MATCH string: the words of ``q``, each quoted, ANDed; ``None`` when ``q`` has no words.

    Only letters and digits survive tokenising, so no FTS syntax (quotes, ``AND``, ``NEAR``, ``*``, ``(``) can
    reach the engine as an operator.
    """
    words = _WORDS.findall(q or "")[:MAX_QUERY_WORDS]
    return " ".join(f'"{w}"' for w in words) if words else None


def fts_condition(conn: Connection, q: str | None) -> ColumnElement[bool]:
    """A condition on ``posts``: all words of ``q`` in text or title (always true when there are none)."""
    match = fts_match_string(q)
    if match is None:
        return true()
    name = conn.dialect.name
    if name == "sqlite":
        fts = table("posts_fts", column("rowid"))
        matched = select(fts.c.rowid).where(
            literal_column("posts_fts").op("MATCH")(bindparam("fts_q", match))
        )
        return posts.c.id.in_(matched.scalar_subquery())
    words = _WORDS.findall(q or "")[:MAX_QUERY_WORDS]
    if name == "postgresql":
        return _pg_fts_condition(words)
    return and_(*(or_(posts.c.text.ilike(f"%{w}%"), posts.c.title.ilike(f"%{w}%")) for w in words))


def _pg_fts_condition(words: list[str]) -> ColumnElement[bool]:
    """FTS5's answer on PostgreSQL: each word folded as unicode61 does (``posts_search``, migration 0001), in the
    text or the title of any post; a word that folds into several (``x²y``) is a phrase, as in a quoted FTS5 string.
    """
    from openear.query.sql import PG_SEARCH, _likes, _pg_lexeme, pg_in_search
    from openear.query.text import words as fold_words

    folded = [tuple(fold_words(w)) for w in words]
    folded = [f for f in folded if f]
    if not folded:
        return true()
    conds = [
        or_(*(func.openear_has_phrase(col, _likes(f), type_=Boolean)
              for col in (PG_SEARCH.c.text_words, PG_SEARCH.c.title_words)))
        if len(f) > 1 else or_(literal(f[0], Text) == any_(PG_SEARCH.c.text_words),
                               literal(f[0], Text) == any_(PG_SEARCH.c.title_words))
        for f in folded
    ]
    return pg_in_search(and_(*conds), " & ".join(_pg_lexeme(w) for f in folded for w in f))


def _in_period(period: Period) -> ColumnElement[bool]:
    return and_(posts.c.created_at >= _naive(period.since), posts.c.created_at < _naive(period.until))


def _guard_in_period(period: Period) -> ColumnElement[bool]:
    """Guard counts are per day: the days the period touches."""
    return and_(
        guard_counts.c.day >= period.first_day.isoformat(), guard_counts.c.day <= period.last_day.isoformat()
    )


def _excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    clean = " ".join((text or "").split())
    if len(clean) <= limit:
        return clean
    cut = clean[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip() + "…"


# -- rollups ---------------------------------------------------------------------------------------------
# Aggregates over a period read whole UTC days from ``post_rollups`` (kept by triggers on ``posts``, migration
# 0007_rollups) and group only the posts of the period's partial first and last days.
_DIMENSIONS: dict[str, tuple[Any, str | None]] = {  # rollup dimension -> (posts column, value when NULL)
    "category": (posts.c.category, UNCATEGORISED),
    "sentiment": (posts.c.sentiment, UNKNOWN),
    "lang": (posts.c.lang, UNKNOWN),
    "source": (posts.c.source, None),
    "kind": (posts.c.kind, None),
}
_DAY = timedelta(days=1)


Edge = tuple[datetime, datetime, int]  # a range of posts to count, and +1 (add them) or -1 (subtract them)


def _plan(since: datetime, until: datetime) -> tuple[tuple[str, str] | None, list[Edge]]:
    """Split naive-UTC ``[since, until)`` into days read whole from the rollups (first, last, inclusive; ``None``
    when there are none) and ranges of posts counted from ``posts``, added or subtracted.

    A partial first or last day is either its posts inside the period, added, or the whole day less its posts
    outside the period, subtracted: whichever range is shorter, time after now counting as empty. So the last day of
    a period that ends now ("the last 30 days") costs nothing, and the first at most half a day of posts.
    """
    day0, day_last = datetime.combine(since.date(), time()), datetime.combine(until.date(), time())
    if day0 == day_last:  # within one day
        return None, [(since, until, 1)]
    now = datetime.now(UTC).replace(tzinfo=None)

    def cost(a: datetime, b: datetime) -> timedelta:
        return max(min(b, now) - a, timedelta(0))

    first, last = day0, day_last - _DAY
    edges: list[Edge] = []
    if since > day0:
        if cost(day0, since) < cost(since, day0 + _DAY):
            edges.append((day0, since, -1))
        else:
            first = day0 + _DAY
            edges.append((since, first, 1))
    if until > day_last:
        if cost(until, day_last + _DAY) < cost(day_last, until):
            last = day_last
            edges.append((until, day_last + _DAY, -1))
        else:
            edges.append((day_last, until, 1))
    return ((first.date().isoformat(), last.date().isoformat()) if first <= last else None), edges


def _edge_counts(
    conn: Connection, edges: list[Edge], *keys: Any, where: ColumnElement[bool] | None = None
) -> Iterator[tuple[Any, ...]]:
    """``(day, *keys, n)`` rows of the posts in each range of ``edges`` grouped by ``keys``, ``n`` negated for a
    subtracted range; ``day`` (``YYYY-MM-DD``) is the range's, as each lies within one UTC day."""
    for a, b, sign in edges:
        cond = and_(posts.c.created_at >= a, posts.c.created_at < b)
        if where is not None:
            cond = and_(cond, where)
        for *values, n in conn.execute(select(*keys, func.count()).where(cond).group_by(*keys)):
            yield (a.date().isoformat(), *values, sign * int(n))


def _dim_key(dim: str) -> Any:
    col, default = _DIMENSIONS[dim]
    return col if default is None else func.coalesce(col, default)


def _rollup_where(dim: str, days: tuple[str, str] | None) -> ColumnElement[bool]:
    cond = post_rollups.c.dim == dim
    return cond if days is None else and_(cond, post_rollups.c.day >= days[0], post_rollups.c.day <= days[1])


def _counts(conn: Connection, dim: str, period: Period) -> dict[str, int]:
    """Posts per value of ``dim`` in the period (values with none left out)."""
    days, edges = _plan(_naive(period.since), _naive(period.until))
    out: dict[str, int] = {}
    if days is not None:
        n = func.sum(post_rollups.c.n)
        for k, v in conn.execute(
            select(post_rollups.c.value, n).where(_rollup_where(dim, days)).group_by(post_rollups.c.value)
        ):
            out[str(k)] = out.get(str(k), 0) + int(v)
    for _, k, v in _edge_counts(conn, edges, _dim_key(dim)):
        out[str(k)] = out.get(str(k), 0) + v
    return {k: v for k, v in out.items() if v > 0}


def _split(conn: Connection, col: Any, period: Period, default: str) -> dict[str, int]:
    """Posts per value of ``col`` (``default`` where NULL), largest first, ties by value."""
    counts = _counts(conn, col.name, period)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def period_counts(conn: Connection, period: Period) -> dict[str, Any]:
    """Every rollup figure of the period at once, as the overview shows them: ``volume`` (as
    :func:`volume_by_category`) and, per dimension (``category``, ``sentiment``, ``lang``, ``source``, ``kind``),
    posts per value, largest first (as :func:`category_split` and the other splits).

    One read of the rollups and one grouping of the partial days' posts by all dimensions together
    (``ix_posts_created_dims``), instead of one of each per figure.
    """
    days, edges = _plan(_naive(period.since), _naive(period.until))
    per_dim: dict[str, dict[str, int]] = {dim: {} for dim in _DIMENSIONS}
    volume: dict[tuple[str, str], int] = {}

    def add(dim: str, day: str, value: str, n: int) -> None:
        counts = per_dim[dim]
        counts[value] = counts.get(value, 0) + n
        if dim == "category":
            volume[(day, value)] = volume.get((day, value), 0) + n

    if days is not None:
        for dim, day, value, n in conn.execute(
            select(post_rollups.c.dim, post_rollups.c.day, post_rollups.c.value, post_rollups.c.n).where(
                post_rollups.c.dim.in_(list(_DIMENSIONS)),
                post_rollups.c.day >= days[0],
                post_rollups.c.day <= days[1],
            )
        ):
            add(str(dim), str(day), str(value), int(n))
    keys = [_dim_key(dim) for dim in _DIMENSIONS]
    for day, *values, n in _edge_counts(conn, edges, *keys):
        for dim, value in zip(_DIMENSIONS, values, strict=True):
            add(dim, str(day), str(value), n)
    out: dict[str, Any] = {
        dim: dict(sorted(((k, v) for k, v in counts.items() if v > 0), key=lambda kv: (-kv[1], kv[0])))
        for dim, counts in per_dim.items()
    }
    out["volume"] = [(d, c, n) for (d, c), n in sorted(volume.items()) if n > 0]
    return out


def _cluster_sets(period: Period) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Conditions on ``clusters`` with 2+ posts in all and a post since the period began: (all of its posts in the
    period, some outside it). Both read ``ix_clusters_multi_span`` alone.

    Every write path keeps ``clusters.size``/``first_seen``/``last_seen`` equal to its posts' (``Store``'s
    ``_refresh_clusters``), so a cluster of the first set has exactly ``size`` posts in the period; only the second,
    the few that straddle the period's edges, need their posts grouped.
    """
    since, until = _naive(period.since), _naive(period.until)
    multi = and_(clusters.c.size >= literal_column("2"), clusters.c.last_seen >= since)
    inside = and_(clusters.c.first_seen >= since, clusters.c.last_seen < until)
    return and_(multi, inside), and_(multi, or_(clusters.c.first_seen < since, clusters.c.last_seen >= until))


def _straddling(conn: Connection, period: Period) -> list[Any]:
    """``cluster_id, size, first_seen, last_seen, rep`` of the clusters with posts on both sides of an edge of the
    period and 2+ posts in it, grouped from their posts (``ix_posts_cluster_created``)."""
    straddle = _cluster_sets(period)[1]
    return conn.execute(
        select(
            posts.c.cluster_id,
            func.count().label("size"),
            func.min(posts.c.created_at).label("first_seen"),
            func.max(posts.c.created_at).label("last_seen"),
            func.min(posts.c.id).label("rep"),
        )
        .where(posts.c.cluster_id.in_(select(clusters.c.id).where(straddle).scalar_subquery()), _in_period(period))
        .group_by(posts.c.cluster_id)
        .having(func.count() >= 2)
    ).all()


def count_posts(conn: Connection, flt: PostFilter) -> int:
    """How many posts match the facets of ``flt`` (its ``q`` is ignored): from the rollups when at most one of
    category, sentiment, lang, source and kind is set (the partial days of a period by counting rows),
    otherwise by counting rows."""
    facets = {name: getattr(flt, name) for name in _DIMENSIONS if getattr(flt, name)}
    if len(facets) > 1:
        stmt = _filtered(conn, replace(flt, q=None), select(func.count()).select_from(posts))
        return int(conn.execute(stmt).scalar_one())
    dim, value = next(iter(facets.items())) if facets else ("kind", None)
    lo = _naive(flt.since) if flt.since is not None else None
    hi = _naive(flt.until) if flt.until is not None else None
    days: tuple[str, str] | None = None
    edges: list[Edge] = []
    whole = True  # no period: every day of the rollups
    if lo is not None or hi is not None:
        lo, hi = lo or datetime(1, 1, 2), hi or datetime(9999, 12, 30)
        if lo >= hi:
            return 0
        days, edges = _plan(lo, hi)
        whole = days is not None
    total = 0
    if whole:
        cond = _rollup_where(dim, days)
        if value is not None:
            cond = and_(cond, post_rollups.c.value == value)
        total += int(conn.execute(select(func.coalesce(func.sum(post_rollups.c.n), 0)).where(cond)).scalar_one())
    where = _dim_key(dim) == value if value is not None else None
    total += sum(row[-1] for row in _edge_counts(conn, edges, where=where))
    return total


# -- aggregates --------------------------------------------------------------------------------------------
def totals(
    conn: Connection, period: Period, n_clusters: int | None = None, counts: dict[str, Any] | None = None
) -> dict[str, int]:
    """Posts (news, social), clusters of 2+ posts, sources with posts and the guard's counts in the period.

    ``n_clusters`` and ``counts``: the cluster count and the :func:`period_counts` where the caller has them
    already (see :func:`clusters_page`)."""
    kinds = counts["kind"] if counts is not None else _counts(conn, "kind", period)
    n_sources = len(counts["source"] if counts is not None else _counts(conn, "source", period))
    if n_clusters is None:
        n_clusters = cluster_count(conn, period)
    guard = dict.fromkeys(GUARD_ACTIONS, 0)
    for action, n in conn.execute(
        select(guard_counts.c.action, func.sum(guard_counts.c.n))
        .where(_guard_in_period(period))
        .group_by(guard_counts.c.action)
    ):
        guard[action] = int(n or 0)
    return {
        "posts": sum(kinds.values()),
        "news": kinds.get("news", 0),
        "social": kinds.get("social", 0),
        "clusters": n_clusters,
        "sources": n_sources,
        **guard,
    }


def volume_by_category(conn: Connection, period: Period) -> list[tuple[str, str, int]]:
    """``(day, category, n)`` per UTC day and primary category, ordered by day then category."""
    days, edges = _plan(_naive(period.since), _naive(period.until))
    out: dict[tuple[str, str], int] = {}
    if days is not None:
        for d, c, n in conn.execute(
            select(post_rollups.c.day, post_rollups.c.value, post_rollups.c.n).where(_rollup_where("category", days))
        ):
            out[(str(d), str(c))] = out.get((str(d), str(c)), 0) + int(n)
    for d, c, n in _edge_counts(conn, edges, _dim_key("category")):
        out[(str(d), str(c))] = out.get((str(d), str(c)), 0) + n
    return [(d, c, n) for (d, c), n in sorted(out.items()) if n > 0]


def sentiment_split(conn: Connection, period: Period) -> dict[str, int]:
    """Posts per sentiment (``unknown`` where none), largest first."""
    return _split(conn, posts.c.sentiment, period, UNKNOWN)


def language_split(conn: Connection, period: Period) -> dict[str, int]:
    """Posts per language, largest first."""
    return _split(conn, posts.c.lang, period, UNKNOWN)


def source_split(conn: Connection, period: Period) -> dict[str, int]:
    """Posts per source, largest first."""
    return _split(conn, posts.c.source, period, UNKNOWN)


def category_split(conn: Connection, period: Period) -> dict[str, int]:
    """Posts per primary category, largest first."""
    return _split(conn, posts.c.category, period, UNCATEGORISED)


def _majority(conn: Connection, ids: list[int], col: Any, period: Period, default: str) -> dict[int, str]:
    """The most common value of ``col`` per cluster in the period (ties: alphabetical)."""
    val = func.coalesce(col, default)
    best: dict[int, tuple[int, str]] = {}
    for cid, v, n in conn.execute(
        select(posts.c.cluster_id, val, func.count())
        .where(_in_period(period), posts.c.cluster_id.in_(ids))
        .group_by(posts.c.cluster_id, val)
    ):
        cur = best.get(cid)
        if cur is None or (-n, v) < (-cur[0], cur[1]):
            best[cid] = (int(n), str(v))
    return {cid: v for cid, (_, v) in best.items()}


def top_clusters(conn: Connection, period: Period, limit: int = 10, offset: int = 0) -> list[dict[str, Any]]:
    """The largest near-duplicate clusters (2+ posts in the period), largest first (``offset`` skips as many).

    Each: ``id``, ``size`` (posts in the period), ``total_size`` (all time), ``first_seen``/``last_seen`` (in
    the period), ``category`` and ``sentiment`` (most common in the period), ``post_id`` and ``excerpt`` (the
    cluster's earliest post in the period, at most 280 characters; already scrubbed by the guard).
    """
    return clusters_page(conn, period, limit, offset)[0]


def clusters_page(
    conn: Connection, period: Period, limit: int = 10, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """:func:`top_clusters` and :func:`cluster_count` together: the clusters wholly in the period are ranked and
    counted from ``clusters`` (an index), the ones straddling its edges grouped from their posts (see
    :func:`_cluster_sets`)."""
    inside, _ = _cluster_sets(period)
    straddling = [
        (int(r.cluster_id), int(r.size), r.first_seen, r.last_seen, int(r.rep)) for r in _straddling(conn, period)
    ]
    n_inside = int(conn.execute(select(func.count()).select_from(clusters).where(inside)).scalar_one())
    ranked = conn.execute(
        select(clusters.c.id, clusters.c.size, clusters.c.first_seen, clusters.c.last_seen,
               clusters.c.representative_post_id)
        .where(inside)
        .order_by(clusters.c.size.desc(), clusters.c.last_seen.desc(), clusters.c.id)
        .limit(offset + limit)
    ).all()
    candidates = [(int(i), int(n), f, la, int(rep)) for i, n, f, la, rep in ranked] + straddling
    # Largest first, then the latest last post, then the cluster id (timestamps as text sort like datetimes).
    candidates.sort(key=lambda c: (-c[1], _desc_time(c[3]), c[0]))
    rows = candidates[offset : offset + limit]
    total = n_inside + len(straddling)
    if not rows:
        return [], total
    ids = [r[0] for r in rows]
    cats = _majority(conn, ids, posts.c.category, period, UNCATEGORISED)
    sents = _majority(conn, ids, posts.c.sentiment, period, UNKNOWN)
    rep_ids = [r[4] for r in rows]
    reps = {
        r.id: r for r in conn.execute(select(posts.c.id, posts.c.text, posts.c.title).where(posts.c.id.in_(rep_ids)))
    }
    all_sizes = dict(conn.execute(select(clusters.c.id, clusters.c.size).where(clusters.c.id.in_(ids))).all())
    out = []
    for cid, size, first, last, rep_id in rows:
        rep = reps[rep_id]
        out.append(
            {
                "id": cid,
                "size": size,
                "total_size": int(all_sizes.get(cid) or size),
                "first_seen": _aware(first),
                "last_seen": _aware(last),
                "category": cats.get(cid, UNCATEGORISED),
                "sentiment": sents.get(cid, UNKNOWN),
                "post_id": rep_id,
                "excerpt": _excerpt(rep.text or rep.title),
            }
        )
    return out, total


def _desc_time(value: datetime) -> float:
    """A sort key that orders naive-UTC datetimes latest first."""
    return -_utc(value).timestamp()


def cluster_count(conn: Connection, period: Period) -> int:
    """How many clusters :func:`top_clusters` can list for the period (2+ posts in it)."""
    inside, _ = _cluster_sets(period)
    n_inside = int(conn.execute(select(func.count()).select_from(clusters).where(inside)).scalar_one())
    return n_inside + len(_straddling(conn, period))


def get_cluster(conn: Connection, cluster_id: int) -> dict[str, Any] | None:
    """One cluster over all time: ``id, size, first_seen, last_seen, category, sentiment, post_id, excerpt``
    (the category and sentiment most of its posts have; the earliest post and its excerpt), or ``None``."""
    row = conn.execute(
        select(
            func.count().label("size"),
            func.min(posts.c.created_at).label("first_seen"),
            func.max(posts.c.created_at).label("last_seen"),
            func.min(posts.c.id).label("rep"),
        ).where(posts.c.cluster_id == cluster_id)
    ).first()
    if row is None or not row.size:
        return None
    everything = Period(datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
    rep = conn.execute(select(posts.c.text, posts.c.title).where(posts.c.id == row.rep)).first()
    return {
        "id": cluster_id,
        "size": int(row.size),
        "first_seen": _aware(row.first_seen),
        "last_seen": _aware(row.last_seen),
        "category": _majority(conn, [cluster_id], posts.c.category, everything, UNCATEGORISED).get(
            cluster_id, UNCATEGORISED
        ),
        "sentiment": _majority(conn, [cluster_id], posts.c.sentiment, everything, UNKNOWN).get(cluster_id, UNKNOWN),
        "post_id": int(row.rep),
        "excerpt": _excerpt((rep.text or rep.title) if rep else ""),
    }


def media_coverage(
    conn: Connection, period: Period, limit: int = 50, categories: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """News items in the period (of ``categories`` only, when given), newest first: ``id, title, url, source,
    created_at, category, lang, excerpt``."""
    where = [_in_period(period), posts.c.kind == "news"]
    if categories is not None:
        where.append(posts.c.category.in_(list(categories)))
    rows = conn.execute(
        select(
            posts.c.id,
            posts.c.title,
            posts.c.url,
            posts.c.source,
            posts.c.created_at,
            posts.c.category,
            posts.c.lang,
            posts.c.text,
        )
        .where(*where)
        .order_by(posts.c.created_at.desc(), posts.c.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "id": int(r.id),
            "title": r.title or _excerpt(r.text, 120),
            "url": r.url,
            "source": r.source,
            "created_at": _aware(r.created_at),
            "category": r.category or UNCATEGORISED,
            "lang": r.lang,
            "excerpt": _excerpt(r.text),
        }
        for r in rows
    ]


def guard_summary(conn: Connection, period: Period) -> dict[str, Any]:
    """The guard's counts in the period: ``{action: {reason: n}}`` for withheld, rejected and scrubbed, plus
    ``by_source``: ``[{"source", "withheld", "rejected", "scrubbed"}]`` ordered by source."""
    out: dict[str, Any] = {a: {} for a in GUARD_ACTIONS}
    per_source: dict[str, dict[str, int]] = {}
    total = func.sum(guard_counts.c.n)
    for source, action, reason, n in conn.execute(
        select(guard_counts.c.source, guard_counts.c.action, guard_counts.c.reason, total)
        .where(_guard_in_period(period))
        .group_by(guard_counts.c.source, guard_counts.c.action, guard_counts.c.reason)
        .order_by(guard_counts.c.source, guard_counts.c.action, guard_counts.c.reason)
    ):
        if action not in out:
            continue
        out[action][reason] = out[action].get(reason, 0) + int(n)
        row = per_source.setdefault(source, {"source": source, **dict.fromkeys(GUARD_ACTIONS, 0)})
        row[action] += int(n)
    for action in GUARD_ACTIONS:
        out[action] = dict(sorted(out[action].items(), key=lambda kv: (-kv[1], kv[0])))
    out["by_source"] = list(per_source.values())
    return out


# -- posts -------------------------------------------------------------------------------------------------
LIST_COLUMNS = (  # what a list or an export of posts carries: never the author pseudonym
    posts.c.id,
    posts.c.source,
    posts.c.platform,
    posts.c.kind,
    posts.c.created_at,
    posts.c.title,
    posts.c.text,
    posts.c.url,
    posts.c.lang,
    posts.c.country,
    posts.c.sentiment,
    posts.c.category,
    posts.c.cluster_id,
)


def _post_dict(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    d["created_at"] = _aware(d["created_at"])
    return d


def _filtered(conn: Connection, flt: PostFilter, stmt: Select[Any]) -> Select[Any]:
    conds: list[ColumnElement[bool]] = []
    for name in ("category", "sentiment", "lang", "source", "kind"):
        value = getattr(flt, name)
        if value is not None and value != "":
            conds.append(posts.c[name] == value)
    if flt.since is not None:
        conds.append(posts.c.created_at >= _naive(flt.since))
    if flt.until is not None:
        conds.append(posts.c.created_at < _naive(flt.until))
    if flt.q and fts_match_string(flt.q) is not None:
        conds.append(fts_condition(conn, flt.q))
    return stmt.where(*conds) if conds else stmt


def search_posts(
    conn: Connection, flt: PostFilter, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Posts matching ``flt``, newest first, and how many match in all. A ``q`` with no words is ignored.

    Each post: ``id, source, platform, kind, created_at, title, text, url, lang, country, sentiment, category,
    cluster_id`` (no author pseudonym in lists).
    """
    if limit <= 0:
        return [], _count(conn, flt)
    stmt = _filtered(conn, flt, select(*LIST_COLUMNS))
    rows = conn.execute(
        stmt.order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(limit).offset(max(offset, 0))
    ).all()
    return [_post_dict(r) for r in rows], _count(conn, flt)


def _count(conn: Connection, flt: PostFilter) -> int:
    if not (flt.q and fts_match_string(flt.q) is not None):
        return count_posts(conn, flt)
    return int(conn.execute(_filtered(conn, flt, select(func.count()).select_from(posts))).scalar_one())


def get_post(conn: Connection, post_id: int) -> dict[str, Any] | None:
    """One post with its ``author_pseudonym`` and ``cluster_size``, or ``None``."""
    row = conn.execute(
        select(*LIST_COLUMNS, posts.c.external_id, posts.c.author_pseudonym, posts.c.run_id, clusters.c.size)
        .select_from(posts.outerjoin(clusters, clusters.c.id == posts.c.cluster_id))
        .where(posts.c.id == post_id)
    ).first()
    if row is None:
        return None
    d = _post_dict(row)
    d["cluster_size"] = int(d.pop("size") or 1)
    return d


def post_labels(conn: Connection, post_id: int) -> list[dict[str, Any]]:
    """A post's labels: ``name, value, score, enricher``, by name then score (highest first)."""
    rows = conn.execute(
        select(labels.c.name, labels.c.value, labels.c.score, labels.c.enricher)
        .where(labels.c.post_id == post_id)
        .order_by(labels.c.name, labels.c.score.desc(), labels.c.value)
    ).all()
    return [dict(r._mapping) for r in rows]


def list_sources(conn: Connection) -> list[dict[str, Any]]:
    """Declared sources with their stored post counts: ``name, connector, visibility, kind, country,
    last_run_at, posts``, by name."""
    counts = (
        select(post_rollups.c.value.label("source"), func.sum(post_rollups.c.n).label("n"))
        .where(post_rollups.c.dim == "source")
        .group_by(post_rollups.c.value)
        .subquery("post_counts")
    )
    rows = conn.execute(
        select(
            sources.c.name,
            sources.c.connector,
            sources.c.visibility,
            sources.c.kind,
            sources.c.country,
            sources.c.last_run_at,
            func.coalesce(counts.c.n, 0).label("posts"),
        )
        .select_from(sources.outerjoin(counts, counts.c.source == sources.c.name))
        .order_by(sources.c.name)
    ).all()
    return [{**dict(r._mapping), "last_run_at": _aware(r.last_run_at), "posts": int(r.posts)} for r in rows]


def current_data_version(conn: Connection) -> int:
    """The counter that triggers move on every change to posts, clusters or guard counts (migration 0009)."""
    return int(conn.execute(select(data_version.c.n)).scalar_one_or_none() or 0)


class AggregateCache:
    """A per-process memo of aggregate results, valid while :func:`current_data_version` stands still.

    The version is read on the caller's connection before computing, so a result is never newer-labelled than
    its data: a write that lands meanwhile only causes one extra recomputation. Requests that miss the same key
    at once compute it once: the others wait for that result instead of computing it again side by side. Least
    recently used entries go first beyond ``size``.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}  # one lock per key being computed
        self.hits = self.misses = 0

    def get(self, conn: Connection, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key`` if the data has not changed since it was computed, else ``compute()``."""
        version = current_data_version(conn)
        with self._lock:
            if (value := self._fresh(key, version)) is not _MISSING:
                return value
            flight = self._computing.setdefault(key, threading.Lock())
        with flight:
            with self._lock:  # computed by another request while this one waited?
                if (value := self._fresh(key, version)) is not _MISSING:
                    return value
                self.misses += 1
            try:
                value = compute()
            except BaseException:
                with self._lock:
                    self._computing.pop(key, None)
                raise
            with self._lock:
                self._entries[key] = (version, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
                self._computing.pop(key, None)
        return value

    def _fresh(self, key: Hashable, version: int) -> Any:
        """The entry of ``key`` if computed at ``version`` (counted as a hit), else ``_MISSING``; under the lock."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            return _MISSING
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]


_MISSING = object()
