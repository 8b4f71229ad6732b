"""Reddit: new posts and comments of given subreddits, with an app-only OAuth token (client credentials).

``GET /r/<sub>/new`` (``t3`` posts) and ``GET /r/<sub>/comments`` (``t1`` comments) on ``base_url`` (default
``https://oauth.reddit.com``), newest first, paged back with ``after`` until an item at or before the saved
watermark (``created_utc``) or ``max_pages``; the cursor (per subreddit and listing: the newest ``created_utc``
seen) is marked when a listing is done. Items shown as ``[deleted]``/``[removed]`` are reported deleted; stored
items are re-checked with ``GET /api/info`` (100 fullnames a request) and deleted when the source removed them.
Token: ``POST <token_url>`` with the client id and secret from the environment variables named by
``client_id_env``/``client_secret_env`` (default ``REDDIT_CLIENT_ID``/``REDDIT_CLIENT_SECRET``). Limit: 100
requests a minute per client id, so requests are paced 0.6 s apart; ``x-ratelimit-*`` headers are honoured.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from openear.connectors.base import Connector, Deleted, Item
from openear.errors import TerminalError, TransientError
from openear.models import InvalidItem, Post, RawItem
from openear.normalise import id_field, json_type, parse_datetime, text_field

_GONE = ("[deleted]", "[removed]")
_PRIVATE_SUBS = ("private", "employees_only", "gold_only")


def is_removed(d: dict[str, Any]) -> bool:
    """Whether a Reddit thing was deleted by its author or removed by moderators or Reddit."""
    if d.get("removed_by_category"):
        return True
    body = d.get("selftext") if str(d.get("name", "")).startswith("t3_") else d.get("body")
    return body in _GONE


class RedditConnector(Connector):
    name: ClassVar[str] = "reddit"
    default_base_url: ClassVar[str] = "https://oauth.reddit.com"
    min_interval: ClassVar[float] = 0.6
    targets_key: ClassVar[str] = "subreddits"

    def __init__(self, spec: Any, **kw: Any) -> None:
        super().__init__(spec, **kw)
        self.client_id = self.secret("client_id_env", "REDDIT_CLIENT_ID")
        self.client_secret = self.secret("client_secret_env", "REDDIT_CLIENT_SECRET")
        self.token_url = str(self.options.get("token_url") or "https://www.reddit.com/api/v1/access_token")
        self.page_size = min(100, self.int_option("page_size", 100))
        self.listings = [x for x in ("new", "comments") if self.options.get(f"include_{x}", True)]
        self._token: str | None = None
        self._token_expires = 0.0

    # -- auth -------------------------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        if self._token is None or time.monotonic() > self._token_expires - 60:
            resp = self.client.request(
                "POST", self.token_url, data={"grant_type": "client_credentials"},
                auth=(self.client_id or "", self.client_secret or ""),
            )
            try:
                body = resp.json()
            except ValueError:
                raise TransientError("reddit: token: malformed JSON") from None
            token = body.get("access_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise TerminalError(f"reddit: token: no access_token ({self.client.redact(str(body))[:120]})")
            self.client.add_secret(token)
            self._token = token
            self._token_expires = time.monotonic() + float(body.get("expires_in") or 3600)
        return {"Authorization": f"bearer {self._token}"}

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        return self.client.get_json(f"{self.base_url}{path}", params={**params, "raw_json": 1},
                                    headers=self._headers())

    # -- fetch ------------------------------------------------------------------------------------------------
    def fetch(self, cursor: str | None) -> Iterator[Item]:
        state = self.load_state(cursor)
        for sub in self.targets:
            sub = sub.removeprefix("r/").removeprefix("/r/")
            for listing in self.listings:
                key = f"{sub}/{listing}"
                watermark = float(state.get(key) or 0)
                newest = watermark
                after: str | None = None
                for _ in range(max(1, self.max_pages)):
                    params: dict[str, Any] = {"limit": self.page_size}
                    if after:
                        params["after"] = after
                    url = f"/r/{sub}/{listing}"
                    body = self._get(url, params)
                    children, after = _listing(body, url)
                    reached = False
                    for child in children:
                        item = self._item(child, url)
                        if isinstance(item, InvalidItem):
                            yield item
                            continue
                        created = child["data"].get("created_utc")
                        created = float(created) if isinstance(created, int | float) else 0.0
                        if watermark and created <= watermark:
                            reached = True
                            continue
                        newest = max(newest, created)
                        yield item
                    if reached or not after or not children:
                        break
                if newest > watermark:
                    state[key] = newest
                    yield self.mark(state)

    def _item(self, child: Any, origin: str) -> RawItem | Deleted | InvalidItem:
        if not isinstance(child, dict) or not isinstance(child.get("data"), dict):
            return InvalidItem(origin, None, "children[]", f"expected a thing, got {json_type(child)}")
        d = child["data"]
        if child.get("kind") not in ("t1", "t3") or not isinstance(d.get("name"), str):
            return InvalidItem(origin, None, "kind", f"expected t1 or t3, got {child.get('kind')!r}")
        if is_removed(d):
            return Deleted(d["name"])
        return RawItem(self.spec.name, d, origin=origin)

    def recheck(self, external_ids: Iterable[str]) -> Iterator[str]:
        ids = [i for i in external_ids if i.startswith(("t1_", "t3_"))]
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            children, _ = _listing(self._get("/api/info", {"id": ",".join(chunk)}), "/api/info")
            for child in children:
                d = child.get("data") if isinstance(child, dict) else None
                if isinstance(d, dict) and d.get("name") in chunk and is_removed(d):
                    yield d["name"]

    def normalise(self, raw: RawItem) -> Post:
        d = raw.payload
        external_id = id_field(d.get("name"), "name")
        is_post = external_id.startswith("t3_")  # type: ignore[union-attr]
        if is_post:
            title = text_field(d.get("title"), "title", required=True)
            text = text_field(d.get("selftext"), "selftext", multiline=True) or title
        else:
            title = None
            text = text_field(d.get("body"), "body", required=True, multiline=True)
        author = text_field(d.get("author"), "author")
        if author == "[deleted]":
            author = None
        permalink = text_field(d.get("permalink"), "permalink")
        sub_type = d.get("subreddit_type")
        visibility = "private" if sub_type in _PRIVATE_SUBS else self.spec.visibility
        return Post(
            source=raw.source,
            external_id=external_id,  # type: ignore[arg-type]
            platform="reddit",
            kind=self.spec.kind,  # type: ignore[arg-type]
            visibility=visibility,  # type: ignore[arg-type]
            created_at=parse_datetime(d.get("created_utc"), "created_utc", platform=True),  # type: ignore[arg-type]
            text=text or "",
            title=title,
            url=f"https://www.reddit.com{permalink}" if permalink and permalink.startswith("/") else None,
            author_id=id_field(d.get("author_fullname"), "author_fullname", required=False) or author,
            author_handle=author,
            lang_hint=self.spec.lang,
            country=self.spec.country,
            origin=raw.origin,
        )


def _listing(body: Any, where: str) -> tuple[list[Any], str | None]:
    """The children and ``after`` of a Listing; raises :class:`TransientError` when it is not one."""
    if not isinstance(body, dict) or body.get("kind") != "Listing" or not isinstance(body.get("data"), dict):
        raise TransientError(f"reddit: {where}: expected a Listing, got {json_type(body)}")
    children = body["data"].get("children")
    if not isinstance(children, list):
        raise TransientError(f"reddit: {where}: data.children must be an array")
    after = body["data"].get("after")
    return children, after if isinstance(after, str) and after else None
