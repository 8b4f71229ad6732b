"""Every guard rule: visibility, pseudonyms, scrubbing, withholding, counts, and the sealed GuardedPost type."""

from __future__ import annotations

import ast
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openear import guard
from openear.errors import ConfigError
from openear.guard import Guard, ProtectedTopicDetector, pseudonym, scrub_text, scrub_url
from openear.models import GuardedPost, Post

KEY = b"k" * 32
SRC = Path(__file__).resolve().parents[1] / "src" / "openear"


def make_post(text: str = "The app froze again", **kw: object) -> Post:
    base = dict(
        source="s", external_id="1", platform="reddit", kind="social", visibility="public",
        created_at=datetime(2026, 11, 1, 12, tzinfo=UTC), text=text, author_id="t2_abc",
        author_handle="flexdriver99", author_name="Jane Roe", author_url="https://www.reddit.com/user/flexdriver99",
        avatar_url="https://styles.redditmedia.com/avatar.png", url="https://www.reddit.com/r/AmazonFlexDrivers/comments/abc/x/",
    )
    base.update(kw)
    return Post(**base)  # type: ignore[arg-type]


# -- the sealed type -------------------------------------------------------------------------------------------
def test_guarded_post_cannot_be_built_outside_the_guard() -> None:
    with pytest.raises(TypeError, match=r"openear\.guard"):
        GuardedPost("s", "1", "x", "social", "public", datetime.now(UTC), "t", None, None, None, None, None, ())


def test_guarded_post_with_a_forged_seal_is_refused() -> None:
    with pytest.raises(TypeError):
        GuardedPost("s", "1", "x", "social", "public", datetime.now(UTC), "t", None, None, None, None, None, (),
                    seal=object())


def test_only_guard_module_constructs_guarded_posts() -> None:
    """A scan of the package: GuardedPost(...) is called in guard.py and nowhere else."""
    callers = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                if name == "GuardedPost":
                    callers.append(path.name)
    assert callers and set(callers) == {"guard.py"}


def test_store_accepts_only_guarded_posts(workspace) -> None:
    run = workspace.store.start_run("test", None)
    with pytest.raises(TypeError, match="GuardedPost"):
        workspace.store.write_batch(run, [make_post()])  # type: ignore[list-item]


# -- rule 1: visibility -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("vis", ["private", "closed", "secret"])
def test_private_closed_secret_items_are_rejected_with_reason(vis: str) -> None:
    v = Guard(KEY).check(make_post(visibility=vis), "public")
    assert v.post is None and v.rejection is not None
    assert (v.rejection.action, v.rejection.reason) == ("rejected", vis)


def test_an_undeclared_source_visibility_is_rejected() -> None:
    v = Guard(KEY).check(make_post(), "private")
    assert v.rejection is not None and v.rejection.reason == "source_not_public"


def test_consented_source_items_pass() -> None:
    v = Guard(KEY).check(make_post(visibility="consented"), "consented")
    assert v.post is not None and v.post.visibility == "consented"


# -- rule 2: pseudonyms ----------------------------------------------------------------------------------------
def test_pseudonym_is_keyed_hmac_and_drops_identity() -> None:
    v = Guard(KEY).check(make_post(), "public")
    assert v.post is not None
    assert v.post.author_pseudonym == pseudonym(KEY, "reddit", "t2_abc")
    assert v.post.author_pseudonym != pseudonym(b"x" * 32, "reddit", "t2_abc")
    assert v.post.author_pseudonym != pseudonym(KEY, "x", "t2_abc")  # platform is part of the input
    dumped = repr(v.post) + str(v.post.__slots__)
    for secret in ("flexdriver99", "Jane Roe", "t2_abc", "avatar.png"):
        assert secret not in dumped
        assert secret not in " ".join(str(getattr(v.post, f)) for f in v.post.__slots__)


def test_post_repr_does_not_show_the_author() -> None:
    assert "flexdriver99" not in repr(make_post())


def test_key_file_is_created_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "pseudonym.key"
    key = guard.create_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert guard.load_key(path) == key
    with pytest.raises(FileExistsError):
        guard.create_key(path)


