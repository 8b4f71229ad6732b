"""The shared HTTP layer of the live connectors (httpx).

One :class:`HttpClient` per source. It gives every request a timeout and a truthful User-Agent, paces requests
under the platform's published limit (``min_interval`` seconds apart), retries timeouts, transport errors, 5xx,
408 and 429 with exponential backoff and full jitter, honours ``Retry-After`` (seconds or an HTTP date) and the
platforms' rate-limit headers (``x-ratelimit-*`` of Reddit and Mastodon, ``x-rate-limit-*`` of X,
``ratelimit-*`` of Bluesky; the reset is read as delta seconds, epoch seconds or an ISO 8601 time), and waits for
the reset when a 2xx says nothing is left. Secrets (tokens, client secrets) are redacted from every message it
raises or logs.

A response body larger than ``max_bytes`` (32 MiB; counted as it arrives, after decompression) is refused with
:class:`TransientError` without retrying: memory stays bounded whatever a source sends.

Errors: :class:`TransientError` (retry later: out of retries, or told to wait longer than ``max_wait``),
:class:`TerminalError` (401, 403, 404... : retrying will not help), :class:`Stopped` (the collector is stopping).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from openear import __version__
from openear.errors import TerminalError, TransientError

log = logging.getLogger("openear.http")

DEFAULT_USER_AGENT = f"openear/{__version__} (self-hosted social listening; public posts only)"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 522, 524})
_REMAINING = ("x-ratelimit-remaining", "x-rate-limit-remaining", "ratelimit-remaining")
_RESET = ("x-ratelimit-reset", "x-rate-limit-reset", "ratelimit-reset")
MAX_RESPONSE_BYTES = 32 << 20  # one response's body, decoded; a larger one is refused (a flood, not a page)
_EPOCH_FLOOR = 1e9  # a reset above this is an epoch time (X, Bluesky); below, seconds from now (Reddit)


class Stopped(Exception):
    """The collector was asked to stop while a request was waiting."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (at least 4 characters) replaced by ``***``."""
    for s in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta seconds or an HTTP date; ``None`` if unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a rate-limit window resets: delta seconds, epoch seconds or an ISO 8601 time."""
    if not value:
        return None
    value = value.strip()
    now = time.time() if now is None else now
    try:
        number = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    if number >= _EPOCH_FLOOR:
        return max(0.0, number - now)
    return max(0.0, number)


def _header(headers: Mapping[str, str], names: Iterable[str]) -> str | None:
    for n in names:
        v = headers.get(n)
        if v is not None:
            return v
    return None


def rate_limit_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """How long a 429 (or an exhausted window) asks us to wait: ``Retry-After`` first, then the reset header."""
    wait = parse_retry_after(headers.get("retry-after"), now)
    if wait is not None:
        return wait
    return parse_reset(_header(headers, _RESET), now)


class HttpClient:
    """Requests for one source: paced, retried, rate-limit aware, secrets redacted."""

    def __init__(
        self,
        platform: str,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        secrets: Iterable[str] = (),
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_wait: float = 900.0,
        max_bytes: int = MAX_RESPONSE_BYTES,
        min_interval: float = 0.0,
        follow_redirects: bool = True,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.platform = platform
        self.secrets = [s for s in secrets if s]
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_wait = max_wait
        self.max_bytes = max_bytes
        self.min_interval = min_interval
        self.stop = stop
        self._sleep = sleep
        self._next_at = 0.0  # monotonic time before which no request may start (pacing, exhausted window)
        self.requests = 0
        self.waits: list[float] = []  # every wait, for the summary and tests
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": user_agent},
            follow_redirects=follow_redirects,
            transport=transport,
        )

    def add_secret(self, secret: str | None) -> None:
        if secret:
            self.secrets.append(secret)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    # -- waiting ----------------------------------------------------------------------------------------------
    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` (interrupted by the stop event, raising :class:`Stopped`)."""
        if seconds <= 0:
            return
        self.waits.append(seconds)
        if self._sleep is not None:
            self._sleep(seconds)
        elif self.stop is not None:
            if self.stop.wait(seconds):
                raise Stopped()
        else:
            time.sleep(seconds)
        if self.stop is not None and self.stop.is_set():
            raise Stopped()

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in ``[0, min(max_backoff, backoff * 2**attempt)]``."""
        return random.uniform(0, min(self.max_backoff, self.backoff * (2**attempt)))

    def _pace(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Stopped()
        delay = self._next_at - time.monotonic()
        if delay > 0:
            self.wait(delay)

    def _note_limits(self, resp: httpx.Response) -> None:
        """After a response: the next request waits ``min_interval``, or for the reset if nothing is left."""
        next_at = time.monotonic() + self.min_interval
        remaining = _header(resp.headers, _REMAINING)
        try:
            exhausted = remaining is not None and float(remaining) <= 0
        except ValueError:
            exhausted = False
        if exhausted:
            reset = parse_reset(_header(resp.headers, _RESET))
            if reset is not None:
                if reset > self.max_wait:
                    raise TransientError(f"{self.platform}: rate limit exhausted for {reset:.0f}s")
                next_at = max(next_at, time.monotonic() + reset)
        self._next_at = next_at

    # -- requests ---------------------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, Any] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        ok: Iterable[int] = (),
    ) -> httpx.Response:
        """Send a request with pacing and retries; returns a 2xx response (or one whose status is in ``ok``)."""
        ok = set(ok)
        where = f"{self.platform}: {method} {self._safe_url(url)}"
        last = ""
        for attempt in range(self.retries + 1):
            self._pace()
            self.requests += 1
            try:
                resp = self._send(method, url, params=params, headers=headers, data=data, auth=auth)
            except httpx.TimeoutException as exc:
                last = f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = f"network error: {self.redact(str(exc)) or type(exc).__name__}"
            else:
                log.info("%s -> %s", where, resp.status_code)
                if resp.status_code < 300 or resp.status_code in ok:
                    self._note_limits(resp)
                    return resp
                if resp.status_code in RETRY_STATUSES:
                    last = f"HTTP {resp.status_code}"
                    wait = rate_limit_wait(resp.headers) if resp.status_code in (429, 503) else None
                    self._next_at = time.monotonic() + self.min_interval
                    if wait is not None:
                        if wait > self.max_wait:
                            raise TransientError(f"{where}: rate limited for {wait:.0f}s (limit {self.max_wait:.0f}s)")
                        if attempt < self.retries:
                            self.wait(wait if wait > 0 else self._backoff(attempt))
                        continue
                else:
                    raise TerminalError(f"{where}: HTTP {resp.status_code}{self._reason(resp)}")
            if attempt < self.retries:
                self.wait(self._backoff(attempt))
        raise TransientError(f"{where}: {last} after {self.retries + 1} attempts")

    def _send(self, method: str, url: str, *, auth: httpx.Auth | tuple[str, str] | None, **kw: Any) -> httpx.Response:
        """One request, its body read up to :attr:`max_bytes` (decoded): a flooding source cannot fill memory."""
        request = self._client.build_request(method, url, **kw)
        resp = self._client.send(request, auth=auth, stream=True)
        try:
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise self._too_big(method, url, f"declares {int(declared)} bytes")
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_big(method, url, f"sent more than {self.max_bytes} bytes")
                chunks.append(chunk)
            resp._content = b"".join(chunks)  # what Response.read() sets: the body is now in memory
        finally:
            resp.close()
        return resp

    def _too_big(self, method: str, url: str, what: str) -> TransientError:
        return TransientError(f"{self.platform}: {method} {self._safe_url(url)}: response too large: {what} "
                              f"(limit {self.max_bytes} bytes)")

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def get_json(self, url: str, **kw: Any) -> Any:
        """GET and parse JSON; a malformed body is retried like a 5xx, then raises :class:`TransientError`."""
        for attempt in range(self.retries + 1):
            resp = self.request("GET", url, **kw)
            try:
                return json.loads(resp.content)
            except (ValueError, RecursionError) as exc:
                msg = f"{self.platform}: GET {self._safe_url(url)}: malformed JSON ({self.redact(str(exc))[:120]})"
                log.warning("%s", msg)
                if attempt >= self.retries:
                    raise TransientError(msg) from None
                self.wait(self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _safe_url(self, url: str) -> str:
        return self.redact(url.split("?", 1)[0])

    def _reason(self, resp: httpx.Response) -> str:
        body = resp.text[:200].replace("\n", " ").strip() if resp.content else ""
        return f": {self.redact(body)}" if body else ""
