"""Importing files: openear's JSON Lines and CSV, Zeeschuimer NDJSON, 4CAT CSV; every bad input's message."""

from __future__ import annotations

import csv
import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from openear.connectors import files
from openear.errors import InputFormatError, InvalidField
from openear.guard import Guard
from openear.models import InvalidItem, Post, RawItem
from openear.settings import SourceSpec

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "import"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "data" / "api-samples" / "zeeschuimer"
SPEC = SourceSpec("test-source")


def shared(name: str) -> Path:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"needs ../shared/data/api-samples/zeeschuimer/{name} (the team's shared data), absent here")
    return path


def outcomes(path: Path, fmt: str, spec: SourceSpec = SPEC) -> list[Post | str]:
    """Each record as a Post, or its error as the pipeline reports it (``FILE:LINE: field: problem``)."""
    out: list[Post | str] = []
    for item in files.read_items(path, fmt, spec.name):
        if isinstance(item, RawItem):
            try:
                out.append(files.normalise(item, fmt, spec))
            except InvalidField as exc:
                item = InvalidItem(item.origin, item.line, exc.field, exc.problem)
        if isinstance(item, InvalidItem):
            out.append(str(item))
    return out


def posts(path: Path, fmt: str, spec: SourceSpec = SPEC) -> dict[str, Post]:
    return {p.external_id: p for p in outcomes(path, fmt, spec) if isinstance(p, Post)}


def fatal(path: Path, fmt: str) -> str:
    with pytest.raises(InputFormatError) as info:
        list(files.read_items(path, fmt, "s"))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(path))
    return msg


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ----------------------------------------------------------------------------------------------------------------
# Formats, from the project's fixtures


def test_detect_format() -> None:
    assert files.FORMATS == ("jsonl", "csv", "zeeschuimer", "4cat")
    assert files.detect_format(FIXTURES / "native.jsonl") == "jsonl"
    assert files.detect_format(FIXTURES / "native.csv") == "csv"
    assert files.detect_format(FIXTURES / "zeeschuimer_x.ndjson") == "zeeschuimer"
    assert files.detect_format(FIXTURES / "zeeschuimer_facebook.ndjson") == "zeeschuimer"
    assert files.detect_format(FIXTURES / "4cat_twitter.csv") == "4cat"
    assert files.detect_format(FIXTURES / "4cat_facebook.csv") == "4cat"


def test_jsonl_native() -> None:
    path = FIXTURES / "native.jsonl"
    got = posts(path, "jsonl", SourceSpec("forum", connector="files", country="US", lang="en"))
    assert list(got) == ["n1", "n2", "4"]
    n1 = got["n1"]
    assert (n1.platform, n1.kind, n1.visibility) == ("import", "social", "public")
    assert n1.created_at == utc(2026, 3, 1, 9, 15)
    assert (n1.author_id, n1.author_handle) == ("rider_alpha", "rider_alpha")
    assert (n1.url, n1.title) == ("https://forum.example.org/t/123", "App crashes")
    assert (n1.lang_hint, n1.country) == ("en", "GB")
    assert n1.origin == f"{path}:1"
    n2 = got["n2"]
    assert n2.text == "Café pay went down again"  # NFC, control character removed, stripped
    assert n2.created_at == utc(2026, 3, 1, 8, 0) and n2.visibility == "consented"
    assert (n2.lang_hint, n2.country) == ("en", "US")  # the source's hints
    assert "n3" not in got  # a news item: invalid in a social source, where it would escape the guard's checks
    assert f"{path}:3: kind: 'news' items belong in a news source (--kind news); 'forum' is social" in outcomes(
        path, "jsonl", SourceSpec("forum", connector="files")
    )
    n3 = posts(path, "jsonl", SourceSpec("press", connector="files", kind="news"))["n3"]
    assert n3.kind == "news" and n3.author_id is None and n3.created_at == utc(2026, 3, 2, 8, 0)  # naive = UTC
    assert got["4"].created_at == datetime(2026, 3, 3, 12, 0, 0, 500000, tzinfo=UTC)


def test_platform_follows_the_connector() -> None:
    got = posts(FIXTURES / "native.jsonl", "jsonl", SourceSpec("r", connector="reddit"))
    assert {p.platform for p in got.values()} == {"reddit"}


