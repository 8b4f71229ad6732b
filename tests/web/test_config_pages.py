"""Sources add/edit (written to openear.toml, checked as the file is, audited, CSRF-protected), teams and routing,
and the overview's date range and spike alerts."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from casework import OWN_TEAM, seed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openear import audit, sources_config
from openear.errors import ConfigError

RSS = {"name": "city-news", "connector": "rss", "visibility": "public", "kind": "news",
       "options": 'feeds = ["https://example.org/feed.xml"]'}  # fmt: skip


def _version(web: Any) -> str:
    return sources_config.config_version(web.settings.config_path)


def _actions(web: Any) -> list[tuple[str, str | None]]:
    with web.store.connect() as conn:
        return [(e["action"], e["target"]) for e in audit.entries(conn)]


def test_admin_adds_a_source_kept_with_the_files_comments(db_url: str, web: Any) -> None:
    """On SQLite and PostgreSQL (the audit row)."""
    c = web.login("admin")
    before = web.settings.config_path.read_text(encoding="utf-8")
    r = c.post("/sources/new", data={**RSS, "version": _version(web)})
    assert r.status_code == 303 and r.headers["location"] == "/sources?saved=city-news"
    text = web.settings.config_path.read_text(encoding="utf-8")
    assert text.startswith(before.rstrip("\n"))  # the comments and settings above are untouched
    assert tomllib.loads(text)["sources"] == [
        {"name": "city-news", "connector": "rss", "visibility": "public", "kind": "news",
         "feeds": ["https://example.org/feed.xml"]}
    ]  # fmt: skip
    assert ("source.add", "source:city-news") in _actions(web)
    page = c.get("/sources").text
    assert "city-news" in page and 'href="/sources/city-news/edit"' in page
    assert web.app.state.settings.source("city-news").kind == "news"  # the running app sees it at once


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"visibility": "private"}, "visibility: must be 'public' or 'consented'"),
        ({"kind": "forum"}, "kind: must be 'social' or 'news'"),
        ({"connector": "scraper"}, "connector: one of files"),
        ({"name": ""}, "name: 1 to 200 characters"),
        ({"name": "a/b"}, "no slashes"),
        ({"options": "feeds = ["}, "options: not valid TOML"),
        ({"options": 'name = "x"'}, "options: name: set it in its own field"),
        ({"options": 'feeds = ["ftp://example.org/f"]'}, "feeds: not an http(s) URL"),
        ({"options": 'feeds = ["https://e.org/f"]\ninterval = "soon"'}, "interval: not a duration"),
        ({"options": 'feeds = ["https://e.org/f"]\nauthors = ["someone"]'}, "never group by author"),
        ({"options": ""}, "required for connector 'rss'"),
        ({"lang": "e$"}, "lang: a code"),
        ({"country": "usa"}, "country: a code such as 'ES' or 'GB'; not a two-letter country code"),
    ],
)
def test_a_bad_source_is_refused_naming_the_field_and_nothing_is_written(
    web: Any, change: dict[str, str], problem: str
) -> None:
    c = web.login("admin")
    before = web.settings.config_path.read_bytes()
    r = c.post("/sources/new", data={**RSS, **change, "version": _version(web)})
    assert r.status_code == 400
    assert problem in re.sub(r"&#3[49];", "'", r.text)
    assert web.settings.config_path.read_bytes() == before
    assert not [a for a in _actions(web) if a[0] == "source.add"]


def test_country_and_lang_are_written_as_openear_toml_reads_them(web: Any) -> None:
    """The form takes what openear.toml takes (``es-419``), written in the form it is read back in (``GB``)."""
    r = web.login("admin").post("/sources/new", data={**RSS, "country": "gb", "lang": "es-419",
                                                      "version": _version(web)})
    assert r.status_code == 303
    entry = tomllib.loads(web.settings.config_path.read_text(encoding="utf-8"))["sources"][0]
    assert (entry["country"], entry["lang"]) == ("GB", "es-419")
    spec = web.app.state.settings.source("city-news")
    assert (spec.country, spec.lang) == ("GB", "es-419")


def test_edit_keeps_the_name_and_refuses_a_stale_form(web: Any) -> None:
    c = web.login("admin")
    assert c.post("/sources/new", data={**RSS, "version": _version(web)}).status_code == 303
    form = c.get("/sources/city-news/edit").text
    version = re.search(r'name="version" value="([0-9a-f]+)"', form).group(1)  # type: ignore[union-attr]
    assert "feed.xml" in form and "readonly" in form
    r = c.post("/sources/city-news/edit", data={**RSS, "visibility": "consented", "version": version})
    assert r.status_code == 303
    assert web.app.state.settings.source("city-news").visibility == "consented"
    stale = c.post("/sources/city-news/edit", data={**RSS, "kind": "social", "version": version})
    assert stale.status_code == 400 and "changed since this form was opened" in stale.text
    renamed = c.post("/sources/city-news/edit", data={**RSS, "name": "other", "version": _version(web)})
    assert renamed.status_code == 400 and "keeps its name" in renamed.text
    assert c.post("/sources/nope/edit", data={**RSS, "version": _version(web)}).status_code == 404
    assert c.post("/sources/new", data={**RSS, "version": _version(web)}).status_code == 400  # already declared
    assert ("source.edit", "source:city-news") in _actions(web)


def test_a_missing_credential_is_a_warning_not_an_error(web: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDDIT_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("REDDIT_CLIENT_ID", raising=False)
    c = web.login("admin")
    form = {"name": "r-couriers", "connector": "reddit", "visibility": "public", "kind": "social",
            "options": 'subreddits = ["couriers"]', "version": _version(web)}  # fmt: skip
    r = c.post("/sources/new", data=form)
    assert r.status_code == 303, r.text
    assert "warning=" in r.headers["location"] and "credential" in r.headers["location"]


def test_declaring_an_import_only_source_starts_from_what_its_imports_recorded(web: Any) -> None:
    """Declaring a consented forum export prefills files/consented/GB, never the blank form's public RSS feed."""
    web.store.declare_source("forum-export", connector="files", visibility="consented", kind="social", country="GB")
    html = web.login("admin").get("/sources/new", params={"name": "forum-export"}).text
    selected = dict(re.findall(r'<select id="(\w+)" name="\w+">.*?<option value="(\w+)" selected>', html, re.S))
    assert selected == {"connector": "files", "visibility": "consented", "kind": "social"}
    assert 'name="country" type="text" maxlength="20" value="GB"' in html
    blank = web.login("admin").get("/sources/new", params={"name": "brand-new"}).text  # nothing recorded: defaults
    assert re.search(r'<option value="public" selected>', blank) and 'value="brand-new"' in blank


