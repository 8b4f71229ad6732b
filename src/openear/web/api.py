"""The REST API under ``/api/v1``: JSON twins of the pages, described at ``/openapi.json``.

Authenticate with the session cookie or ``Authorization: Bearer <token>`` (``openear tokens create``). Every route
names its permission (:mod:`openear.web.roles`); every read writes exactly one audit record. No endpoint, filter
or sort selects or groups by author; only a single post carries its author pseudonym.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from openear import audit
from openear.models import KINDS, SENTIMENTS
from openear.store import Store, queries
from openear.store.schema import users
from openear.web import exports, labeling, saved
from openear.web.auth import User
from openear.web.membership import teams_by_user
from openear.web.roles import PERMISSIONS, can, requires
from openear.web.search import COLUMNS, SearchError, find_posts, iter_posts, make_filter
from openear.web.triage_access import cases_of_cluster

__all__ = ["router"]


class ErrorOut(BaseModel):
    error: str


class InvalidField(BaseModel):
    loc: list[str | int] = Field(description="Where: query, path or body, then the field")
    msg: str
    type: str


class InvalidOut(BaseModel):
    error: str = Field(description="Each invalid field named with what was wrong, e.g. 'limit: Input should be ...'")
    detail: list[InvalidField]


class _In(BaseModel):
    """A request body: a field it does not know is a 422 naming it (a typo never passes as "nothing to change"),
    and so is a value of another JSON type (``true`` is not the id 1, ``"5"`` is not a number) or text with a NUL
    character (which PostgreSQL cannot store)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        texts = [value] if isinstance(value, str) else [*value, *value.values()] if isinstance(value, dict) else []
        if any("\x00" in t for t in texts if isinstance(t, str)):
            raise ValueError("text may not contain NUL characters")
        return value


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Invalid input"},
    401: {"model": ErrorOut, "description": "Not signed in"},
    403: {"model": ErrorOut, "description": "The role does not allow this"},
    422: {"model": InvalidOut, "description": "Invalid fields: a wrong type, a value out of range, an unknown field"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "Not found"}}

# Declares the token scheme in the OpenAPI document (the _Guard middleware does the authenticating; a session
# cookie works as well). auto_error=False: this never answers a request by itself.
BEARER = HTTPBearer(auto_error=False, description="An API token: `openear tokens create --user NAME`")
router = APIRouter(prefix="/api/v1", tags=["api"], responses=_ERRORS, dependencies=[Depends(BEARER)])


# -- models -----------------------------------------------------------------------------------------------------


class Me(BaseModel):
    username: str
    role: str
    permissions: list[str]
    teams: list[str] = Field(description="An owner's teams: the cases and alerts they see")


class VolumePoint(BaseModel):
    day: str
    category: str
    n: int


class GuardOut(BaseModel):
    withheld: dict[str, int]
    rejected: dict[str, int]
    scrubbed: dict[str, int]


class Aggregates(BaseModel):
    since: datetime
    until: datetime
    totals: dict[str, int]
    volume: list[VolumePoint]
    categories: dict[str, int]
    sentiment: dict[str, int]
    languages: dict[str, int]
    sources: dict[str, int]
    guard: GuardOut


class ClusterOut(BaseModel):
    id: int
    size: int = Field(description="Posts in the period")
    total_size: int = Field(description="Posts of all time")
    first_seen: datetime | None
    last_seen: datetime | None
    category: str = Field(description="The category most of its posts have")
    sentiment: str
    excerpt: str
    post_id: int | None = Field(description="The earliest post, for roles that may read posts")


class ClusterPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ClusterOut]


class CaseRef(BaseModel):
    id: int
    title: str
    team: str
    status: str
    priority: str


class ClusterDetail(BaseModel):
    id: int
    size: int = Field(description="Posts of all time")
    first_seen: datetime | None
    last_seen: datetime | None
    category: str
    sentiment: str
    excerpt: str
    post_id: int | None = Field(description="The earliest post, for roles that may read posts")
    cases: list[CaseRef] = Field(description="The cases linking it that the caller may see")


