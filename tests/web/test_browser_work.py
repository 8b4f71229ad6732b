"""End to end in headless Chromium (Debian's /usr/bin/chromium via Playwright): working a case, an owner's view of
their team, stored-XSS payloads in a case note and in post text that never run, the overview's spike alerts and
date range, teams and routing, sources add/edit, and sign-in through a local OIDC provider. Screenshots of each
page go to the test's tmp_path and /tmp/openear-shots.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from casework import OTHER_TEAM, OWN_TEAM, seed
from live_server import chromium, serve, shot
from oidc_idp import CLIENT_SECRET, IdpServer, oidc_toml

from openear import audit
from openear import settings as settings_mod
from openear.web.app import create_app

pytestmark = pytest.mark.browser

NOTE_XSS = "Driver says: <img src=x onerror=window.__xss=1> and <script>window.__xss=1</script> ok"


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def server(web: Any) -> Iterator[str]:
    with serve(web.app) as url:
        yield url


def _nav(page: Any, name: str) -> Any:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


class Tab:
    """A page that records JS dialogs and errors (any would mean a payload ran or the page broke)."""

    def __init__(self, browser: Any, width: int = 1360) -> None:
        self.ctx = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.ctx.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def sign_in(self, server: str, username: str, password: str) -> Any:
        page = self.page
        page.goto(server + "/login")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(server + "/")
        return page

    def xss_ran(self) -> bool:
        return bool(self.page.evaluate("() => window.__xss !== undefined"))

    def close(self) -> None:
        assert self.dialogs == [], f"a JS dialog fired: {self.dialogs}"
        assert self.errors == [], self.errors
        self.ctx.close()


def test_analyst_works_a_case_and_a_note_payload_never_runs(
    web: Any, server: str, browser: Any, tmp_path: Path
) -> None:
    made = seed(web)
    tab = Tab(browser)
    page = tab.sign_in(server, "analyst", web.password)
    _nav(page, "Cases").click()
    page.wait_for_url(server + "/cases")
    board = page.locator(".board")
    assert board.get_by_role("link", name="Tips missing from statements").is_visible()
    assert board.get_by_role("link", name="App crashes").is_visible()  # analysts see every team's cases
    shot(page, tmp_path, "20-cases-board")

    board.get_by_role("link", name="Tips missing from statements").click()
    page.wait_for_url(f"{server}/cases/{made.own_case}")
    page.get_by_label("Note").fill(NOTE_XSS)
    page.get_by_role("button", name="Add note").click()
    page.wait_for_url(f"{server}/cases/{made.own_case}")
    history = page.locator("section[aria-labelledby='history-title']")
    assert NOTE_XSS in history.inner_text()  # shown as text, exactly as typed
    assert page.locator("main img[src='x'], main script").count() == 0
    assert not tab.xss_ran()

    for status, note in (("investigating", "Checking with payments"), ("resolved", "Fixed in the next payout")):
        page.get_by_label("Move to").select_option(status)
        page.get_by_label("Why (optional)").fill(note)
        page.get_by_role("button", name="Change status").click()
        page.wait_for_url(f"{server}/cases/{made.own_case}")
    text = history.inner_text()
    assert "new → investigating: Checking with payments" in text
    assert "investigating → resolved: Fixed in the next payout" in text
    assert text.index("investigating → resolved") < text.index("new → investigating")  # newest first
    assert page.locator(".facts").get_by_text("resolved", exact=True).is_visible()
    assert not tab.xss_ran()
    shot(page, tmp_path, "21-case-worked")

    _nav(page, "Cases").click()
    resolved = page.locator("section[aria-labelledby='col-resolved']")
    assert resolved.get_by_role("link", name="Tips missing from statements").is_visible()
    with web.store.connect() as conn:
        actions = [e["action"] for e in audit.entries(conn)]
    assert "case.view" in actions
    tab.close()


def test_an_owner_sees_only_their_team(web: Any, server: str, browser: Any, tmp_path: Path) -> None:
    made = seed(web)  # the owner belongs to Payments
    tab = Tab(browser)
    page = tab.sign_in(server, "owner", web.password)
    _nav(page, "Cases").click()
    board = page.locator(".board")
    assert board.get_by_role("link", name="Tips missing from statements").is_visible()
    assert board.get_by_role("link", name="App crashes").count() == 0
    shot(page, tmp_path, "22-owner-board")
    response = page.goto(f"{server}/cases/{made.other_case}")
    assert response is not None and response.status == 404  # another team's case does not exist for them
    page.goto(server + "/teams")
    payments = page.locator(".team-card", has=page.get_by_role("heading", name=OWN_TEAM))
    assert "owner" in payments.inner_text()
    assert page.locator(".team-card", has=page.get_by_role("heading", name=OTHER_TEAM)).count() == 1
    tab.close()


def test_an_owner_goes_from_a_case_to_its_cluster(web: Any, server: str, browser: Any, tmp_path: Path) -> None:
    """An owner reads no post, so a case's cluster links to its entry on the case page: the first post's excerpt
    and the cluster's counts (as the overview shows clusters to every role), never to a post (403). An analyst's
    entry links the cluster's first post, which opens."""
    made = seed(web)
    tab = Tab(browser)
    page = tab.sign_in(server, "owner", web.password)
    page.goto(f"{server}/cases/{made.own_case}")
    facts = page.locator(".facts")
    facts.get_by_role("link", name=f"#{made.cluster}").click()
    page.wait_for_url(f"{server}/cases/{made.own_case}#cluster-{made.cluster}")
    entry = page.locator(f"#cluster-{made.cluster}")
    top = entry.evaluate("e => e.getBoundingClientRect().top")
    assert entry.is_visible() and 0 <= top < page.viewport_size["height"]  # the link scrolled to it
    text = entry.inner_text()
    assert "Tips are missing from my weekly pay statement" in text and "Pay and tips" in text
    assert f"cluster #{made.cluster}" in text and "English 2" in text
    assert entry.locator("a").count() == 0  # no post link for a role that reads no posts
    shot(page, tmp_path, "29-owner-case-clusters")
    tab.close()

    analyst = Tab(browser)
    page = analyst.sign_in(server, "analyst", web.password)
    page.goto(f"{server}/cases/{made.own_case}")
    shot(page, tmp_path, "30-analyst-case-clusters")
    page.locator(f"#cluster-{made.cluster}").get_by_role("link", name="Tips are missing").click()
    page.wait_for_url(f"{server}/posts/{web.ids['p4']}")
    assert "near-identical posts" in page.locator("main").inner_text()
    with web.store.connect() as conn:
        views = [(e["actor"], e["action"], e["target"]) for e in audit.entries(conn)]
    assert ("analyst", "post.view", f"post:{web.ids['p4']}") in views
    assert ("owner", "case.view", f"case:{made.own_case}") in views
    analyst.close()