def test_csv_native() -> None:
    assert list(posts(FIXTURES / "native.csv", "csv")) == ["c1", "c2"]  # c3 says news: not in a social source
    got = posts(FIXTURES / "native.csv", "csv", SourceSpec("mixed", kind="news"))  # c1 and c2 say they are social
    assert list(got) == ["c1", "c2", "c3"]
    assert [p.kind for p in got.values()] == ["news", "social", "news"]  # c1 states no kind: the source's
    assert got["c1"].text == "Scheduling is a mess,\nthree blocks cancelled"  # quoted newline kept
    assert got["c1"].url is None and got["c1"].title is None  # empty cells are absent
    assert (got["c1"].lang_hint, got["c1"].country) == ("en", "US")
    assert got["c2"].created_at == utc(2026, 3, 4, 13, 0)
    assert got["c3"].kind == "news" and got["c3"].author_id is None
    assert [p.origin.rsplit(":", 1)[1] for p in got.values()] == ["2", "4", "5"]  # the line each record starts on


def test_zeeschuimer_x() -> None:
    path = FIXTURES / "zeeschuimer_x.ndjson"
    out = outcomes(path, "zeeschuimer")
    got = {p.external_id: p for p in out if isinstance(p, Post)}
    first = got["1900000000000000001"]
    assert first.platform == "x" and first.created_at == utc(2026, 3, 4, 20, 19, 24)
    assert first.text == "The courier app keeps logging me out & I lose orders <3 hours in"  # entities undone
    assert (first.author_id, first.author_handle, first.author_name) == ("1000000001", "user_aa", "User AA")
    assert first.author_url == "https://x.com/user_aa"
    assert first.avatar_url == "https://example.org/avatar_aa.png"
    assert first.url == "https://x.com/user_aa/status/1900000000000000001"
    assert first.lang_hint == "en"
    # TweetWithVisibilityResults, the 2025 user layout and a long "note tweet"
    second = got["1900000000000000002"]
    assert second.text.startswith("Versión larga") and second.lang_hint == "es"
    assert (second.author_id, second.author_handle, second.avatar_url) == (
        "1000000002", "user_bb", "https://example.org/avatar_bb.png")
    assert got["1900000000000000003"].visibility == "private"  # a protected account
    assert got["1900000000000000003"].lang_hint is None  # "und"
    assert got["1900000000000000004"].author_handle == "user_dd"  # the older "adaptive" shape
    assert out[4:] == [
        f"{path}:5: data.__typename: the tweet is not available (TweetTombstone)",
        f"{path}:6: source_platform: unsupported platform 'tiktok.com' (supported: twitter.com, x.com, facebook.com)",
    ]


def test_zeeschuimer_facebook_group_privacy() -> None:
    path = FIXTURES / "zeeschuimer_facebook.ndjson"
    out = outcomes(path, "zeeschuimer")
    got = {p.external_id: p for p in out if isinstance(p, Post)}
    page = got["200000000000001"]
    assert page.platform == "facebook" and page.visibility == "public"
    assert page.created_at == datetime.fromtimestamp(1772600000, UTC)
    assert (page.author_id, page.author_name, page.author_handle) == (
        "100000000000001", "Page Example", "delivery.page.example")
    assert page.author_url == "https://www.facebook.com/delivery.page.example"
    assert page.avatar_url == "https://example.org/avatar_p1.png"
    assert page.url == "https://www.facebook.com/delivery.page.example/posts/200000000000001"
    assert got["200000000000002"].visibility == "private"  # privacy_scope "Private group"
    assert got["200000000000003"].visibility == "closed"  # group.privacy "CLOSED"
    assert got["200000000000003"].author_handle is None  # profile.php?id=... is no handle
    assert got["200000000000004"].visibility == "secret"  # group.visibility "secret"
    assert out[4] == f"{path}:5: data.comet_sections.content.story.message.text: required"


def test_guard_rejects_private_group_items() -> None:
    guard = Guard(b"k" * 32)
    items = posts(FIXTURES / "zeeschuimer_facebook.ndjson", "zeeschuimer").values()
    verdicts = [guard.check(p, "public") for p in items]
    assert [v.rejection.reason if v.rejection else "ok" for v in verdicts] == ["ok", "private", "closed", "secret"]


