"""Mastodon hashtag timelines against a local server: min_id pagination, consent signals, the whole pipeline."""

from __future__ import annotations

import json

from replay import ReplayServer, fixture, server, shared_reply, spec  # noqa: F401 - the server fixture
from sqlalchemy import select

from openear.collector import collect_source, source_statuses
from openear.connectors.base import make_connector
from openear.models import CursorMark, RawItem
from openear.store.schema import posts

TAG = "/api/v1/timelines/tag/amazonflex"


def test_first_run_reads_the_newest_page_and_skips_non_consenting(workspace, server: ReplayServer) -> None:
    server.add(TAG, fixture("mastodon/timeline_first.json"))
    s = spec("flex-mastodon", "mastodon", server, hashtags=["#amazonflex"])
    result = collect_source(workspace.settings, workspace.store, s)
    assert result.ok, result.error
    assert result.stats.stored == 2
    assert result.skipped == {"not_public": 1, "not_indexable": 1, "noindex": 1}
    assert "min_id" not in server.requests[0].query
    assert json.loads(workspace.store.get_cursor("flex-mastodon")) == {"amazonflex": "117020593741189705"}
    with workspace.store.connect() as conn:
        rows = conn.execute(select(posts.c.external_id, posts.c.text, posts.c.url, posts.c.author_pseudonym)
                            .order_by(posts.c.external_id)).all()
    assert [r[0] for r in rows] == ["117020593741189701", "117020593741189705"]
    assert rows[0][1] == "The app logged me out \ntwice during a block & I lost it. #amazonflex"
    for _, text, url, author in rows:
        assert "flexer" not in (text + (url or "") + author)
    status = source_statuses(workspace.store)[0]
    assert status["state"] == "ok" and status["skipped"]["not_indexable"] == 1


def test_next_run_pages_forward_with_min_id(workspace, server: ReplayServer) -> None:
    server.add(TAG, fixture("mastodon/timeline_first.json"))
    s = spec("flex-mastodon", "mastodon", server, hashtags=["amazonflex"], page_size=2)
    collect_source(workspace.settings, workspace.store, s)
    server.add(TAG, fixture("mastodon/timeline_next.json"), fixture("mastodon/timeline_next.json"))
    server.routes[TAG][1].body = b"[]"  # type: ignore[index]
    result = collect_source(workspace.settings, workspace.store, s)
    assert result.stats.stored == 1 and result.skipped == {"boost": 1}
    queries = [r.query for r in server.hits(TAG)]
    assert queries[1] == {"limit": "2", "min_id": "117020593741189705"}
    assert queries[2] == {"limit": "2", "min_id": "117020593741189707"}
    assert json.loads(workspace.store.get_cursor("flex-mastodon"))["amazonflex"] == "117020593741189707"


def test_a_cursor_mark_follows_every_page(server: ReplayServer) -> None:
    server.add(TAG, fixture("mastodon/timeline_next.json"))
    c = make_connector(spec("m", "mastodon", server, hashtags=["amazonflex"]), env={})
    items = list(c.fetch('{"amazonflex": "117020593741189705"}'))
    assert isinstance(items[-1], CursorMark)
    assert [type(i).__name__ for i in items] == ["RawItem", "CursorMark"]


def test_recorded_hashtag_timeline_sample(server: ReplayServer) -> None:
    """The real Mastodon.py recording of /api/v1/timelines/tag/hoot normalises to a Post."""
    server.add("/api/v1/timelines/tag/hoot", shared_reply("mastodon/timeline_tag_hoot.json"))
    c = make_connector(spec("m", "mastodon", server, hashtags=["hoot"]), env={})
    raws = [i for i in c.fetch(None) if isinstance(i, RawItem)]
    assert len(raws) == 1
    post = c.normalise(raws[0])
    assert post.external_id == "117020593741189701" and post.text == "#hoot (hashtag toot)"
    assert post.lang_hint == "ja" and post.author_handle == "mastodonpy_test_2"


def test_recorded_opted_out_account_is_skipped(server: ReplayServer) -> None:
    """A status whose account is the recorded ``indexable: false`` account never leaves the connector."""
    account = json.loads(shared_reply("mastodon/account_locked_not_discoverable.json").body)
    status = json.loads(shared_reply("mastodon/status_entity_docs_example.json").body)
    status["account"] = account
    server.add(TAG, fixture("mastodon/timeline_first.json"))
    server.routes[TAG][0].body = json.dumps([status]).encode()  # type: ignore[index]
    c = make_connector(spec("m", "mastodon", server, hashtags=["amazonflex"]), env={})
    assert [i for i in c.fetch(None) if isinstance(i, RawItem)] == []
    assert c.skipped == {"not_indexable": 1}
