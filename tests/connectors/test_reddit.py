"""Reddit against a local server: app-only OAuth, paging back to the watermark, deletions, re-checks."""

from __future__ import annotations

import json

import pytest
from replay import ReplayServer, fixture, json_reply, server, shared_reply, spec  # noqa: F401 - the server fixture
from sqlalchemy import select

from openear.collector import collect_source
from openear.connectors.base import Deleted, make_connector
from openear.errors import ConfigError
from openear.models import RawItem
from openear.store.schema import posts


@pytest.fixture(autouse=True)
def recorded_then(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Reddit fixtures' items date from 2025-11-30: ingest counts retention from then, as a collector running
    that day would (later, they would be past the 180-day limit and never stored)."""
    monkeypatch.setenv("OPENEAR_NOW", "2025-12-01T00:00:00+00:00")


ENV = {"REDDIT_CLIENT_ID": "client-id-1234", "REDDIT_CLIENT_SECRET": "client-secret-5678"}
NEW = "/r/AmazonFlexDrivers/new"
COMMENTS = "/r/AmazonFlexDrivers/comments"


def reddit_spec(server: ReplayServer, **kw):
    return spec("flex-reddit", "reddit", server, subreddits=["AmazonFlexDrivers"],
                token_url=f"{server.url}/api/v1/access_token", user_agent="python:openear-test:0.1 (by /u/op)", **kw)


def serve_subreddit(server: ReplayServer) -> None:
    server.add("/api/v1/access_token", fixture("reddit/token.json"))
    server.add(NEW, lambda req: fixture("reddit/new_page2.json" if req.query.get("after") else "reddit/new_page1.json"))
    server.add(COMMENTS, fixture("reddit/comments.json"))


def stored(workspace) -> dict[str, tuple]:
    with workspace.store.connect() as conn:
        rows = conn.execute(select(posts.c.external_id, posts.c.title, posts.c.text, posts.c.url)).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_collects_posts_and_comments_with_oauth(workspace, server: ReplayServer) -> None:
    serve_subreddit(server)
    result = collect_source(workspace.settings, workspace.store, reddit_spec(server), env=ENV)
    assert result.ok, result.error
    rows = stored(workspace)
    assert set(rows) == {"t3_p00001", "t3_p00002", "t3_p00003", "t3_p00005", "t3_p00006",
                         "t1_c00001", "t1_c00002", "t1_c00003"}
    assert rows["t1_c00001"][1] == "Same here, support told me to wait (comment 1). Ask [user]"
    assert rows["t3_p00001"][2].startswith("https://www.reddit.com/r/AmazonFlexDrivers/comments/p00001/")
    token = server.hits("/api/v1/access_token")
    assert len(token) == 1 and token[0].method == "POST" and token[0].headers["authorization"].startswith("Basic ")
    listing = server.hits(NEW)[0]
    assert listing.headers["authorization"] == "bearer fake-access-token-123456"
    assert listing.headers["user-agent"] == "python:openear-test:0.1 (by /u/op)"
    assert listing.query["raw_json"] == "1"
    assert [r.query.get("after") for r in server.hits(NEW)] == [None, "t3_p00004"]
    cursor = json.loads(workspace.store.get_cursor("flex-reddit"))
    assert cursor == {"AmazonFlexDrivers/comments": 1764500450.0, "AmazonFlexDrivers/new": 1764500900.0}


def test_second_run_stops_at_the_watermark(workspace, server: ReplayServer) -> None:
    serve_subreddit(server)
    collect_source(workspace.settings, workspace.store, reddit_spec(server), env=ENV)
    server.requests.clear()
    result = collect_source(workspace.settings, workspace.store, reddit_spec(server), env=ENV)
    assert result.stats.read == 0
    assert len(server.hits(NEW)) == 1  # the first page already reaches the watermark


def test_removed_items_are_deleted_and_recheck_removes_deleted_ones(workspace, server: ReplayServer) -> None:
    serve_subreddit(server)
    collect_source(workspace.settings, workspace.store, reddit_spec(server), env=ENV)
    assert "t3_p00002" in stored(workspace)
    server.add("/api/info", fixture("reddit/info_deleted.json"))
    # the stored posts are from 2025: widen the re-check window by making them recent
    with workspace.store.begin() as conn:
        from openear.store import utcnow

        conn.execute(posts.update().values(created_at=utcnow()))
    result = collect_source(workspace.settings, workspace.store, reddit_spec(server), env=ENV)
    assert result.deleted == 1
    assert "t3_p00002" not in stored(workspace) and "t3_p00003" in stored(workspace)
    ids = server.hits("/api/info")[0].query["id"].split(",")
    assert "t3_p00002" in ids and "t1_c00001" in ids


def test_listing_marks_removed_items_deleted(server: ReplayServer) -> None:
    serve_subreddit(server)
    c = make_connector(reddit_spec(server, include_comments=False, max_pages=1), env=ENV)
    items = list(c.fetch(None))
    assert Deleted("t3_p00004") in items


def test_missing_credentials_are_a_config_error(server: ReplayServer) -> None:
    with pytest.raises(ConfigError, match="REDDIT_CLIENT_SECRET"):
        make_connector(reddit_spec(server), env={"REDDIT_CLIENT_ID": "x"})


def test_bad_token_response_is_an_error_without_secrets(workspace, server: ReplayServer) -> None:
    server.add("/api/v1/access_token", json_reply({"error": "invalid_grant client-secret-5678"}, 401))
    result = collect_source(workspace.settings, workspace.store, reddit_spec(server), env=ENV)
    assert not result.ok and "HTTP 401" in result.error and "client-secret-5678" not in result.error
    assert result.state == "failing"


def test_recorded_new_listing_and_comment_tree(server: ReplayServer) -> None:
    """The real asyncpraw recordings: 100 t3 submissions, and the t1 comments of a submission."""
    server.add("/api/v1/access_token", fixture("reddit/token.json"))
    server.add("/r/askreddit/new", shared_reply("reddit/r_askreddit_new_listing.json"))
    c = make_connector(spec("r", "reddit", server, subreddits=["askreddit"], include_comments=False, max_pages=1,
                            token_url=f"{server.url}/api/v1/access_token"), env=ENV)
    raws = [i for i in c.fetch(None) if isinstance(i, RawItem)]
    assert len(raws) == 100
    posts_ = [c.normalise(r) for r in raws]
    assert posts_[0].external_id == "t3_hozvuc" and posts_[0].title.startswith("What is best thing America")
    assert all(p.author_id and p.author_id.startswith("t2_") for p in posts_ if p.author_handle)
    tree = json.loads(shared_reply("reddit/submission_2gmzqe_comments.json").body)
    comment = {"kind": "Listing", "data": {"children": tree[1]["data"]["children"][:1], "after": None}}
    server.add("/r/redditdev/comments", json_reply(comment))
    c2 = make_connector(spec("r", "reddit", server, subreddits=["redditdev"], include_new=False,
                             token_url=f"{server.url}/api/v1/access_token"), env=ENV)
    raw = next(i for i in c2.fetch(None) if isinstance(i, RawItem))
    post = c2.normalise(raw)
    assert post.external_id == "t1_cklfmye" and post.text.startswith("Quick question")
