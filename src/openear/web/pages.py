"""The HTML pages: sign-in, overview, posts (search and one post), transparency and health.

Every view of posts, every search and every report view is written to the audit log. Pages read the store through
:mod:`openear.store.queries` only, which never groups or filters by author (guardrail 5).
"""

from __future__ import annotations

import base64
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select, text

from openear import audit, overrides
from openear.models import KINDS, SENTIMENTS
from openear.store import Store
from openear.store import queries as q
from openear.topics import last_checked, latest_topics
from openear.web import auth, labeling, saved
from openear.web.roles import can, may_access_team_object, requires
from openear.web.search import SearchError, find_posts

__all__ = ["PAGE_SIZE", "POST_READERS", "RANGES", "router"]

router = APIRouter()

PAGE_SIZE = 25
POST_READERS = ("analyst", "admin")  # roles that may read individual posts
RANGES: tuple[tuple[str, str], ...] = (
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("180d", "Last 180 days"),
    ("365d", "Last 12 months"),
)
LOGIN_FAILED = (
    "Sign-in failed. The username or password is incorrect, or the account is locked for a few minutes after "
    "repeated failures."
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SNIPPET_CHARS = 280
_TONES = {"positive": "positive", "neutral": "neutral", "negative": "negative"}


# -- helpers ----------------------------------------------------------------------------------------------------


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def _user(request: Request) -> auth.User:
    user = request.state.user
    if user is None:  # the middleware lets no anonymous request through to a protected page
        raise HTTPException(401)
    return user  # type: ignore[no-any-return]


def _require(request: Request, roles: Iterable[str]) -> auth.User:
    user = _user(request)
    if user.role not in roles:
        raise HTTPException(403)
    return user


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    context.setdefault("user", request.state.user)
    context.setdefault("nav", "")
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status_code)


def _safe_next(target: str | None) -> str:
    """Only local paths: never ``//host`` or ``/\\host`` (open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _cluster_posts_link(cluster_id: int) -> str:
    """The posts page searching ``cluster:ID``: every post of that near-duplicate cluster (roles that read posts)."""
    return "/posts?" + urlencode({"q": f"cluster:{int(cluster_id)}"})


def _snippet(text_: str | None, limit: int = SNIPPET_CHARS) -> str:
    clean = " ".join((text_ or "").split())
    if len(clean) <= limit:
        return clean
    cut = clean[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip() + "…"


@dataclass(frozen=True)
class Bar:
    label: str
    n: int
    pct: int
    width: int
    tone: str


def _bars(split: dict[str, int], tones: dict[str, str] | None = None, limit: int = 8) -> list[Bar]:
    """Rows for a horizontal bar table (widths in whole percent of the largest, for CSS classes)."""
    total = sum(split.values())
    items = sorted(split.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > limit:
        rest = sum(n for _, n in items[limit - 1 :])
        items = [*items[: limit - 1], ("other", rest)]
    top = max((n for _, n in items), default=0)
    return [
        Bar(
            label,
            n,
            round(100 * n / total) if total else 0,
            max(1, round(100 * n / top)) if top and n else 0,
            (tones or {}).get(label, "default"),
        )
        for label, n in items
    ]


def _all_time() -> q.Period:
    return q.Period(EPOCH, datetime.now(UTC) + timedelta(days=1))


def _guard_totals(summary: dict[str, Any]) -> dict[str, Any]:
    """The guard's counts, with each reason in words ("Contact with researchers or journalists"), as reports say."""
    from openear.labels import reason_label

    reasons = [
        (action, reason_label(reason), n)
        for action in ("withheld", "rejected", "scrubbed")
        for reason, n in summary[action].items()
    ]
    return {
        "withheld": sum(summary["withheld"].values()),
        "rejected": sum(summary["rejected"].values()),
        "scrubbed": sum(summary["scrubbed"].values()),
        "reasons": reasons,
    }