def test_a_post_text_payload_never_runs(web: Any, server: str, browser: Any, tmp_path: Path) -> None:
    payload = "Pay app bug <img src=x onerror=window.__xss=1><script>window.__xss=1</script> again"
    ids = web.add_posts([("x1", 1, payload, "<b onmouseover=window.__xss=1>title</b>", "social", "public")], "xss")
    tab = Tab(browser)
    page = tab.sign_in(server, "analyst", web.password)
    page.goto(server + "/posts?q=bug")
    assert page.locator(".result").count() >= 1
    assert not tab.xss_ran()
    page.goto(f"{server}/posts/{ids['x1']}")
    assert payload in page.locator(".post__text").inner_text()
    assert page.locator("main img[src='x'], main script, main b").count() == 0
    page.locator("h1").hover()
    assert not tab.xss_ran()
    page.goto(server + "/")  # cluster excerpts and split tables
    assert not tab.xss_ran()
    tab.close()


def test_overview_spikes_date_range_and_teams(web: Any, server: str, browser: Any, tmp_path: Path) -> None:
    seed(web)
    tab = Tab(browser)
    page = tab.sign_in(server, "analyst", web.password)
    spikes = page.locator("section[aria-labelledby='spikes-title']")
    assert "Spike in" in spikes.inner_text() and spikes.locator("li").count() == 3
    assert page.locator(".stat--guard").is_visible()
    assert page.locator("figure.chart img").is_visible()
    shot(page, tmp_path, "23-overview-spikes")

    today = datetime.now(UTC).date()
    page.get_by_label("From", exact=True).fill((today - timedelta(days=1)).isoformat())
    page.get_by_label("To", exact=True).fill(today.isoformat())
    page.get_by_role("button", name="Show dates").click()
    page.wait_for_url("**/?since=*&until=*")
    assert "Custom dates" in page.locator(".page-head").inner_text()
    assert spikes.locator("li").count() == 1  # only the pay_tips spike of yesterday falls in yesterday and today
    shot(page, tmp_path, "24-overview-custom-dates")

    page.get_by_label("Period", exact=True).select_option("7d")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/?since=7d")
    assert "Last 7 days" in page.locator(".page-head").inner_text()

    _nav(page, "Teams and routing").click()
    page.wait_for_url(server + "/teams")
    assert page.get_by_role("heading", name="Routing rules").is_visible()
    assert page.locator(".team-card").count() >= 2
    shot(page, tmp_path, "25-teams")
    tab.close()

    viewer = Tab(browser)
    page = viewer.sign_in(server, "viewer", web.password)
    assert "Spike in" in page.locator("section[aria-labelledby='spikes-title']").inner_text()
    assert page.get_by_role("link", name="All alerts →").count() == 0  # viewers do not work alerts
    assert page.get_by_role("link", name="Teams and routing").count() == 0
    viewer.close()


