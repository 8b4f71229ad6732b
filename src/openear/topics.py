"""Emerging topics: themes among the recent posts that no category explains, which the window before did not have.

:func:`emerging_topics` (the daily job; ``openear topics``) takes the posts of the last ``window_days`` days up to
``day`` that are uncategorised, fell back to ``other``, or whose primary category is not confident, counts each
near-duplicate group once, finds themes with tf-idf and NMF (scikit-learn), and keeps those whose posts are at least
``growth`` times as many as the same theme's in the window before. Each topic has its top terms and the ids of 3
representative posts; they are stored in ``topics`` (ids only: the text is read from ``posts`` when shown, so the
purge and deletions at the source reach it). Nothing here reads, groups or selects by author.

:func:`latest_topics` (dashboard) and :func:`topics_for_report` (reports) return plain dicts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from openear.alerts import PLACEHOLDERS, STOPWORDS
from openear.store import Store, utcnow
from openear.store.schema import labels, posts, store_meta, topics
from openear.textmatch import fold

__all__ = ["Topic", "emerging_topics", "latest_topics", "parse_day", "topics_for_day", "topics_for_report"]

WINDOW_DAYS = 7
MIN_POSTS = 5
GROWTH = 3.0
MAX_TOPICS = 10
MIN_CONFIDENCE = 0.5
MAX_DOCS = 20_000  # per window, newest first
REPRESENTATIVES = 3
EXCERPT = 280
_URLS = re.compile(r"https?://\S+|www\.\S+")
_TOKEN = r"(?u)\b[^\W\d_]{3,}\b"
# Words that carry no theme, beyond the alerts' short list: without them, posts that merely share "anyone else",
# "something", "alguien" or "otra vez" were reported as an emerging topic. Folded like the texts (no accents).
_FILLER = (
    "anyone anybody anything anyway someone somebody something everyone everybody everything nobody nothing "
    "else every each either neither another others both such same own here where which whom whose these those "
    "much many more most less least few several may might must shall could would should does did doing done "
    "being been having yet ever never always often sometimes maybe perhaps quite rather really actually "
    "though although because while until unless whether upon onto over under above below after before "
    "through during without within around again once twice well back away off still lol yeah okay guys "
    "alguien algun alguna alguno algunos algunas nadie ninguno ninguna otro otra otros otras cada vez veces "
    "pues tambien tampoco mismo misma solo aun ahora antes despues siempre nunca entonces aunque mientras "
    "donde quien cual cuales cuanto cuanta tan tanto tanta ese esos esas aquel aquella unos unas nuestro "
    "nuestra vuestro suyo tuyo mio estos estas eres somos sois estan estas estaba estamos haber hemos habia "
    "tener tenia tiene sido siendo vamos voy va"
)
_FUNCTION_WORDS = frozenset(fold(w) for w in _FILLER.split())
_STOP = sorted(
    STOPWORDS
    | PLACEHOLDERS
    | {
        "http",
        "https",
        "amp",
        "also",
        "like",
        "really",
        "said",
        "says",
        "the",
        "and",
        "los",
        "las",
        "una",
        "uno",
        "este",
        "esta",
        "est",
        "estoy",
        "ser",
        "hoy",
        "aqui",
        "alli",
        "ahi",
        "algo",
        "todo",
        "nada",
        "mucho",
        "muy",
        "tiene",
        "tengo",
        "tienen",
        "hacer",
        "puede",
        "pueden",
        "fue",
        "era",
        "del",
        "sus",
        "les",
        "nos",
        "mis",
    }
    | _FUNCTION_WORDS
)


@dataclass(frozen=True)
class Topic:
    """One emerging theme of a day."""

    rank: int
    terms: list[str]
    n_posts: int  # near-duplicate groups in the window
    n_previous: int  # in the window before, scaled to the same length
    score: float  # (n_posts + 1) / (n_previous + 1)
    post_ids: list[int]


def parse_day(value: date | datetime | str | None) -> date:
    """A day from a date, a datetime (its UTC day) or ``YYYY-MM-DD``; ``None``: today (UTC)."""
    if value is None:
        return datetime.now(UTC).date()
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"day: {value!r}: expected a date such as 2026-11-29") from None


def _unexplained(
    conn: Connection, start: datetime, end: datetime, fallback: str, min_confidence: float
) -> list[tuple[int, str, int | None]]:
    """(id, text, near-duplicate group) of the posts in [start, end) that no category explains, newest first."""
    weak = select(labels.c.post_id).where(
        labels.c.name == "primary", labels.c.score < min_confidence, labels.c.enricher.not_like("analyst@%")
    )
    analyst = select(labels.c.post_id).where(labels.c.name == "primary", labels.c.enricher.like("analyst@%"))
    q = (
        select(posts.c.id, posts.c.title, posts.c.text, posts.c.cluster_id)
        .where(
            and_(posts.c.created_at >= start, posts.c.created_at < end),
            or_(posts.c.category.is_(None), posts.c.category == fallback, posts.c.id.in_(weak)),
            posts.c.id.not_in(analyst),
        )
        .order_by(posts.c.created_at.desc(), posts.c.id.desc())
        .limit(MAX_DOCS)
    )
    seen: set[int] = set()
    out = []
    for pid, title, text, cluster in conn.execute(q):
        if cluster is not None:
            if cluster in seen:
                continue  # a near-duplicate (copy-pasta, reposts) counts once
            seen.add(cluster)
        out.append((int(pid), f"{title}. {text}" if title else text, cluster))
    return out


def _prepare(text: str) -> str:
    return fold(_URLS.sub(" ", text))


def find_topics(
    current: list[str],
    previous: list[str],
    *,
    min_posts: int = MIN_POSTS,
    growth: float = GROWTH,
    max_topics: int = MAX_TOPICS,
) -> list[tuple[list[str], int, int, float, list[int]]]:
    """Themes of ``current`` that ``previous`` lacks: (terms, n current, n previous, score, member indexes by
    weight). Deterministic."""
    from sklearn.decomposition import NMF
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    if len(current) < min_posts:
        return []
    vec = TfidfVectorizer(
        token_pattern=_TOKEN,
        ngram_range=(1, 2),
        min_df=2,
        max_df=0.95,
        sublinear_tf=True,
        stop_words=_STOP,
        preprocessor=_prepare,
    )
    try:  # term weights from both windows: a theme that fills the last one keeps its own words
        vec.fit(current + previous)
    except ValueError:  # no term occurs twice
        return []
    x_cur = vec.transform(current)
    if x_cur.shape[1] < 2:
        return []
    x_prev = vec.transform(previous) if previous else None
    k = int(min(max(2, len(current) // (3 * min_posts)), 20, x_cur.shape[0], x_cur.shape[1]))
    nmf = NMF(n_components=k, init="nndsvda", random_state=0, max_iter=400)
    w = nmf.fit_transform(x_cur)
    terms = np.asarray(vec.get_feature_names_out())
    assigned = w.argmax(axis=1)
    has = w.max(axis=1) > 1e-9
    x_cur_n = normalize(x_cur)
    x_prev_n = normalize(x_prev) if x_prev is not None else None
    found = []
    for t in range(k):
        members = np.flatnonzero((assigned == t) & has)
        if len(members) < min_posts:
            continue
        centroid = np.asarray(x_cur_n[members].mean(axis=0)).ravel()
        norm = np.linalg.norm(centroid)
        if norm == 0:
            continue
        centroid /= norm
        sims = np.asarray(x_cur_n[members] @ centroid).ravel()
        bar = float(np.quantile(sims, 0.25))  # as close as the members' lower quartile
        n_prev = int((np.asarray(x_prev_n @ centroid).ravel() >= bar).sum()) if x_prev_n is not None else 0
        n_cur = len(members)
        score = (n_cur + 1) / (n_prev + 1)
        if score < growth:
            continue
        order = np.argsort(-nmf.components_[t], kind="stable")
        top = [str(terms[i]) for i in order[:8] if nmf.components_[t][i] > 0]
        by_weight = members[np.argsort(-w[members, t], kind="stable")]
        found.append((top[:6], n_cur, n_prev, round(score, 2), [int(i) for i in by_weight]))
    found.sort(key=lambda f: (-f[3] * f[1], f[0]))
    return found[:max_topics]


def emerging_topics(
    store: Store,
    day: date | datetime | str | None = None,
    *,
    window_days: int = WINDOW_DAYS,
    min_posts: int = MIN_POSTS,
    growth: float = GROWTH,
    max_topics: int = MAX_TOPICS,
    min_confidence: float = MIN_CONFIDENCE,
    fallback: str = "other",
    save: bool = True,
) -> list[Topic]:
    """The emerging topics of the ``window_days`` days ending with ``day`` (default today, UTC); stored for that day
    (replacing an earlier run's) unless ``save`` is false."""
    if window_days < 1:
        raise ValueError("window_days: must be at least 1")
    last = parse_day(day)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time())
    start = end - timedelta(days=window_days)
    before = start - timedelta(days=window_days)
    with store.connect() as conn:
        cur = _unexplained(conn, start, end, fallback, min_confidence)
        prev = _unexplained(conn, before, start, fallback, min_confidence)
    found = find_topics(
        [t for _, t, _ in cur], [t for _, t, _ in prev], min_posts=min_posts, growth=growth, max_topics=max_topics
    )
    result = [
        Topic(rank, terms, n, p, score, [cur[i][0] for i in members[:REPRESENTATIVES]])
        for rank, (terms, n, p, score, members) in enumerate(found, start=1)
    ]
    if save:
        now = utcnow()
        with store.begin() as conn:
            _mark_checked(conn, last, now)
            conn.execute(delete(topics).where(topics.c.day == last.isoformat()))
            if result:
                conn.execute(
                    insert(topics),
                    [
                        {
                            "day": last.isoformat(),
                            "rank": t.rank,
                            "window_days": window_days,
                            "terms": json.dumps(t.terms),
                            "n_posts": t.n_posts,
                            "n_previous": t.n_previous,
                            "score": t.score,
                            "post_ids": json.dumps(t.post_ids),
                            "created_at": now,
                        }
                        for t in result
                    ],
                )
    return result