def _volume_chart(volume: list[tuple[str, str, int]], period: q.Period) -> tuple[str | None, list[str], list[Any]]:
    """(data-URI SVG chart or None, categories by size, [(day, {category: n})] newest first) for the overview.

    The SVG comes from :mod:`openear.charts` (matplotlib). It carries style attributes, which the CSP forbids
    inline, so the page shows it as an ``<img>`` from a ``data:`` URI.
    """
    if not volume:
        return None, [], []
    from openear import charts

    first = max(period.first_day, date.fromisoformat(min(d for d, _, _ in volume)))
    days = [(first + timedelta(days=i)).isoformat() for i in range((period.last_day - first).days + 1)]
    series = charts.volume_series(volume, days)
    svg = _chart_svg(tuple(days), tuple((c, tuple(v)) for c, v in series.items()))
    uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii") if svg else None
    rows = [(d, {c: v[i] for c, v in series.items() if v[i]}) for i, d in enumerate(days)]
    return uri, list(series), [r for r in reversed(rows) if r[1]]


_CHART_LOCK = threading.Lock()


def _chart_svg(days: tuple[str, ...], series: tuple[tuple[str, tuple[int, ...]], ...]) -> str | None:
    """The volume chart, memoised on its figures: drawing it takes matplotlib 100+ ms, and every viewer of a period
    sees the same figures until the next batch is stored (charts are deterministic: same figures, same bytes).

    One request draws a new chart while the others that want it wait for it (matplotlib draws one at a time anyway):
    without the lock, every request that missed it drew it again, one after another, for seconds.
    """
    with _CHART_LOCK:
        return _draw_chart(days, series)


@lru_cache(maxsize=64)
def _draw_chart(days: tuple[str, ...], series: tuple[tuple[str, tuple[int, ...]], ...]) -> str | None:
    from openear import charts

    return charts.volume_chart(list(days), dict(series))


# -- sign-in ----------------------------------------------------------------------------------------------------


def login_page(
    request: Request, status_code: int = 200, next: str = "/", error: str | None = None, username: str = ""
) -> Response:
    """The sign-in page; it offers "Sign in with <provider>" when ``[oidc]`` is configured."""
    provider = getattr(request.app.state, "oidc", None)
    return _render(
        request,
        "login.html",
        status_code=status_code,
        next=_safe_next(next),
        error=error,
        username=username,
        organisation=request.app.state.settings.organisation,
        oidc_name=provider.name if provider is not None else None,
    )


def start_session(request: Request, user: auth.User, next: str, method: str) -> Response:
    """Sign ``user`` in: end the browser's old session, start one with a fresh id, audit ``auth.login`` with
    ``method`` (password or oidc) and redirect to ``next``."""
    store = _store(request)
    with store.begin() as conn:
        auth.delete_session(conn, request.cookies.get(auth.COOKIE_NAME))  # a fresh id at every sign-in
        token = auth.create_session(conn, user.id)
    audit.log(store, user.username, "auth.login", detail={"method": method})
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        auth.COOKIE_NAME, token, httponly=True, samesite="lax", secure=request.url.scheme == "https", path="/"
    )
    return response


@router.get("/login", include_in_schema=False)
def login_form(request: Request, next: str = "/") -> Response:
    if request.state.user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return login_page(request, next=next)