def test_4cat_twitter() -> None:
    got = posts(FIXTURES / "4cat_twitter.csv", "4cat")
    tweet = got["1900000000000000101"]
    assert tweet.platform == "x"  # from the link's host; the "source" column is the client, not the platform
    assert tweet.created_at == datetime.fromtimestamp(1772877600, UTC)
    assert tweet.text == 'Courier app, "support" = a bot that loops forever'
    assert (tweet.author_id, tweet.author_handle, tweet.author_name) == ("1000000005", "user_ee", "User EE")
    assert tweet.avatar_url == "https://example.org/avatar_ee.png" and tweet.lang_hint == "en"
    reply = got["1900000000000000102"]
    assert reply.created_at == utc(2026, 3, 7, 11, 30)  # no unix_timestamp: the naive timestamp is UTC
    assert reply.text == "Same here,\nthree tickets and no answer"


def test_4cat_facebook_group_privacy() -> None:
    path = FIXTURES / "4cat_facebook.csv"
    out = outcomes(path, "4cat")
    got = {p.external_id: p for p in out if isinstance(p, Post)}
    assert [p.visibility for p in got.values()] == ["public", "private", "public", "closed"]
    assert {p.platform for p in got.values()} == {"facebook"}
    assert got["200000000000102"].author_name == "Member E"
    assert out[4] == f"{path}:6: group_privacy: unknown privacy value 'sometimes'"


# ----------------------------------------------------------------------------------------------------------------
# The real samples in ../shared


def test_shared_zeeschuimer_x_sample() -> None:
    path = shared("x_search_timeline_items.ndjson")
    assert files.detect_format(path) == "zeeschuimer"
    out = outcomes(path, "zeeschuimer")
    assert all(isinstance(p, Post) for p in out), out
    got = {p.external_id: p for p in out if isinstance(p, Post)}
    assert list(got) == [
        "1711652255336743414", "1711859654769168725", "1711647833223577728", "1711882654579138796",
        "1703809918480842984", "1711710665184883159", "1712177085479858561", "1712176047821643984",
    ]
    first = got["1711652255336743414"]
    assert first.text.startswith("Vandaag verschijnt de feestelijke jubileumeditie van 'De graanrepubliek'")
    assert first.created_at == utc(2023, 10, 10, 7, 57, 53)
    assert (first.platform, first.lang_hint, first.author_handle) == ("x", "nl", "Querido_Facto")
    assert first.url == "https://x.com/Querido_Facto/status/1711652255336743414"
    quote = got["1711859654769168725"]  # quotes a TweetWithVisibilityResults; its own text is the post
    assert quote.text.startswith("Hey @NOS , mochten jullie") and quote.author_handle == "user_bxxx"
    assert got["1712176047821643984"].created_at == utc(2023, 10, 11, 18, 39, 15)  # the item without __typename
    assert all(p.created_at.tzinfo is UTC for p in got.values())


@pytest.mark.parametrize(("name", "row", "expected_platform"), [
    ("4cat_csv_columns_twitter_import.csv", {"id": "1", "body": "hello", "unix_timestamp": "1772877600",
     "author": "user_zz", "author_id": "42", "link": "https://x.com/user_zz/status/1"}, "x"),
    ("4cat_csv_columns_facebook.csv", {"id": "2", "body": "hola", "unix_timestamp": "1772877600",
     "author": "someone", "url": "https://www.facebook.com/someone/posts/2"}, "facebook"),
])
def test_shared_4cat_layouts(tmp_path: Path, name: str, row: dict[str, str], expected_platform: str) -> None:
    header = next(csv.reader(shared(name).read_text(encoding="utf-8").splitlines()))
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerow([row.get(c, "") for c in header])
    assert files.detect_format(path) == "4cat"
    [post] = outcomes(path, "4cat")
    assert isinstance(post, Post)
    assert post.platform == expected_platform and post.created_at == datetime.fromtimestamp(1772877600, UTC)


# ----------------------------------------------------------------------------------------------------------------
# Bad items: reported per line, the rest goes on

GOOD = {"id": "a", "text": "ok", "created_at": "2026-01-01T00:00:00Z", "author": "x"}


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines))
    return path


