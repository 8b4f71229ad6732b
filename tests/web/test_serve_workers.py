"""`openear serve --workers 2`: two processes share sessions and sign-in lockouts through the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from live_server import free_port

PASSWORD = "a-long-enough-password-1"


def _openear(*args: str, env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    exe = Path(sys.executable).with_name("openear")
    return subprocess.run([str(exe), *args], env=env, check=True, capture_output=True, **kw)  # type: ignore[call-overload]


def test_two_worker_processes_share_sessions_and_lockouts(tmp_path: Path) -> None:
    env = {**os.environ, "OPENEAR_HOME": str(tmp_path / "ws")}
    env.pop("OPENEAR_DATABASE_URL", None)
    _openear("init", env=env)
    for name in ("ana", "bob"):
        _openear("users", "add", name, "--role", "analyst", "--password-stdin", env=env, input=f"{PASSWORD}\n".encode())
    port = free_port()
    exe = Path(sys.executable).with_name("openear")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "serve exited"
            assert time.monotonic() < deadline, "openear serve --workers 2 did not start"
            time.sleep(0.2)
        # Each request opens a new connection, so the kernel spreads them over both processes.
        signed_in = httpx.post(f"{base}/login", data={"username": "ana", "password": PASSWORD})
        assert signed_in.status_code == 303
        cookie = dict(signed_in.cookies)
        assert all(httpx.get(f"{base}/", cookies=cookie).status_code == 200 for _ in range(12))
        for _ in range(5):
            assert httpx.post(f"{base}/login", data={"username": "bob", "password": "wrong"}).status_code == 401
        refused = [httpx.post(f"{base}/login", data={"username": "bob", "password": PASSWORD}) for _ in range(4)]
        assert [r.status_code for r in refused] == [401] * 4  # locked in every process, not only the one counting
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
