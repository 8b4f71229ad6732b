"""Serve an ASGI app with a real uvicorn server on a free loopback port, in a thread (for browser and OIDC tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Yields the server's base URL (``http://127.0.0.1:PORT``); stops the server on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = "/tmp/openear-shots"  # screenshots are also kept here, next to each test's tmp_path copy


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright; skips the test when either is missing."""
    import os

    import pytest

    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def shot(page: Any, folder: Any, name: str) -> None:
    """A full-page screenshot ``name``.png in ``folder`` (the test's tmp_path) and in :data:`SHOTS`."""
    import shutil
    from pathlib import Path

    path = Path(folder) / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    shutil.copy(path, Path(SHOTS) / path.name)