@pytest.mark.parametrize(("change", "expected"), [
    ({"text": None}, "text: required"),
    ({"text": "  \u0000 "}, "text: must not be empty"),
    ({"text": 5}, "text: must be a string, not number"),
    ({"id": None}, "id: required"),
    ({"id": ["a"]}, "id: must be a string, not array"),
    ({"author": None}, "author: required for social posts"),
    ({"created_at": None}, "created_at: required"),
    ({"created_at": "yesterday"}, "created_at: not an ISO 8601 date: 'yesterday'"),
    ({"created_at": "2026-02-30T10:00:00Z"}, "created_at: not an ISO 8601 date: '2026-02-30T10:00:00Z'"),
    ({"created_at": 1772877600}, "created_at: must be a string (ISO 8601), not number"),
    ({"visibility": "friends"}, "visibility: must be one of public, consented, private, closed, secret, not 'friends'"),
    ({"kind": "blog"}, "kind: must be one of social, news, not 'blog'"),
    ({"url": "javascript:alert(1)"}, "url: not an http(s) URL: 'javascript:alert(1)'"),
])
def test_bad_fields(tmp_path: Path, change: dict[str, object], expected: str) -> None:
    record = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = write_lines(tmp_path / "in.jsonl", [json.dumps(GOOD), json.dumps(record)])
    out = outcomes(path, "jsonl")
    assert isinstance(out[0], Post)
    assert out[1] == f"{path}:2: {expected}"


def test_bad_lines_do_not_stop_the_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", [
        json.dumps(GOOD), "", "{'id': 1}", "[1, 2]", '"just a string"', b'{"id": "caf\xe9"}',
        b"{" + b" " * (files.LINE_LIMIT + 10), json.dumps({**GOOD, "id": "b"}), "[" * 100_000,
    ])
    out = outcomes(path, "jsonl")
    offset = path.read_bytes().index(b"\xe9")  # counted from the start of the file
    assert out[1:5] == [
        f"{path}:3: json: not valid JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{path}:4: json: expected a JSON object, got array",
        f"{path}:5: json: expected a JSON object, got string",
        f"{path}:6: encoding: not UTF-8: invalid byte 0xe9 at byte offset {offset}",
    ]
    assert out[5] == f"{path}:7: line: line too long (1048587 bytes, limit 1048576)"
    assert isinstance(out[0], Post) and isinstance(out[6], Post) and out[6].external_id == "b"
    assert out[7].startswith(f"{path}:9: json: not valid JSON")  # type: ignore[union-attr]


def test_csv_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,text,created_at,author\n"
                     b"a,fine,2026-01-01,x\n"
                     b"b,too,many,cells,here\n"
                     b"c,caf\xe9,2026-01-01,x\n"
                     b"d,,2026-01-01,x\n"
                     b"e," + b"y" * (files.LINE_LIMIT + 1) + b",2026-01-01,x\n"
                     b"f,short row\n")
    out = outcomes(path, "csv")
    offset = path.read_bytes().index(b"\xe9")
    assert isinstance(out[0], Post)
    assert out[1:] == [
        f"{path}:3: csv: row has 5 fields, the header has 4",
        f"{path}:4: encoding: not UTF-8: invalid byte 0xe9 at byte offset {offset}",
        f"{path}:5: text: required",
        f"{path}:6: line: line too long ({files.LINE_LIMIT + 16} bytes, limit 1048576)",
        f"{path}:7: created_at: required",
    ]


# ----------------------------------------------------------------------------------------------------------------
# Bad files: one line naming the file


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert fatal(tmp_path / "nope.jsonl", "jsonl") == f"{tmp_path / 'nope.jsonl'}: no such file"
    assert fatal(tmp_path, "csv") == f"{tmp_path}: is a directory, not a file"
    with pytest.raises(InputFormatError, match="is a directory"):
        files.detect_format(tmp_path)


@pytest.mark.parametrize("fmt", files.FORMATS)
@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path: Path, fmt: str, content: bytes) -> None:
    path = tmp_path / "empty"
    path.write_bytes(content)
    assert fatal(path, fmt) == f"{path}: empty file"


