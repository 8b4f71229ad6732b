"""Bluesky Jetstream mode against a real local WebSocket server and a replayed AppView.

The WebSocket server (``websockets`` sync server on 127.0.0.1) pushes one event per text frame, like Jetstream:
the project's synthetic ``tests/fixtures/jetstream_events.ndjson`` and, when ``../shared`` is present, the 152 events
production Jetstream served (``bluesky/jetstream_v1_events.ndjson``). ``app.bsky.actor.getProfiles`` is answered by
the replay HTTP server.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from replay import ReplayServer, json_reply, server, shared_reply, spec  # noqa: F401 - the server fixture
from sqlalchemy import func, select, text
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from openear.collector import collect_source
from openear.connectors.base import Deleted, make_connector
from openear.connectors.bluesky import post_id
from openear.connectors.jetstream import Event, InvalidEvent, LabelCache, parse_event
from openear.errors import ConfigError
from openear.models import CursorMark, RawItem
from openear.store.schema import posts
from shared_data import shared_path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PROFILES = "/xrpc/app.bsky.actor.getProfiles"
QUERIES = ["amazon flex", '"delivery block"']
OPTS = {"jetstream": True, "idle_seconds": 0.3, "rewind_seconds": 2, "lookup_wait": 60}


def did(name: str) -> str:
    return f"did:plc:{name}" + "x" * (24 - len(name))


def frames_of(path: Path) -> list[tuple[int, str | bytes]]:
    return [(json.loads(line)["time_us"], line) for line in path.read_text().splitlines() if line.strip()]


SYNTHETIC = frames_of(FIXTURES / "jetstream_events.ndjson")


class JetstreamServer:
    """A Jetstream on 127.0.0.1: sends the published frames with ``time_us >= cursor`` (all without a cursor).

    ``drops`` lists, per connection in order, after how many frames to cut the TCP connection (no close frame).
    Each connection's query string is kept in ``requests``.
    """

    def __init__(self, frames: list[tuple[int, str | bytes]]) -> None:
        self.frames = list(frames)
        self.drops: list[int | None] = []
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.server = serve(self._handle, "127.0.0.1", 0, compression=None)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handle(self, ws: ServerConnection) -> None:
        parts = urlsplit(ws.request.path if ws.request else "/")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.requests.append({"path": parts.path, **query})
            drop = self.drops.pop(0) if self.drops else None
            frames = list(self.frames)
        cursor = int(query.get("cursor", 0))
        sent = 0
        for t, frame in frames:
            if t < cursor:
                continue
            if drop is not None and sent >= drop:
                ws.close_socket()
                return
            ws.send(frame)
            sent += 1
        with contextlib.suppress(ConnectionClosed):
            ws.recv()  # stay open (idle) until the client leaves

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def jet() -> Iterator[JetstreamServer]:
    s = JetstreamServer(SYNTHETIC)
    yield s
    s.close()


def serve_profiles(server: ReplayServer, body: dict[str, Any] | None = None) -> None:
    body = body or json.loads((FIXTURES / "jetstream_profiles.json").read_text())
    server.add(PROFILES, json_reply(body))


def jspec(server: ReplayServer, jet: JetstreamServer, name: str = "flex-jet", **options: Any) -> Any:
    return spec(name, "bluesky", server, queries=QUERIES, jetstream_url=jet.url, **{**OPTS, **options})


def stored(store: Any, source: str = "flex-jet") -> dict[str, str]:
    with store.connect() as conn:
        rows = conn.execute(select(posts.c.external_id, posts.c.text).where(posts.c.source == source)).all()
    return {r.external_id: r.text for r in rows}


def count(store: Any, source: str = "flex-jet") -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(posts).where(posts.c.source == source)).scalar_one())


def uri(name: str, rkey: str) -> str:
    return f"at://{did(name)}/app.bsky.feed.post/{rkey}"


DAVE, FRANK, ALICE = uri("dave", "3lcdave000001"), uri("frank", "3lcfrank00001"), uri("alice", "3lcalice00001")


# -- the pass -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [600, 0])  # with a TTL of 0 every answer expires before it is used: still right
def test_keyword_filter_consent_and_ignored_events(
    workspace, server: ReplayServer, jet: JetstreamServer, ttl: int
) -> None:
    serve_profiles(server)
    result = collect_source(workspace.settings, workspace.store, jspec(server, jet, profile_ttl=ttl))
    assert result.ok, result.error
    # alice's post is created and deleted in the same pass: never stored; bob's does not match; carol (profile
    # label), erin (self-label) and "gone" (no profile) are skipped; likes, reposts, identity and account ignored.
    assert stored(workspace.store) == {
        post_id(DAVE): "My amazon flex route took six hours",
        post_id(FRANK): "flex time at the amazon station was fine",
    }
    assert result.skipped == {"no_unauthenticated": 2, "profile_unavailable": 1}
    assert jet.requests[0] == {"path": "/subscribe", "wantedCollections": "app.bsky.feed.post"}
    assert json.loads(workspace.store.get_cursor("flex-jet")) == {"time_us": SYNTHETIC[-1][0]}
    # One batched look-up of the matching posts' authors (never bob's); the DIDs are not stored.
    (hit,) = server.hits(PROFILES)
    assert hit.query["actors"] in {did(n) for n in ("alice", "carol", "dave", "erin", "frank", "gone")}
    with workspace.store.connect() as conn:
        dumped = json.dumps([list(r) for r in conn.execute(select(posts)).all()], default=str)
    assert "did:plc" not in dumped and "example.com" not in dumped


def test_create_then_delete_removes_the_stored_post(workspace, db_url, server: ReplayServer) -> None:
    serve_profiles(server)
    jet = JetstreamServer(SYNTHETIC[:5])  # up to dave's create: alice's post is stored
    try:
        s = jspec(server, jet)
        first = collect_source(workspace.settings, workspace.store, s)
        assert first.ok, first.error
        assert set(stored(workspace.store)) == {post_id(ALICE), post_id(DAVE)}
        jet.frames = list(SYNTHETIC)  # the rest is published: alice deletes her post
        second = collect_source(workspace.settings, workspace.store, s)
        assert second.ok, second.error
    finally:
        jet.close()
    assert second.deleted == 1
    assert set(stored(workspace.store)) == {post_id(DAVE), post_id(FRANK)}
    # The second pass resumed from the saved cursor, rewound 2 s.
    assert int(jet.requests[1]["cursor"]) == SYNTHETIC[4][0] - 2_000_000


def test_a_deletion_and_its_cursor_commit_together(workspace, db_url, server: ReplayServer) -> None:
    """A failure injected in the transaction (a trigger refusing the DELETE) leaves neither applied."""
    serve_profiles(server)
    jet = JetstreamServer(SYNTHETIC[:5])
    pg = db_url.startswith("postgresql")
    try:
        s = jspec(server, jet)
        assert collect_source(workspace.settings, workspace.store, s).ok
        cursor = workspace.store.get_cursor("flex-jet")
        with workspace.store.begin() as conn:
            if pg:
                conn.execute(
                    text(
                        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
                    )
                )
                conn.execute(
                    text("CREATE TRIGGER refuse BEFORE DELETE ON posts FOR EACH ROW EXECUTE FUNCTION refuse()")
                )
            else:
                conn.execute(
                    text(
                        "CREATE TRIGGER refuse BEFORE DELETE ON posts "
                        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
                    )
                )
        jet.frames = list(SYNTHETIC)
        failed = collect_source(workspace.settings, workspace.store, s)
        assert not failed.ok and "injected failure" in (failed.error or "")
        assert post_id(ALICE) in stored(workspace.store)  # the deletion rolled back ...
        assert workspace.store.get_cursor("flex-jet") == cursor  # ... and so did the cursor past it
        with workspace.store.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse ON posts" if pg else "DROP TRIGGER refuse"))
        again = collect_source(workspace.settings, workspace.store, s)
        assert again.ok and again.deleted == 1
    finally:
        jet.close()
    assert set(stored(workspace.store)) == {post_id(DAVE), post_id(FRANK)}
    assert json.loads(workspace.store.get_cursor("flex-jet")) == {"time_us": SYNTHETIC[-1][0]}


def test_the_same_post_deleted_from_either_mode(workspace, server: ReplayServer, jet: JetstreamServer) -> None:
    """A post stored by searchPosts is deleted by Jetstream's delete: both modes give it the same external id."""
    view = {
        "uri": ALICE,
        "cid": "bafyreisynthetic0001",
        "indexedAt": "2026-11-18T10:01:00.000Z",
        "author": {"did": did("alice"), "handle": "alice.example.com", "labels": []},
        "record": {"text": "Amazon Flex blocks vanished again", "createdAt": "2026-11-18T10:01:00.000Z"},
    }
    server.add("/xrpc/app.bsky.feed.searchPosts", json_reply({"posts": [view]}))
    serve_profiles(server)
    search = spec("flex-jet", "bluesky", server, queries=QUERIES)
    assert collect_source(workspace.settings, workspace.store, search).stats.stored == 1
    assert post_id(ALICE) in stored(workspace.store)
    result = collect_source(workspace.settings, workspace.store, jspec(server, jet))
    assert result.ok and result.deleted == 1 and post_id(ALICE) not in stored(workspace.store)