def test_a_world_readable_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENEAR_PSEUDONYM_KEY", raising=False)
    path = tmp_path / "k"
    guard.create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        guard.load_key(path)


# -- rule 3: scrubbing -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "placeholder", "gone"),
    [
        ("mail me at jane.roe+flex@example.co.uk please", "[email]", "jane.roe"),
        ("call (555) 234-5678 now", "[phone]", "234-5678"),
        ("US: 555-234-5678", "[phone]", "234-5678"),
        ("UK mobile 07700 900123", "[phone]", "900123"),
        ("UK +44 7700 900123", "[phone]", "900123"),
        ("London 020 7946 0958", "[phone]", "7946"),
        ("llámame al 612 345 678", "[phone]", "345 678"),
        ("móvil +34 612 34 56 78", "[phone]", "56 78"),
        ("fijo 91 123 45 67", "[phone]", "123 45"),
        ("thanks @flex_guy for the tip", "[user]", "flex_guy"),
        ("ask @someone@mastodon.social", "[user]", "someone"),
        ("as u/DriverDan said", "[user]", "DriverDan"),
        ("see /u/DriverDan", "[user]", "DriverDan"),
        ("profile https://twitter.com/flexdriver99 here", "[user]", "flexdriver99"),
        ("https://www.facebook.com/jane.roe.5", "[user]", "jane.roe"),
        ("https://bsky.app/profile/jane.bsky.social", "[user]", "jane.bsky"),
        ("https://mastodon.social/@jane", "[user]", "@jane"),
        ("https://www.reddit.com/user/DriverDan/", "[user]", "DriverDan"),
    ],
)
def test_scrubbing_replaces_personal_data(text: str, placeholder: str, gone: str) -> None:
    out = scrub_text(text).text
    assert placeholder in out
    assert gone not in out


@pytest.mark.parametrize(
    "text",
    [
        "I made $1,250.75 this week over 32 hours",
        "Block 10:30-14:30 on 2026-11-29 paid 72 dollars",
        "Route had 240 packages and 180 stops",
        "r/AmazonFlexDrivers is full of complaints about tips",
        "Costó 28 euros el bloque de 2 horas",
    ],
)
def test_scrubbing_leaves_ordinary_numbers_and_subreddits(text: str) -> None:
    assert scrub_text(text).text == text


def test_the_authors_own_names_are_scrubbed_from_text() -> None:
    v = Guard(KEY).check(make_post("-- flexdriver99 here, Jane Roe signing off"), "public")
    assert v.post is not None
    assert "flexdriver99" not in v.post.text and "Jane Roe" not in v.post.text
    assert "name" in v.post.scrubbed


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://twitter.com/flexdriver99/status/123456", "https://x.com/i/status/123456"),
        ("https://x.com/flexdriver99/status/123456?s=20", "https://x.com/i/status/123456"),
        ("https://mastodon.social/@jane/111222333", "https://mastodon.social/statuses/111222333"),
        ("https://bsky.app/profile/jane.bsky.social/post/3kabc", None),
        ("https://www.reddit.com/user/flexdriver99/comments/x", None),
        ("https://example.org/blog/flexdriver99/post-1", None),  # names the author: dropped
        ("https://www.reddit.com/r/AmazonFlexDrivers/comments/abc/title/", "https://www.reddit.com/r/AmazonFlexDrivers/comments/abc/title/"),
        ("javascript:alert(1)", None),
    ],
)
def test_post_urls_are_stored_without_user_names(url: str, expected: str | None) -> None:
    assert scrub_url(url, ["flexdriver99"])[0] == expected


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_scrubbing_never_crashes_and_removes_every_email(text: str) -> None:
    planted = f"{text} contact x.y@example.com {text}"
    out = scrub_text(planted).text
    assert "x.y@example.com" not in out


