"""Property tests for importing: garbage never escapes as anything but the three expected errors; records round-trip."""

from __future__ import annotations

import csv
import io
import json
import string
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openear.connectors import files
from openear.errors import InputFormatError, InvalidField
from openear.models import ITEM_VISIBILITIES, InvalidItem, Post, RawItem
from openear.normalise import clean_line, clean_text
from openear.settings import SourceSpec

# a news source: its items may say "news" or "social" (in a social source "news" is refused: test_guard.py)
SPEC = SourceSpec("fuzz", connector="files", visibility="public", kind="news", country="ES", lang="es")
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def temp_file(content: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input"
        path.write_bytes(content)
        yield path


def consume(path: Path, fmt: str) -> list[Post | InvalidItem]:
    """Read and normalise everything; only the three expected errors may come out, and posts are well formed."""
    out: list[Post | InvalidItem] = []
    try:
        for item in files.read_items(path, fmt, SPEC.name):
            if isinstance(item, InvalidItem):
                assert "\n" not in str(item)
                out.append(item)
                continue
            assert isinstance(item, RawItem) and isinstance(item.payload, dict)
            try:
                post = files.normalise(item, fmt, SPEC)
            except InvalidField as exc:
                assert "\n" not in str(exc)
                out.append(InvalidItem(item.origin, item.line, exc.field, exc.problem))
                continue
            assert post.created_at.tzinfo is UTC
            assert post.text and post.text == post.text.strip() and post.external_id
            assert post.visibility in ITEM_VISIBILITIES and post.kind in ("social", "news")
            post.text.encode("utf-8")  # no lone surrogates left
            out.append(post)
    except InputFormatError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Garbage

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KEYS = [
    "id", "text", "created_at", "author", "url", "title", "kind", "visibility", "lang", "country",
    "source_platform", "item_id", "data", "__typename", "tweet", "rest_id", "legacy", "full_text", "id_str",
    "user_id_str", "core", "user_results", "result", "screen_name", "name", "avatar", "image_url", "note_tweet",
    "note_tweet_results", "protected", "privacy", "comet_sections", "content", "story", "post_id", "message",
    "actors", "context_layout", "metadata", "creation_time", "wwwURL", "privacy_scope", "description", "group",
    "privacy_info", "user", "profile_picture", "uri",
]
LEAVES = (st.none() | st.booleans() | st.integers(-(10**15), 10**15) | st.floats()
          | st.sampled_from(["", "x", "Wed Oct 10 20:19:24 +0000 2018", "2026-01-01T00:00:00Z", "1700000000",
                             "https://x.com/a/status/1", "PRIVATE", "Public", "twitter.com", "facebook.com",
                             "TweetWithVisibilityResults", "TweetTombstone", "Story", "und", "\u0000\ud800"])
          | st.text(max_size=12))
shaped = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    max_leaves=25,
)
envelopes = st.fixed_dictionaries(
    {"source_platform": st.sampled_from(["twitter.com", "x.com", "facebook.com", "tiktok.com", "", 5]),
     "data": shaped},
    optional={"item_id": LEAVES},
)


@FUZZ
@given(st.lists(st.binary(max_size=60), max_size=12), st.sampled_from(files.FORMATS))
def test_garbage_bytes(lines: list[bytes], fmt: str) -> None:
    for path in temp_file(b"\n".join(lines)):
        consume(path, fmt)


@FUZZ
@given(st.lists(json_values | shaped | envelopes, min_size=1, max_size=8), st.sampled_from(files.FORMATS))
def test_arbitrary_json_lines(values: list[Any], fmt: str) -> None:
    content = "\n".join(json.dumps(v) for v in values).encode("utf-8", "surrogatepass")
    for path in temp_file(content):
        consume(path, fmt)


@FUZZ
@given(st.lists(envelopes, min_size=1, max_size=6))
def test_zeeschuimer_shapes(items: list[dict[str, Any]]) -> None:
    content = "\n".join(json.dumps(v) for v in items).encode("utf-8", "surrogatepass")
    for path in temp_file(content):
        out = consume(path, "zeeschuimer")
        assert len(out) == len(items)  # one outcome per line, never a fatal error once the envelope is right


CSV_COLUMNS = ["id", "text", "created_at", "author", "url", "visibility", "body", "timestamp", "unix_timestamp",
               "author_id", "link", "group_privacy", "platform", "language_guess"]