def test_only_admins_change_sources_and_cross_site_posts_are_refused(web: Any) -> None:
    for role in ("viewer", "analyst", "owner"):
        assert web.login(role).post("/sources/new", data={**RSS, "version": _version(web)}).status_code == 403
    admin = web.login("admin")
    r = admin.post("/sources/new", data={**RSS, "version": _version(web)}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert "sources" not in tomllib.loads(web.settings.config_path.read_text(encoding="utf-8"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(options=st.text(max_size=200))
def test_options_text_never_crashes_the_parser(options: str) -> None:
    """Any text typed as options is either a TOML table without the source's own fields, or a SourceChange."""
    try:
        parsed = sources_config.parse_options(options)
    except ConfigError as exc:
        assert str(exc).startswith("options: ")
    else:
        assert isinstance(parsed, dict) and not set(parsed) & set(sources_config.FIELDS)


def test_teams_page_shows_teams_routing_and_members(web: Any) -> None:
    seed(web)  # the owner belongs to Payments
    c = web.login("owner")
    html = c.get("/teams").text
    assert "<h1>Teams and routing</h1>" in html and OWN_TEAM in html
    card = html[html.index(f">{OWN_TEAM}<") :]
    assert "owner" in card[: card.index("</section>")]
    assert "Routing rules" in html and "first match wins" in html
    assert web.login("viewer").get("/teams").status_code == 403


def test_teams_page_hides_webhook_urls(web: Any) -> None:
    path = web.settings.config_path
    path.write_text(
        path.read_text(encoding="utf-8")
        + '\n[[teams]]\nname = "Payments"\ncategories = ["pay_tips"]\nemail = ["pay@example.org"]\n'
        'webhook = "https://hooks.example.org/services/T000/B000/SECRETPART"\n',
        encoding="utf-8",
    )
    from dataclasses import replace

    from openear import settings as settings_mod

    web.app.state.settings = replace(web.settings, raw=settings_mod.load(web.settings.home).raw)
    html = web.login("admin").get("/teams").text
    assert "pay@example.org" in html and "hooks.example.org" in html
    assert "SECRETPART" not in html


def test_overview_date_range_and_spike_alerts(web: Any) -> None:
    seed(web)
    c = web.login("viewer")
    html = c.get("/").text
    assert html.count('<li><span class="spikes__what">') == 3 and "Spike in Pay and tips" in html
    assert 'href="/alerts"' not in html.split('id="spikes-title"')[1].split("</section>")[0]  # viewers: no links
    today = datetime.now(UTC).date()
    r = c.get("/", params={"since": (today - timedelta(days=1)).isoformat(), "until": today.isoformat()})
    assert "Custom dates" in r.text and r.text.count('<li><span class="spikes__what">') == 1
    assert f'value="{(today - timedelta(days=1)).isoformat()}"' in r.text
    bad = c.get("/", params={"since": "2026-01-01", "until": "tomorrow"})
    assert bad.status_code == 200 and "not understood" in bad.text
    backwards = c.get("/", params={"since": today.isoformat(), "until": (today - timedelta(days=5)).isoformat()})
    assert "not understood" in backwards.text
    with web.store.connect() as conn:
        views = [e for e in audit.entries(conn) if e["action"] == "report.view"]
    assert '"until"' in views[-3]["detail"]
