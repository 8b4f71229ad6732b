"""X: API v2 recent search (``GET /2/tweets/search/recent``) with a bearer token and ``since_id``.

Each query is searched newest first, paged with ``next_token`` until the end or ``max_pages``; the cursor (per
query: ``meta.newest_id`` of the first page) is marked when a query is done. The bearer token comes from the
environment variable named by ``bearer_token_env`` (default ``X_BEARER_TOKEN``). Tweets of protected accounts and
withheld tweets are skipped and counted. Limits: 450 requests per 15 minutes (app-only, Pro) and far fewer on
lower tiers; requests are paced 2 s apart by default (set ``min_interval`` for your tier) and ``x-rate-limit-*``
headers are honoured.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from openear.connectors.base import Connector, Item, newer
from openear.errors import InvalidField, TerminalError, TransientError
from openear.models import InvalidItem, Post, RawItem
from openear.normalise import id_field, json_type, lang_field, parse_datetime, text_field, url_field

TWEET_FIELDS = "id,text,created_at,author_id,lang,possibly_sensitive,withheld,note_tweet"
USER_FIELDS = "id,username,name,protected,profile_image_url"


class XConnector(Connector):
    name: ClassVar[str] = "x"
    default_base_url: ClassVar[str] = "https://api.x.com"
    min_interval: ClassVar[float] = 2.0
    targets_key: ClassVar[str] = "query"

    def __init__(self, spec: Any, **kw: Any) -> None:
        super().__init__(spec, **kw)
        self.token = self.secret("bearer_token_env", "X_BEARER_TOKEN")
        self.page_size = max(10, min(100, self.int_option("page_size", 100)))

    def fetch(self, cursor: str | None) -> Iterator[Item]:
        state = self.load_state(cursor)
        url = f"{self.base_url}/2/tweets/search/recent"
        headers = {"Authorization": f"Bearer {self.token}"}
        for query in self.targets:
            since_id = state.get(query)
            newest = since_id
            next_token: str | None = None
            for _ in range(max(1, self.max_pages)):
                params: dict[str, Any] = {
                    "query": query, "max_results": self.page_size, "tweet.fields": TWEET_FIELDS,
                    "expansions": "author_id", "user.fields": USER_FIELDS,
                }
                if since_id:
                    params["since_id"] = since_id
                if next_token:
                    params["next_token"] = next_token
                body = self.client.get_json(url, params=params, headers=headers)
                if not isinstance(body, dict):
                    raise TransientError(f"x: search: expected an object, got {json_type(body)}")
                if "data" not in body and body.get("errors") and not isinstance(body.get("meta"), dict):
                    raise TerminalError(f"x: search: {self.client.redact(str(body['errors']))[:200]}")
                meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
                users = {u.get("id"): u for u in _dig_list(body, "includes", "users") if isinstance(u, dict)}
                for tweet in body.get("data") or []:
                    if not isinstance(tweet, dict):
                        yield InvalidItem(url, None, "data[]", f"expected a tweet, got {json_type(tweet)}")
                        continue
                    tid = tweet.get("id")
                    if isinstance(tid, str) and newer(tid, newest):
                        newest = tid
                    user = users.get(tweet.get("author_id"), {})
                    if user.get("protected") is True:
                        self.skip("protected")
                        continue
                    if tweet.get("withheld"):
                        self.skip("withheld")
                        continue
                    yield RawItem(self.spec.name, {"tweet": tweet, "user": user}, origin=url)
                if isinstance(meta.get("newest_id"), str) and newer(meta["newest_id"], newest):
                    newest = meta["newest_id"]
                next_token = meta.get("next_token") if isinstance(meta.get("next_token"), str) else None
                if not next_token:
                    break
            if newest != since_id:
                state[query] = newest
                yield self.mark(state)

    def normalise(self, raw: RawItem) -> Post:
        tweet = raw.payload.get("tweet")
        if not isinstance(tweet, dict):
            raise InvalidField("tweet", "required")
        user = raw.payload.get("user") if isinstance(raw.payload.get("user"), dict) else {}
        external_id = id_field(tweet.get("id"), "id")
        note = tweet.get("note_tweet")
        long_text = note.get("text") if isinstance(note, dict) else None
        text = text_field(long_text or tweet.get("text"), "text", required=True, multiline=True)
        author_id = id_field(tweet.get("author_id"), "author_id", required=False)
        if author_id is None and self.spec.kind == "social":
            raise InvalidField("author_id", "required (ask for expansions=author_id)")
        try:
            lang = lang_field(tweet.get("lang"), "lang")
        except InvalidField:
            lang = None
        return Post(
            source=raw.source,
            external_id=external_id,  # type: ignore[arg-type]
            platform="x",
            kind=self.spec.kind,  # type: ignore[arg-type]
            visibility=self.spec.visibility,  # type: ignore[arg-type]
            created_at=parse_datetime(tweet.get("created_at"), "created_at", platform=True),  # type: ignore[arg-type]
            text=text,  # type: ignore[arg-type]
            url=f"https://x.com/i/status/{external_id}",
            author_id=author_id,
            author_handle=text_field(user.get("username"), "user.username"),
            author_name=text_field(user.get("name"), "user.name"),
            avatar_url=url_field(user.get("profile_image_url"), "user.profile_image_url"),
            lang_hint=lang or self.spec.lang,
            country=self.spec.country,
            origin=raw.origin,
        )


def _dig_list(body: dict[str, Any], *keys: str) -> list[Any]:
    value: Any = body
    for k in keys:
        value = value.get(k) if isinstance(value, dict) else None
    return value if isinstance(value, list) else []
