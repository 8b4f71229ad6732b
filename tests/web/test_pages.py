"""The pages: what each shows, who may see it, search and filters, and escaping of untrusted post text."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from openear.web.pages import PAGE_SIZE

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"


def _result_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="result__link" href="/posts/(\d+)"', html)]


def test_overview_shows_totals_chart_splits_clusters_and_guard_counts(web: Any) -> None:
    r = web.login("viewer").get("/?since=30d")
    assert r.status_code == 200
    html = r.text
    assert "<h1>Overview</h1>" in html
    m = re.search(r'<img src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert m, "the volume chart is missing"
    assert base64.b64decode(m.group(1)).decode().lstrip().startswith("<svg")
    assert 'alt="Stacked chart of posts per day' in html  # bars or areas, never a line chart
    for heading in ("Sentiment", "Languages", "Top clusters", "Privacy guard"):
        assert heading in html
    guard = re.search(r'<dl class="guard">(.*?)</dl>', html, re.S).group(1)  # type: ignore[union-attr]
    assert re.findall(r"<dd>(\d+)</dd>", guard) == ["1", "1", "2"]  # withheld, rejected, scrubbed
    by_reason = html.split("<summary>By reason</summary>")[1].split("</details>")[0]
    reasons = re.findall(r"<tr><td>\w+</td><td>([^<]+)</td>", by_reason)
    assert "Organising or collective action" in reasons and "Phone number" in reasons  # words, as in reports
    assert not any("_" in r or r.islower() for r in reasons), reasons  # never a code such as collective_action
    assert "Missing tips" in html or "Tips are missing" in html  # the p4/p5 cluster
    assert 'href="/posts/' not in html  # a viewer gets no links into posts


def test_overview_links_clusters_for_analysts_and_accepts_ranges(web: Any) -> None:
    c = web.login("analyst")
    assert 'href="/posts/' in c.get("/").text
    week = c.get("/?since=7d")
    assert week.status_code == 200 and "Last 7 days" in week.text
    bad = c.get("/?since=forever")
    assert bad.status_code == 200 and "not understood" in bad.text
    assert c.get("/?since=999999999999d").status_code == 200


_CLUSTER_SEARCH = re.compile(r'href="/posts\?q=cluster%3A(\d+)"')


def test_overview_links_each_cluster_to_its_posts_for_readers_only(web: Any) -> None:
    """An analyst's top clusters link the posts page searching ``cluster:ID``, which lists exactly that cluster's
    posts, newest first, and is audited with the query; owners and viewers (403 on /posts) get no such link."""
    import json

    from sqlalchemy import select

    from openear import audit
    from openear.store.schema import posts

    c = web.login("analyst")
    linked = [int(i) for i in _CLUSTER_SEARCH.findall(c.get("/").text)]
    with web.store.connect() as conn:
        of = dict(conn.execute(select(posts.c.id, posts.c.cluster_id)).all())
    tips = of[web.ids["p4"]]
    assert tips is not None and of[web.ids["p5"]] == tips and tips in linked  # the p4/p5 near-duplicate pair
    for cid in linked:
        page = c.get(f"/posts?q=cluster%3A{cid}")
        assert page.status_code == 200
        members = sorted((pid for pid, cluster in of.items() if cluster == cid), reverse=True)
        assert sorted(_result_ids(page.text), reverse=True) == members and len(members) >= 2
    assert _result_ids(c.get("/posts", params={"q": f"cluster:{tips}"}).text) == [web.ids["p4"], web.ids["p5"]]
    with web.store.connect() as conn:
        searches = [e for e in audit.entries(conn) if e["action"] == "posts.search" and e["actor"] == "analyst"]
    assert json.loads(searches[-1]["detail"])["q"] == f"cluster:{tips}"
    for role in ("owner", "viewer"):
        other = web.login(role)
        assert _CLUSTER_SEARCH.findall(other.get("/").text) == [], role
        assert other.get(f"/posts?q=cluster%3A{tips}").status_code == 403, role  # why there is no link


def test_overview_tells_no_topics_found_from_not_looked_for_yet(web: Any) -> None:
    """"No emerging topics" means something only once the topics job has looked (the demo looks once)."""
    from openear.topics import emerging_topics, last_checked

    page = " ".join(web.login("analyst").get("/").text.split())
    assert "Not looked for yet: <code>openear run</code> looks every day at 00:15 UTC" in page
    assert "No emerging topics found" not in page
    today = datetime.now(UTC).date()
    assert emerging_topics(web.store, today) == [] and last_checked(web.store) == today
    emerging_topics(web.store, today - timedelta(days=3))  # an older day looked at later does not move it back
    assert last_checked(web.store) == today
    page = " ".join(web.login("analyst").get("/").text.split())
    assert f"No emerging topics found in this period (last looked for on {today.isoformat()})." in page
    assert "Not looked for yet" not in page


def test_overview_shows_emerging_topics_and_links_their_posts_only_for_readers(web: Any) -> None:
    import json

    from openear.store.schema import topics

    day = datetime.now(UTC).date().isoformat()
    with web.store.begin() as conn:
        conn.execute(
            topics.insert().values(
                day=day,
                rank=1,
                window_days=7,
                terms=json.dumps(["e-bike", "battery", "swap"]),
                n_posts=9,
                n_previous=1,
                score=5.0,
                post_ids=json.dumps([web.ids["p1"]]),
                created_at=datetime.now(UTC),
            )
        )
    analyst = web.login("analyst").get("/").text
    assert "e-bike, battery, swap" in analyst and f'href="/posts/{web.ids["p1"]}">post 1' in analyst
    viewer = web.login("viewer").get("/").text
    assert "e-bike, battery, swap" in viewer and f'/posts/{web.ids["p1"]}"' not in viewer


def test_overview_figures_follow_new_posts_at_once(web: Any) -> None:
    c = web.login("viewer")
    posts_stat = re.compile(r'stat__label">Posts</p>\s*<p class="stat__value">([\d,]+)<')

    def shown() -> int:
        return int(posts_stat.search(c.get("/").text).group(1).replace(",", ""))  # type: ignore[union-attr]

    from openear.enrich import Enrichment
    from openear.guard import Guard
    from openear.models import Post

    before = shown()
    assert shown() == before and web.store.aggregates.hits >= 1  # the second view came from the cache
    post = Post(
        source="test-source",
        external_id="fresh-1",
        platform="reddit",
        kind="social",
        visibility="public",
        created_at=datetime.now(UTC) - timedelta(hours=1),
        text="The app logs me out at every pickup",
    )
    verdict = Guard(b"k" * 32).check(post, "public")
    assert verdict.post is not None
    web.store.write_batch(web.store.start_run("import", "test-source"), Enrichment().enrich([verdict.post]))
    assert shown() == before + 1  # a write moves the data version: no stale figure


def test_empty_period_renders(web: Any) -> None:
    future = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    r = web.login("viewer").get(f"/?since={future}")
    assert r.status_code == 200


@pytest.mark.parametrize("path", ["/posts", "/posts?q=app", "/posts/{id}"])
def test_viewer_and_owner_get_403_on_posts(web: Any, path: str) -> None:
    path = path.format(id=web.ids["p1"])
    for role in ("viewer", "owner"):
        r = web.login(role).get(path)
        assert r.status_code == 403, role
        assert "do not have access" in r.text
    for role in ("analyst", "admin"):
        assert web.login(role).get(path).status_code == 200, role


def test_viewer_has_no_posts_link(web: Any) -> None:
    assert 'href="/posts"' not in web.login("viewer").get("/").text
    assert 'href="/posts"' in web.login("analyst").get("/").text


def test_xss_payload_is_escaped_in_list_and_post(web: Any) -> None:
    c = web.login("analyst")
    for path in ("/posts", "/posts?q=weird", f"/posts/{web.ids['p3']}"):
        html = c.get(path).text
        assert ESCAPED in html, path
        assert "<script>alert(1)" not in html and "onerror=alert(2)>" not in html.replace(ESCAPED, "")
        assert "<script" not in html.lower()


def test_search_is_accent_and_case_insensitive(web: Any) -> None:
    c = web.login("analyst")
    for term in ("llego", "LLEGÓ", "llegó tarde", "Pago"):
        r = c.get("/posts", params={"q": term})
        assert _result_ids(r.text) == [web.ids["p2"]], term
    assert _result_ids(c.get("/posts", params={"q": "zzzz-no-such-word"}).text) == []
    assert "No posts match" in c.get("/posts", params={"q": "zzzz"}).text


def test_search_ignores_query_syntax(web: Any) -> None:
    c = web.login("analyst")
    for term in ('"unbalanced', "app AND", "NEAR(", "*", "text:app OR 1=1 --"):
        assert c.get("/posts", params={"q": term}).status_code == 200, term


def test_an_unreadable_search_says_so_instead_of_zero_matches(web: Any) -> None:
    """A query that cannot be parsed is not "0 posts match": the page says why and offers no export that would fail."""
    html = web.login("analyst").get("/posts", params={"q": "app AND"}).text
    assert "expected a term" in html and "could not be read" in html
    assert "0 posts match" not in html and "No posts match" not in html
    assert "/posts/export?" not in html and 'action="/searches"' not in html  # nor a save that would be refused
    readable = web.login("analyst").get("/posts", params={"q": "app"}).text
    assert "/posts/export?" in readable and 'action="/searches"' in readable


def test_an_unreadable_search_cannot_be_saved_from_the_posts_page(web: Any) -> None:
    c = web.login("analyst")
    r = c.post("/searches", data={"name": "Broken", "query": "app AND", "filters": "lang=en"})
    assert r.status_code == 400
    assert "The search could not be read: col 8: expected a term after AND" in r.text
    assert "Broken" not in c.get("/posts").text
    assert c.post("/searches", data={"name": "Fine", "query": "app AND crash"}).status_code == 303


def test_withheld_and_rejected_items_are_nowhere(web: Any) -> None:
    c = web.login("analyst")
    results = c.get("/posts", params={"q": "strike"}).text.split('aria-label="Results"')[-1].split("</section>")[0]
    assert "strike" not in results and "No posts match" in results
    assert _result_ids(c.get("/posts", params={"q": "private group"}).text) == []
    assert "w1" not in web.ids and "r1" not in web.ids


def test_filters(web: Any) -> None:
    c = web.login("analyst")
    news = _result_ids(c.get("/posts", params={"kind": "news"}).text)
    assert news == [web.ids["p7"]]
    spanish = _result_ids(c.get("/posts", params={"lang": "es"}).text)
    assert spanish == [web.ids["p2"]]
    today = datetime.now(UTC).date()
    recent = _result_ids(c.get("/posts", params={"since": (today - timedelta(days=2)).isoformat()}).text)
    assert set(recent) == {web.ids["p1"], web.ids["p2"]}
    window = _result_ids(
        c.get(
            "/posts",
            params={"since": (today - timedelta(days=4)).isoformat(), "until": (today - timedelta(days=3)).isoformat()},
        ).text
    )
    assert set(window) == {web.ids["p3"], web.ids["p4"]}
    bad = c.get("/posts", params={"since": "yesterday"})
    assert bad.status_code == 200 and "expected a date" in bad.text
    swapped = c.get("/posts", params={"since": "2026-11-20", "until": "2026-11-01"})
    assert "From (2026-11-20) is after To (2026-11-01)" in swapped.text  # not a bare "0 posts match"
    cat = c.get("/posts").text
    assert '<select id="category" name="category">' in cat


def test_pagination(web: Any) -> None:
    rows = [
        (f"m{i}", 10, f"Batch post number {i} about the pay calculator showing zero", None, "social", "public")
        for i in range(PAGE_SIZE + 5)
    ]
    web.add_posts(rows, "bulk-source")
    c = web.login("analyst")
    first = c.get("/posts", params={"source": "bulk-source"})
    assert f"{PAGE_SIZE + 5} posts match" in first.text
    assert len(_result_ids(first.text)) == PAGE_SIZE
    assert "Page 1 of 2" in first.text and 'rel="next"' in first.text
    assert "source=bulk-source&amp;page=2" in first.text
    second = c.get("/posts", params={"source": "bulk-source", "page": "2"})
    assert len(_result_ids(second.text)) == 5
    assert not set(_result_ids(first.text)) & set(_result_ids(second.text))
    assert c.get("/posts", params={"page": "abc"}).status_code == 200
    past = c.get("/posts", params={"source": "bulk-source", "page": "99"}).text
    assert _result_ids(past) == _result_ids(second.text)  # a page past the end shows the last page
    assert "Page 2 of 2" in past and "Page 99" not in past and "No posts match" not in past


def test_post_page_shows_labels_and_pseudonym_only(web: Any) -> None:
    r = web.login("analyst").get(f"/posts/{web.ids['p6']}")
    html = r.text
    assert "[email]" in html and "[phone]" in html
    assert "driver.jane" not in html and "555 123" not in html and "someone" not in html
    assert re.search(r"<code[^>]*>p_[0-9a-f]{20}</code>", html)
    assert re.search(r"<code>[\w.-]+@[\w.]+</code>", html)  # enricher@version
    for name in ("category", "lang", "sentiment"):
        assert f"<td>{name}</td>" in html
    assert 'href="https://example.org/p6"' in html and 'rel="noopener noreferrer nofollow"' in html


def test_post_lists_never_show_author_pseudonyms(web: Any) -> None:
    html = web.login("analyst").get("/posts").text
    assert not re.search(r"p_[0-9a-f]{20}", html)


def test_missing_post_is_404(web: Any) -> None:
    c = web.login("analyst")
    assert c.get("/posts/999999").status_code == 404
    assert c.get("/posts/not-a-number").status_code == 422


def test_transparency_is_public_and_complete(web: Any) -> None:
    r = web.client().get("/transparency")
    assert r.status_code == 200
    html = r.text
    assert web.settings.purpose[:60] in html
    assert f"{web.settings.retention_days} days" in html
    assert "test-source" in html and "public" in html and "social" in html
    assert "What openear never does" in html
    stats = re.findall(r'<p class="stat__value">(\d+)</p>', html)
    assert stats == ["1", "1", "2"]
    assert 'href="/login"' in html and "Sign out" not in html


def test_healthz(web: Any) -> None:
    r = web.client().get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