class PostOut(BaseModel):
    id: int
    source: str
    platform: str
    kind: str
    created_at: datetime
    title: str | None
    text: str
    url: str | None
    lang: str
    country: str | None
    sentiment: str | None
    category: str | None
    cluster_id: int | None


class PostPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[PostOut]


class LabelOut(BaseModel):
    name: str
    value: str
    score: float
    enricher: str


class PostDetail(PostOut):
    author_pseudonym: str | None = Field(description="A keyed pseudonym; shown on a single post only")
    cluster_size: int
    labels: list[LabelOut]


class LabelIn(_In):
    value: str = Field(min_length=1, max_length=60)


class LabelChange(BaseModel):
    name: str
    to: str
    enricher: str
    changed: bool = Field(True, description="false when an analyst had set this value already: nothing written")


class SourceOut(BaseModel):
    name: str
    connector: str
    visibility: str
    kind: str
    country: str | None
    last_run_at: datetime | None
    posts: int


class SavedSearchIn(_In):
    name: str = Field(min_length=1, max_length=100)
    query: str = Field(default="", max_length=500)
    filters: dict[str, str] = Field(
        default_factory=dict,
        max_length=len(saved.FILTER_KEYS),
        description="Facets, as GET /posts takes them: " + ", ".join(saved.FILTER_KEYS),
    )

    @field_validator("filters")
    @classmethod
    def _known_filters(cls, filters: dict[str, str]) -> dict[str, str]:
        for key in filters:
            if key not in saved.FILTER_KEYS:
                raise ValueError(f"unknown filter {key!r}; filters are {', '.join(saved.FILTER_KEYS)}")
        saved.check_filters(filters)  # the values, as the dashboard's save form checks them
        return filters


class SavedSearchOut(BaseModel):
    id: int
    name: str
    query: str
    filters: dict[str, str]
    created_at: datetime


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: str | None
    hash: str


class AuditPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[AuditEntry]


class UserOut(BaseModel):
    username: str
    role: str
    disabled: bool
    created_at: datetime
    teams: list[str] = Field(description="An owner's teams")


# -- helpers ----------------------------------------------------------------------------------------------------


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def _period(since: str) -> queries.Period:
    try:
        period = queries.Period.parse_since(since)
        if period.since.year < 1970:
            raise ValueError(since)
        return period
    except (ValueError, OverflowError):
        raise HTTPException(400, "since: expected e.g. 30d, 12h, 2w or 2026-01-01") from None