@pytest.mark.parametrize("fmt", files.FORMATS)
def test_not_utf8(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "in"
    path.write_bytes("id,text\n".encode("utf-16"))
    assert fatal(path, fmt) == f"{path}: not UTF-8: the file starts with a UTF-16 LE byte order mark; save it as UTF-8"
    path.write_bytes("id,text\n".encode("utf-16-be"))
    assert fatal(path, fmt) == (f"{path}: not UTF-8 text: NUL byte at byte offset 0 "
                                "(a binary file, or UTF-16 without a byte order mark?)")
    path.write_bytes("texte,créé\n".encode("latin-1"))
    assert fatal(path, fmt) == f"{path}: not UTF-8: invalid byte 0xe9 at byte offset 8 (line 1)"


def test_a_stray_nul_is_a_line_problem_not_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,text,created_at,author\na,ok\x00,2026-01-01,x\n")
    [post] = outcomes(path, "csv")
    assert isinstance(post, Post) and post.text == "ok"


def test_wrong_format(tmp_path: Path) -> None:
    native_csv = FIXTURES / "native.csv"
    assert fatal(native_csv, "jsonl") == (
        f"{native_csv}: not JSON Lines: none of the first 5 non-blank line(s) is a JSON object "
        "(line 1: json: not valid JSON: Expecting value (column 1)); "
        "it looks like CSV, try --format csv or --format 4cat")
    assert fatal(native_csv, "4cat") == (
        f"{native_csv}: not a 4CAT CSV export: header lacks required column(s): body, unix_timestamp or timestamp "
        "(found: 'id', 'text', 'created_at', 'author', 'url', 'title', 'kind', 'lang', ...); "
        "it looks like openear's own CSV, try --format csv")
    fourcat = FIXTURES / "4cat_twitter.csv"
    assert fatal(fourcat, "csv").startswith(
        f"{fourcat}: CSV header lacks required column(s): text, created_at (found: 'collected_from_url', 'id',")
    assert fatal(fourcat, "csv").endswith("; it looks like a 4CAT export, try --format 4cat")
    native = FIXTURES / "native.jsonl"
    assert fatal(native, "csv").endswith("; it looks like JSON Lines, try --format jsonl or --format zeeschuimer")
    assert fatal(native, "zeeschuimer") == (
        f"{native}: not a Zeeschuimer export: line 1 has no 'source_platform' and 'data' "
        "(openear's own JSON Lines? use --format jsonl)")
    zs = FIXTURES / "zeeschuimer_x.ndjson"
    assert fatal(zs, "jsonl") == f"{zs}: line 1 is a Zeeschuimer item, not openear JSON Lines; use --format zeeschuimer"
    array = write_lines(tmp_path / "array.json", json.dumps([GOOD, GOOD], indent=2).splitlines())
    assert fatal(array, "jsonl").endswith("; it looks like one JSON array, not one object per line")
    numbers = write_lines(tmp_path / "numbers.jsonl", [str(i) for i in range(200)])
    assert fatal(numbers, "jsonl") == (f"{numbers}: not JSON Lines: none of the first 100 non-blank line(s) is a "
                                       "JSON object (line 1: json: expected a JSON object, got number)")
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    assert "NUL byte at byte offset 4" in fatal(binary, "jsonl")
    with pytest.raises(InputFormatError, match="unknown format 'xml'"):
        list(files.read_items(native, "xml", "s"))


def test_detect_format_refuses_what_it_cannot_tell(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "notes.md", ["# just some notes"])
    with pytest.raises(InputFormatError, match=r"notes\.md: cannot tell the format .*; pass --format"):
        files.detect_format(path)
    empty = tmp_path / "e.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(InputFormatError, match=r"e\.jsonl: empty file"):
        files.detect_format(empty)


# ----------------------------------------------------------------------------------------------------------------
# Streaming


def test_streams_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    row = json.dumps({**GOOD, "text": "x" * 200})
    with path.open("w", encoding="utf-8") as fh:
        for i in range(50_000):
            fh.write(row.replace('"a"', f'"{i}"', 1) + "\n")
    assert path.stat().st_size > 10_000_000
    tracemalloc.start()
    try:
        count = sum(1 for item in files.read_items(path, "jsonl", "s") if isinstance(item, RawItem))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert peak < 4_000_000, peak


def test_native_records_honour_a_group_privacy_field(tmp_path: Path) -> None:
    """A converted export that states a group's privacy in its own words is refused like 4CAT's (guardrail 1)."""
    path = tmp_path / "groups.jsonl"
    base = {"text": "pay was late again", "created_at": "2026-11-20T08:00:00Z", "author": "a"}
    rows = [
        {**base, "id": "g1", "group_privacy": "closed"},
        {**base, "id": "g2", "privacy": "Friends"},
        {**base, "id": "g3", "group_visibility": "PUBLIC", "visibility": "private"},  # a refusal wins
        {**base, "id": "g4", "privacy": "Public group"},
        {**base, "id": "g5", "privacy": "banana"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    got = outcomes(path, "jsonl")
    assert [p.visibility if isinstance(p, Post) else p for p in got] == [
        "closed", "private", "private", "public", f"{path}:5: privacy: unknown privacy value 'banana'",
    ]
    verdicts = [Guard(b"k" * 32).check(p, "public") for p in got if isinstance(p, Post)]
    assert [v.rejection.reason if v.rejection else "ok" for v in verdicts] == ["closed", "private", "private", "ok"]


def test_a_bad_byte_in_the_first_record_is_that_line_s_problem(tmp_path: Path) -> None:
    """One stray Latin-1 byte in line 1 of JSON Lines loses line 1 only, as on any other line; a file whose lines
    all fail to decode is still refused as not UTF-8."""
    path = tmp_path / "in.jsonl"
    good = json.dumps({"id": "b", "text": "fine", "created_at": "2026-11-20T08:00:00Z", "author": "y"})
    path.write_bytes(b'{"id": "a", "text": "caf\xe9", "created_at": "2026-11-20T08:00:00Z", "author": "x"}\n'
                     + good.encode() + b"\n")
    assert files.detect_format(path) == "jsonl"
    got = outcomes(path, "jsonl")
    assert got[0] == f"{path}:1: encoding: not UTF-8: invalid byte 0xe9 at byte offset 24"
    assert isinstance(got[1], Post) and got[1].external_id == "b"
    path.write_bytes(b'{"id": "a", "text": "caf\xe9"}\n{"id": "b", "text": "ni\xf1o"}\n')
    assert fatal(path, "jsonl") == f"{path}: not UTF-8: invalid byte 0xe9 at byte offset 24 (line 1)"


# ----------------------------------------------------------------------------------------------------------------
# Broken quotes: reported on the line the quoted field starts, the records before and after it read as usual

ROW = "{},hello {},2026-01-01T00:00:00Z,x"


def test_csv_unclosed_quote_is_reported_where_it_starts(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "posts.csv", [
        "id,text,created_at,author", ROW.format(1, 1), '2,"multi\nline, quoted",2026-01-01T00:00:00Z,x',
        ROW.format(3, 3), ROW.format(4, 4), '5,"never closed,2026-01-01T00:00:00Z,x', ROW.format(6, 6),
        ROW.format(7, 7),
    ])
    out = outcomes(path, "csv")
    assert [p.external_id if isinstance(p, Post) else p for p in out] == [
        "1", "2", "3", "4", f"{path}:7: text: a quoted field is never closed", "6", "7"]
    assert out[1].text == "multi\nline, quoted"  # type: ignore[union-attr]


def test_csv_quote_closed_mid_field(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "posts.csv", [
        "id,text,created_at,author", ROW.format(1, 1), '2,"he said "hi", ok",2026-01-01T00:00:00Z,x',
        '3,"stray quote,2026-01-01T00:00:00Z,x', ROW.format(4, 4), '5,"quoted, fine",2026-01-01T00:00:00Z,x',
        b'6,"nul"\x00,2026-01-01T00:00:00Z,x', b'7,"a\x00b",2026-01-01T00:00:00Z,x',
    ])
    hint = 'not a comma or the end of the line (a quote inside a quoted field is written "")'
    assert [p.external_id if isinstance(p, Post) else p for p in outcomes(path, "csv")] == [
        "1",
        f"{path}:3: text: a quoted field's closing quote is followed by 'h', {hint}",
        f"{path}:4: text: a quoted field is closed on line 6 by a quote followed by other text, {hint}",
        "4", "5",  # the stray quote of line 4 took in lines 5 and 6: they are read again
        f"{path}:7: text: a quoted field's closing quote is followed by U+0000, {hint}",
        "7",  # a NUL inside a field is removed like any control character
    ]


def test_csv_broken_quote_field_limit_and_header(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "posts.csv", [
        "id,text,created_at,author", ROW.format(1, 1), '2,x,2026-01-01T00:00:00Z,"open',
        *(["y" * 1000] * (files.LINE_LIMIT // 1000 + 5)),
    ])
    out = outcomes(path, "csv")
    assert out[:2] == [out[0], f"{path}:3: author: a quoted field is not closed within the field size limit "
                                f"({files.LINE_LIMIT} bytes)"]
    too_long = "id: too long (1000 characters, limit 256)"
    assert isinstance(out[0], Post) and all(p == f"{path}:{i}: {too_long}" for i, p in enumerate(out[2:], start=4))
    assert len(out) == 2 + files.LINE_LIMIT // 1000 + 5  # every swallowed line read again, once
    header = write_lines(tmp_path / "header.csv", ['id,"text,created_at,author', ROW.format(1, 1)])
    assert fatal(header, "csv") == f"{header}: not CSV: header (line 1): a quoted field is never closed"
