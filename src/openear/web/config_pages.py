"""Configuration pages: adding and editing a source (admins), and teams and routing (case workers).

A source change is written to ``openear.toml`` through :mod:`openear.sources_config` (validated as the file is when
read) and audited as ``source.add`` / ``source.edit``. The teams page shows the triage configuration (teams, their
categories and channels, routing rules) and who belongs to each team.
"""

from __future__ import annotations

from urllib.parse import quote

import tomlkit
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection, select

from openear import audit, sources_config
from openear.errors import ConfigError
from openear.settings import SourceSpec
from openear.store import schema
from openear.web.pages import _render, _store, _user
from openear.web.roles import requires

__all__ = ["router"]

router = APIRouter()
VISIBILITIES = ("public", "consented")
KINDS = ("social", "news")
_FORM_KEYS = ("name", "connector", "visibility", "kind", "country", "lang", "options", "version")


# -- sources ----------------------------------------------------------------------------------------------------


def _options_text(spec: SourceSpec) -> str:
    return tomlkit.dumps(dict(spec.options)).strip() if spec.options else ""


def _source_form(
    request: Request, *, original: str | None, values: dict[str, str], status_code: int = 200,
    error: str | None = None,
) -> Response:  # fmt: skip
    settings = request.app.state.settings
    return _render(
        request,
        "sources_form.html",
        status_code=status_code,
        nav="sources",
        original=original,
        v=values,
        error=error,
        connectors=sources_config.CONNECTORS,
        visibilities=VISIBILITIES,
        kinds=KINDS,
        config_path=str(settings.config_path),
    )


def _blank(request: Request, name: str = "") -> dict[str, str]:
    return {
        "name": name[:200], "connector": "rss", "visibility": "public", "kind": "social", "country": "", "lang": "",
        "options": "", "version": sources_config.config_version(request.app.state.settings.config_path),
    }  # fmt: skip


class SourceForm:
    """The source form's fields (every one optional here: :mod:`openear.sources_config` names what is wrong)."""

    def __init__(
        self, name: str = Form(""), connector: str = Form(""), visibility: str = Form(""), kind: str = Form(""),
        country: str = Form(""), lang: str = Form(""), options: str = Form(""), version: str = Form(""),
    ) -> None:  # fmt: skip
        values = (name, connector, visibility, kind, country, lang, options, version)
        self.values = {k: v[:20_000] for k, v in zip(_FORM_KEYS, values, strict=True)}


def _save(request: Request, values: dict[str, str], original: str | None) -> Response:
    me = _user(request)
    app = request.app
    try:
        settings, warnings = sources_config.save_source(
            app.state.settings, values, original=original, version=values["version"]
        )
    except ConfigError as exc:
        values = {**values, "version": sources_config.config_version(app.state.settings.config_path)}
        return _source_form(request, original=original, values=values, status_code=400, error=str(exc))
    app.state.settings = settings
    spec = settings.source(values["name"].strip())
    assert spec is not None
    action = "source.add" if original is None else "source.edit"
    audit.log(
        _store(request), me.username, action, f"source:{spec.name}",
        {"connector": spec.connector, "visibility": spec.visibility, "kind": spec.kind,
         "options": sorted(spec.options)},
    )  # fmt: skip
    target = "/sources?saved=" + quote(spec.name, safe="")
    if warnings:
        target += "&warning=" + quote("; ".join(warnings)[:300], safe="")
    return RedirectResponse(target, status_code=303)


def _imported(request: Request, name: str) -> dict[str, str]:
    """What imports recorded for an import-only source (connector, visibility, kind, country), to prefill its
    declaration: "Declare" on a consented forum export must not start as a public RSS feed."""
    if not name:
        return {}
    with _store(request).connect() as conn:
        row = conn.execute(select(schema.sources).where(schema.sources.c.name == name[:200])).mappings().first()
    if row is None:
        return {}
    known = {"connector": sources_config.CONNECTORS, "visibility": VISIBILITIES, "kind": KINDS}
    values = {k: row[k] for k, allowed in known.items() if row[k] in allowed}
    return {**values, **({"country": row["country"]} if row["country"] else {})}


