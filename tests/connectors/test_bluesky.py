"""Bluesky searchPosts against a local server: cursor paging, since, the !no-unauthenticated opt-out."""

from __future__ import annotations

import json

from replay import ReplayServer, fixture, json_reply, server, shared_reply, spec  # noqa: F401 - the server fixture
from sqlalchemy import select

from openear.collector import collect_source
from openear.connectors.base import make_connector
from openear.connectors.bluesky import post_id
from openear.models import RawItem
from openear.store.schema import posts

SEARCH = "/xrpc/app.bsky.feed.searchPosts"


def serve(server: ReplayServer) -> None:
    server.add(SEARCH, lambda req: fixture("bluesky/search_page2.json" if req.query.get("cursor")
                                           else "bluesky/search_page1.json"))


def test_search_pages_with_cursor_and_skips_opted_out_authors(workspace, server: ReplayServer) -> None:
    serve(server)
    s = spec("flex-bsky", "bluesky", server, queries=["amazon flex"])
    result = collect_source(workspace.settings, workspace.store, s)
    assert result.ok, result.error
    assert result.stats.stored == 3 and result.skipped == {"no_unauthenticated": 1}
    first, second = server.hits(SEARCH)
    assert first.query == {"q": "amazon flex", "sort": "latest", "limit": "100"}
    assert second.query["cursor"] == "25"
    with workspace.store.connect() as conn:
        rows = conn.execute(select(posts.c.external_id, posts.c.url, posts.c.text)).all()
    assert all(r.url is None and "did:" not in r.external_id and len(r.external_id) == 32 for r in rows)
    assert json.loads(workspace.store.get_cursor("flex-bsky")) == {"amazon flex": "2026-11-30T09:04:01.000Z"}
    server.requests.clear()
    collect_source(workspace.settings, workspace.store, s)
    assert server.hits(SEARCH)[0].query["since"] == "2026-11-30T08:54:01.000000Z"


def test_recorded_postview_and_no_unauthenticated_label(server: ReplayServer) -> None:
    """Real PostViews (no recorded searchPosts exists: the envelope is built around them, as the lexicon says)."""
    view = json.loads(shared_reply("bluesky/get_post_thread_postview.json").body)["thread"]["post"]
    thread = json.loads(shared_reply("bluesky/get_post_thread_no_unauthenticated_author.json").body)["thread"]
    server.add(SEARCH, json_reply({"posts": [view, thread["post"], thread["parent"]["post"]]}))
    c = make_connector(spec("b", "bluesky", server, queries=["test"]), env={})
    raws = [i for i in c.fetch(None) if isinstance(i, RawItem)]
    assert len(raws) == 2 and c.skipped == {"no_unauthenticated": 1}
    post = c.normalise(raws[0])
    assert post.external_id == post_id(view["uri"]) and post.author_id == view["author"]["did"]
    assert post.lang_hint == "en" and post.url is None
