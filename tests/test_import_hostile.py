"""Hostile and pathological import files: memory and time stay bounded, each problem is one located line, and the
good records around it are stored once. Files are made in tmp_path, just above the limits (docs/sources.md)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openear.cli import app
from openear.connectors import files
from openear.errors import InputFormatError, InvalidField
from openear.guard import scrub_text
from openear.models import InvalidItem, Post, RawItem
from openear.normalise import MAX_TEXT_CHARS
from openear.settings import SourceSpec

SPEC = SourceSpec("hostile")
HEADER = "id,text,created_at,author\n"


def record(i: int, text: str = "a good post") -> dict:
    return {"id": f"g{i}", "text": text, "created_at": "2026-11-01T10:00:00Z", "author": "someone"}


def outcomes(path: Path, fmt: str) -> list[Post | str]:
    out: list[Post | str] = []
    for item in files.read_items(path, fmt, SPEC.name):
        if isinstance(item, RawItem):
            try:
                out.append(files.normalise(item, fmt, SPEC))
                continue
            except InvalidField as exc:
                item = InvalidItem(item.origin, item.line, exc.field, exc.problem)
        out.append(str(item))
    return out


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (not hang) when the block runs longer than ``seconds``."""
    def expire(*_: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------------------------------------------------------------
# Sizes


def test_a_text_over_the_limit_is_refused_whole_not_cut(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    rows = [record(1), record(2, "x" * MAX_TEXT_CHARS), record(3, "y " * MAX_TEXT_CHARS), record(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = outcomes(path, "jsonl")
    assert out[2] == f"{path}:3: text: too long ({2 * MAX_TEXT_CHARS - 1} characters, limit {MAX_TEXT_CHARS})"
    assert [p.external_id for p in out if isinstance(p, Post)] == ["g1", "g2", "g4"]
    assert len(out[1].text) == MAX_TEXT_CHARS  # type: ignore[union-attr]  # at the limit: stored whole


def test_a_csv_record_over_many_lines_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    # quoted fields each under the field limit, on lines under the line limit, that add up past the record limit
    field = '"' + ("z" * 999 + "\n") * 700 + 'z"'
    count = 3 * files.RECORD_LIMIT // len(field)  # 12 MB in one record
    path = tmp_path / "wide.csv"
    path.write_text(HEADER.rstrip("\n") + "".join(f",c{i}" for i in range(count)) + "\n"
                    + "g1,first,2026-11-01T10:00:00Z,a\n"
                    + "big,text,2026-11-01T10:00:00Z,a," + ",".join([field] * count) + "\n"
                    + "g2,last,2026-11-01T10:00:00Z,a\n", encoding="utf-8")
    tracemalloc.start()
    try:
        with deadline(20):
            out = outcomes(path, "csv")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * files.RECORD_LIMIT, peak  # the whole record: 15 * RECORD_LIMIT
    assert isinstance(out[0], Post) and isinstance(out[-1], Post)
    assert (out[0].external_id, out[-1].external_id) == ("g1", "g2")
    last = 3 + files.RECORD_LIMIT // 1000
    assert out[1] == (f"{path}:3: csv: record too long (lines 3-{last} hold more than {files.RECORD_LIMIT} bytes, "
                      f"limit {files.RECORD_LIMIT}): a quoted field is not closed, or holds too much")


# ----------------------------------------------------------------------------------------------------------------
# Time: the scrubbing patterns on adversarial text


@pytest.mark.parametrize("unit", ["a dot ", "john (dot) ", "y [dot] "])
def test_scrubbing_a_long_run_of_spelled_out_dots_takes_linear_time(unit: str) -> None:
    text = unit * (200_000 // len(unit))  # 200 kB: quadratic, this took over a minute
    with deadline(30):  # a hang guard, not a speed figure (benchmarks measure speed): linear, it takes well under 1 s
        assert scrub_text(text).text == text


def test_an_obfuscated_address_with_many_dotted_parts_is_still_scrubbed() -> None:
    assert scrub_text("mail a.b.c.d.e.f.g.h.i.j.k (at) gmail (dot) com now").text == "mail [email] now"
    assert scrub_text("john dot smith dot jr at gmail dot com").text == "[email]"


# ----------------------------------------------------------------------------------------------------------------
# Files that are not plain UTF-8 text files


@pytest.mark.parametrize(("head", "what"), [
    (gzip.compress(b'{"id": 1}\n'), "gzip-compressed"),
    (b"PK\x03\x04\x14\x00\x00\x00", "a ZIP archive"),
    (b"BZh91AY&SY", "bzip2-compressed"),
    (b"\xfd7zXZ\x00\x00\x04", "xz-compressed"),
    (b"\x28\xb5\x2f\xfd\x20\x0a", "zstd-compressed"),
])
@pytest.mark.parametrize("fmt", files.FORMATS)
def test_a_compressed_file_is_refused_not_decompressed(tmp_path: Path, head: bytes, what: str, fmt: str) -> None:
    path = tmp_path / "posts.jsonl.gz"
    path.write_bytes(head)
    msg = f"{path}: {what}, not text; decompress it first"
    with pytest.raises(InputFormatError, match="^" + msg):
        list(files.read_items(path, fmt, "s"))
    with pytest.raises(InputFormatError, match="^" + msg):
        files.detect_format(path)


@pytest.mark.parametrize("fmt", files.FORMATS)
def test_a_file_with_old_mac_line_endings_is_refused_clearly(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "cr.txt"
    path.write_bytes((HEADER + "g1,one,2026-11-01T10:00:00Z,a\n").replace("\n", "\r").encode())
    with pytest.raises(InputFormatError, match=r"^.*cr\.txt: lines end with a bare carriage return \(CR"):
        list(files.read_items(path, fmt, "s"))


def test_a_bare_carriage_return_inside_a_csv_file_costs_its_record_only(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"id,text,created_at,author\r\ng1,one,2026-11-01T10:00:00Z,a\r"
                     b"g2,two,2026-11-01T10:00:00Z,a\ng3,three,2026-11-01T10:00:00Z,a\r\n")
    out = outcomes(path, "csv")
    assert out[0] == (f"{path}:2: csv: a carriage return (CR) inside an unquoted field: lines must end with LF or "
                      "CRLF, and a line break inside a field must be quoted")
    assert [p.external_id for p in out[1:]] == ["g3"]  # type: ignore[union-attr]


def test_a_pipe_needs_format_and_is_read_once(tmp_path: Path) -> None:
    fifo = tmp_path / "posts.fifo"
    os.mkfifo(fifo)
    # guessing the format would read the pipe, then wait forever to read it again
    with deadline(10), pytest.raises(InputFormatError, match=r"not a regular file \(a pipe or a device\).*; pass "):
        files.detect_format(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(json.dumps(record(1)) + "\n"))
    writer.start()
    with deadline(10):
        out = outcomes(fifo, "jsonl")
    writer.join()
    assert [p.external_id for p in out] == ["g1"]  # type: ignore[union-attr]


def test_dev_zero_is_refused_at_once() -> None:
    with deadline(5):
        with pytest.raises(InputFormatError, match=r"^/dev/zero: not a regular file"):
            files.detect_format(Path("/dev/zero"))
        with pytest.raises(InputFormatError, match=r"^/dev/zero: not UTF-8 text: NUL byte at byte offset 0"):
            list(files.read_items(Path("/dev/zero"), "csv", "s"))


# ----------------------------------------------------------------------------------------------------------------
# The command line: located errors, exit 1, the good records stored once


def test_import_of_hostile_records_stores_the_good_ones_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENEAR_DATABASE_URL", "OPENEAR_PSEUDONYM_KEY", "OPENEAR_KEY_FILE", "OPENEAR_HOME"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "ws"
    runner = CliRunner()
    assert runner.invoke(app, ["--home", str(home), "init"]).exit_code == 0
    path = tmp_path / "posts.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(record(1)) + "\n")
        fh.write(json.dumps(record(2, "a dot " * (MAX_TEXT_CHARS // 6))) + "\n")  # long, slow to scrub before
        fh.write(json.dumps(record(3, "z" * (MAX_TEXT_CHARS + 1))) + "\n")
        fh.write('{"id": "big", "text": "' + "q" * files.LINE_LIMIT + '"}\n')
        fh.write(json.dumps(record(5)) + "\n")
    args = ["--home", str(home), "import", str(path), "--source", "hostile", "--visibility", "public", "--json"]
    with deadline(60):
        first = runner.invoke(app, args)
        again = runner.invoke(app, args)
    assert first.exit_code == again.exit_code == 1
    assert f"{path}:3: text: too long ({MAX_TEXT_CHARS + 1} characters, limit {MAX_TEXT_CHARS})" in first.output
    assert f"{path}:4: line: line too long ({files.LINE_LIMIT + 25} bytes, limit {files.LINE_LIMIT})" in first.output
    summary = [json.loads(line) for line in first.stdout.splitlines() if line.startswith("{")][-1]
    assert (summary["read"], summary["stored"], summary["invalid"]) == (5, 3, 2)
    summary = [json.loads(line) for line in again.stdout.splitlines() if line.startswith("{")][-1]
    assert (summary["stored"], summary["unchanged"], summary["invalid"]) == (0, 3, 2)


def test_a_file_of_many_bad_lines_keeps_the_first_messages_and_counts_the_rest(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Millions of bad lines must not become millions of messages held in memory and printed: the first
    ``RunStats.MAX_ERRORS`` are kept and printed, then one line counts the rest; ``invalid`` counts every one."""
    from openear.models import RunStats

    for var in ("OPENEAR_DATABASE_URL", "OPENEAR_PSEUDONYM_KEY", "OPENEAR_KEY_FILE", "OPENEAR_HOME"):
        monkeypatch.delenv(var, raising=False)
    home, runner = tmp_path / "ws", CliRunner()
    assert runner.invoke(app, ["--home", str(home), "init"]).exit_code == 0
    path = tmp_path / "posts.jsonl"
    bad = RunStats.MAX_ERRORS + 7
    path.write_text(json.dumps(record(1)) + "\n" + "{not json\n" * bad + json.dumps(record(2)) + "\n",
                    encoding="utf-8")
    result = runner.invoke(app, ["--home", str(home), "import", str(path), "--source", "s", "--visibility",
                                 "public", "--json"])
    assert result.exit_code == 1
    listed = [line for line in result.stderr.splitlines() if line.startswith(f"{path}:")]
    assert len(listed) == RunStats.MAX_ERRORS and listed[0].startswith(f"{path}:2:")
    assert f"{path}:100: json:" in result.stderr  # as written: no emoji code (":100:" once printed as 💯)
    assert f"... and 7 more invalid records (the first {RunStats.MAX_ERRORS:,} are listed above)" in result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["stored"], summary["invalid"], len(summary["errors"])) == (2, bad, 100)
