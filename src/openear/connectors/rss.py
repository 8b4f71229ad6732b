"""RSS and Atom feeds of publishers (``kind = "news"``), read with feedparser.

Each feed URL (``feeds``, or ``hashtags``) is fetched with a conditional GET (``If-None-Match`` /
``If-Modified-Since`` from the ETag and Last-Modified of the previous fetch, kept in the cursor); a 304 yields
nothing. The XML is first checked with defusedxml (no entity expansion, no external entities: a feed that tries is
refused), and only then parsed by feedparser from bytes (feedparser never fetches anything itself). A feed URL,
and every redirect, must resolve to public addresses: private, loopback, link-local and reserved addresses are
refused unless the source sets ``allow_private_addresses = true``. The cursor is marked after each feed.
Requests are paced 1 s apart.
"""

from __future__ import annotations

import calendar
import hashlib
import ipaddress
import socket
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

from openear.connectors.base import Connector, Item, html_to_text
from openear.errors import ConfigError, InvalidField, TerminalError
from openear.models import InvalidItem, Post, RawItem
from openear.normalise import clean_line, id_field, lang_field, parse_datetime, text_field, url_field

MAX_REDIRECTS = 5
MAX_FEED_BYTES = 10 << 20


def check_public(url: str, *, allow_private: bool = False) -> None:
    """Refuse a URL that is not http(s) or whose host resolves to a non-public address (unless allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TerminalError(f"rss: {url}: only http(s) feed URLs are allowed")
    if allow_private:
        return
    host = parts.hostname
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                   proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise TerminalError(f"rss: {host}: cannot resolve: {exc.strerror}") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not addr.is_global:
            raise TerminalError(
                f"rss: {url}: resolves to a non-public address ({addr}); refused "
                "(set allow_private_addresses = true on the source to allow it)"
            )


class RssConnector(Connector):
    name: ClassVar[str] = "rss"
    default_base_url: ClassVar[str] = "https://example.invalid"  # feeds are absolute URLs
    min_interval: ClassVar[float] = 1.0
    targets_key: ClassVar[str] = "feeds"

    def __init__(self, spec: Any, **kw: Any) -> None:
        super().__init__(spec, **kw)
        allow = self.options.get("allow_private_addresses", False)
        if not isinstance(allow, bool):
            raise ConfigError(f"{self.where}: allow_private_addresses: must be true or false")
        self.allow_private = allow
        self.client._client.follow_redirects = False  # every hop is checked here
        if self.options.get("base_url"):  # relative feed paths are read against base_url
            self.targets = [urljoin(self.base_url + "/", f) for f in self.targets]
        for feed in self.targets:
            if urlsplit(feed).scheme not in ("http", "https"):
                raise ConfigError(f"{self.where}: feeds: not an http(s) URL: {feed!r}")

    def fetch(self, cursor: str | None) -> Iterator[Item]:
        state = self.load_state(cursor)
        for feed in self.targets:
            prior = state.get(feed) if isinstance(state.get(feed), dict) else {}
            headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"}
            if prior.get("etag"):
                headers["If-None-Match"] = prior["etag"]
            if prior.get("modified"):
                headers["If-Modified-Since"] = prior["modified"]
            url = feed
            for _ in range(MAX_REDIRECTS + 1):
                check_public(url, allow_private=self.allow_private)
                resp = self.client.get(url, headers=headers, ok=(301, 302, 303, 307, 308, 304))
                if resp.status_code in (301, 302, 303, 307, 308) and resp.headers.get("location"):
                    url = urljoin(url, resp.headers["location"])
                    continue
                break
            else:
                raise TerminalError(f"rss: {feed}: more than {MAX_REDIRECTS} redirects")
            if resp.status_code == 304:
                continue
            if resp.status_code >= 300:
                raise TerminalError(f"rss: {feed}: HTTP {resp.status_code}")
            if len(resp.content) > MAX_FEED_BYTES:
                raise TerminalError(f"rss: {feed}: larger than {MAX_FEED_BYTES} bytes")
            yield from self._entries(feed, resp.content)
            state[feed] = {k: v for k, v in (("etag", resp.headers.get("etag")),
                                             ("modified", resp.headers.get("last-modified"))) if v}
            yield self.mark(state)

    def _entries(self, feed: str, data: bytes) -> Iterator[RawItem | InvalidItem]:
        import feedparser
        from defusedxml import DefusedXmlException
        from defusedxml.ElementTree import ParseError, fromstring

        try:
            fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
        except DefusedXmlException as exc:
            raise TerminalError(f"rss: {feed}: unsafe XML refused ({type(exc).__name__})") from None
        except ParseError:
            pass  # malformed but harmless: feedparser's lenient parser may still read it
        parsed = feedparser.parse(data, resolve_relative_uris=False, sanitize_html=True)
        if parsed.bozo and not parsed.entries:
            yield InvalidItem(feed, None, "feed", f"not a readable RSS/Atom feed: {parsed.get('bozo_exception')}")
            return
        fetched = datetime.now(UTC).isoformat()
        feed_lang = parsed.feed.get("language") if isinstance(parsed.feed, dict) else None
        for n, entry in enumerate(parsed.entries, start=1):
            yield RawItem(self.spec.name, _entry_dict(entry, fetched, feed_lang), origin=feed, line=n)

    def normalise(self, raw: RawItem) -> Post:
        e = raw.payload
        link = url_field(e.get("link"), "link")
        ident = e.get("id") or link
        if ident is None:
            title = e.get("title") or ""
            if not title:
                raise InvalidField("id", "required (no guid, link or title)")
            ident = "sha256:" + hashlib.sha256(f"{raw.origin}\x1f{title}".encode()).hexdigest()[:32]
        external_id = id_field(ident if len(ident) <= 256 else "sha256:" + hashlib.sha256(
            ident.encode()).hexdigest()[:32], "id")
        title = text_field(e.get("title"), "title")
        summary = text_field(html_to_text(e.get("summary") or ""), "summary", multiline=True)
        created = parse_datetime(e.get("published") or e.get("updated") or e.get("fetched"), "published")
        try:
            lang = lang_field(e.get("lang"), "lang")
        except InvalidField:
            lang = None
        return Post(
            source=raw.source,
            external_id=external_id,  # type: ignore[arg-type]
            platform="rss",
            kind=self.spec.kind,  # type: ignore[arg-type]
            visibility=self.spec.visibility,  # type: ignore[arg-type]
            created_at=created,  # type: ignore[arg-type]
            text=summary or title or "",
            title=title,
            url=link,
            lang_hint=lang or self.spec.lang,
            country=self.spec.country,
            origin=f"{raw.origin}#{raw.line}",
        )


def _time(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC).isoformat()
    except (TypeError, ValueError, OverflowError):
        return None


def _entry_dict(entry: Any, fetched: str, feed_lang: Any) -> dict[str, Any]:
    """The fields of a feedparser entry that openear reads, as plain JSON values."""
    content = entry.get("content")
    body = content[0].get("value") if isinstance(content, list) and content and isinstance(content[0], dict) else None
    lang = entry.get("language") or feed_lang
    with warnings.catch_warnings():  # feedparser warns when it falls back from updated to published
        warnings.simplefilter("ignore", DeprecationWarning)
        updated = entry.get("updated_parsed")
    return {
        "id": clean_line(str(entry.get("id"))) if entry.get("id") else None,
        "link": entry.get("link"),
        "title": entry.get("title"),
        "summary": entry.get("summary") or body,
        "published": _time(entry.get("published_parsed")),
        "updated": _time(updated),
        "fetched": fetched,
        "lang": lang.strip() if isinstance(lang, str) else None,
    }