CHECKED = "topics_checked_day"  # store_meta: the latest day the job looked for topics, found or not


def _mark_checked(conn: Connection, day: date, now: datetime) -> None:
    """Remember that ``day`` was looked at (the latest such day wins), so that "none found" is told apart from
    "not looked yet"."""
    meta = store_meta
    known = conn.execute(select(meta.c.value).where(meta.c.name == CHECKED)).scalar_one_or_none()
    if known is None:
        conn.execute(insert(meta).values(name=CHECKED, value=day.isoformat(), updated_at=now))
    elif known < day.isoformat():
        conn.execute(update(meta).where(meta.c.name == CHECKED).values(value=day.isoformat(), updated_at=now))


def last_checked(store_or_conn: Store | Connection) -> date | None:
    """The latest day the topics job looked at (:func:`emerging_topics` with ``save``), or ``None``: never."""
    with _conn_of(store_or_conn) as conn:
        value = conn.execute(select(store_meta.c.value).where(store_meta.c.name == CHECKED)).scalar_one_or_none()
    return date.fromisoformat(value) if value else None


# -- reading ------------------------------------------------------------------------------------------------------
def _rows(conn: Connection, day: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(topics).where(topics.c.day == day).order_by(topics.c.rank)).mappings().all()
    ids = sorted({i for r in rows for i in json.loads(r["post_ids"])})
    texts: dict[int, dict[str, Any]] = {}
    if ids:
        for pid, text, title, created, source in conn.execute(
            select(posts.c.id, posts.c.text, posts.c.title, posts.c.created_at, posts.c.source).where(
                posts.c.id.in_(ids)
            )
        ):
            body = f"{title}. {text}" if title else text
            texts[int(pid)] = {
                "id": int(pid),
                "text": body if len(body) <= EXCERPT else body[: EXCERPT - 1] + "…",
                "created_at": created.isoformat(),
                "source": source,
            }
    out = []
    for r in rows:
        out.append(
            {
                "day": r["day"],
                "rank": r["rank"],
                "window_days": r["window_days"],
                "terms": json.loads(r["terms"]),
                "n_posts": r["n_posts"],
                "n_previous": r["n_previous"],
                "score": r["score"],
                "posts": [texts[i] for i in json.loads(r["post_ids"]) if i in texts],
            }
        )  # purged posts vanish
    return out