@FUZZ
@given(st.lists(st.lists(st.text(max_size=15), max_size=len(CSV_COLUMNS) + 1), max_size=8),
       st.sampled_from(["csv", "4cat"]))
def test_arbitrary_csv_cells(rows: list[list[str]], fmt: str) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    for path in temp_file(buf.getvalue().encode("utf-8", "surrogatepass")):
        consume(path, fmt)


# ----------------------------------------------------------------------------------------------------------------
# Round trip: a valid record reads the same from JSON Lines and from CSV

texts = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=80)
words = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)
records = st.fixed_dictionaries(
    {
        "id": words.filter(lambda s: clean_line(s) != ""),
        "text": texts.filter(lambda s: clean_text(s) != ""),
        "created_at": st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1),
                                   timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-5, minutes=-30)),
                                                              timezone(timedelta(hours=9))])),
        "author": words.filter(lambda s: clean_line(s) != ""),
    },
    optional={
        "url": st.text(string.ascii_letters + string.digits + "-_/", max_size=12).map(
            lambda s: f"https://example.org/{s}"),
        "title": words,
        "kind": st.sampled_from(["social", "news", "NEWS"]),
        "visibility": st.sampled_from(ITEM_VISIBILITIES),
        "lang": st.sampled_from(["en", "es", "pt-BR", "und"]),
        "country": st.sampled_from(["us", "GB", "es"]),
    },
)


def expected_post(rec: dict[str, Any], origin_line: int) -> Post:
    created: datetime = rec["created_at"]
    lang = rec.get("lang", "").lower()
    return Post(
        source=SPEC.name, external_id=clean_line(rec["id"]), platform="import",
        kind=rec.get("kind", SPEC.kind).lower(), visibility=rec.get("visibility", SPEC.visibility),
        created_at=created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC),
        text=clean_text(rec["text"]), title=clean_line(rec.get("title", "")) or None, url=rec.get("url"),
        author_id=clean_line(rec["author"]), author_handle=clean_line(rec["author"]),
        lang_hint=(lang if lang and lang != "und" else SPEC.lang),
        country=rec["country"].upper() if "country" in rec else SPEC.country,
    )


@FUZZ
@given(st.lists(records, min_size=1, max_size=5))
def test_round_trip_jsonl_and_csv(recs: list[dict[str, Any]]) -> None:
    rows = [{**r, "created_at": r["created_at"].isoformat()} for r in recs]
    jsonl = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    columns = ["id", "text", "created_at", "author", "url", "title", "kind", "visibility", "lang", "country"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    from_jsonl = next(consume(p, "jsonl") for p in temp_file(jsonl.encode()))
    from_csv = next(consume(p, "csv") for p in temp_file(buf.getvalue().encode()))
    want = [expected_post(r, i) for i, r in enumerate(recs, start=1)]
    assert from_jsonl == want
    assert from_csv == want


@FUZZ
@given(st.lists(records, min_size=2, max_size=5), st.data())
def test_a_stray_quote_spoils_only_its_own_line(recs: list[dict[str, Any]], data: st.DataObject) -> None:
    """A quote opened and never closed is reported on its own line; the records before it read as without it."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["id", "text", "created_at", "author"], lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    ends = []  # the physical line each record ends on
    for r in recs:
        writer.writerow({**r, "created_at": r["created_at"].isoformat()})
        ends.append(buf.getvalue().count("\n"))
    lines = buf.getvalue().split("\n")
    at = data.draw(st.sampled_from([1, *ends[:-1]]))  # the first line of a record (0-based)
    lines[at] = '"' + lines[at]
    out = next(consume(p, "csv") for p in temp_file("\n".join(lines).encode()))
    good = next(consume(p, "csv") for p in temp_file(buf.getvalue().encode()))
    kept = sum(1 for end in ends if end <= at)  # records wholly before the broken line
    assert [_key(o) for o in out[:kept]] == [_key(o) for o in good[:kept]]
    if '"' not in "".join(lines[at + 1:]):  # else the stray quote may pair with a later one: plain CSV then
        assert isinstance(out[kept], InvalidItem) and out[kept].line == at + 1


def _key(outcome: Post | InvalidItem) -> object:  # an invalid item without its file's (temporary) name
    return (outcome.line, outcome.field, outcome.problem) if isinstance(outcome, InvalidItem) else outcome
