"""The read side of the store, shared by reports and the web app. Portable SQLAlchemy Core.

Every function takes an open :class:`~sqlalchemy.Connection`. Times go in as UTC datetimes (aware, or naive
UTC) and come out as aware UTC datetimes. Periods are half-open: ``since <= created_at < until``.

Guardrail 5: nothing here groups, filters or sorts by ``author_pseudonym``; only :func:`get_post` (one post)
returns it. The dialect-specific bits (full-text search, day bucketing) live in the small helpers
:func:`day_bucket` and :func:`fts_condition`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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
    case,
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

from openear.store.schema import clusters, guard_counts, labels, posts, sources

__all__ = [
    "EXCERPT_CHARS",
    "GUARD_ACTIONS",
    "UNCATEGORISED",
    "UNKNOWN",
    "Period",
    "PostFilter",
    "category_split",
    "day_bucket",
    "fts_condition",
    "fts_match_string",
    "get_post",
    "guard_summary",
    "language_split",
    "list_sources",
    "media_coverage",
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
    def parse_since(cls, spec: str, now: datetime | None = None) -> Period:
        """``"30d"``, ``"12h"``, ``"2w"`` back from ``now``, or from an ISO date/time (``"2026-01-01"``)."""
        end = _utc(now) if now is not None else datetime.now(UTC)
        m = _RELATIVE.match(spec)
        if m:
            amount = int(m.group(1))
            if amount <= 0:
                raise ValueError(f"since: {spec!r}: must be a positive amount")
            return cls(end - timedelta(**{_UNITS[m.group(2).lower()]: amount}), end)
        try:
            start = datetime.fromisoformat(spec.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"since: {spec!r}: expected e.g. 30d, 12h, 2w or 2026-01-01") from None
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


def _split(conn: Connection, col: Any, period: Period, default: str) -> dict[str, int]:
    key = func.coalesce(col, default)
    n = func.count()
    rows = conn.execute(select(key, n).where(_in_period(period)).group_by(key).order_by(n.desc(), key)).all()
    return {str(k): int(v) for k, v in rows}


# -- aggregates --------------------------------------------------------------------------------------------
def totals(conn: Connection, period: Period) -> dict[str, int]:
    """Posts (news, social), clusters of 2+ posts, sources with posts and the guard's counts in the period."""
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((posts.c.kind == "news", 1), else_=0)), 0),
            func.coalesce(func.sum(case((posts.c.kind == "social", 1), else_=0)), 0),
            func.count(func.distinct(posts.c.source)),
        ).where(_in_period(period))
    ).one()
    sized = (
        select(posts.c.cluster_id)
        .where(_in_period(period), posts.c.cluster_id.is_not(None))
        .group_by(posts.c.cluster_id)
        .having(func.count() >= 2)
        .subquery()
    )
    n_clusters = conn.execute(select(func.count()).select_from(sized)).scalar_one()
    guard = dict.fromkeys(GUARD_ACTIONS, 0)
    for action, n in conn.execute(
        select(guard_counts.c.action, func.sum(guard_counts.c.n))
        .where(_guard_in_period(period))
        .group_by(guard_counts.c.action)
    ):
        guard[action] = int(n or 0)
    return {
        "posts": int(row[0]),
        "news": int(row[1]),
        "social": int(row[2]),
        "clusters": int(n_clusters),
        "sources": int(row[3]),
        **guard,
    }


def volume_by_category(conn: Connection, period: Period) -> list[tuple[str, str, int]]:
    """``(day, category, n)`` per UTC day and primary category, ordered by day then category."""
    day = day_bucket(conn, posts.c.created_at)
    cat = func.coalesce(posts.c.category, UNCATEGORISED)
    rows = conn.execute(
        select(day, cat, func.count()).where(_in_period(period)).group_by(day, cat).order_by(day, cat)
    ).all()
    return [(str(d), str(c), int(n)) for d, c, n in rows]


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


def top_clusters(conn: Connection, period: Period, limit: int = 10) -> list[dict[str, Any]]:
    """The largest near-duplicate clusters (2+ posts in the period), largest first.

    Each: ``id``, ``size`` (posts in the period), ``total_size`` (all time), ``first_seen``/``last_seen`` (in
    the period), ``category`` and ``sentiment`` (most common in the period), ``post_id`` and ``excerpt`` (the
    cluster's earliest post in the period, at most 280 characters; already scrubbed by the guard).
    """
    size = func.count().label("size")
    last = func.max(posts.c.created_at).label("last_seen")
    rows = conn.execute(
        select(
            posts.c.cluster_id,
            size,
            func.min(posts.c.created_at).label("first_seen"),
            last,
            func.min(posts.c.id).label("rep"),
        )
        .where(_in_period(period), posts.c.cluster_id.is_not(None))
        .group_by(posts.c.cluster_id)
        .having(func.count() >= 2)
        .order_by(size.desc(), last.desc(), posts.c.cluster_id)
        .limit(limit)
    ).all()
    if not rows:
        return []
    ids = [r.cluster_id for r in rows]
    cats = _majority(conn, ids, posts.c.category, period, UNCATEGORISED)
    sents = _majority(conn, ids, posts.c.sentiment, period, UNKNOWN)
    reps = {
        r.id: r
        for r in conn.execute(
            select(posts.c.id, posts.c.text, posts.c.title).where(posts.c.id.in_([r.rep for r in rows]))
        )
    }
    all_sizes = dict(conn.execute(select(clusters.c.id, clusters.c.size).where(clusters.c.id.in_(ids))).all())
    out = []
    for r in rows:
        rep = reps[r.rep]
        out.append(
            {
                "id": int(r.cluster_id),
                "size": int(r.size),
                "total_size": int(all_sizes.get(r.cluster_id) or r.size),
                "first_seen": _aware(r.first_seen),
                "last_seen": _aware(r.last_seen),
                "category": cats.get(r.cluster_id, UNCATEGORISED),
                "sentiment": sents.get(r.cluster_id, UNKNOWN),
                "post_id": int(r.rep),
                "excerpt": _excerpt(rep.text or rep.title),
            }
        )
    return out


def media_coverage(conn: Connection, period: Period, limit: int = 50) -> list[dict[str, Any]]:
    """News items in the period, newest first: ``id, title, url, source, created_at, category, lang,
    excerpt``."""
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
        .where(_in_period(period), posts.c.kind == "news")
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
    counts = select(posts.c.source, func.count().label("n")).group_by(posts.c.source).subquery("post_counts")
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
