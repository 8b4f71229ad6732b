"""Red team of rules 2 and 3 (``shared/docs/guardrails.md``): what scrubbing must catch, what it must leave, and an
end-to-end check that no author's handle, display name, avatar or profile URL from a platform payload reaches any
column of the store.

The end-to-end check runs every payload through the path the connector and import tests use (a real HTTP server on
127.0.0.1 replaying the file, or ``import_file``), then searches every text value of every table of the SQLite store.
It runs on the project's own fixtures (``tests/fixtures``) and, when ``../shared`` is present, on the real samples.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from openear.guard import scrub_text, scrub_url
from openear.settings import SourceSpec
from shared_data import shared_path

sys.path.insert(0, str(Path(__file__).resolve().parent / "connectors"))
from replay import ReplayServer, json_reply, spec

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# -- rule 3: what must go -------------------------------------------------------------------------------------------
# (text, a fragment that must not survive, the placeholder that must appear)
MUST_SCRUB = [
    ("mail me john.smith@gmail.com", "john.smith", "[email]"),
    ("JOHN.SMITH@GMAIL.COM for details", "JOHN", "[email]"),
    ("write to jane_doe+flex@mail.example.co.uk.", "jane_doe", "[email]"),
    ("mailto:jane@example.org", "jane@", "[email]"),
    ("john dot smith at gmail dot com", "john dot smith", "[email]"),
    ("john at gmail dot com", "john at", "[email]"),
    ("john AT gmail DOT com", "john AT", "[email]"),
    ("john[at]gmail[dot]com", "john[at]", "[email]"),
    ("john (at) gmail (dot) com", "john (at)", "[email]"),
    ("john {at} gmail {dot} com", "john {at}", "[email]"),
    ("john @ gmail . com", "gmail", "[email]"),
    ("john@gmail dot com", "john@", "[email]"),
    ("escríbeme a maria at hotmail.com", "maria", "[email]"),
    ("call +1 (415) 555-0134", "555-0134", "[phone]"),
    ("call 415.555.0134 now", "555.0134", "[phone]"),
    ("call 415-555-0134", "555-0134", "[phone]"),
    ("call 1-415-555-0134 now", "1-", "[phone]"),
    ("mira facebook.com/permalink.php?story_fbid=123&id=100004567", "100004567", "&id=[user]"),
    ("llama al 1 (415) 555-0134", "al 1", "[phone]"),
    ("call 4155550134", "4155550134", "[phone]"),
    ("call +14155550134", "4155550134", "[phone]"),
    ("text 07700 900123", "900123", "[phone]"),
    ("text +44 7700 900123", "900123", "[phone]"),
    ("text +44 (0)7700 900123", "900123", "[phone]"),
    ("ring 020 7946 0958", "7946", "[phone]"),
    ("llama al +34 612 34 56 78", "612 34", "[phone]"),
    ("llama al 612345678", "612345678", "[phone]"),
    ("llama al 0034 612345678", "612345678", "[phone]"),
    ("tel:+34612345678", "612345678", "[phone]"),
    ("whatsapp wa.me/34612345678", "34612345678", "[phone]"),
    ("https://wa.me/34612345678?text=hola", "34612345678", "[phone]"),
    ("https://api.whatsapp.com/send?phone=34612345678", "34612345678", "[phone]"),
    ("ping @alice.bsky.social", "alice", "[user]"),
    ("ping @bob.example.com about it", "bob", "[user]"),
    ("ping @carol@mastodon.social", "carol", "[user]"),
    ("(@flexdriver99)", "flexdriver99", "[user]"),
    ("thanks,@flexdriver99", "flexdriver99", "[user]"),
    ("RT:@flexdriver99", "flexdriver99", "[user]"),
    ("hola \uff20flexdriver99", "flexdriver99", "[user]"),  # fullwidth commercial at
    ("hola \ufe6bflexdriver99", "flexdriver99", "[user]"),  # small commercial at
    ("as u/flexdriver99 said", "flexdriver99", "[user]"),
    ("u/flexdriver99's post", "flexdriver99", "[user]"),
    ("see reddit.com/user/flexdriver99", "flexdriver99", "[user]"),
    ("see old.reddit.com/u/flexdriver99", "flexdriver99", "[user]"),
    ("see https://www.reddit.com/u/flexdriver99/comments/", "flexdriver99", "[user]"),
    ("follow x.com/flexdriver99", "flexdriver99", "[user]"),
    ("follow HTTPS://X.COM/FlexDriver99", "FlexDriver99", "[user]"),
    ("follow https://mobile.twitter.com/flexdriver99", "flexdriver99", "[user]"),
    ("follow www.twitter.com/flexdriver99", "flexdriver99", "[user]"),
    ("follow https://www.instagram.com/flex.driver/", "flex.driver", "[user]"),
    ("follow https://www.tiktok.com/@flexdriver99", "flexdriver99", "[user]"),
    ("follow https://facebook.com/flexdriver99", "flexdriver99", "[user]"),
    ("follow https://m.facebook.com/flexdriver99", "flexdriver99", "[user]"),
    ("follow https://www.facebook.com/profile.php?id=100012345678901", "100012345678901", "[user]"),
    ("follow https://www.linkedin.com/in/jane-doe-123/", "jane-doe", "[user]"),
    ("follow https://bsky.app/profile/alice.bsky.social", "alice", "[user]"),
    ("follow https://bsky.app/profile/did:plc:abcdefghijabcdefghij1234", "did:plc", "[user]"),
    ("join t.me/flexdriver99", "flexdriver99", "[user]"),
    ("join https://telegram.me/flexdriver99", "flexdriver99", "[user]"),
    ("watch https://youtube.com/@flexdriver99", "flexdriver99", "[user]"),
    ("watch https://www.youtube.com/c/flexdriver99", "flexdriver99", "[user]"),
    ("watch https://www.youtube.com/channel/UCabcdefghijklmnopqrstuv", "UCabcdefghij", "[user]"),
    ("https://www.threads.net/@flexdriver99", "flexdriver99", "[user]"),
    ("https://www.threads.com/@flexdriver99", "flexdriver99", "[user]"),
    ("https://snapchat.com/add/flexdriver99", "flexdriver99", "[user]"),
    ("https://mastodon.social/users/carol", "carol", "[user]"),
    # post links under a profile keep the post and lose the name (rule 2)
    ("https://mastodon.social/@carol/112233445566", "carol", "112233445566"),
    ("https://www.tiktok.com/@flexdriver99/video/7212345678901234567", "flexdriver99", "7212345678901234567"),
    ("see https://www.facebook.com/flexdriver99/posts/123456", "flexdriver99", "123456"),
    ("see https://bsky.app/profile/alice.bsky.social/post/3kabc", "alice", "3kabc"),
]
# (text, what it must become): post links whose name-free form resolves
REWRITTEN = [
    ("see x.com/flexdriver99/status/1712345678901234567", "see https://x.com/i/status/1712345678901234567"),
    ("see https://twitter.com/flexdriver99/status/1712345678901234567?s=20 ok",
     "see https://x.com/i/status/1712345678901234567 ok"),
    ("see https://www.instagram.com/flexdriver99/p/Cabc123/", "see https://www.instagram.com/p/Cabc123/"),
]
# -- what must stay -------------------------------------------------------------------------------------------------
KEEP = [
    "$12.50 @ 5pm",  # a price and a time: not a handle, not an address
    "meet @ 5pm by the hub",
    "Meet me @ home. It was late",
    "prices at walmart.com are lower",  # a shop's site after "at" is not an e-mail address
    "I was at home. Then the app died",
    "block at 10:30-12:30",
    "order #112-3456789-1234567 missing",
    "order 114-1234567-7654321 missing",  # 7 digits after a dash: an order number, not a Spanish phone
    "paid $1,234.56 for 12 hours",
    "on 2026-11-30 at 09:15",
    "zip 94107, 145 stops, 23 packages",
    "tracking TBA123456789000",
    "version 1.2.3 of the app",
    "#amazonflex #gig",
    "r/AmazonFlexDrivers has the same complaint",
    "see netflix.com/browse now",  # x.com inside another host name is not X
    "files on box.com/files",
    "https://x.com/i/status/1712345678901234567",
    "https://x.com/search?q=amazon",
    "https://www.reddit.com/r/AmazonFlexDrivers/comments/abc123/title/",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://www.facebook.com/groups/12345",
    "read https://www.theguardian.com/business/2026/nov/30/amazon-flex-pay",
    "read https://www.bbc.co.uk/news/business-12345678",
    "50% off @ walmart today",
]


@pytest.mark.parametrize(("text", "gone", "placeholder"), MUST_SCRUB)
def test_personal_data_is_scrubbed(text: str, gone: str, placeholder: str) -> None:
    out = scrub_text(text).text
    assert gone.lower() not in out.lower(), out
    assert placeholder in out, out


@pytest.mark.parametrize(("text", "expected"), REWRITTEN)
def test_post_links_in_text_keep_the_post_without_the_name(text: str, expected: str) -> None:
    assert scrub_text(text).text == expected


@pytest.mark.parametrize("text", KEEP)
def test_ordinary_text_and_links_are_kept(text: str) -> None:
    assert scrub_text(text).text == text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.tiktok.com/@someone/video/7212345678901234567", None),
        ("https://www.facebook.com/some.one/posts/123456", None),
        ("https://www.facebook.com/permalink.php?story_fbid=1&id=100012345678901", None),
        ("https://www.facebook.com/profile.php?id=100012345678901", None),
        ("https://www.instagram.com/someone/p/Cabc123/", "https://www.instagram.com/p/Cabc123/"),
        ("https://www.facebook.com/groups/examplegroup1/posts/2/", "https://www.facebook.com/groups/examplegroup1/posts/2/"),
    ],
)
def test_post_urls_with_a_name_the_author_list_misses(url: str, expected: str | None) -> None:
    """A post URL naming someone is dropped (or rewritten) even when the item gave no handle to look for."""
    assert scrub_url(url)[0] == expected


# -- rules 2 and 3 end to end: no author identifier from a payload reaches the store --------------------------------
_HANDLE_KEYS = {"screen_name", "username", "acct", "handle"}
_USER_KEYS = _HANDLE_KEYS | {"name", "display_name", "displayName", "avatar", "avatar_static", "header",
                             "header_static", "profile_image_url", "profile_image_url_https", "profile_banner_url",
                             "url", "did"}
_CSV_AUTHOR_COLUMNS = ("author", "author_fullname", "author_name", "author_avatar_url", "author_banner_url")
_NOT_PERSONAL = {"[deleted]", "automoderator"}


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def identifiers(payload: Any) -> set[str]:
    """Authors' handles, display names, avatars and profile URLs in a parsed payload: every string under a user
    object's keys (an object with a handle key, an ``avatar`` object's ``image_url``) and Reddit's ``author``."""
    found: set[str] = set()
    for obj in _walk(payload):
        if _HANDLE_KEYS & obj.keys():
            found |= {v for k, v in obj.items() if k in _USER_KEYS and isinstance(v, str)}
        if isinstance(obj.get("avatar"), dict) and isinstance(obj["avatar"].get("image_url"), str):
            found.add(obj["avatar"]["image_url"])
        if isinstance(obj.get("author"), str) and "author_fullname" in obj:
            found.add(obj["author"])
    return {v for v in found if len(v) >= 3 and v.lower() not in _NOT_PERSONAL}