@router.post("/login", include_in_schema=False)
def login(request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/")) -> Response:
    store, throttle, by_ip = _store(request), request.app.state.throttle, request.app.state.ip_throttle
    username = username.strip()[:100]
    address = request.client.host if request.client else "-"
    user = None
    if username and password and not throttle.locked(username) and not by_ip.locked(address):
        with store.begin() as conn:
            user = auth.authenticate(conn, username, password[:1024])
        if user is None:
            locked = throttle.failed(username)
            locked_ip = by_ip.failed(address)
            detail = {k: True for k, v in (("locked", locked), ("address_locked", locked_ip)) if v}
            audit.log(store, username, "auth.login_failed", detail=detail or None)
    elif username:
        audit.log(store, username, "auth.login_refused", detail="locked")
    if user is None:
        return login_page(request, 401, next, error=LOGIN_FAILED, username=username)
    throttle.succeeded(username)
    by_ip.succeeded(address)
    return start_session(request, user, next, method="password")


@router.post("/logout", include_in_schema=False, dependencies=[Depends(requires("signed_in"))])
def logout(request: Request) -> Response:
    user = _user(request)
    store = _store(request)
    with store.begin() as conn:
        auth.delete_session(conn, request.cookies.get(auth.COOKIE_NAME))
    audit.log(store, user.username, "auth.logout")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        auth.COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )
    return response


# -- overview ---------------------------------------------------------------------------------------------------


def _overview_period(since: str, until: str) -> tuple[str, str, q.Period, str | None]:
    """(since, until, the period, a notice) from the overview's picker: a preset (``30d``) or an ISO ``since`` date,
    and an optional ``until`` date (inclusive). Anything not understood falls back to the last 30 days."""
    since, until = since.strip()[:40], until.strip()[:10]
    try:
        period = q.Period.parse_since(since)
        if until:
            last = date.fromisoformat(until)
            period = q.Period(period.since, _midnight(last) + timedelta(days=1))
        if period.since < EPOCH:
            raise ValueError(since)
    except (ValueError, OverflowError):
        return "30d", "", q.Period.parse_since("30d"), "That period was not understood; showing the last 30 days."
    return since, until, period, None


def _spikes(conn: Any, period: q.Period, user: auth.User, limit: int = 6) -> list[dict[str, Any]]:
    """Open spike alerts whose bucket falls in the period, newest first (aggregate counts only). Each links its case
    only for a user who may open that case (an owner: their teams' cases), never to a page that answers 404."""
    from openear import alerts
    from openear.store.schema import cases

    since, until = period.since.replace(tzinfo=None), period.until.replace(tzinfo=None)
    rows = [a for a in alerts.list_alerts(conn, status="open", limit=200) if since <= a["bucket_start"] < until]
    rows = rows[:limit]
    linked = {a["case_id"] for a in rows if a.get("case_id") is not None}
    found = conn.execute(select(cases.c.id, cases.c.team).where(cases.c.id.in_(linked))) if linked else []
    teams = {case: team for case, team in found}  # one query for every spike's case
    spikes = []
    for a in rows:
        case_id = a.get("case_id")
        if case_id is not None:
            case_id = case_id if case_id in teams and may_access_team_object(user, teams[case_id]) else None
        spikes.append(
            {"what": alerts.describe(a), "score": a["score"], "when": _when(a["created_at"]), "case_id": case_id}
        )
    return spikes


def _cluster_actions(conn: Any, request: Request, user: auth.User, ids: list[int]) -> dict[int, dict[str, Any]]:
    """What a user who may open cases can do about each top cluster: ``{id: {"case_id", "can_open"}}``.

    ``case_id`` is the newest open case linking the cluster that ``user`` may open (then no second case is offered);
    otherwise ``can_open`` says whether ``POST /cases`` would accept the cluster from ``user``: for an owner, only
    when its representative post routes (:func:`openear.triage.route_post`, as ``open_case_for`` does) to one of
    their teams, so the button never answers 403. Two queries for all the clusters (the open cases through
    :func:`openear.web.triage_access.cases_of_clusters`); empty for other roles."""
    from openear import triage
    from openear.store.schema import clusters, posts
    from openear.web.triage_access import cases_of_clusters, triage_config

    if not ids or not can(user, "cases.write"):
        return {}
    open_cases = cases_of_clusters(conn, user, ids, status=triage.OPEN_STATUSES)  # newest first, visible only
    out: dict[int, dict[str, Any]] = {
        i: {"case_id": open_cases[i][0]["id"] if open_cases[i] else None, "can_open": False} for i in ids
    }
    todo = [i for i in ids if out[i]["case_id"] is None]
    if user.role != "owner":  # analysts and admins open cases for every team
        for i in todo:
            out[i]["can_open"] = True
        return out
    if todo:  # routed from the cluster's representative post, never from its author (guardrail 5)
        cfg = triage_config(request)
        columns = [c for c in posts.c if c.name != "author_pseudonym"]
        reps = conn.execute(
            select(clusters.c.id.label("of_cluster"), *columns)
            .join(posts, posts.c.id == clusters.c.representative_post_id)
            .where(clusters.c.id.in_(todo))
        ).mappings()
        for rep in reps:  # the post as open_case_for routes it, its cluster_id included (a rule may say cluster:)
            post = {k: v for k, v in rep.items() if k != "of_cluster"}
            out[rep["of_cluster"]]["can_open"] = may_access_team_object(user, triage.route_post(cfg, post))
    return out


