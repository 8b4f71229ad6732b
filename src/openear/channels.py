"""Alert channels: e-mail (SMTP) and Slack-compatible webhooks, configured per team.

Webhooks get a JSON body (``text`` plus Slack ``blocks``) signed with HMAC-SHA256: the headers are
``X-Openear-Timestamp: <unix seconds>`` and ``X-Openear-Signature: sha256=<hex of HMAC(secret, "<ts>.<body>")>``.
Connection errors, timeouts, 429 and 5xx answers are retried with exponential backoff (``Retry-After`` honoured,
capped); other 4xx answers fail at once. SMTP temporary failures (4xx, connection errors) are retried the same way.
Every attempt's outcome is returned as a :class:`Delivery` and recorded in the ``deliveries`` table.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
from sqlalchemy import Connection, insert

from openear.store.schema import deliveries
from openear.triage.config import ChannelConfig, SmtpConfig, Team, WebhookConfig

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ChannelNotifier",
    "Delivery",
    "Message",
    "Notifier",
    "Outbox",
    "record_deliveries",
    "send_email",
    "send_webhook",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Openear-Signature"
TIMESTAMP_HEADER = "X-Openear-Timestamp"
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class Message:
    """What a channel sends: a subject and plain text, optional HTML, facts and attachments."""

    subject: str
    text: str
    ref: str  # case:ID, alert:ID, report:ID
    html: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    link: str | None = None  # a path in the web app
    attachments: tuple[tuple[str, bytes, str], ...] = ()  # (file name, data, MIME type)


@dataclass(frozen=True)
class Delivery:
    channel: str  # email, webhook, none
    team: str
    ref: str
    subject: str
    status: str  # sent, failed, skipped
    attempts: int
    error: str | None = None


class Notifier(Protocol):
    def notify(self, team: Team, message: Message) -> list[Delivery]: ...


class Outbox:
    """A notifier that only keeps the messages (tests, the demo)."""

    def __init__(self) -> None:
        self.sent: list[tuple[Team, Message]] = []

    def notify(self, team: Team, message: Message) -> list[Delivery]:
        self.sent.append((team, message))
        return [Delivery("outbox", team.name, message.ref, message.subject, "sent", 1)]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def slack_payload(message: Message, base_url: str | None = None) -> dict[str, Any]:
    """A Slack-compatible body: ``text`` for simple receivers, ``blocks`` for Slack."""
    link = f"{base_url.rstrip('/')}{message.link}" if base_url and message.link else None
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": message.text[:2900]}},
    ]
    if message.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in list(message.fields.items())[:10]],
            }
        )
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in openear>"}]})
    return {"text": f"{message.subject}\n{message.text}", "blocks": blocks, "ref": message.ref}


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), MAX_RETRY_AFTER) if value else None
    except ValueError:
        return None


def send_webhook(
    hook: WebhookConfig,
    message: Message,
    *,
    team: str = "",
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    client: httpx.Client | None = None,
    base_url: str | None = None,
) -> Delivery:
    """POST the signed JSON; retries transient failures. Never raises: the outcome is in the Delivery."""
    body = json.dumps(slack_payload(message, base_url), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=False)
    error = None
    attempt = 0
    try:
        for attempt in range(1, retries + 2):
            ts = str(int(clock()))
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: ts, "User-Agent": "openear"}
            if hook.secret:
                headers[SIGNATURE_HEADER] = sign(hook.secret, ts, body)
            wait = backoff * 2 ** (attempt - 1)
            try:
                r = http.post(hook.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                error = f"{exc.__class__.__name__}: {exc}"
            else:
                if r.status_code < 300:
                    return Delivery("webhook", team, message.ref, message.subject, "sent", attempt)
                error = f"HTTP {r.status_code}"
                if r.status_code != 429 and r.status_code < 500:
                    break
                wait = _retry_after(r.headers.get("retry-after")) or wait
            if attempt <= retries:
                sleep(wait)
    finally:
        if own:
            http.close()
    return Delivery("webhook", team, message.ref, message.subject, "failed", attempt, error)


def _email(smtp: SmtpConfig, to: Sequence[str], message: Message) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = message.subject
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(to)
    msg["X-Openear-Ref"] = message.ref
    msg.set_content(message.text)
    if message.html:
        msg.add_alternative(message.html, subtype="html")
    for name, data, mime in message.attachments:
        main, _, sub = mime.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub or "octet-stream", filename=name)
    return msg


def send_email(
    smtp: SmtpConfig,
    to: Sequence[str],
    message: Message,
    *,
    team: str = "",
    retries: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send one message to ``to`` over SMTP; retries temporary failures. Never raises."""
    msg = _email(smtp, to, message)
    error = None
    attempt = 0
    for attempt in range(1, retries + 2):
        try:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as s:
                if smtp.starttls:
                    s.starttls()
                if smtp.username:
                    s.login(smtp.username, smtp.password)
                refused = s.send_message(msg)
            if refused:
                return Delivery("email", team, message.ref, message.subject, "failed", attempt, f"refused: {refused}")
            return Delivery("email", team, message.ref, message.subject, "sent", attempt)
        except smtplib.SMTPResponseException as exc:
            error = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            if not 400 <= exc.smtp_code < 500:
                break
        except smtplib.SMTPRecipientsRefused as exc:
            error = f"recipients refused: {sorted(exc.recipients)}"
            break
        except (OSError, smtplib.SMTPException) as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        if attempt <= retries:
            sleep(backoff * 2 ** (attempt - 1))
    return Delivery("email", team, message.ref, message.subject, "failed", attempt, error)


class ChannelNotifier:
    """Sends a message to a team's e-mail addresses and webhook, as configured."""

    def __init__(
        self,
        config: ChannelConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        base_url: str | None = None,
    ) -> None:
        self.config = config
        self.sleep = sleep
        self.clock = clock
        self.base_url = base_url

    def notify(self, team: Team, message: Message) -> list[Delivery]:
        c = self.config
        out: list[Delivery] = []
        if team.email and c.smtp is not None:
            out.append(
                send_email(c.smtp, team.email, message, team=team.name, retries=c.retries,
                           backoff=c.backoff_seconds, sleep=self.sleep)
            )
        if team.webhook is not None:
            out.append(
                send_webhook(team.webhook, message, team=team.name, retries=c.retries, backoff=c.backoff_seconds,
                             timeout=c.timeout, sleep=self.sleep, clock=self.clock, base_url=self.base_url)
            )
        if not out:
            why = "no e-mail (or no [channels.smtp]) and no webhook configured for this team"
            out.append(Delivery("none", team.name, message.ref, message.subject, "skipped", 0, why))
        return out


def record_deliveries(conn: Connection, items: Sequence[Delivery], now: datetime) -> None:
    """Keep every delivery's outcome (the escalation and alert record)."""
    if items:
        conn.execute(
            insert(deliveries),
            [
                {
                    "at": now, "channel": d.channel, "team": d.team[:100], "ref": d.ref[:100],
                    "subject": d.subject[:300], "status": d.status, "attempts": d.attempts, "error": d.error,
                }
                for d in items
            ],
        )