def csv_identifiers(path: Path) -> set[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {v for r in rows for c in _CSV_AUTHOR_COLUMNS if (v := r.get(c)) and len(v) >= 3}


def leaks(db: Path, needles: set[str]) -> list[str]:
    """``table.column: needle`` for each identifier found (case-insensitive, as a whole word) in any text value."""
    found = []
    patterns = {n: re.compile(r"(?<![\w])" + re.escape(n.lower()) + r"(?![\w])") for n in needles}
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cur = conn.execute(f'SELECT * FROM "{table}"')
            cols = [d[0] for d in cur.description]
            for row in cur:
                for col, value in zip(cols, row, strict=True):
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", "replace")
                    if not isinstance(value, str):
                        continue
                    low = value.lower()
                    found += [f"{table}.{col}: {n!r}" for n, p in patterns.items() if n.lower() in low
                              and p.search(low)]
    return sorted(set(found))


def _db(workspace: Any) -> Path:
    url = workspace.settings.database_url
    assert url.startswith("sqlite:///"), url
    return Path(url.removeprefix("sqlite:///"))


def _keep_everything(workspace: Any) -> Any:
    """Settings that keep posts of any age: the samples date from 2019-2023, past the 180-day limit."""
    return dataclasses.replace(workspace.settings, retention_days=100_000)


def _collect(workspace: Any, server: ReplayServer, s: SourceSpec, env: dict[str, str] | None = None) -> int:
    from openear.collector import collect_source

    result = collect_source(_keep_everything(workspace), workspace.store, s, env=env or {})
    assert result.ok, result.error
    return result.stats.stored


def _reply(path: Path) -> Any:
    from replay import _reply_from

    return _reply_from(path)


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


REDDIT_ENV = {"REDDIT_CLIENT_ID": "client-id-1234", "REDDIT_CLIENT_SECRET": "client-secret-5678"}


def ingest_reddit(ws: Any, server: ReplayServer, listing: Path, comments: Path | None) -> set[str]:
    server.add("/api/v1/access_token", _reply(FIXTURES / "sources" / "reddit" / "token.json"))
    server.add("/r/sub/new", _reply(listing))
    needles = identifiers(_json(listing))
    if comments is not None:
        tree = _json(comments)
        children = tree[1]["data"]["children"] if isinstance(tree, list) else tree["data"]["children"]
        server.add("/r/sub/comments", json_reply({"kind": "Listing", "data": {"children": children, "after": None}}))
        needles |= identifiers(tree)
    s = spec("reddit", "reddit", server, subreddits=["sub"], include_comments=comments is not None, max_pages=1,
             token_url=f"{server.url}/api/v1/access_token")
    assert _collect(ws, server, s, REDDIT_ENV)
    return needles


def ingest_mastodon(ws: Any, server: ReplayServer, statuses: list[Any]) -> set[str]:
    server.add("/api/v1/timelines/tag/tag", json_reply(statuses))
    assert _collect(ws, server, spec("mastodon", "mastodon", server, hashtags=["tag"]))
    return identifiers(statuses)


def ingest_bluesky(ws: Any, server: ReplayServer, views: list[Any]) -> set[str]:
    server.add("/xrpc/app.bsky.feed.searchPosts", json_reply({"posts": views}))
    assert _collect(ws, server, spec("bluesky", "bluesky", server, queries=["q"]))
    return identifiers(views)


def ingest_x(ws: Any, server: ReplayServer, page: Path) -> set[str]:
    server.add("/2/tweets/search/recent", _reply(page), json_reply({"meta": {"result_count": 0}}))
    assert _collect(ws, server, spec("x", "x", server, query="q"), {"X_BEARER_TOKEN": "AAAAbearer-token-0000"})
    return identifiers(_json(page))


def ingest_file(ws: Any, path: Path, fmt: str) -> set[str]:
    from openear.pipeline import import_file

    s = SourceSpec(f"import-{fmt}", connector="files", visibility="public", kind="social")
    _, stats = import_file(_keep_everything(ws), ws.store, path, fmt, s)
    assert stats.stored, stats
    if path.suffix == ".csv":
        return csv_identifiers(path)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if fmt == "jsonl":
        return {r["author"] for r in lines if isinstance(r.get("author"), str)}
    needles = identifiers(lines)
    for obj in _walk(lines):  # Facebook actors: name, profile url, picture
        if obj.get("__typename") == "User":
            needles |= {v for k, v in obj.items() if k in ("name", "url") and isinstance(v, str)}
            if isinstance(obj.get("profile_picture"), dict):
                needles.add(obj["profile_picture"].get("uri", ""))
    return {n for n in needles if len(n) >= 3}


def _thread_views(thread: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if isinstance(thread.get("post"), dict):
        yield thread["post"]
    if isinstance(thread.get("parent"), dict):
        yield from _thread_views(thread["parent"])
    for reply in thread.get("replies") or []:
        if isinstance(reply, dict):
            yield from _thread_views(reply)


Ingest = Callable[[Any, ReplayServer, Callable[..., Path]], set[str]]

FIXTURE_CASES: dict[str, Ingest] = {
    "reddit": lambda ws, srv, p: ingest_reddit(ws, srv, p("sources", "reddit", "new_page1.json"),
                                               p("sources", "reddit", "comments.json")),
    "mastodon": lambda ws, srv, p: ingest_mastodon(
        ws, srv, _json(p("sources", "mastodon", "timeline_first.json"))
        + _json(p("sources", "mastodon", "timeline_next.json"))),
    "bluesky": lambda ws, srv, p: ingest_bluesky(
        ws, srv, _json(p("sources", "bluesky", "search_page1.json"))["posts"]
        + _json(p("sources", "bluesky", "search_page2.json"))["posts"]),
    "x": lambda ws, srv, p: ingest_x(ws, srv, p("sources", "x", "search_page1.json")),
    "zeeschuimer-x": lambda ws, srv, p: ingest_file(ws, p("import", "zeeschuimer_x.ndjson"), "zeeschuimer"),
    "zeeschuimer-facebook": lambda ws, srv, p: ingest_file(ws, p("import", "zeeschuimer_facebook.ndjson"),
                                                           "zeeschuimer"),
    "4cat-twitter": lambda ws, srv, p: ingest_file(ws, p("import", "4cat_twitter.csv"), "4cat"),
    "4cat-facebook": lambda ws, srv, p: ingest_file(ws, p("import", "4cat_facebook.csv"), "4cat"),
    "native-jsonl": lambda ws, srv, p: ingest_file(ws, p("import", "native.jsonl"), "jsonl"),
}


def _bluesky_samples(p: Callable[..., Path]) -> list[Any]:
    view = _json(p("bluesky", "get_post_thread_postview.json"))["thread"]["post"]
    thread = _json(p("bluesky", "get_post_thread_no_unauthenticated_author.json"))["thread"]
    return [view, *_thread_views(thread)]


SHARED_CASES: dict[str, Ingest] = {
    "reddit": lambda ws, srv, p: ingest_reddit(ws, srv, p("reddit", "r_askreddit_new_listing.json"),
                                               p("reddit", "submission_2gmzqe_comments.json")),
    "mastodon": lambda ws, srv, p: ingest_mastodon(
        ws, srv, [*_json(p("mastodon", "timeline_tag_hoot.json")),
                  _json(p("mastodon", "status_entity_docs_example.json"))]),
    "bluesky": lambda ws, srv, p: ingest_bluesky(ws, srv, _bluesky_samples(p)),
    "x-expanded": lambda ws, srv, p: ingest_x(ws, srv, p("x", "search_recent_expanded_author.json")),
    "zeeschuimer-x": lambda ws, srv, p: ingest_file(ws, p("zeeschuimer", "x_search_timeline_items.ndjson"),
                                                    "zeeschuimer"),
}


@pytest.fixture
def replay_server() -> Iterator[ReplayServer]:
    s = ReplayServer()
    yield s
    s.close()


@pytest.mark.parametrize("case", list(FIXTURE_CASES))
def test_no_author_identifier_reaches_the_store_fixtures(workspace, replay_server: ReplayServer, case: str) -> None:
    needles = FIXTURE_CASES[case](workspace, replay_server, lambda *parts: FIXTURES.joinpath(*parts))
    assert needles, "the fixture names no author: the check would prove nothing"
    assert leaks(_db(workspace), needles) == []


@pytest.mark.parametrize("case", list(SHARED_CASES))
def test_no_author_identifier_reaches_the_store_shared_samples(workspace, replay_server: ReplayServer,
                                                               case: str) -> None:
    needles = SHARED_CASES[case](workspace, replay_server, lambda *parts: shared_path("data", "api-samples", *parts))
    assert needles, "the sample names no author: the check would prove nothing"
    assert leaks(_db(workspace), needles) == []
