"""Bluesky Jetstream: the live stream of new, edited and deleted posts, keyword-filtered here.

The ``bluesky`` connector reads Jetstream instead of ``searchPosts`` when ``jetstream = true``. It subscribes to
``{jetstream_url}/subscribe?wantedCollections=app.bsky.feed.post`` (``websockets`` sync client) and, per frame:

- a post ``create`` or ``update`` whose text matches one of the source's queries (openear's query language, see
  ``docs/query-language.md``) becomes a :class:`RawItem` shaped like a searchPosts PostView (``uri``, ``cid``,
  ``author.did``, ``record``), so both modes normalise alike; an ``update`` that no longer matches, and every post
  ``delete``, becomes :class:`Deleted` with the id searchPosts mode gives the post (:func:`post_id` of its
  ``at://`` URI), so deletions delete whichever mode stored it;
- other collections and ``identity``/``account`` events are ignored (openear never looks posts up by author);
- a frame that cannot be read becomes an :class:`InvalidItem` naming the frame and field, and the stream goes on.

Consent: Jetstream carries no labels, so the authors of matching posts are looked up with
``app.bsky.actor.getProfiles`` (25 per call, through the source's shared HTTP client) and remembered in a bounded
TTL cache; authors labelled ``!no-unauthenticated`` are skipped and counted (so are posts self-labelled so), and
authors the AppView does not return (deleted, suspended) are skipped as ``profile_unavailable``. The author's DID
is used only for that look-up and to build the ``at://`` URI; the guard pseudonymises it like any author id.

The cursor is the newest ``time_us`` handled (``{"time_us": N}``); a pass (and every reconnect) resumes from it,
rewound ``rewind_seconds`` as Jetstream advises; the store's upsert makes re-delivery harmless. A pass ends when the
stream is idle for ``idle_seconds``, after ``max_events`` new events or ``max_seconds``, or when the collector
stops; a dropped connection is re-opened with backoff (full jitter), up to ``retries`` times without progress.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from openear.connectors.base import Deleted, Item
from openear.connectors.http import DEFAULT_USER_AGENT, Stopped
from openear.errors import ConfigError, TerminalError, TransientError
from openear.models import InvalidItem, RawItem
from openear.normalise import json_type

if TYPE_CHECKING:
    from openear.connectors.bluesky import BlueskyConnector
    from openear.query import Query

POST = "app.bsky.feed.post"
DEFAULT_URL = "wss://jetstream2.us-east.bsky.network"
PROFILES_PER_CALL = 25  # app.bsky.actor.getProfiles accepts at most 25 actors
OPERATIONS = ("create", "update", "delete")
_DID = re.compile(r"did:[a-z]+:[A-Za-z0-9._:%-]{1,2000}")
_RKEY = re.compile(r"[A-Za-z0-9._:~-]{1,512}")
_MAX_CACHE_SIZE = 100_000


class InvalidEvent(ValueError):
    """A Jetstream frame that cannot be read: ``field: problem`` (``time_us`` when the frame had a readable one)."""

    def __init__(self, field: str, problem: str, time_us: int | None = None) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.time_us = time_us


@dataclass(frozen=True, slots=True)
class Event:
    """One Jetstream event. ``operation``, ``did``, ``rkey`` (and ``record`` for create/update) are set for posts."""

    time_us: int
    kind: str
    collection: str | None = None
    operation: str | None = None
    did: str | None = None
    rkey: str | None = None
    record: dict[str, Any] | None = None
    cid: str | None = None

    @property
    def is_post(self) -> bool:
        return self.kind == "commit" and self.collection == POST

    @property
    def uri(self) -> str:
        return f"at://{self.did}/{POST}/{self.rkey}"

    @property
    def text(self) -> str:
        return str((self.record or {}).get("text") or "")


def parse_event(frame: str | bytes) -> Event:
    """Read one Jetstream frame; raises :class:`InvalidEvent` (and nothing else) when it is not a valid event."""
    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("frame", "not UTF-8 text") from None
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise InvalidEvent("frame", f"not JSON ({str(exc)[:80]})") from None
    if not isinstance(obj, dict):
        raise InvalidEvent("frame", f"expected a JSON object, got {json_type(obj)}")
    t = obj.get("time_us")
    if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
        raise InvalidEvent("time_us", f"must be a positive whole number, not {json_type(t)}")
    kind = obj.get("kind")
    if not isinstance(kind, str):
        raise InvalidEvent("kind", f"must be a string, not {json_type(kind)}", t)
    if kind != "commit":
        return Event(t, kind)
    commit = obj.get("commit")
    if not isinstance(commit, dict):
        raise InvalidEvent("commit", f"must be an object, not {json_type(commit)}", t)
    collection = commit.get("collection")
    if not isinstance(collection, str):
        raise InvalidEvent("commit.collection", f"must be a string, not {json_type(collection)}", t)
    if collection != POST:
        return Event(t, kind, collection)
    did = obj.get("did")
    if not isinstance(did, str) or not _DID.fullmatch(did):
        raise InvalidEvent("did", "must be a DID (did:method:id)", t)
    op = commit.get("operation")
    if op not in OPERATIONS:
        raise InvalidEvent("commit.operation", f"must be one of {', '.join(OPERATIONS)}", t)
    rkey = commit.get("rkey")
    if not isinstance(rkey, str) or not _RKEY.fullmatch(rkey):
        raise InvalidEvent("commit.rkey", "must be a record key (letters, digits, . _ : ~ -)", t)
    cid = commit.get("cid")
    if cid is not None and not isinstance(cid, str):
        raise InvalidEvent("commit.cid", f"must be a string, not {json_type(cid)}", t)
    if op == "delete":
        return Event(t, kind, collection, op, did, rkey, None, cid)
    record = commit.get("record")
    if not isinstance(record, dict):
        raise InvalidEvent("commit.record", f"must be an object, not {json_type(record)}", t)
    if not isinstance(record.get("text", ""), str):
        raise InvalidEvent("commit.record.text", f"must be a string, not {json_type(record.get('text'))}", t)
    return Event(t, kind, collection, op, did, rkey, record, cid)


def self_labelled(record: dict[str, Any] | None, value: str) -> bool:
    """Whether a record carries the self-label ``value`` (``labels: {values: [{val}]}``)."""
    from openear.connectors.bluesky import has_label

    labels = (record or {}).get("labels")
    return isinstance(labels, dict) and has_label(labels.get("values"), value)


class LabelCache:
    """DID -> whether the author opted out (``None``: the AppView did not return the profile), with a TTL.

    Bounded: at most ``size`` entries, the least recently used dropped first. Thread-safe; shared by the passes of
    every source that reads the same AppView (see :func:`label_cache`), so a profile is looked up once per TTL.
    """

    def __init__(self, size: int, ttl: float) -> None:
        self.size = max(1, size)
        self.ttl = ttl
        self._data: OrderedDict[str, tuple[float, bool | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, did: str) -> tuple[bool, bool | None]:
        """``(known, opted_out)``."""
        with self._lock:
            hit = self._data.get(did)
            if hit is None or hit[0] < time.monotonic():
                return False, None
            self._data.move_to_end(did)
            return True, hit[1]

    def put(self, did: str, value: bool | None) -> None:
        with self._lock:
            self._data[did] = (time.monotonic() + self.ttl, value)
            self._data.move_to_end(did)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


_CACHES: dict[tuple[str, int, float], LabelCache] = {}
_CACHES_LOCK = threading.Lock()


def label_cache(appview: str, size: int, ttl: float) -> LabelCache:
    """The process-wide cache for one AppView (and size/TTL)."""
    with _CACHES_LOCK:
        return _CACHES.setdefault((appview, size, ttl), LabelCache(size, ttl))


@dataclass
class _Entry:
    """A queued output: an item (a post awaiting its author's check carries ``did``) and the cursor after it."""

    item: RawItem | InvalidItem | Deleted
    position: int | None
    did: str | None = None


class JetstreamFeed:
    """The Jetstream mode of one :class:`BlueskyConnector`: options, queries, and the ``fetch`` of a pass."""

    def __init__(self, connector: BlueskyConnector) -> None:
        from openear.query import QuerySyntaxError, parse
        from openear.query.ast import field_names

        c = self.connector = connector
        url = str(c.options.get("jetstream_url") or DEFAULT_URL).rstrip("/")
        url = url.removesuffix("/subscribe")
        if not re.match(r"wss?://[^\s/?#]+", url) or re.search(r"[\s?#]", url):
            raise ConfigError(f"{c.where}: jetstream_url: must be a ws(s):// URL without a query, not {url!r}")
        self.url = url
        self.origin = f"{url}/subscribe"
        self.queries: list[Query] = []
        for i, q in enumerate(c.targets):
            try:
                query = parse(q)
            except QuerySyntaxError as exc:
                raise ConfigError(f"{c.where}: hashtags[{i}]: {q!r}: {exc}") from None
            if "cluster" in field_names(query.root):
                raise ConfigError(f"{c.where}: hashtags[{i}]: {q!r}: cluster: cannot be used here: a live filter "
                                  "sees a post before it joins a cluster")
            self.queries.append(query)
        self.idle = max(0.05, c.float_option("idle_seconds", 5.0))
        self.max_seconds = max(0.1, c.float_option("max_seconds", 60.0))
        self.max_events = max(1, c.int_option("max_events", 100_000))
        self.rewind_us = int(c.float_option("rewind_seconds", 5.0) * 1_000_000)
        self.retries = c.int_option("retries", 4)
        self.backoff = c.float_option("backoff", 1.0)
        self.timeout = c.float_option("timeout", 30.0)
        self.lookup_wait = c.float_option("lookup_wait", 2.0)  # seconds a post may wait to batch author look-ups
        ttl = c.float_option("profile_ttl", 600.0)
        size = min(_MAX_CACHE_SIZE, max(1, c.int_option("profile_cache_size", 10_000)))
        self.cache = label_cache(c.base_url, size, ttl)
        self.frames_read = 0
        self.connections = 0

    # -- the pass ---------------------------------------------------------------------------------------------
    def fetch(self, cursor: str | None) -> Iterator[Item]:
        c = self.connector
        state = c.load_state(cursor)
        saved = state.get("time_us")
        start = saved if isinstance(saved, int) and not isinstance(saved, bool) and saved > 0 else None
        self.position = start  # the newest time_us handled (never below the saved cursor)
        marked = start
        queue: deque[_Entry] = deque()
        unknown: set[str] = set()
        waiting_since = 0.0  # when the oldest post awaiting an author look-up arrived
        new_events = 0
        deadline = time.monotonic() + self.max_seconds

        def drain(resolve: bool) -> Iterator[Item]:
            """Hand over the queue in order (with ``resolve``, after looking up the authors not in the cache)."""
            nonlocal marked
            fresh: dict[str, bool | None] = {}
            if resolve:
                # Also those cached when they arrived but expired while they waited.
                unknown.update(e.did for e in queue if e.did is not None and not self.cache.get(e.did)[0])
                if unknown:
                    fresh = self._look_up(sorted(unknown))
                    unknown.clear()
            last: int | None = None
            emitted = 0
            while queue:
                entry = queue[0]
                if entry.did is not None:
                    known, opted_out = self.cache.get(entry.did)
                    if not known:
                        if entry.did not in fresh:
                            break  # not looked up (a stop): it and what follows wait for the next pass
                        opted_out = fresh[entry.did]
                    queue.popleft()
                    last = entry.position
                    if opted_out is None:
                        c.skip("profile_unavailable")
                        continue
                    if opted_out:
                        c.skip("no_unauthenticated")
                        continue
                else:
                    queue.popleft()
                    last = entry.position
                emitted += 1
                yield entry.item
            position = self.position if not queue else last
            if emitted and position is not None and position != marked:
                marked = position
                yield c.mark({**state, "time_us": position})

        stopped = False
        frames = self._frames()
        try:
            for number, frame in frames:
                if frame is None:  # asked to stop: hand over what needs no look-up, then end
                    stopped = True
                    break
                try:
                    ev = parse_event(frame)
                except InvalidEvent as exc:
                    self._advance(exc.time_us)
                    queue.append(_Entry(InvalidItem(self.origin, number, exc.field, exc.problem), self.position))
                else:
                    if start is None or ev.time_us > start:
                        new_events += 1
                    self._advance(ev.time_us)
                    entry = self._entry(ev, number)
                    if entry is not None:
                        queue.append(entry)
                        if entry.did is not None and not self.cache.get(entry.did)[0]:
                            if not unknown:
                                waiting_since = time.monotonic()
                            unknown.add(entry.did)
                if queue and (
                    not unknown
                    or len(unknown) >= PROFILES_PER_CALL
                    or time.monotonic() - waiting_since >= self.lookup_wait
                ):
                    yield from drain(resolve=True)
                if new_events >= self.max_events or time.monotonic() >= deadline:
                    break
        except Stopped:
            stopped = True
        finally:
            frames.close()
        if stopped:
            yield from drain(resolve=False)
            return
        yield from drain(resolve=True)
        if self.position is not None and self.position != marked:
            yield c.mark({**state, "time_us": self.position})

    def _advance(self, time_us: int | None) -> None:
        if time_us is not None and (self.position is None or time_us > self.position):
            self.position = time_us

    def _entry(self, ev: Event, number: int) -> _Entry | None:
        """What one event puts in the stream: a post to check, a deletion, or nothing."""
        from openear.connectors.bluesky import NO_UNAUTHENTICATED, post_id

        if not ev.is_post:
            return None
        if ev.operation == "delete":
            return _Entry(Deleted(post_id(ev.uri)), self.position)
        if not self._matches(ev):
            # An edited post that no longer matches leaves the store (a no-op when it was never stored).
            return _Entry(Deleted(post_id(ev.uri)), self.position) if ev.operation == "update" else None
        if self_labelled(ev.record, NO_UNAUTHENTICATED):
            self.connector.skip("no_unauthenticated")
            return None
        view = {
            "uri": ev.uri,
            "cid": ev.cid,
            "author": {"did": ev.did},
            "record": ev.record,
            "indexedAt": datetime.fromtimestamp(ev.time_us / 1e6, UTC).isoformat().replace("+00:00", "Z"),
        }
        return _Entry(RawItem(self.connector.spec.name, view, origin=self.origin, line=number), self.position, ev.did)

    def _matches(self, ev: Event) -> bool:
        from openear.query import Document, prepare

        langs = (ev.record or {}).get("langs")
        lang = langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None
        doc = prepare(Document(text=ev.text, kind=self.connector.spec.kind, lang=lang, source=self.connector.spec.name))
        return any(q.matches(doc) for q in self.queries)

    # -- consent: the authors' labels -------------------------------------------------------------------------
    def _look_up(self, dids: list[str]) -> dict[str, bool | None]:
        """Fetch the profiles of ``dids`` (25 per call); cache and return whether each author opted out."""
        from openear.connectors.bluesky import NO_UNAUTHENTICATED, has_label

        c = self.connector
        url = f"{c.base_url}/xrpc/app.bsky.actor.getProfiles"
        headers = {"Authorization": f"Bearer {c.token}"} if c.token else None
        answers: dict[str, bool | None] = {}
        for i in range(0, len(dids), PROFILES_PER_CALL):
            chunk = dids[i : i + PROFILES_PER_CALL]
            body = c.client.get_json(url, params={"actors": chunk}, headers=headers)
            if not isinstance(body, dict) or not isinstance(body.get("profiles"), list):
                raise TransientError(f"bluesky: getProfiles: expected {{profiles: [...]}}, got {json_type(body)}")
            found: dict[str, bool] = {}
            for p in body["profiles"]:
                if isinstance(p, dict) and isinstance(p.get("did"), str):
                    found[p["did"]] = has_label(p.get("labels"), NO_UNAUTHENTICATED)
            for did in chunk:
                answers[did] = found.get(did)
                self.cache.put(did, answers[did])
        return answers

    # -- the connection ---------------------------------------------------------------------------------------
    def _subscribe_url(self) -> str:
        params: dict[str, Any] = {"wantedCollections": POST}
        if self.position is not None:
            params["cursor"] = max(1, self.position - self.rewind_us)
        return f"{self.url}/subscribe?{urlencode(params)}"

    def _connect(self) -> ClientConnection:
        c = self.connector
        url = self._subscribe_url()
        self.connections += 1
        return connect(
            url,
            open_timeout=min(self.timeout, 30.0),
            close_timeout=1.0,
            max_size=2**22,
            user_agent_header=str(c.options.get("user_agent") or DEFAULT_USER_AGENT),
            proxy=None,
            legacy=True,  # a plain connection: _frames closes it and re-connects itself
        )

    def _frames(self) -> Iterator[tuple[int, str | bytes | None]]:
        """``(frame number, frame)`` until idle, a limit (the caller stops reading) or a stop (``None`` frame).

        Re-connects from the current position after a drop, with backoff; raises :class:`TransientError` after
        ``retries`` failed attempts in a row, :class:`TerminalError` when the server refuses the request (4xx).
        """
        c = self.connector
        stop = c.client.stop
        failures = 0
        slice_ = min(self.idle, 0.5)
        while True:
            if stop is not None and stop.is_set():
                yield 0, None
                return
            try:
                ws = self._connect()
            except InvalidStatus as exc:
                status = exc.response.status_code
                if 400 <= status < 500 and status not in (408, 429):
                    raise TerminalError(f"bluesky: jetstream {self.origin}: HTTP {status}") from None
                problem = f"HTTP {status}"
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                problem = f"cannot connect ({type(exc).__name__}: {str(exc)[:120]})"
            else:
                problem = ""
                try:
                    idle_since = time.monotonic()
                    while True:
                        if stop is not None and stop.is_set():
                            yield 0, None
                            return
                        try:
                            frame = ws.recv(timeout=slice_)
                        except TimeoutError:
                            if time.monotonic() - idle_since >= self.idle:
                                return  # idle: caught up
                            continue
                        idle_since = time.monotonic()
                        failures = 0
                        self.frames_read += 1
                        yield self.frames_read, frame
                except ConnectionClosed as exc:
                    problem = f"connection dropped ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
                finally:
                    ws.close()
            failures += 1
            if failures > self.retries:
                raise TransientError(f"bluesky: jetstream {self.origin}: {problem} after {failures} attempts")
            # Exponential backoff with full jitter, like the HTTP layer (and interrupted by a stop).
            c.client.wait(random.uniform(0, min(60.0, self.backoff * 2 ** (failures - 1))))