# -- rule 4: withholding ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("We should all unionize, the IWGB is holding a meeting Friday", "collective_action"),
        ("Strike on Monday! Everyone log off at noon", "collective_action"),
        ("Mañana huelga de repartidores en Madrid, todos a la concentración", "collective_action"),
        ("Sign the petition for fair pay", "collective_action"),
        ("A PhD student asked me to fill out a survey about Flex", "research_press_contact"),
        ("Un periodista me pidió una entrevista sobre Glovo", "research_press_contact"),
        ("I talked to a reporter from the Times about deactivations", "research_press_contact"),
    ],
)
def test_protected_topics_are_withheld_from_social_items(text: str, topic: str) -> None:
    v = Guard(KEY).check(make_post(text), "public")
    assert v.post is None and v.rejection is not None
    assert (v.rejection.action, v.rejection.reason) == ("withheld", topic)


def test_news_about_a_strike_is_kept() -> None:
    v = Guard(KEY).check(make_post("Couriers strike in Barcelona over pay", kind="news", author_id=None), "public")
    assert v.post is not None


@pytest.mark.parametrize(
    "text",
    [
        "The app keeps crashing when I scan packages",
        "No tips again this week, customers promised $5",
        "Me han desactivado la cuenta sin explicación",
        "Waited 2 hours at the station for my route",
    ],
)
def test_ordinary_driver_talk_is_not_withheld(text: str) -> None:
    assert ProtectedTopicDetector().detect(text) is None


def test_rejections_carry_a_keyed_digest_not_the_id() -> None:
    v = Guard(KEY).check(make_post(visibility="closed", external_id="secret-group-post-1"), "public")
    assert v.rejection is not None
    assert "secret-group-post-1" not in v.rejection.digest
    assert len(v.rejection.digest) == 32


def test_guard_repr_hides_the_key() -> None:
    assert "kkkk" not in repr(Guard(KEY))


def test_a_shipped_guarded_post_is_sealed_again_only_when_its_mac_verifies() -> None:
    """Ray workers ship guarded posts as fields + MAC; the driver's guard seals only what a guard with the key
    built and nothing changed on the way (so the seal never becomes a way around the guard)."""
    guard = Guard(b"k" * 32)
    post = Post(source="s", external_id="1", platform="reddit", kind="social", visibility="public",
                created_at=datetime(2026, 1, 1, tzinfo=UTC), text="The app crashed", author_id="u1")
    guarded = guard.check(post, "public").post
    assert guarded is not None
    fields, mac = guard.ship(guarded)
    assert guard.receive(fields, mac) == guarded
    tampered = (*fields[:6], "Call me at ana@example.org", *fields[7:])
    with pytest.raises(ValueError, match="MAC"):
        guard.receive(tampered, mac)
    with pytest.raises(ValueError, match="MAC"):
        Guard(b"x" * 32).receive(fields, mac)  # another key: not our guard's work


def test_an_item_cannot_call_itself_news_in_a_social_source(workspace: Any) -> None:
    """An item's own ``kind: news`` must not lift it out of the guard's social checks: in a social source it is
    invalid (named, not stored); a news source keeps news, and its items may still say they are social."""
    from sqlalchemy import select

    from openear.store.schema import posts

    strike = {"id": "s1", "kind": "news", "author": "rider_zed", "created_at": "2026-11-28T08:00:00Z",
              "text": "Hi, rider_zed here (Zed Rivera). We are organising a strike on friday, sign our petition"}
    named = {"id": "s2", "kind": "social", "author": "rider_zed", "created_at": "2026-11-28T09:00:00Z",
             "text": "rider_zed here: the app crashed at the station again today"}
    _, stats = workspace.import_rows([strike, named], name="social.jsonl", source="forum")
    assert (stats.invalid, stats.withheld, stats.stored) == (1, 0, 1)
    _, stats = workspace.import_rows([{**strike, "id": "n1"}, {**named, "id": "n2"}], name="news.jsonl",
                                     source="press", kind="news")
    assert (stats.invalid, stats.withheld, stats.stored) == (0, 0, 2)  # the story is news; n2 says it is social
    with workspace.store.connect() as conn:
        stored = {r.external_id: r for r in conn.execute(select(posts.c.external_id, posts.c.kind, posts.c.text))}
    assert set(stored) == {"s2", "n1", "n2"}
    for social in ("s2", "n2"):
        assert stored[social].kind == "social" and "rider_zed" not in stored[social].text
    assert stored["n1"].kind == "news"  # a publisher's story about a strike is kept