def test_a_dropped_connection_resumes_from_the_cursor_without_duplicates(
    workspace, server: ReplayServer, jet: JetstreamServer
) -> None:
    serve_profiles(server)
    jet.drops = [5, 4]  # cut after 5 frames, then (after resuming, rewound 2 s) after 4 more
    result = collect_source(workspace.settings, workspace.store, jspec(server, jet))
    assert result.ok, result.error
    assert len(jet.requests) == 3
    # Each reconnect asks for the newest time_us handled, less the 2 s rewind: some frames come twice.
    assert int(jet.requests[1]["cursor"]) == SYNTHETIC[4][0] - 2_000_000
    assert int(jet.requests[2]["cursor"]) == SYNTHETIC[5][0] - 2_000_000
    assert count(workspace.store) == 2 and set(stored(workspace.store)) == {post_id(DAVE), post_id(FRANK)}
    again = collect_source(workspace.settings, workspace.store, jspec(server, jet))
    assert again.ok and again.stats.stored == 0 and count(workspace.store) == 2


def test_a_source_that_keeps_dropping_fails_after_its_retries(
    workspace, server: ReplayServer, jet: JetstreamServer
) -> None:
    serve_profiles(server)
    jet.drops = [0] * 10
    result = collect_source(workspace.settings, workspace.store, jspec(server, jet, retries=2))
    assert not result.ok and "connection dropped" in (result.error or "") and "after 3 attempts" in result.error
    assert len(jet.requests) == 3 and workspace.store.get_cursor("flex-jet") is None