@router.get("/sources/new", include_in_schema=False, dependencies=[Depends(requires("sources.write"))])
def source_new(request: Request, name: str = "") -> Response:
    """The form to declare a source (an import-only source's ``name``, connector, visibility, kind and country
    prefilled from what its imports recorded)."""
    return _source_form(request, original=None, values={**_blank(request, name), **_imported(request, name)})


@router.post("/sources/new", include_in_schema=False, dependencies=[Depends(requires("sources.write"))])
def source_add(request: Request, form: SourceForm = Depends()) -> Response:
    return _save(request, form.values, None)


@router.get("/sources/{source}/edit", include_in_schema=False, dependencies=[Depends(requires("sources.write"))])
def source_edit_form(request: Request, source: str) -> Response:
    spec = request.app.state.settings.source(source)
    if spec is None:
        raise HTTPException(404)
    values = {
        "name": spec.name, "connector": spec.connector, "visibility": spec.visibility, "kind": spec.kind,
        "country": spec.country or "", "lang": spec.lang or "", "options": _options_text(spec),
        "version": sources_config.config_version(request.app.state.settings.config_path),
    }  # fmt: skip
    return _source_form(request, original=source, values=values)


@router.post("/sources/{source}/edit", include_in_schema=False, dependencies=[Depends(requires("sources.write"))])
def source_edit(request: Request, source: str, form: SourceForm = Depends()) -> Response:
    if request.app.state.settings.source(source) is None:
        raise HTTPException(404)
    return _save(request, form.values, source)


# -- teams and routing ------------------------------------------------------------------------------------------


def team_members(conn: Connection) -> dict[str, list[str]] | None:
    """{team: [usernames]} from the ``user_teams`` table, or None where this store has no team membership."""
    table = getattr(schema, "user_teams", None)
    if table is None or "team" not in table.c or "user_id" not in table.c:
        return None
    out: dict[str, list[str]] = {}
    rows = conn.execute(
        select(table.c.team, schema.users.c.username)
        .join(schema.users, schema.users.c.id == table.c.user_id)
        .order_by(table.c.team, schema.users.c.username)
    )
    for team, username in rows:
        out.setdefault(str(team), []).append(str(username))
    return out


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or "?"


@router.get("/teams", include_in_schema=False, dependencies=[Depends(requires("teams.read"))])
def teams_page(request: Request) -> Response:
    """Teams with their categories, channels and members; routing rules in the order they apply."""
    from openear import triage

    _user(request)
    try:
        cfg = triage.load_triage(request.app.state.settings)
    except ConfigError as exc:
        return _render(request, "teams.html", nav="teams", error=str(exc), teams=[], routing=[], members=None,
                       channels=None)  # fmt: skip
    with _store(request).connect() as conn:
        members = team_members(conn)
    teams = [
        {
            "name": t.name,
            "management": t.management,
            "categories": list(t.categories),
            "email": list(t.email),
            "webhook": _host(t.webhook.url) if t.webhook else None,  # the URL itself is a credential
            "members": (members or {}).get(t.name, []),
        }
        for t in cfg.teams
    ]
    smtp = cfg.channels.smtp
    channels = {
        "smtp": f"{smtp.host}:{smtp.port} from {smtp.sender}" if smtp else None,
        "retries": cfg.channels.retries,
        "backoff": cfg.channels.backoff_seconds,
    }
    routing = [{"team": r.team, "category": r.category, "query": r.query} for r in cfg.routing]
    seen: set[tuple[str, str | None, str | None]] = set()
    unique = []
    for r in routing:  # the defaults repeat a team's own categories: show each rule once, first place first
        key = (r["team"], r["category"], r["query"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return _render(request, "teams.html", nav="teams", error=None, teams=teams, routing=unique,
                   members=members, channels=channels)  # fmt: skip
