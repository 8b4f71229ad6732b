"""The shared HTTP layer against a real local server: retries, backoff, Retry-After, rate-limit headers, redaction."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from replay import ReplayServer, Reply, fixture, json_reply, server, shared_reply  # noqa: F401 - the server fixture

from openear.connectors.http import HttpClient, parse_reset, parse_retry_after, redact
from openear.errors import TerminalError, TransientError

OK = json_reply({"ok": True})


def client(sleeps: list[float], **kw) -> HttpClient:
    kw.setdefault("backoff", 0.5)
    kw.setdefault("timeout", 2.0)
    return HttpClient("test", sleep=sleeps.append, **kw)


def test_retry_after_seconds_is_honoured(server: ReplayServer) -> None:
    server.add("/r", Reply(429, {"retry-after": "7"}, b"slow down"), OK)
    sleeps: list[float] = []
    assert client(sleeps).get_json(f"{server.url}/r") == {"ok": True}
    assert sleeps == [7.0]


def test_retry_after_http_date_is_honoured(server: ReplayServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    server.add("/r", Reply(503, {"retry-after": when}), OK)
    sleeps: list[float] = []
    client(sleeps).get_json(f"{server.url}/r")
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 31


def test_x_429_with_epoch_reset(server: ReplayServer) -> None:
    reset = str(int(time.time()) + 40)
    server.add("/2/tweets/search/recent", fixture("x/search_page1.json", status=429, **{
        "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset}), fixture("x/search_page1.json"))
    sleeps: list[float] = []
    client(sleeps).get_json(f"{server.url}/2/tweets/search/recent")
    assert len(sleeps) == 1 and 35 <= sleeps[0] <= 41


def test_x_recorded_429_sample(server: ReplayServer) -> None:
    """The recorded X 429 (reset long past): retried after a jittered backoff, then the page is read."""
    server.add("/2/tweets/1", shared_reply("x/error_429_rate_limit_exceeded.txt"), OK)
    sleeps: list[float] = []
    assert client(sleeps).get_json(f"{server.url}/2/tweets/1") == {"ok": True}
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5


def test_mastodon_iso_reset_and_bluesky_epoch_reset() -> None:
    now = 1_800_000_000.0
    iso = datetime.fromtimestamp(now + 90, UTC).isoformat().replace("+00:00", "Z")
    assert parse_reset(iso, now) == pytest.approx(90, abs=0.01)
    assert parse_reset(str(int(now) + 60), now) == pytest.approx(60)  # Bluesky / X: epoch seconds
    assert parse_reset("246", now) == 246  # Reddit: seconds from now
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0
    assert parse_retry_after("soon", now) is None


def test_reddit_remaining_zero_waits_for_the_reset_before_the_next_request(server: ReplayServer) -> None:
    server.add("/a", json_reply({"n": 1}, **{"x-ratelimit-remaining": "0.0", "x-ratelimit-reset": "12"}))
    server.add("/b", OK)
    sleeps: list[float] = []
    c = client(sleeps)
    c.get_json(f"{server.url}/a")
    assert sleeps == []
    c.get_json(f"{server.url}/b")
    assert len(sleeps) == 1 and 11 <= sleeps[0] <= 12


def test_a_wait_longer_than_max_wait_gives_up_as_transient(server: ReplayServer) -> None:
    server.add("/r", Reply(429, {"retry-after": "3600"}))
    with pytest.raises(TransientError, match="rate limited for 3600s"):
        client([], max_wait=60).get(f"{server.url}/r")
    assert len(server.hits("/r")) == 1


def test_5xx_is_retried_with_exponential_backoff_and_full_jitter(server: ReplayServer) -> None:
    server.add("/r", Reply(502), Reply(500), Reply(503), OK)
    sleeps: list[float] = []
    assert client(sleeps, backoff=1.0, retries=4).get_json(f"{server.url}/r") == {"ok": True}
    assert len(sleeps) == 3
    for attempt, s in enumerate(sleeps):
        assert 0 <= s <= 2**attempt


def test_5xx_forever_is_transient_after_the_retries(server: ReplayServer) -> None:
    server.add("/r", Reply(500))
    with pytest.raises(TransientError, match="HTTP 500 after 3 attempts"):
        client([], retries=2).get(f"{server.url}/r")
    assert len(server.hits("/r")) == 3


def test_timeouts_are_retried(server: ReplayServer) -> None:
    server.add("/r", Reply(200, {}, b"{}", delay=1.0), OK)
    sleeps: list[float] = []
    assert client(sleeps, timeout=0.2).get_json(f"{server.url}/r") == {"ok": True}
    assert len(sleeps) == 1


def test_timeouts_forever_are_transient(server: ReplayServer) -> None:
    server.add("/r", Reply(200, {}, b"{}", delay=1.0))
    with pytest.raises(TransientError, match="timed out"):
        client([], timeout=0.2, retries=1).get(f"{server.url}/r")


def test_malformed_json_is_retried_then_transient(server: ReplayServer) -> None:
    server.add("/r", Reply(200, {"content-type": "application/json"}, b'{"data": [1, 2'), OK)
    assert client([]).get_json(f"{server.url}/r") == {"ok": True}
    server.add("/bad", Reply(200, {"content-type": "application/json"}, b"<html>oops</html>"))
    with pytest.raises(TransientError, match="malformed JSON"):
        client([], retries=1).get_json(f"{server.url}/bad")


def test_4xx_is_terminal_and_secrets_are_redacted(server: ReplayServer) -> None:
    secret = "sekret-token-abcdef"
    server.add("/r", json_reply({"error": f"bad token {secret}"}, 401))
    c = client([], secrets=[secret])
    with pytest.raises(TerminalError) as info:
        c.get(f"{server.url}/r?access_token={secret}", headers={"Authorization": f"Bearer {secret}"})
    assert secret not in str(info.value) and "***" in str(info.value)
    assert server.requests[0].headers["authorization"] == f"Bearer {secret}"
    assert redact(f"x {secret} y", [secret]) == "x *** y"


def test_network_error_is_transient_and_names_no_secret() -> None:
    secret = "another-secret-value"
    c = client([], retries=1, secrets=[secret])
    with pytest.raises(TransientError) as info:
        c.get(f"http://127.0.0.1:9/{secret}")  # nothing listens on the discard port
    assert secret not in str(info.value)


def test_pacing_spaces_requests(server: ReplayServer) -> None:
    server.add("/r", OK)
    c = HttpClient("test", min_interval=0.2)
    start = time.monotonic()
    for _ in range(3):
        c.get(f"{server.url}/r")
    assert time.monotonic() - start >= 0.4


def test_user_agent_is_sent(server: ReplayServer) -> None:
    server.add("/r", OK)
    HttpClient("test", user_agent="openear-test/1 (by /u/operator)").get(f"{server.url}/r")
    assert server.requests[0].headers["user-agent"] == "openear-test/1 (by /u/operator)"
