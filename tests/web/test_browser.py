"""End to end in headless Chromium (Debian's /usr/bin/chromium driven by Playwright): sign in, overview with its
chart, search, one post; the XSS payload in a post never runs. Screenshots go to tmp_path and /tmp/openear-shots.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path("/tmp/openear-shots")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(web: Any) -> Iterator[str]:
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(web.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def test_sign_in_overview_search_and_post(web: Any, server: str, browser: Any, tmp_path: Path) -> None:
    dialogs: list[str] = []
    errors: list[str] = []
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    page = ctx.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(server + "/posts")
    assert page.url.startswith(server + "/login")
    _shot(page, tmp_path, "01-login")
    page.get_by_label("Username").fill("analyst")
    page.get_by_label("Password").fill("wrong password!!")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").is_visible()
    page.get_by_label("Password").fill(web.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server + "/posts")

    page.goto(server + "/")
    chart = page.locator("figure.chart img")
    assert chart.is_visible()
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", chart.element_handle())
    assert page.get_by_role("heading", name="Overview").is_visible()
    _shot(page, tmp_path, "02-overview")

    page.get_by_role("link", name="Posts", exact=True).click()
    page.get_by_label("Search text").fill("llego")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url("**/posts?q=llego**")
    results = page.locator(".result")
    assert results.count() == 1
    assert "llegó" in results.first.inner_text()
    _shot(page, tmp_path, "03-search")

    page.goto(server + "/posts")
    assert "<script>alert(1)</script>" in page.content().replace("&lt;", "<").replace("&gt;", ">")
    _shot(page, tmp_path, "04-posts")
    page.locator(".result__link", has_text="Weird text").click()
    page.wait_for_url(f"**/posts/{web.ids['p3']}")
    assert "<script>alert(1)</script>" in page.locator(".post__text").inner_text()
    assert page.locator("main script, main img[src='x']").count() == 0
    _shot(page, tmp_path, "05-post")

    page.goto(server + "/transparency")
    _shot(page, tmp_path, "06-transparency")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(server + "/login")

    page.wait_for_timeout(300)
    assert dialogs == [], f"a JS dialog fired: {dialogs}"
    assert errors == []
    ctx.close()


def test_public_transparency_page_without_login(web: Any, server: str, browser: Any, tmp_path: Path) -> None:
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    page = ctx.new_page()
    page.goto(server + "/transparency")
    assert page.get_by_role("heading", name="Transparency").is_visible()
    assert page.get_by_role("link", name="Sign in").is_visible()
    _shot(page, tmp_path, "07-transparency-public")
    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(server + "/login")
    _shot(page, tmp_path, "08-login-narrow")
    ctx.close()


def _page(browser: Any) -> tuple[Any, Any, list[str], list[str]]:
    dialogs: list[str] = []
    errors: list[str] = []
    ctx = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    page = ctx.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    return ctx, page, dialogs, errors


def _sign_in(page: Any, server: str, username: str, password: str) -> None:
    page.goto(server + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server + "/")


def test_analyst_searches_overrides_a_label_exports_and_saves_a_search(
    web: Any, server: str, browser: Any, tmp_path: Path
) -> None:
    ctx, page, dialogs, errors = _page(browser)
    _sign_in(page, server, "analyst", web.password)
    page.get_by_role("link", name="Posts", exact=True).click()
    page.get_by_label("Search text").fill("(tips OR pago) -llegó")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url("**/posts?q=**")
    assert page.locator(".result").count() == 2
    _shot(page, tmp_path, "10-query-language")

    page.get_by_label("Search text").fill("app AND")
    page.get_by_role("button", name="Search", exact=True).click()
    assert "expected a term" in page.get_by_role("alert").inner_text()

    page.get_by_label("Search text").fill("tips")
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_placeholder("Name this search").fill("Missing tips")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url("**/posts?q=tips")
    assert page.get_by_role("link", name="Missing tips", exact=True).is_visible()

    with page.expect_download() as info:
        page.get_by_role("link", name="CSV").click()
    download = info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_text().startswith("# Exported from") and "withheld" in saved.read_text().splitlines()[0]
    _shot(page, tmp_path, "11-saved-search-and-export")

    page.locator(".result__link").first.click()
    page.wait_for_url("**/posts/*")
    page.get_by_label("Sentiment", exact=True).select_option("positive")
    page.get_by_role("button", name="Save sentiment").click()
    page.wait_for_url("**?changed=sentiment")
    assert "Saved your sentiment" in page.get_by_role("status").inner_text()
    assert page.locator("td code", has_text="analyst@analyst").count() == 1
    _shot(page, tmp_path, "12-label-override")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(server + "/login")
    page.goto(server + "/posts")
    assert page.url.startswith(server + "/login")
    assert dialogs == [] and errors == []
    ctx.close()


def test_admin_pages(web: Any, server: str, browser: Any, tmp_path: Path) -> None:
    ctx, page, dialogs, errors = _page(browser)
    _sign_in(page, server, "admin", web.password)
    page.get_by_role("link", name="Users and roles").click()
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Role", exact=True).select_option("analyst")
    page.get_by_role("button", name="Add user").click()
    assert page.locator("code.secret").is_visible()
    _shot(page, tmp_path, "13-admin-users")

    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Retention (days)").fill("120")
    page.get_by_role("button", name="Save settings").click()
    assert page.get_by_role("status").inner_text() == "Saved."
    _shot(page, tmp_path, "14-admin-settings")

    page.get_by_role("link", name="Sources").click()
    assert page.get_by_role("heading", name="Sources").is_visible()
    _shot(page, tmp_path, "15-sources")

    page.get_by_role("link", name="Audit log").click()
    assert "the chain verifies" in page.locator(".page-head").inner_text()
    assert page.locator("td", has_text="settings.change").count() >= 1
    with page.expect_download() as info:
        page.get_by_role("link", name="Export JSON Lines").click()
    assert info.value.suggested_filename.endswith(".jsonl")
    _shot(page, tmp_path, "16-audit-log")

    page.goto(server + "/transparency")
    assert "120 days" in page.locator("main").inner_text()
    assert dialogs == [] and errors == []
    ctx.close()


PHONE_PAGES = ["/", "/posts", "/cases", "/alerts", "/reports", "/teams", "/sources", "/admin/users", "/admin/audit"]


def test_every_page_fits_a_phone_screen(web: Any, server: str, browser: Any, tmp_path: Path) -> None:
    """At 390 px an admin's navigation wraps and wide tables scroll in their own box: no page scrolls sideways."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = ctx.new_page()
    _sign_in(page, server, "admin", web.password)
    too_wide = {}
    for path in PHONE_PAGES:
        page.goto(server + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            too_wide[path] = width
    nav = page.get_by_role("navigation", name="Main").bounding_box()
    assert nav is not None and nav["x"] + nav["width"] <= 390
    _shot(page, tmp_path, "17-audit-phone")
    assert too_wide == {}, f"pages wider than the phone's screen: {too_wide}"
    ctx.close()