def _utc(value: datetime) -> datetime:
    """The store's naive UTC as an aware datetime (OpenAPI date-time needs the offset)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


Since = Annotated[str, Query(max_length=40, description="30d, 12h, 2w or an ISO date")]
Text = Annotated[str, Query(max_length=500, description="A query in the query language (docs/query-language.md)")]
Facet = Annotated[str, Query(max_length=100)]
SentimentFacet = Literal["", "positive", "neutral", "negative"]
KindFacet = Literal["", "social", "news"]
assert set(SentimentFacet.__args__) == {"", *SENTIMENTS} and set(KindFacet.__args__) == {"", *KINDS}  # type: ignore[attr-defined]
Day = Annotated[date | None, Query(description="An ISO date; until is inclusive, and not before since")]
UNTIL_BEFORE_SINCE = saved.UNTIL_BEFORE_SINCE
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


class PostQuery(BaseModel):
    """The search and facets shared by listing and exporting."""

    q: str = ""
    category: str = ""
    sentiment: str = ""
    lang: str = ""
    source: str = ""
    kind: str = ""
    since: date | None = None
    until: date | None = None

    def filter(self) -> queries.PostFilter:
        return make_filter(
            category=self.category,
            sentiment=self.sentiment,
            lang=self.lang,
            source=self.source,
            kind=self.kind,
            since=self.since,
            until=self.until,
        )

    def audit_detail(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in self.model_dump().items() if v}


def _post_query(
    q: Text = "",
    category: Facet = "",
    sentiment: SentimentFacet = "",
    lang: Facet = "",
    source: Facet = "",
    kind: KindFacet = "",
    since: Day = None,
    until: Day = None,
) -> PostQuery:
    if since is not None and until is not None and until < since:  # no post can match: never an empty page
        raise RequestValidationError([{"loc": ("query", "until"), "msg": UNTIL_BEFORE_SINCE, "type": "value_error"}])
    return PostQuery(
        q=q, category=category, sentiment=sentiment, lang=lang, source=source, kind=kind, since=since, until=until
    )


# -- endpoints --------------------------------------------------------------------------------------------------


@router.get("/me", response_model=Me)
def me(request: Request, user: User = Depends(requires("signed_in"))) -> Me:
    """Who the request acts as, and what the role may do."""
    audit.log(_store(request), user.username, "api.me")
    return Me(
        username=user.username,
        role=user.role,
        permissions=sorted(p for p in PERMISSIONS if can(user, p)),
        teams=sorted(user.teams),
    )


@router.get("/aggregates", response_model=Aggregates)
def aggregates(request: Request, since: Since = "30d", user: User = Depends(requires("aggregates.read"))) -> Any:
    """Totals, volume per day and category, splits and the guard's counts for a period."""
    period = _period(since)
    store = _store(request)
    with store.connect() as conn:
        guard = queries.guard_summary(conn, period)
        out = Aggregates(
            since=period.since,
            until=period.until,
            totals=queries.totals(conn, period),
            volume=[VolumePoint(day=d, category=c, n=n) for d, c, n in queries.volume_by_category(conn, period)],
            categories=queries.category_split(conn, period),
            sentiment=queries.sentiment_split(conn, period),
            languages=queries.language_split(conn, period),
            sources=queries.source_split(conn, period),
            guard=GuardOut(withheld=guard["withheld"], rejected=guard["rejected"], scrubbed=guard["scrubbed"]),
        )
    audit.log(store, user.username, "report.view", "api:aggregates", {"since": since})
    return out


@router.get("/clusters", response_model=ClusterPage)
def clusters(
    request: Request,
    since: Since = "30d",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    user: User = Depends(requires("aggregates.read")),
) -> Any:
    """Clusters of near-identical posts with 2+ posts in a period, largest first."""
    period = _period(since)
    store = _store(request)
    with store.connect() as conn:
        rows, total = queries.clusters_page(conn, period, limit, offset)
    audit.log(store, user.username, "report.view", "api:clusters", {"since": since, "limit": limit, "offset": offset})
    readers = can(user, "posts.read")
    items = [ClusterOut(**{**c, "post_id": c["post_id"] if readers else None}) for c in rows]
    return ClusterPage(total=total, limit=limit, offset=offset, items=items)


@router.get("/clusters/{cluster_id}", response_model=ClusterDetail, responses=_NOT_FOUND)
def get_cluster(
    request: Request,
    cluster_id: Annotated[int, Path(ge=1, le=2**62)],
    user: User = Depends(requires("aggregates.read")),
) -> Any:
    """One cluster over all time, and the cases linking it that the caller may see."""
    store = _store(request)
    with store.connect() as conn:
        row = queries.get_cluster(conn, cluster_id)
        linked = cases_of_cluster(conn, user, cluster_id) if row else []
    audit.log(store, user.username, "report.view", f"cluster:{cluster_id}", {"api": True, "found": row is not None})
    if row is None:
        raise HTTPException(404)
    post_id = row["post_id"] if can(user, "posts.read") else None
    return ClusterDetail(**{**row, "post_id": post_id}, cases=[CaseRef(**c) for c in linked])


