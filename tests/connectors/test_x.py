"""X API v2 recent search against a local server: bearer token, next_token, since_id, protected accounts."""

from __future__ import annotations

import json

import pytest
from replay import ReplayServer, fixture, server, shared_reply, spec  # noqa: F401 - the server fixture
from sqlalchemy import select

from openear.collector import collect_source
from openear.connectors.base import make_connector
from openear.errors import ConfigError
from openear.models import RawItem
from openear.store.schema import posts

SEARCH = "/2/tweets/search/recent"
ENV = {"X_BEARER_TOKEN": "AAAAbearer-token-0000"}


def test_search_pages_and_since_id(workspace, server: ReplayServer) -> None:
    server.add(SEARCH, lambda req: fixture("x/search_page2.json" if req.query.get("next_token")
                                           else "x/search_page1.json"))
    s = spec("flex-x", "x", server, query="amazon flex -is:retweet")
    result = collect_source(workspace.settings, workspace.store, s, env=ENV)
    assert result.ok, result.error
    assert result.stats.stored == 2 and result.skipped == {"protected": 1}
    first, second = server.hits(SEARCH)
    assert first.headers["authorization"] == "Bearer AAAAbearer-token-0000"
    assert first.query["expansions"] == "author_id" and "since_id" not in first.query
    assert second.query["next_token"] == "b26v89c19zqg8o3fo7gesq314yb2ynhwgmfg7az3v76v1"
    with workspace.store.connect() as conn:
        rows = dict(conn.execute(select(posts.c.external_id, posts.c.url)).all())
    assert rows["1864000000000000005"] == "https://x.com/i/status/1864000000000000005"
    assert json.loads(workspace.store.get_cursor("flex-x")) == {"amazon flex -is:retweet": "1864000000000000005"}
    server.add(SEARCH, fixture("x/search_empty.json"))
    server.requests.clear()
    collect_source(workspace.settings, workspace.store, s, env=ENV)
    assert server.hits(SEARCH)[0].query["since_id"] == "1864000000000000005"


def test_missing_token_is_a_config_error(server: ReplayServer) -> None:
    with pytest.raises(ConfigError, match="X_BEARER_TOKEN"):
        make_connector(spec("x", "x", server, query="q"), env={})


def test_recorded_search_samples(server: ReplayServer) -> None:
    """The X Postman collection's recent-search examples: expanded authors, and the default payload."""
    server.add(SEARCH, shared_reply("x/search_recent_expanded_author.json"))
    c = make_connector(spec("x", "x", server, query="q"), env=ENV)
    raws = [i for i in c.fetch(None) if isinstance(i, RawItem)]
    assert raws and all(c.normalise(r).author_id for r in raws)
    assert c.normalise(raws[0]).created_at.year == 2020
    server.add(SEARCH, shared_reply("x/search_recent_default_next_token.json"), fixture("x/search_empty.json"))
    c2 = make_connector(spec("x", "x", server, query="nyc", kind="news"), env=ENV)
    raws = [i for i in c2.fetch(None) if isinstance(i, RawItem)]
    assert len(raws) == 10 and server.requests[-1].query["next_token"]