@contextmanager
def _conn_of(store_or_conn: Store | Connection) -> Iterator[Connection]:
    if isinstance(store_or_conn, Store):
        with store_or_conn.connect() as conn:
            yield conn
    else:
        yield store_or_conn


def topics_for_day(store_or_conn: Store | Connection, day: date | datetime | str) -> list[dict[str, Any]]:
    """The stored topics of ``day`` as plain dicts (terms, counts, representative posts: id, text, created_at)."""
    with _conn_of(store_or_conn) as conn:
        return _rows(conn, parse_day(day).isoformat())


def latest_topics(
    store_or_conn: Store | Connection, *, on_or_before: date | str | None = None, not_before: date | str | None = None
) -> list[dict[str, Any]]:
    """The topics of the latest day that has any (within the bounds given), as plain dicts, for the dashboard."""
    with _conn_of(store_or_conn) as conn:
        q = select(topics.c.day).order_by(topics.c.day.desc()).limit(1)
        if on_or_before is not None:
            q = q.where(topics.c.day <= parse_day(on_or_before).isoformat())
        if not_before is not None:
            q = q.where(topics.c.day >= parse_day(not_before).isoformat())
        day = conn.execute(q).scalar()
        return _rows(conn, day) if day else []


def topics_for_report(conn: Connection, period: Any) -> list[dict[str, Any]]:
    """The latest stored topics of a report's period (its ``first_day``/``last_day``)."""
    return latest_topics(conn, on_or_before=period.last_day, not_before=period.first_day)