@router.get("/posts", response_model=PostPage, responses={400: {"model": ErrorOut}})
def list_posts(
    request: Request,
    pq: PostQuery = Depends(_post_query),
    limit: Limit = 50,
    offset: Offset = 0,
    user: User = Depends(requires("posts.read")),
) -> Any:
    """Posts matching a query and facets, newest first; never by author."""
    store = _store(request)
    try:
        with store.connect() as conn:
            rows, total = find_posts(conn, pq.q, pq.filter(), limit, offset)
    except SearchError as exc:
        audit.log(store, user.username, "posts.search", "api:posts", {**pq.audit_detail(), "error": str(exc)})
        return _bad(f"q: {exc}")
    action = "posts.search" if pq.q.strip() else "posts.list"
    detail = {**pq.audit_detail(), "limit": limit, "offset": offset, "results": total}
    audit.log(store, user.username, action, "api:posts", detail)
    return PostPage(total=total, limit=limit, offset=offset, items=[PostOut(**r) for r in rows])


@router.get(
    "/posts/export",
    response_class=Response,
    responses={
        200: {
            "description": "The file, with the guard's notice inside and in X-Openear-Notice",
            "content": {
                t.split(";")[0]: {"schema": {"type": "string", "format": "binary"}} for t in exports.FORMATS.values()
            },
        }
    },
)
def export_posts(
    request: Request,
    pq: PostQuery = Depends(_post_query),
    format: Literal["csv", "jsonl", "parquet"] = "csv",
    limit: Annotated[int, Query(ge=1, le=exports.MAX_ROWS)] = exports.MAX_ROWS,
    user: User = Depends(requires("posts.export")),
) -> Response:
    """Matching posts as CSV, JSON Lines or Parquet (no authors), with the guard's notice. Audited."""
    return export_response(request, user, pq, format, limit)


def audit_export(request: Request, user: User, detail: dict[str, Any]) -> None:
    """The one ``posts.export`` record of an export attempt, done or refused (then ``detail`` has ``error``), as a
    refused search is recorded on ``/posts``. The target says where it came from, as for lists."""
    target = "api:posts" if request.url.path.startswith(router.prefix) else "posts"
    audit.log(_store(request), user.username, "posts.export", target, detail)


def export_response(request: Request, user: User, pq: PostQuery, fmt: str, limit: int) -> Response:
    """Shared by the API and the explorer's download links: one ``posts.export`` audit record per export."""
    store = _store(request)
    settings = request.app.state.settings
    try:
        with store.connect() as conn:
            rows = list(iter_posts(conn, pq.q, pq.filter(), limit))
            everything = queries.Period(datetime(1970, 1, 1), datetime(9999, 1, 1))
            guard = queries.totals(conn, everything)
    except SearchError as exc:
        audit_export(request, user, {**pq.audit_detail(), "format": fmt, "error": str(exc)})
        return _bad(f"q: {exc}")
    notice = exports.guard_notice(guard, settings.organisation)
    body = exports.render(rows, [c.name for c in COLUMNS], fmt, notice)
    audit_export(request, user, {**pq.audit_detail(), "format": fmt, "rows": len(rows)})
    return exports.response(body, fmt, "openear-posts", notice)


@router.get("/posts/{post_id}", response_model=PostDetail, responses=_NOT_FOUND)
def get_post(
    request: Request, post_id: Annotated[int, Path(ge=1, le=2**62)], user: User = Depends(requires("posts.read"))
) -> Any:
    """One post with its labels (each with the enricher and version that made it)."""
    store = _store(request)
    with store.connect() as conn:
        row = queries.get_post(conn, post_id)
        labels = queries.post_labels(conn, post_id) if row else []
    audit.log(store, user.username, "post.view", f"post:{post_id}", {"api": True, "found": row is not None})
    if row is None:
        raise HTTPException(404)
    keep = {k: row.get(k) for k in PostDetail.model_fields if k != "labels"}
    return PostDetail(**keep, labels=[LabelOut(**lb) for lb in labels])