def _overview_figures(conn: Any, period: q.Period) -> dict[str, Any]:
    """Every aggregate the overview shows for a period (spike alerts aside: they change without posts)."""
    clusters, n_clusters = q.clusters_page(conn, period, 8)
    counts = q.period_counts(conn, period)
    return {
        "clusters": clusters,
        "totals": q.totals(conn, period, n_clusters, counts),
        "volume": counts["volume"],
        "sentiment": counts["sentiment"],
        "lang": counts["lang"],
        "source": counts["source"],
        "guard": q.guard_summary(conn, period),
    }


@router.get("/", include_in_schema=False, dependencies=[Depends(requires("aggregates.read"))])
def overview(request: Request, since: str = "30d", until: str = "") -> Response:
    user = _user(request)
    store = _store(request)
    since, until, period, notice = _overview_period(since, until)
    with store.connect() as conn:
        # A relative period ("30d") moves with the clock: its figures are reused for at most a minute, and never
        # after a write (the cache checks the store's data version).
        key = ("overview", since, until, int(time.time() // 60))
        figures = store.aggregates.get(conn, key, lambda: _overview_figures(conn, period))
        spikes = _spikes(conn, period, user)
        emerging = latest_topics(conn, on_or_before=period.last_day, not_before=period.first_day)
        topics_checked = last_checked(conn) if not emerging else None
        actions = _cluster_actions(conn, request, user, [c["id"] for c in figures["clusters"]])  # per user: uncached
    clusters, totals, volume = figures["clusters"], figures["totals"], figures["volume"]
    sentiment, languages, sources, guard = figures["sentiment"], figures["lang"], figures["source"], figures["guard"]
    chart, categories, volume_rows = _volume_chart(volume, period)
    audit.log(store, user.username, "report.view", "overview", {"since": since, **({"until": until} if until else {})})
    ranges = list(RANGES)
    custom = until != "" or since not in dict(ranges)
    label = "Custom dates" if custom else dict(ranges)[since]
    stats = [
        {
            "label": "Posts",
            "value": totals["posts"],
            "hint": f"{totals['social']:,} social · {totals['news']:,} news",
            "tone": "",
        },
        {"label": "Clusters", "value": totals["clusters"], "hint": "groups of 2+ near-identical posts", "tone": ""},
        {"label": "Sources", "value": totals["sources"], "hint": "with posts in this period", "tone": ""},
        {
            "label": "Withheld by the guard",
            "value": totals["withheld"],
            "hint": "protected topics, never stored",
            "tone": "guard",
        },
    ]
    can_read = can(user, "posts.read")
    return _render(
        request,
        "overview.html",
        nav="overview",
        since=since,
        ranges=ranges,
        custom=custom,
        date_from=period.first_day.isoformat(),
        date_to=period.last_day.isoformat(),
        today=datetime.now(UTC).date().isoformat(),
        spikes=spikes,
        topics=[  # terms and counts for everyone; the representative posts only for roles that read posts
            {
                "terms": ", ".join(t["terms"][:6]),
                "n": t["n_posts"],
                "before": t["n_previous"],
                "day": t["day"],
                "posts": [f"/posts/{p['id']}" for p in t["posts"]] if can(user, "posts.read") else [],
            }
            for t in emerging
        ],
        can_see_alerts=can(user, "alerts.read"),
        topics_checked=topics_checked,
        period_label=f"{label} · {period.first_day:%d %b %Y} to {period.last_day:%d %b %Y}",
        notice=notice,
        stats=stats,
        chart=chart,
        volume_categories=categories,
        volume_rows=volume_rows,
        sentiment=_bars(sentiment, _TONES),
        languages=_bars(languages),
        sources=_bars(sources),
        clusters=[
            {
                "size": c["size"],
                "text": c["excerpt"],
                "category": c["category"],
                "when": f"{c['first_seen']:%d %b} to {c['last_seen']:%d %b}",
                "link": f"/posts/{c['post_id']}" if can_read else None,
                "posts_link": _cluster_posts_link(c["id"]) if can_read else None,  # all its posts: readers only
                # ids and case actions only for the roles that open cases
                **(
                    {"id": c["id"], **actions[c["id"]]}
                    if c["id"] in actions
                    else {"id": None, "case_id": None, "can_open": False}
                ),
            }
            for c in clusters
        ],
        guard=_guard_totals(guard),
    )


# -- posts ------------------------------------------------------------------------------------------------------


def _day(value: str | None, field: str, errors: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        errors.append(f"{field}: expected a date like 2026-01-31")
        return None


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _post_filters(
    q_: str = Query("", alias="q"),
    category: str = "",
    sentiment: str = "",
    lang: str = "",
    source: str = "",
    kind: str = "",
    since: str = "",
    until: str = "",
) -> tuple[dict[str, str], q.PostFilter, list[str]]:
    """(the filters as the form shows them, the store's filter, problems to show) from the explorer's query: the
    query parameters of ``/posts`` and ``/posts/export``, as a dependency. Lenient, unlike the API's
    (:func:`openear.web.api._post_query`): a bad date is a notice on the page, long values are cut."""
    from openear.web.search import make_filter

    errors: list[str] = []
    d_since, d_until = _day(since, "From", errors), _day(until, "To", errors)
    if d_since and d_until and d_since > d_until:
        errors.append(f"From ({d_since}) is after To ({d_until}): no post can match; swap the dates")
    filters = {
        "q": q_[:500].strip(),
        "category": category[:100],
        "sentiment": sentiment[:100],
        "lang": lang[:100],
        "source": source[:200],
        "kind": kind[:20],
        "since": d_since.isoformat() if d_since else "",
        "until": d_until.isoformat() if d_until else "",
    }
    flt = make_filter(
        category=category, sentiment=sentiment, lang=lang, source=source, kind=kind, since=d_since, until=d_until
    )
    return filters, flt, errors


Explored = Annotated[tuple[dict[str, str], q.PostFilter, list[str]], Depends(_post_filters)]


@router.get("/posts", include_in_schema=False, dependencies=[Depends(requires("posts.read"))])
def posts(request: Request, explored: Explored, page: str = "1") -> Response:
    user = _require(request, POST_READERS)
    store = _store(request)
    filters, flt, errors = explored
    search = filters["q"]
    try:
        page_n = max(1, min(int(page), 100_000))
    except ValueError:
        page_n = 1
    query_error = None
    with store.connect() as conn:
        try:
            rows, total = find_posts(conn, search, flt, PAGE_SIZE, (page_n - 1) * PAGE_SIZE)
            last = max(1, math.ceil(total / PAGE_SIZE))
            if page_n > last:  # past the end (an old link, fewer matches now): the last page, not "Page 9 of 3"
                page_n = last
                rows, total = find_posts(conn, search, flt, PAGE_SIZE, (page_n - 1) * PAGE_SIZE)
        except SearchError as exc:
            query_error, rows, total = str(exc), [], 0
        everything = _all_time()
        options = {
            "category": [c for c in q.category_split(conn, everything) if c != q.UNCATEGORISED],
            "sentiment": list(SENTIMENTS),
            "lang": [c for c in q.language_split(conn, everything) if c != q.UNKNOWN],
            "source": [s["name"] for s in q.list_sources(conn)],
            "kind": list(KINDS),
        }
        searches = saved.list_searches(conn, user.id)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    detail: dict[str, Any] = {**{k: v for k, v in filters.items() if v}, "page": page_n, "results": total}
    if query_error:
        detail["error"] = query_error
    audit.log(store, user.username, "posts.search" if search else "posts.list", "posts", detail)
    kept = {k: v for k, v in filters.items() if v}

    def link(n: int) -> str:
        return "/posts?" + urlencode({**kept, "page": n})

    return _render(
        request,
        "posts.html",
        nav="posts",
        f=filters,
        options=options,
        notice="; ".join(errors) or None,
        query_error=query_error,
        searches=[{**s_, "link": "/posts?" + urlencode({"q": s_["query"], **s_["filters"]})} for s_ in searches],
        export_query=urlencode(kept),
        rows=[
            {
                "id": r["id"],
                "title": r["title"],
                "snippet": _snippet(r["text"]),
                "source": r["source"],
                "kind": r["kind"],
                "category": r["category"],
                "sentiment": r["sentiment"],
                "lang": r["lang"],
                "created": _when(r["created_at"]),
                "created_iso": r["created_at"].isoformat() if r["created_at"] else "",
            }
            for r in rows
        ],
        total=total,
        page=page_n,
        pages=pages,
        link=link,
    )


@router.get("/posts/export", include_in_schema=False, dependencies=[Depends(requires("posts.export"))])
def posts_export(request: Request, explored: Explored, format: str = "csv") -> Response:
    """The explorer's download: the same search as a file (see :func:`openear.web.api.export_response`)."""
    from openear.web.api import PostQuery, audit_export, export_response
    from openear.web.exports import FORMATS, MAX_ROWS

    user = _user(request)
    filters, _flt, errors = explored
    if format not in FORMATS:
        errors = ["Unknown export format.", *errors]
    if errors:  # refused, and audited like a refused search (the API's refusals are, in export_response)
        kept = {k: v for k, v in filters.items() if v}
        audit_export(request, user, {**kept, "format": format[:20], "error": "; ".join(errors)})
        raise HTTPException(400, "; ".join(errors))
    pq = PostQuery(**{**filters, "since": filters["since"] or None, "until": filters["until"] or None})
    response = export_response(request, user, pq, format, MAX_ROWS)
    if response.status_code == 400:
        raise HTTPException(400, "The search is not valid; fix it on the Posts page first.")
    return response


@router.post("/searches", include_in_schema=False, dependencies=[Depends(requires("searches.use"))])
def save_search(request: Request, name: str = Form(...), query: str = Form(""), filters: str = Form("")) -> Response:
    """Save the explorer's current search; ``filters`` is its URL query string."""
    from urllib.parse import parse_qsl

    user = _user(request)
    facets = dict(parse_qsl(filters[:2000]))
    with audit.transaction(_store(request)) as conn:
        try:
            sid = saved.save_search(conn, user.id, name, query, facets)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        audit.record(conn, user.username, "search.save", f"search:{sid}", {"name": name[:100]})
    target = {"q": query[:500], **{k: v for k, v in facets.items() if k in saved.FILTER_KEYS and v}}
    return RedirectResponse("/posts?" + urlencode(target), status_code=303)


@router.post("/searches/{search_id}/delete", include_in_schema=False, dependencies=[Depends(requires("searches.use"))])
def delete_search(request: Request, search_id: int, confirm: str = Form(...)) -> Response:
    user = _user(request)
    with audit.transaction(_store(request)) as conn:
        if not saved.delete_search(conn, user.id, search_id):
            raise HTTPException(404)
        audit.record(conn, user.username, "search.delete", f"search:{search_id}")
    return RedirectResponse("/posts", status_code=303)


@router.get("/posts/{post_id}", include_in_schema=False, dependencies=[Depends(requires("posts.read"))])
def post(request: Request, post_id: int, changed: str = "", unchanged: str = "") -> Response:
    user = _require(request, POST_READERS)
    store = _store(request)
    with store.connect() as conn:
        row = q.get_post(conn, post_id)
        labels = q.post_labels(conn, post_id) if row else []
    if row is None:
        raise HTTPException(404)
    audit.log(store, user.username, "post.view", f"post:{post_id}")
    size = row.get("cluster_size") or 1
    cluster = f"#{row['cluster_id']}: {size} near-identical posts" if row.get("cluster_id") and size > 1 else None
    url = row.get("url")
    may_label = can(user, "labels.write")
    return _render(
        request,
        "post.html",
        nav="posts",
        post={
            "id": row["id"],
            "title": row["title"],
            "text": row["text"],
            "url": url if url and url.lower().startswith(("https://", "http://")) else None,
            "source": row["source"],
            "platform": row["platform"],
            "kind": row["kind"],
            "author": row.get("author_pseudonym"),
            "lang": row["lang"],
            "category": row["category"],
            "sentiment": row["sentiment"],
            "cluster": cluster,
            "created": _when(row["created_at"]),
            "created_iso": row["created_at"].isoformat() if row["created_at"] else "",
        },
        labels=labels,
        label_choices=labeling.choices(request.app.state.settings.taxonomy_path) if may_label else None,
        changed=changed if changed in labeling.EDITABLE else "",
        unchanged=unchanged if unchanged in labeling.EDITABLE else "",
    )


@router.post("/posts/{post_id}/labels", include_in_schema=False, dependencies=[Depends(requires("labels.write"))])
def post_label(request: Request, post_id: int, name: str = Form(...), value: str = Form(...)) -> Response:
    """An analyst's override of a post's category or sentiment (stored as ``analyst@<username>``, audited)."""
    user = _user(request)
    allowed = labeling.choices(request.app.state.settings.taxonomy_path)
    with audit.transaction(_store(request)) as conn:
        try:
            change = labeling.override_label(conn, post_id, name, value, user.username, allowed)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
    if change is None:
        raise HTTPException(404)
    said = "changed" if change["changed"] else "unchanged"  # a no-op writes nothing, and the page says so
    return RedirectResponse(f"/posts/{post_id}?{said}={name}", status_code=303)


# -- public -----------------------------------------------------------------------------------------------------


@router.get("/transparency", include_in_schema=False)
def transparency(request: Request) -> Response:
    with _store(request).connect() as conn:
        settings = overrides.effective(request.app.state.settings, conn)
        stored = {s["name"]: s for s in q.list_sources(conn)}
        guard = _guard_totals(q.guard_summary(conn, _all_time()))
    declared = {s.name: {"name": s.name, "visibility": s.visibility, "kind": s.kind} for s in settings.sources}
    for name, s in stored.items():
        declared.setdefault(name, {"name": name, "visibility": s["visibility"], "kind": s["kind"]})
    return _render(
        request,
        "transparency.html",
        nav="transparency",
        organisation=settings.organisation,
        purpose=settings.purpose,
        retention_days=settings.retention_days,
        sources=sorted(declared.values(), key=lambda s: s["name"]),
        guard=guard,
    )


@router.get("/healthz", include_in_schema=False)
def healthz(request: Request) -> Response:
    try:
        with _store(request).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})
