"""Bluesky: ``app.bsky.feed.searchPosts`` on an AppView (default ``https://public.api.bsky.app``).

Each query is searched with ``sort=latest`` and ``since`` (the newest ``indexedAt`` seen, less 10 minutes of
overlap), paged with the response's ``cursor`` until the end or ``max_pages``; the cursor (per query: the newest
``indexedAt``) is marked when a query is done. Authors carrying the ``!no-unauthenticated`` label (they asked not to
be shown to logged-out viewers) are skipped and counted, as are posts carrying it. An optional bearer token comes
from the environment variable named by ``access_token_env`` (default ``BLUESKY_ACCESS_TOKEN``).

Post links and ``at://`` URIs embed the author's DID, so neither is stored: the external id is a SHA-256 of the
``at://`` URI (what a Jetstream delete event names can be hashed the same way) and no URL is kept.
Limits: the AppView allows 3000 requests per 5 minutes per IP; requests are paced 0.2 s apart and ``ratelimit-*``
headers are honoured.

With ``jetstream = true`` the source reads the Jetstream firehose instead, filtered by the same queries in openear's
query language, and Jetstream's deletions delete: see :mod:`openear.connectors.jetstream`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from openear.connectors.base import Connector, Item
from openear.connectors.jetstream import JetstreamFeed
from openear.errors import ConfigError, InvalidField, TransientError
from openear.models import InvalidItem, Post, RawItem
from openear.normalise import id_field, json_type, lang_field, parse_datetime, text_field, url_field

NO_UNAUTHENTICATED = "!no-unauthenticated"
OVERLAP = timedelta(minutes=10)


def post_id(uri: str) -> str:
    """The external id of a post: SHA-256 of its ``at://`` URI (which names the author), 32 hex characters."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:32]


def has_label(labels: Any, value: str) -> bool:
    return isinstance(labels, list) and any(isinstance(lb, dict) and lb.get("val") == value for lb in labels)


class BlueskyConnector(Connector):
    name: ClassVar[str] = "bluesky"
    default_base_url: ClassVar[str] = "https://public.api.bsky.app"
    min_interval: ClassVar[float] = 0.2
    targets_key: ClassVar[str] = "queries"

    def __init__(self, spec: Any, **kw: Any) -> None:
        super().__init__(spec, **kw)
        self.page_size = min(100, self.int_option("page_size", 100))
        self.token = self.secret("access_token_env", "BLUESKY_ACCESS_TOKEN", required=False)
        jetstream = self.options.get("jetstream", False)
        if not isinstance(jetstream, bool):
            raise ConfigError(f"{self.where}: jetstream: must be true or false")
        self.feed: JetstreamFeed | None = JetstreamFeed(self) if jetstream else None

    def fetch(self, cursor: str | None) -> Iterator[Item]:
        if self.feed is not None:
            return self.feed.fetch(cursor)
        return self._search(cursor)

    def _search(self, cursor: str | None) -> Iterator[Item]:
        state = self.load_state(cursor)
        url = f"{self.base_url}/xrpc/app.bsky.feed.searchPosts"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        for query in self.targets:
            watermark = state.get(query)
            newest = watermark
            page_cursor: str | None = None
            for _ in range(max(1, self.max_pages)):
                params: dict[str, Any] = {"q": query, "sort": "latest", "limit": self.page_size}
                if watermark:
                    since = datetime.fromisoformat(watermark.replace("Z", "+00:00")) - OVERLAP
                    params["since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                if page_cursor:
                    params["cursor"] = page_cursor
                body = self.client.get_json(url, params=params, headers=headers)
                if not isinstance(body, dict) or not isinstance(body.get("posts"), list):
                    raise TransientError(f"bluesky: searchPosts: expected {{posts: [...]}}, got {json_type(body)}")
                for view in body["posts"]:
                    item = self._screen(view, url)
                    if item is None:
                        continue
                    if isinstance(item, RawItem):
                        indexed = item.payload.get("indexedAt")
                        if isinstance(indexed, str) and _later(indexed, newest):
                            newest = indexed
                    yield item
                page_cursor = body.get("cursor") if isinstance(body.get("cursor"), str) else None
                if not page_cursor or not body["posts"]:
                    break
            if newest != watermark:
                state[query] = newest
                yield self.mark(state)

    def _screen(self, view: Any, origin: str) -> RawItem | InvalidItem | None:
        if not isinstance(view, dict):
            return InvalidItem(origin, None, "posts[]", f"expected a PostView, got {json_type(view)}")
        author = view.get("author") if isinstance(view.get("author"), dict) else {}
        if has_label(author.get("labels"), NO_UNAUTHENTICATED) or has_label(view.get("labels"), NO_UNAUTHENTICATED):
            self.skip("no_unauthenticated")
            return None
        return RawItem(self.spec.name, view, origin=origin)

    def normalise(self, raw: RawItem) -> Post:
        v = raw.payload
        uri = id_field(v.get("uri"), "uri")
        record = v.get("record")
        if not isinstance(record, dict):
            raise InvalidField("record", f"must be an object, not {json_type(record)}")
        author = v.get("author") if isinstance(v.get("author"), dict) else {}
        langs = record.get("langs")
        lang = None
        if isinstance(langs, list) and langs:
            try:
                lang = lang_field(langs[0], "record.langs[0]")
            except InvalidField:
                lang = None
        return Post(
            source=raw.source,
            external_id=post_id(uri),  # type: ignore[arg-type]
            platform="bluesky",
            kind=self.spec.kind,  # type: ignore[arg-type]
            visibility=self.spec.visibility,  # type: ignore[arg-type]
            created_at=parse_datetime(
                record.get("createdAt") or v.get("indexedAt"),  # type: ignore[arg-type]
                "record.createdAt",
            ),
            text=text_field(record.get("text"), "record.text", multiline=True) or "",
            url=None,
            author_id=id_field(author.get("did"), "author.did"),
            author_handle=text_field(author.get("handle"), "author.handle"),
            author_name=text_field(author.get("displayName"), "author.displayName"),
            avatar_url=url_field(author.get("avatar"), "author.avatar"),
            lang_hint=lang or self.spec.lang,
            country=self.spec.country,
            origin=raw.origin,
        )


def _later(a: str, b: str | None) -> bool:
    if b is None:
        return True
    try:
        return datetime.fromisoformat(a.replace("Z", "+00:00")) > datetime.fromisoformat(b.replace("Z", "+00:00"))
    except ValueError:
        return False