@router.put("/posts/{post_id}/labels/{name}", response_model=LabelChange, responses=_NOT_FOUND)
def put_label(
    request: Request,
    post_id: Annotated[int, Path(ge=1, le=2**62)],
    name: Literal["primary", "sentiment"],
    body: LabelIn,
    user: User = Depends(requires("labels.write")),
) -> Any:
    """An analyst's correction of a post's category (``primary``) or sentiment; becomes training data."""
    allowed = labeling.choices(request.app.state.settings.taxonomy_path)
    try:
        with audit.transaction(_store(request)) as conn:
            change = labeling.override_label(conn, post_id, name, body.value, user.username, allowed)
    except ValueError as exc:
        return _bad(str(exc))
    if change is None:
        raise HTTPException(404)
    return LabelChange(name=name, to=change["to"], enricher=change["enricher"], changed=change["changed"])


@router.get("/sources", response_model=list[SourceOut])
def sources(request: Request, user: User = Depends(requires("sources.read"))) -> Any:
    """Declared sources, their last run and stored post counts."""
    store = _store(request)
    with store.connect() as conn:
        rows = queries.list_sources(conn)
    audit.log(store, user.username, "sources.view", "api:sources")
    return [SourceOut(**r) for r in rows]


@router.get("/searches", response_model=list[SavedSearchOut])
def list_saved(request: Request, user: User = Depends(requires("searches.use"))) -> Any:
    """The caller's saved searches."""
    store = _store(request)
    with store.connect() as conn:
        rows = saved.list_searches(conn, user.id)
    audit.log(store, user.username, "search.saved_list", "api:searches")
    return [SavedSearchOut(**r) for r in rows]


@router.post("/searches", response_model=SavedSearchOut, status_code=201)
def create_saved(request: Request, body: SavedSearchIn, user: User = Depends(requires("searches.use"))) -> Any:
    """Save a search (query text and facets) under a name."""
    store = _store(request)
    try:
        with audit.transaction(store) as conn:
            sid = saved.save_search(conn, user.id, body.name, body.query, body.filters)
            audit.record(conn, user.username, "search.save", f"search:{sid}", {"name": body.name})
            out = saved.get_search(conn, user.id, sid)
    except ValueError as exc:
        return _bad(str(exc))
    return SavedSearchOut(**out)  # type: ignore[arg-type]


@router.delete("/searches/{search_id}", status_code=204, response_class=Response, responses=_NOT_FOUND)
def delete_saved(
    request: Request,
    search_id: Annotated[int, Path(ge=1, le=2**62)],
    user: User = Depends(requires("searches.use")),
) -> Response:
    """Delete one of the caller's saved searches (another user's is 404)."""
    with audit.transaction(_store(request)) as conn:
        if not saved.delete_search(conn, user.id, search_id):
            raise HTTPException(404)
        audit.record(conn, user.username, "search.delete", f"search:{search_id}")
    return Response(status_code=204)


@router.get("/audit", response_model=AuditPage)
def audit_entries(
    request: Request,
    actor: Facet = "",
    action: Facet = "",
    limit: Limit = 100,
    offset: Offset = 0,
    user: User = Depends(requires("audit.read")),
) -> Any:
    """The audit log, newest first, optionally for one actor or action."""
    store = _store(request)
    with store.connect() as conn:
        total, rows = audit.page(conn, actor=actor, action=action, limit=limit, offset=offset)
    audit.log(store, user.username, "audit.view", "api:audit", {"actor": actor, "action": action, "offset": offset})
    items = [AuditEntry(**{**dict(r), "at": _utc(r["at"])}) for r in rows]
    return AuditPage(total=int(total), limit=limit, offset=offset, items=items)


@router.get("/users", response_model=list[UserOut])
def list_users(request: Request, user: User = Depends(requires("users.manage"))) -> Any:
    """Every user, their role and whether they are disabled."""
    store = _store(request)
    with store.connect() as conn:
        rows = conn.execute(
            select(users.c.id, users.c.username, users.c.role, users.c.disabled, users.c.created_at).order_by(
                users.c.username
            )
        ).all()
        teams = teams_by_user(conn)
    audit.log(store, user.username, "users.view", "api:users")
    return [
        UserOut(
            username=r.username,
            role=r.role,
            disabled=r.disabled,
            created_at=_utc(r.created_at),
            teams=teams.get(r.id, []) if r.role == "owner" else [],
        )
        for r in rows
    ]
