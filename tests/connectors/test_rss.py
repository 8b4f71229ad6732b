"""RSS/Atom against a local server: conditional GET, safe XML, private addresses refused unless allowed."""

from __future__ import annotations

import json

import pytest
from replay import ReplayServer, Reply, fixture, server, shared_reply, spec  # noqa: F401 - the server fixture
from sqlalchemy import select

from openear.collector import collect_source
from openear.connectors.base import make_connector
from openear.connectors.rss import check_public
from openear.errors import TerminalError
from openear.models import RawItem
from openear.store.schema import posts


def rss_spec(server: ReplayServer, feeds: list[str], **kw):
    kw.setdefault("allow_private_addresses", True)  # the test server is on loopback
    return spec("news", "rss", server, kind="news", feeds=[f"{server.url}{f}" for f in feeds], **kw)


def test_feeds_are_read_and_conditional_get_is_used(workspace, server: ReplayServer) -> None:
    etag = '"v1"'

    def handler(req):
        if req.headers.get("if-none-match") == etag:
            return Reply(304, {"etag": etag})
        return fixture("rss/feed.rss.xml", etag=etag, **{"last-modified": "Sun, 30 Nov 2026 09:00:00 GMT"})

    server.add("/rss.xml", handler)
    server.add("/atom.xml", fixture("rss/feed.atom.xml"))
    s = rss_spec(server, ["/rss.xml", "/atom.xml"])
    result = collect_source(workspace.settings, workspace.store, s)
    assert result.ok, result.error
    assert result.stats.stored == 3
    with workspace.store.connect() as conn:
        rows = {r.external_id: r for r in conn.execute(select(posts))}
    first = rows["https://news.example/2026/11/30/drivers-late-payments"]
    assert first.title == "Delivery drivers report late payments after app update"
    assert first.text == "Drivers said payments arrived days late after the latest app update."
    assert first.kind == "news" and first.author_pseudonym is None
    assert rows["news-example-29-station"].created_at.isoformat() == "2026-11-29T11:30:00"
    assert rows["tag:noticias.example,2026:1"].lang == "es"
    cursor = json.loads(workspace.store.get_cursor("news"))
    assert cursor[f"{server.url}/rss.xml"] == {"etag": etag, "modified": "Sun, 30 Nov 2026 09:00:00 GMT"}
    server.requests.clear()
    result = collect_source(workspace.settings, workspace.store, s)
    assert result.stats.read == 1  # the RSS feed answered 304; the Atom feed sent no validators
    assert server.hits("/rss.xml")[0].headers["if-modified-since"] == "Sun, 30 Nov 2026 09:00:00 GMT"


def test_entity_expansion_is_refused(workspace, server: ReplayServer) -> None:
    server.add("/evil.xml", fixture("rss/billion_laughs.rss.xml"))
    result = collect_source(workspace.settings, workspace.store, rss_spec(server, ["/evil.xml"]))
    assert not result.ok and "unsafe XML refused" in result.error
    assert workspace.store.count() == 0


def test_loopback_feeds_are_refused_unless_allowed(server: ReplayServer) -> None:
    server.add("/rss.xml", fixture("rss/feed.rss.xml"))
    c = make_connector(rss_spec(server, ["/rss.xml"], allow_private_addresses=False), env={})
    with pytest.raises(TerminalError, match="non-public address"):
        list(c.fetch(None))
    assert server.requests == []
    for url in ("http://10.0.0.1/feed", "http://[::1]/feed", "http://169.254.169.254/latest", "file:///etc/passwd"):
        with pytest.raises(TerminalError):
            check_public(url)


def test_redirects_to_private_addresses_are_checked(server: ReplayServer) -> None:
    server.add("/moved", Reply(302, {"location": "/rss.xml"}))
    server.add("/rss.xml", fixture("rss/feed.rss.xml"))
    c = make_connector(rss_spec(server, ["/moved"]), env={})
    assert len([i for i in c.fetch(None) if isinstance(i, RawItem)]) == 2


def test_recorded_publisher_feeds(server: ReplayServer) -> None:
    server.add("/cnn.rss", shared_reply("rss/cnn_hp_hero.rss.xml"))
    server.add("/verge.atom", shared_reply("rss/theverge_all_posts.atom.xml"))
    c = make_connector(rss_spec(server, ["/cnn.rss", "/verge.atom"]), env={})
    raws = [i for i in c.fetch(None) if isinstance(i, RawItem)]
    assert len(raws) == 69 + 10
    news = [c.normalise(r) for r in raws]
    assert all(p.title and p.url and p.external_id for p in news)
    assert news[0].url.startswith("https://www.cnn.com/2022/07/26/politics/")