def test_malformed_frames_are_reported_and_the_stream_goes_on(
    workspace, server: ReplayServer, jet: JetstreamServer
) -> None:
    serve_profiles(server)
    t = SYNTHETIC[3][0]
    bad_rkey = json.loads(SYNTHETIC[4][1])
    bad_rkey["commit"]["rkey"] = "../../etc"
    jet.frames[4:4] = [
        (t, "{not json"),
        (t, json.dumps({"time_us": "soon", "kind": "commit"})),
        (t, json.dumps(bad_rkey)),
        (t, b"\xff\xfe binary"),
        (t, json.dumps({**json.loads(SYNTHETIC[4][1]), "commit": []})),
    ]
    result = collect_source(workspace.settings, workspace.store, jspec(server, jet))
    assert result.ok, result.error
    assert result.stats.invalid == 5
    origin = f"{jet.url}/subscribe"
    assert result.stats.errors == [
        f"{origin}:5: frame: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
        f"{origin}:6: time_us: must be a positive whole number, not string",
        f"{origin}:7: commit.rkey: must be a record key (letters, digits, . _ : ~ -)",
        f"{origin}:8: frame: not UTF-8 text",
        f"{origin}:9: commit: must be an object, not array",
    ]
    assert set(stored(workspace.store)) == {post_id(DAVE), post_id(FRANK)}


def test_author_look_ups_are_batched_25_per_call_and_cached(
    workspace, server: ReplayServer, jet: JetstreamServer
) -> None:
    t0 = SYNTHETIC[-1][0] + 1_000_000
    events = []
    for i in range(30):
        who = f"author{i:02d}"
        events.append(
            (
                t0 + i,
                json.dumps(
                    {
                        "did": did(who),
                        "time_us": t0 + i,
                        "kind": "commit",
                        "commit": {
                            "operation": "create",
                            "collection": "app.bsky.feed.post",
                            "rkey": f"3lcpost{i:06d}",
                            "record": {
                                "text": f"amazon flex shift number {i}",
                                "createdAt": "2026-11-18T11:00:00.000Z",
                            },
                        },
                    }
                ),
            )
        )
    jet.frames = events
    server.add(PROFILES, json_reply({"profiles": [{"did": did(f"author{i:02d}"), "labels": []} for i in range(30)]}))
    result = collect_source(workspace.settings, workspace.store, jspec(server, jet, lookup_wait=60))
    assert result.ok and result.stats.stored == 30
    assert len(server.hits(PROFILES)) == 2  # 25 + 5
    # Within the TTL the next pass looks nobody up again.
    jet.frames = [(t + 100, f.replace(f'"time_us": {t}', f'"time_us": {t + 100}')) for t, f in events]
    assert collect_source(workspace.settings, workspace.store, jspec(server, jet, lookup_wait=60)).ok
    assert len(server.hits(PROFILES)) == 2


