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

    page.get_by_role("link", name="Posts").click()
    page.get_by_label("Search text").fill("llego")
    page.get_by_role("button", name="Search").click()
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