def test_admin_adds_and_edits_a_source(web: Any, server: str, browser: Any, tmp_path: Path) -> None:
    tab = Tab(browser)
    page = tab.sign_in(server, "admin", web.password)
    _nav(page, "Sources").click()
    page.get_by_role("link", name="Add a source").click()
    page.wait_for_url(server + "/sources/new")
    page.get_by_label("Name", exact=True).fill("city-news")
    page.get_by_label("Connector", exact=True).select_option("rss")
    page.get_by_label("Kind", exact=True).select_option("news")
    page.get_by_label("Connector options").fill('feeds = ["https://example.org/feed.xml"')
    page.get_by_role("button", name="Add source").click()
    assert "options: not valid TOML" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Name", exact=True).input_value() == "city-news"  # what was typed is kept
    shot(page, tmp_path, "26-source-form-error")

    page.get_by_label("Connector options").fill('feeds = ["https://example.org/feed.xml"]\ninterval = "30m"')
    page.get_by_role("button", name="Add source").click()
    page.wait_for_url("**/sources?saved=city-news")
    assert "Saved source city-news" in page.get_by_role("status").inner_text()
    row = page.locator("tr", has=page.get_by_role("rowheader", name="city-news"))
    assert "rss" in row.inner_text() and "news" in row.inner_text()
    shot(page, tmp_path, "27-sources-saved")

    row.get_by_role("link", name="Edit city-news").click()
    page.wait_for_url(server + "/sources/city-news/edit")
    assert page.get_by_label("Name", exact=True).get_attribute("readonly") is not None
    assert "feed.xml" in page.get_by_label("Connector options").input_value()
    page.get_by_label("Visibility", exact=True).select_option("consented")
    page.get_by_role("button", name="Save source").click()
    page.wait_for_url("**/sources?saved=city-news")
    assert "consented" in page.locator("tr", has=page.get_by_role("rowheader", name="city-news")).inner_text()

    data = tomllib.loads(web.settings.config_path.read_text(encoding="utf-8"))
    [src] = [s for s in data["sources"] if s["name"] == "city-news"]
    assert src == {
        "name": "city-news", "connector": "rss", "visibility": "consented", "kind": "news",
        "feeds": ["https://example.org/feed.xml"], "interval": "30m",
    }  # fmt: skip
    assert settings_mod.load(web.settings.home).source("city-news").visibility == "consented"
    with web.store.connect() as conn:
        actions = [(e["action"], e["target"]) for e in audit.entries(conn)]
    assert ("source.add", "source:city-news") in actions and ("source.edit", "source:city-news") in actions
    tab.close()


def test_sign_in_with_the_identity_provider(
    web: Any, browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    idp = IdpServer()
    try:
        monkeypatch.setenv("OPENEAR_TEST_OIDC_SECRET", CLIENT_SECRET)
        path = web.settings.config_path
        path.write_text(path.read_text(encoding="utf-8") + oidc_toml(idp.idp.issuer), encoding="utf-8")
        idp.idp.claims = {"sub": "u-ana", "email": "ana@example.org", "groups": ["analysts"]}
        with serve(create_app(settings_mod.load(web.settings.home), web.store)) as url:
            tab = Tab(browser)
            page = tab.page
            page.goto(url + "/posts")
            button = page.get_by_role("link", name="Sign in with Test IdP")
            assert button.is_visible()
            shot(page, tmp_path, "28-login-oidc")
            button.click()
            page.wait_for_url(url + "/posts")  # back where the user was going, through the provider
            assert page.locator(".whoami").inner_text().startswith("ana@example.org")
            assert "analyst" in page.locator(".whoami").inner_text()
            cookie = next(c for c in tab.ctx.cookies() if c["name"] == "openear_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            tab.close()
    finally:
        idp.close()