def test_a_pass_ends_after_max_events(server: ReplayServer, jet: JetstreamServer) -> None:
    serve_profiles(server)
    c = make_connector(jspec(server, jet, max_events=5, idle_seconds=30), env={})
    items = list(c.fetch(None))
    c.close()
    marks = [i for i in items if isinstance(i, CursorMark)]
    assert json.loads(marks[-1].value) == {"time_us": SYNTHETIC[4][0]}  # 5 events, then the pass ends
    assert [i for i in items if isinstance(i, Deleted)] == []


def test_a_stop_ends_the_pass_cleanly(server: ReplayServer, jet: JetstreamServer) -> None:
    serve_profiles(server)
    stop = threading.Event()
    c = make_connector(jspec(server, jet, idle_seconds=30, lookup_wait=0), env={}, stop=stop)
    items = []
    for item in c.fetch(None):
        items.append(item)
        if isinstance(item, RawItem):
            stop.set()
    c.close()
    assert isinstance(items[-1], CursorMark) and sum(isinstance(i, RawItem) for i in items) == 1


def test_configuration_errors_name_the_field(server: ReplayServer, jet: JetstreamServer) -> None:
    with pytest.raises(ConfigError, match=r"hashtags\[0\]: 'amazon AND': col"):
        make_connector(spec("j", "bluesky", server, queries=["amazon AND"], jetstream=True), env={})
    with pytest.raises(ConfigError, match=r"hashtags\[1\]: 'flex cluster:3': cluster: cannot be used here"):
        make_connector(spec("j", "bluesky", server, queries=["flex", "flex cluster:3"], jetstream=True), env={})
    with pytest.raises(ConfigError, match="jetstream_url: must be a ws"):
        make_connector(spec("j", "bluesky", server, queries=["x"], jetstream=True, jetstream_url="http://x"), env={})
    with pytest.raises(ConfigError, match="jetstream: must be true or false"):
        make_connector(spec("j", "bluesky", server, queries=["x"], jetstream="yes"), env={})


# -- the recorded production stream -------------------------------------------------------------------------------


def test_recorded_jetstream_events(workspace, server: ReplayServer) -> None:
    """The 152 events production Jetstream served: 17 post creates, 1 post delete, likes, follows, identity, account."""
    frames = frames_of(shared_path("data", "api-samples", "bluesky", "jetstream_v1_events.ndjson"))
    thread = json.loads(shared_reply("bluesky/get_post_thread_no_unauthenticated_author.json").body)["thread"]
    labels = thread["parent"]["post"]["author"]["labels"]  # a real !no-unauthenticated label
    opted_out = "did:plc:jzzhv5tfzhz5ucectafuhy4j"  # wrote one of the "government" posts
    authors = {json.loads(f)["did"] for _, f in frames}
    server.add(
        PROFILES,
        json_reply(
            {
                "profiles": [
                    {"did": d, "handle": "someone.example.com", "labels": labels if d == opted_out else []}
                    for d in authors
                ]
            }
        ),
    )
    jet = JetstreamServer(frames)
    try:
        s = spec(
            "bsky-live", "bluesky", server, queries=["government", "band", "lang:ja"], jetstream_url=jet.url, **OPTS
        )
        result = collect_source(workspace.settings, workspace.store, s)
    finally:
        jet.close()
    assert result.ok, result.error
    assert result.stats.invalid == 0 and result.skipped == {"no_unauthenticated": 1}
    matching = {
        ("did:plc:zisptgstcj5vttamkehf7lfu", "3mptbyqhi7s2f"),  # langs: ja
        ("did:plc:z55hqpzpih5q2fj2geewhrrg", "3mptbypfywk2v"),  # "... about a band ..."
        ("did:plc:4lbual7a4r5n7ect7ry2mgpf", "3mptbyospqk2i"),  # "... a band's event post ..."
        ("did:plc:4lbual7a4r5n7ect7ry2mgpf", "3mptbyou7ls2i"),  # "The government you're ..."
        ("did:plc:4lbual7a4r5n7ect7ry2mgpf", "3mptbyoumc22i"),  # "... its current government ..."
    }
    ids = {post_id(f"at://{d}/app.bsky.feed.post/{rkey}") for d, rkey in matching}
    kept = set(stored(workspace.store, "bsky-live"))
    assert kept <= ids and len(kept) + result.stats.withheld + result.stats.rejected_total == len(ids)
    assert result.stats.read == len(ids)
    assert json.loads(workspace.store.get_cursor("bsky-live")) == {"time_us": max(t for t, _ in frames)}


