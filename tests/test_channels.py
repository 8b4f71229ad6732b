"""Channels against real local servers: SMTP (aiosmtpd) and a webhook receiver that checks the HMAC signature,
including receiver failures, retries with backoff, Retry-After and permanent errors."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from openear.channels import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ChannelNotifier,
    Message,
    send_email,
    send_webhook,
    verify_signature,
)
from openear.triage.config import ChannelConfig, SmtpConfig, Team, WebhookConfig

SECRET = "webhook-secret"
MSG = Message(subject="[openear] Escalated case #3: crashes", text="Case #3 was escalated.\n", ref="case:3",
              fields={"team": "Driver app"}, link="/cases/3",
              attachments=(("report.pdf", b"%PDF-1.7 fake", "application/pdf"),))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- SMTP ---------------------------------------------------------------------------------------------------------
class Handler:
    """aiosmtpd handler: answers ``codes`` in turn (then 250) and keeps what it accepted."""

    def __init__(self, codes: list[str] | None = None) -> None:
        self.codes = list(codes or [])
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.codes:
            return self.codes.pop(0)
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Handler, SmtpConfig]]:
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    handler = Handler()
    port = _free_port()
    ctl = controller_mod.Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield handler, SmtpConfig(host="127.0.0.1", port=port, sender="openear@example.org", timeout=5)
    finally:
        ctl.stop()


def test_email_reaches_a_real_smtp_server_with_text_and_attachment(smtp: Any) -> None:
    handler, cfg = smtp
    d = send_email(cfg, ["app@example.org", "lead@example.org"], MSG, team="Driver app", sleep=lambda _s: None)
    assert (d.status, d.attempts, d.channel) == ("sent", 1, "email")
    rcpts, raw = handler.messages[0]
    assert rcpts == ["app@example.org", "lead@example.org"]
    mail = message_from_bytes(raw)
    assert mail["Subject"] == MSG.subject and mail["X-Openear-Ref"] == "case:3"
    parts = {p.get_content_type(): p for p in mail.walk()}
    assert "Case #3 was escalated" in parts["text/plain"].get_payload(decode=True).decode()
    assert parts["application/pdf"].get_filename() == "report.pdf"


def test_email_retries_temporary_failures_then_gives_up_on_permanent_ones(smtp: Any) -> None:
    handler, cfg = smtp
    waits: list[float] = []
    handler.codes = ["451 try again later", "421 busy"]
    d = send_email(cfg, ["a@example.org"], MSG, retries=3, backoff=0.5, sleep=waits.append)
    assert (d.status, d.attempts) == ("sent", 3) and waits == [0.5, 1.0] and len(handler.messages) == 1
    handler.codes = ["554 rejected as spam"]
    waits.clear()
    d = send_email(cfg, ["a@example.org"], MSG, retries=3, backoff=0.5, sleep=waits.append)
    assert (d.status, d.attempts) == ("failed", 1) and "554" in (d.error or "") and waits == []


def test_email_to_a_closed_port_fails_after_retries() -> None:
    waits: list[float] = []
    cfg = SmtpConfig(host="127.0.0.1", port=_free_port(), timeout=1)
    d = send_email(cfg, ["a@example.org"], MSG, retries=2, backoff=0.1, sleep=waits.append)
    assert (d.status, d.attempts) == ("failed", 3) and waits == [0.1, 0.2]


# -- webhooks -----------------------------------------------------------------------------------------------------
class Receiver:
    """A local webhook receiver answering ``statuses`` in turn (then 200); checks every signature."""

    def __init__(self) -> None:
        self.statuses: list[tuple[int, dict[str, str]]] = []
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify_signature(SECRET, self.headers[TIMESTAMP_HEADER], body, self.headers[SIGNATURE_HEADER])
                outer.bad_signatures += not ok
                outer.received.append(json.loads(body))
                status, headers = outer.statuses.pop(0) if outer.statuses else (200, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    t = threading.Thread(target=r.server.serve_forever, daemon=True)
    t.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_webhook_is_slack_compatible_and_signed(receiver: Receiver) -> None:
    d = send_webhook(WebhookConfig(receiver.url, SECRET), MSG, team="Driver app", base_url="https://openear.example")
    assert (d.status, d.attempts) == ("sent", 1)
    body = receiver.received[0]
    assert body["text"].startswith(MSG.subject) and body["blocks"][0]["type"] == "header"
    assert "<https://openear.example/cases/3|Open in openear>" in json.dumps(body)
    assert receiver.bad_signatures == 0


def test_signature_detects_tampering() -> None:
    from openear.channels import sign

    sig = sign(SECRET, "1700000000", b'{"a":1}')
    assert verify_signature(SECRET, "1700000000", b'{"a":1}', sig)
    assert not verify_signature(SECRET, "1700000000", b'{"a":2}', sig)
    assert not verify_signature("other", "1700000000", b'{"a":1}', sig)
    assert not verify_signature(SECRET, "1700000001", b'{"a":1}', sig)


def test_webhook_retries_5xx_with_backoff_and_honours_retry_after(receiver: Receiver) -> None:
    waits: list[float] = []
    receiver.statuses = [(500, {}), (503, {}), (429, {"Retry-After": "7"})]
    d = send_webhook(WebhookConfig(receiver.url, SECRET), MSG, retries=3, backoff=0.25, sleep=waits.append)
    assert (d.status, d.attempts) == ("sent", 4)
    assert waits == [0.25, 0.5, 7.0] and len(receiver.received) == 4 and receiver.bad_signatures == 0


def test_webhook_gives_up_after_retries_and_on_client_errors(receiver: Receiver) -> None:
    waits: list[float] = []
    receiver.statuses = [(500, {})] * 3
    d = send_webhook(WebhookConfig(receiver.url, SECRET), MSG, retries=2, backoff=0.1, sleep=waits.append)
    assert (d.status, d.attempts, d.error) == ("failed", 3, "HTTP 500") and waits == [0.1, 0.2]
    receiver.statuses = [(404, {})]
    waits.clear()
    d = send_webhook(WebhookConfig(receiver.url, SECRET), MSG, retries=3, backoff=0.1, sleep=waits.append)
    assert (d.status, d.attempts, d.error) == ("failed", 1, "HTTP 404") and waits == []


def test_webhook_to_a_dead_receiver_fails_after_retries() -> None:
    waits: list[float] = []
    hook = WebhookConfig(f"http://127.0.0.1:{_free_port()}/hook", SECRET)
    d = send_webhook(hook, MSG, retries=2, backoff=0.1, sleep=waits.append, timeout=2)
    assert d.status == "failed" and d.attempts == 3 and "ConnectError" in (d.error or "") and waits == [0.1, 0.2]


def test_notifier_uses_each_team_s_channels(smtp: Any, receiver: Receiver) -> None:
    handler, scfg = smtp
    notifier = ChannelNotifier(ChannelConfig(smtp=scfg, retries=1, backoff_seconds=0), sleep=lambda _s: None)
    both = Team("Driver app", email=("app@example.org",), webhook=WebhookConfig(receiver.url, SECRET))
    out = notifier.notify(both, MSG)
    assert sorted((d.channel, d.status) for d in out) == [("email", "sent"), ("webhook", "sent")]
    none = notifier.notify(Team("Comms"), MSG)
    assert [(d.channel, d.status) for d in none] == [("none", "skipped")]
    assert len(handler.messages) == 1 and len(receiver.received) == 1
