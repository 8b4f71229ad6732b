"""The live-connector contract, the registry of built-in connectors and helpers they share.

A connector is built from a :class:`SourceSpec` and an environment (for credentials). ``fetch(cursor)`` is its only
network I/O: it yields :class:`RawItem` (or :class:`InvalidItem`) per item, a :class:`CursorMark` whenever every
item before it is covered by a new cursor (the pipeline saves it with that batch), and :class:`Deleted` for an item
the source says is gone. ``normalise(raw)`` is pure. Items whose author did not consent (Mastodon
``indexable: false``, Bluesky ``!no-unauthenticated``, X protected accounts, non-public statuses) never leave the
connector: they are counted in ``skipped`` by reason. ``recheck(external_ids)`` yields the ids of stored items the
source now reports deleted or removed.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from openear.connectors.http import DEFAULT_USER_AGENT, HttpClient
from openear.errors import ConfigError
from openear.models import CursorMark, InvalidItem, Post, RawItem
from openear.settings import SourceSpec

LIVE_CONNECTORS = ("reddit", "mastodon", "bluesky", "x", "rss")
DEFAULT_INTERVAL = 300.0
_INTERVAL = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Deleted:
    """In a connector's stream: the item ``external_id`` was deleted or removed at the source."""

    external_id: str


Item = RawItem | InvalidItem | CursorMark | Deleted


def parse_interval(value: Any, where: str = "interval") -> float:
    """``"5m"``, ``"30s"``, ``"1h"``, ``"1d"`` or a number of seconds, as seconds (at least 1)."""
    if value is None:
        return DEFAULT_INTERVAL
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _INTERVAL.fullmatch(str(value))
        if not m:
            raise ConfigError(f"{where}: not a duration like '5m', '30s' or '1h': {value!r}")
        seconds = float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
    if seconds < 1:
        raise ConfigError(f"{where}: must be at least one second")
    return seconds


class Connector:
    """Base class of the live connectors: options, credentials, HTTP client, cursor state."""

    name: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    min_interval: ClassVar[float] = 1.0  # seconds between requests: under the platform's published limit
    targets_key: ClassVar[str] = "hashtags"  # the connector-specific alias of ``hashtags``

    def __init__(
        self,
        spec: SourceSpec,
        *,
        env: Mapping[str, str] | None = None,
        stop: threading.Event | None = None,
        client: HttpClient | None = None,
    ) -> None:
        self.spec = spec
        self.options = dict(spec.options)
        self.env = os.environ if env is None else env
        self.where = f"source {spec.name!r}"
        self.base_url = str(self.options.get("base_url") or self.default_base_url).rstrip("/")
        if not re.match(r"https?://[^\s/]+", self.base_url):
            raise ConfigError(f"{self.where}: base_url: must be an http(s) URL, not {self.base_url!r}")
        self.targets = self._targets()
        self.interval = parse_interval(self.options.get("interval"), f"{self.where}: interval")
        self.max_pages = self.int_option("max_pages", 20)
        self.skipped: dict[str, int] = {}
        self.client = client or HttpClient(
            self.name,
            user_agent=str(self.options.get("user_agent") or DEFAULT_USER_AGENT),
            timeout=self.float_option("timeout", 30.0),
            retries=self.int_option("retries", 4),
            backoff=self.float_option("backoff", 1.0),
            max_wait=self.float_option("max_wait", 900.0),
            min_interval=self.float_option("min_interval", self.min_interval),
            stop=stop,
        )

    # -- configuration ----------------------------------------------------------------------------------------
    def _targets(self) -> list[str]:
        raw = self.options.get(self.targets_key, self.options.get("hashtags"))
        if raw is None:
            raise ConfigError(f"{self.where}: hashtags: required for connector {self.name!r}")
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw or not all(isinstance(t, str) and t.strip() for t in raw):
            raise ConfigError(f"{self.where}: hashtags: must be a non-empty list of strings")
        return [t.strip() for t in raw]

    def int_option(self, key: str, default: int) -> int:
        value = self.options.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{self.where}: {key}: must be a whole number >= 0")
        return value

    def float_option(self, key: str, default: float) -> float:
        value = self.options.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{self.where}: {key}: must be a number >= 0")
        return float(value)

    def secret(self, key: str, default_env: str, *, required: bool = True) -> str | None:
        """A credential from the environment variable named by option ``key`` (default ``default_env``)."""
        var = str(self.options.get(key) or default_env)
        value = self.env.get(var)
        if not value:
            if required:
                raise ConfigError(f"{self.where}: credential missing: set the environment variable {var}")
            return None
        self.client.add_secret(value)
        return value

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    # -- cursor state -----------------------------------------------------------------------------------------
    @staticmethod
    def load_state(cursor: str | None) -> dict[str, Any]:
        """The per-target state saved as the source's cursor (JSON object); empty if none or unreadable."""
        if not cursor:
            return {}
        try:
            value = json.loads(cursor)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @staticmethod
    def mark(state: Mapping[str, Any]) -> CursorMark:
        return CursorMark(json.dumps(state, sort_keys=True, separators=(",", ":")))

    # -- the contract -----------------------------------------------------------------------------------------
    def fetch(self, cursor: str | None) -> Iterator[Item]:  # pragma: no cover - abstract
        raise NotImplementedError

    def normalise(self, raw: RawItem) -> Post:  # pragma: no cover - abstract
        raise NotImplementedError

    def recheck(self, external_ids: Iterable[str]) -> Iterator[str]:
        """Ids among ``external_ids`` that the source now reports deleted or removed (default: none)."""
        return iter(())

    def close(self) -> None:
        self.client.close()


def connector_class(name: str) -> type[Connector]:
    """The built-in connector class called ``name``."""
    from openear.connectors import bluesky, mastodon, reddit, rss, x

    classes: dict[str, type[Connector]] = {
        "reddit": reddit.RedditConnector,
        "mastodon": mastodon.MastodonConnector,
        "bluesky": bluesky.BlueskyConnector,
        "x": x.XConnector,
        "rss": rss.RssConnector,
    }
    try:
        return classes[name]
    except KeyError:
        raise ConfigError(
            f"connector {name!r} is not a live connector (one of: {', '.join(LIVE_CONNECTORS)}; "
            "'files' sources are imported with 'openear import')"
        ) from None


def make_connector(
    spec: SourceSpec,
    *,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    client: HttpClient | None = None,
) -> Connector:
    """Build the connector a source declares; raises :class:`ConfigError` for a bad declaration."""
    return connector_class(spec.connector)(spec, env=env, stop=stop, client=client)


def html_to_text(value: str) -> str:
    """Plain text from a post's HTML: paragraphs and line breaks kept as new lines, tags dropped, entities undone."""
    import html

    text = re.sub(r"(?i)<br\s*/?>", "\n", value)
    text = re.sub(r"(?i)</p\s*>\s*<p[^>]*>", "\n\n", text)
    text = re.sub(r"(?s)<[^>]*>", "", text)
    return html.unescape(text)


def newer(a: str | None, b: str | None) -> bool:
    """Whether id ``a`` sorts after ``b`` (numeric ids by value, others by length then text)."""
    if a is None:
        return False
    if b is None:
        return True
    return (len(a), a) > (len(b), b)


__all__ = [
    "LIVE_CONNECTORS",
    "Connector",
    "Deleted",
    "Item",
    "connector_class",
    "html_to_text",
    "make_connector",
    "newer",
    "parse_interval",
]
