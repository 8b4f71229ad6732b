"""Mastodon: public hashtag timelines (``GET /api/v1/timelines/tag/:hashtag``) on one instance, no login.

Pagination: forward with ``min_id`` (the page of statuses just newer than the cursor), so the cursor moves after
every page, and each page is passed on oldest first. The first run of a hashtag reads only the newest page;
``backfill = true`` makes it read the whole timeline forward from its oldest status instead (``max_pages`` pages a
pass). Only ``visibility: public`` statuses are kept; statuses of accounts with ``indexable: false`` (opted out of
search) or ``noindex: true`` (opted out of indexing), and boosts, are skipped and counted. An optional token comes
from the environment variable named by ``access_token_env``. Limits: 300 requests per 5 minutes per IP, so
requests are paced 1 s apart; ``x-ratelimit-*`` headers (ISO 8601 reset) are honoured.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from openear.connectors.base import Connector, Item, html_to_text, newer
from openear.errors import ConfigError, InvalidField, TransientError
from openear.models import InvalidItem, Post, RawItem
from openear.normalise import id_field, json_type, lang_field, parse_datetime, text_field, url_field


class MastodonConnector(Connector):
    name: ClassVar[str] = "mastodon"
    default_base_url: ClassVar[str] = "https://mastodon.social"
    min_interval: ClassVar[float] = 1.0

    def __init__(self, spec: Any, **kw: Any) -> None:
        super().__init__(spec, **kw)
        self.page_size = self.int_option("page_size", 40)
        self.token = self.secret("access_token_env", "MASTODON_ACCESS_TOKEN", required=False)
        self.host = urlsplit(self.base_url).netloc
        backfill = self.options.get("backfill", False)
        if not isinstance(backfill, bool):
            raise ConfigError(f"{self.where}: backfill: must be true or false")
        self.backfill = backfill

    def fetch(self, cursor: str | None) -> Iterator[Item]:
        state = self.load_state(cursor)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        for tag in self.targets:
            tag = tag.lstrip("#")
            url = f"{self.base_url}/api/v1/timelines/tag/{quote(tag, safe='')}"
            if self.backfill and not state.get(tag):
                state[tag] = "0"  # read the timeline forward from its oldest status
            for _ in range(max(1, self.max_pages)):
                since = state.get(tag)
                params: dict[str, Any] = {"limit": self.page_size}
                if since:
                    params["min_id"] = since
                page = self.client.get_json(url, params=params, headers=headers)
                if not isinstance(page, list):
                    raise TransientError(f"mastodon: {url}: expected a JSON array, got {json_type(page)}")
                newest = since
                for status in reversed(page):  # oldest first: a pass cut short keeps a prefix
                    if not isinstance(status, dict):
                        yield InvalidItem(url, None, "status", f"expected an object, got {json_type(status)}")
                        continue
                    sid = status.get("id")
                    sid = str(sid) if isinstance(sid, str | int) else None
                    if newer(sid, newest):
                        newest = sid
                    item = self._screen(status, url)
                    if item is not None:
                        yield item
                if newest == since or not page:
                    break
                state[tag] = newest
                yield self.mark(state)
                if since is None or len(page) < self.page_size:
                    break  # first run: the newest page only; a short page: caught up

    def _screen(self, status: dict[str, Any], origin: str) -> RawItem | None:
        """The status as a RawItem, or ``None`` (counted) when it is not public or its author opted out."""
        if status.get("reblog"):
            self.skip("boost")
            return None
        if status.get("visibility", "public") != "public":
            self.skip("not_public")
            return None
        account = status.get("account") if isinstance(status.get("account"), dict) else {}
        if account.get("indexable") is False:
            self.skip("not_indexable")
            return None
        if account.get("noindex") is True:
            self.skip("noindex")
            return None
        return RawItem(self.spec.name, status, origin=origin)

    def normalise(self, raw: RawItem) -> Post:
        s = raw.payload
        account = s.get("account")
        if not isinstance(account, dict):
            raise InvalidField("account", "required")
        external_id = id_field(s.get("id"), "id")
        content = s.get("content")
        if not isinstance(content, str):
            raise InvalidField("content", f"must be a string, not {json_type(content)}")
        text = text_field(html_to_text(content), "content", multiline=True) or ""
        author_id = id_field(account.get("uri") or account.get("url") or account.get("id"), "account.uri")
        username = text_field(account.get("username"), "account.username")
        return Post(
            source=raw.source,
            external_id=external_id,  # type: ignore[arg-type]
            platform="mastodon",
            kind=self.spec.kind,  # type: ignore[arg-type]
            visibility=self.spec.visibility,  # type: ignore[arg-type]
            created_at=parse_datetime(s.get("created_at"), "created_at"),  # type: ignore[arg-type]
            text=text,
            title=text_field(s.get("spoiler_text"), "spoiler_text"),
            url=url_field(s.get("url"), "url"),
            author_id=author_id,
            author_handle=username,
            author_name=text_field(account.get("display_name"), "account.display_name"),
            author_url=url_field(account.get("url"), "account.url"),
            avatar_url=url_field(account.get("avatar"), "account.avatar"),
            lang_hint=_lang(s.get("language")) or self.spec.lang,
            country=self.spec.country,
            origin=raw.origin,
        )


def _lang(value: Any) -> str | None:
    try:
        return lang_field(value, "language")
    except InvalidField:
        return None