# -- the event parser ---------------------------------------------------------------------------------------------


def test_parse_event_reads_posts_and_ignores_the_rest() -> None:
    ev = parse_event(SYNTHETIC[1][1])
    assert ev.is_post and ev.operation == "create" and ev.uri == ALICE and ev.text.startswith("Amazon Flex")
    assert parse_event(SYNTHETIC[7][1]) == Event(
        SYNTHETIC[7][0], "commit", "app.bsky.feed.post", "delete", did("alice"), "3lcalice00001"
    )
    assert not parse_event(SYNTHETIC[0][1]).is_post and not parse_event(SYNTHETIC[5][1]).is_post
    with pytest.raises(InvalidEvent, match="did: must be a DID") as info:
        parse_event(json.dumps({**json.loads(SYNTHETIC[1][1]), "did": "alice"}))
    assert info.value.time_us == SYNTHETIC[1][0]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
FIELD = st.one_of(
    JSON,
    st.sampled_from(
        [
            "commit",
            "identity",
            "account",
            "create",
            "update",
            "delete",
            "app.bsky.feed.post",
            "did:plc:abc",
            "3lcabc",
            1795000000000000,
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_parse_event_fuzz_any_frame(frame: str | bytes) -> None:
    try:
        ev = parse_event(frame)
    except InvalidEvent as exc:
        assert exc.field and exc.problem
    else:
        assert ev.time_us > 0


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "did": FIELD,
            "time_us": FIELD,
            "kind": FIELD,
            "commit": st.fixed_dictionaries(
                {},
                optional={
                    "operation": FIELD,
                    "collection": FIELD,
                    "rkey": FIELD,
                    "cid": FIELD,
                    "record": st.fixed_dictionaries({}, optional={"text": FIELD, "langs": FIELD, "createdAt": FIELD})
                    | FIELD,
                },
            )
            | FIELD,
        },
    )
)
def test_parse_event_fuzz_event_shapes(obj: dict[str, Any]) -> None:
    try:
        ev = parse_event(json.dumps(obj))
    except InvalidEvent as exc:
        assert exc.field in {
            "frame",
            "time_us",
            "kind",
            "commit",
            "commit.collection",
            "did",
            "commit.operation",
            "commit.rkey",
            "commit.cid",
            "commit.record",
            "commit.record.text",
        }
    else:
        assert ev.time_us == obj["time_us"] and ev.kind == obj["kind"]
        if ev.is_post:
            assert ev.did == obj["did"] and ev.rkey == obj["commit"]["rkey"]
            assert ev.operation in {"create", "update", "delete"} and ev.uri.startswith("at://did:")
            assert (ev.record is None) == (ev.operation == "delete")


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"did:plc:[a-z2-7]{24}", fullmatch=True),
    st.from_regex(r"[a-z2-7]{13}", fullmatch=True),
    st.text(max_size=300),
    st.integers(1, 2**62),
    st.sampled_from(["create", "update", "delete"]),
)
def test_parse_event_round_trip(did_: str, rkey: str, body: str, t: int, op: str) -> None:
    commit: dict[str, Any] = {"operation": op, "collection": "app.bsky.feed.post", "rkey": rkey}
    if op != "delete":
        commit["record"] = {"text": body, "createdAt": "2026-11-18T10:00:00Z"}
    ev = parse_event(json.dumps({"did": did_, "time_us": t, "kind": "commit", "commit": commit}))
    assert (ev.did, ev.rkey, ev.operation, ev.time_us) == (did_, rkey, op, t)
    assert ev.text == ("" if op == "delete" else body)
    assert post_id(ev.uri) == post_id(f"at://{did_}/app.bsky.feed.post/{rkey}")


def test_label_cache_is_bounded_and_expires() -> None:
    cache = LabelCache(2, ttl=60)
    cache.put("a", False)
    cache.put("b", True)
    assert cache.get("a") == (True, False)
    cache.put("c", None)  # "b" was used least recently
    assert cache.get("b") == (False, None) and cache.get("c") == (True, None) and len(cache) == 2
    expired = LabelCache(2, ttl=0)
    expired.put("a", True)
    assert expired.get("a") == (False, None)
