"""Import from files: openear's JSON Lines and CSV, Zeeschuimer NDJSON and 4CAT CSV exports.

:func:`read_items` streams a file in constant memory (one line, at most 1 MiB, at a time) and yields a
:class:`RawItem` per record or an :class:`InvalidItem` per line it cannot read; it raises
:class:`InputFormatError` (one line, naming the file) for a file that cannot be used at all: missing, a
directory, not UTF-8, empty, or not in the format asked for. :func:`normalise` (from :mod:`openear.normalise`)
turns a ``RawItem`` into a ``Post``.
"""

from __future__ import annotations

import csv
import io
import json
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from openear.errors import InputFormatError
from openear.models import InvalidItem, RawItem
from openear.normalise import echo, json_type, normalise

__all__ = ["FORMATS", "LINE_LIMIT", "detect_format", "normalise", "read_items"]

FORMATS = ("jsonl", "csv", "zeeschuimer", "4cat")
LINE_LIMIT = 1 << 20  # bytes in one line, newline excluded (and characters in one CSV field)
RECORD_LIMIT = 4 * LINE_LIMIT  # bytes in one CSV record that runs over several lines (quoted line breaks)
SNIFF_LINES = 100  # a JSON Lines file with no object in its first 100 non-blank lines is not JSON Lines
_HEAD = 8192  # bytes checked for NULs (10% or more: binary, or UTF-16 without a byte order mark)
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32 LE"),
    (b"\x00\x00\xfe\xff", "UTF-32 BE"),
    (b"\xff\xfe", "UTF-16 LE"),
    (b"\xfe\xff", "UTF-16 BE"),
)
_UTF8_BOM = b"\xef\xbb\xbf"
_COMPRESSED = (  # read as they are, never decompressed (no archive bombs): the user decompresses first
    (b"\x1f\x8b", "gzip-compressed", "gunzip"),
    (b"PK\x03\x04", "a ZIP archive", "unzip"),
    (b"BZh", "bzip2-compressed", "bunzip2"),
    (b"\xfd7zXZ\x00", "xz-compressed", "unxz"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "unzstd"),
)
REQUIRED_COLUMNS = {"csv": ("id", "text", "created_at"), "4cat": ("id", "body")}
_4CAT_TIME_COLUMNS = ("unix_timestamp", "timestamp")


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    offset: int  # byte offset of the line's start in the file
    data: bytes | None  # None when the line is longer than LINE_LIMIT
    size: int  # bytes, newline excluded
    head: bytes = b""  # the first 64 KiB of a line too long to keep


# ----------------------------------------------------------------------------------------------------------------
# Public API


def detect_format(path: Path) -> str:
    """The format of ``path`` from its first line (and extension): ``jsonl``, ``zeeschuimer``, ``csv`` or ``4cat``."""
    path = Path(path)
    if path.exists() and not path.is_dir() and not path.is_file():
        # a pipe (or a device) cannot be read twice: once here for the format, then again for the records
        raise InputFormatError(f"{path}: not a regular file (a pipe or a device), so its format cannot be told "
                               "before it is read; pass --format")
    with _open(path) as (fh, offset):
        first = _first_line(path, fh, offset)
    suffix = path.suffix.lower()
    if first is None:
        raise InputFormatError(f"{path}: empty file")
    if first.lstrip().startswith("{"):
        return "zeeschuimer" if _looks_zeeschuimer(first) else "jsonl"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"  # read_items will say why it is not JSON Lines
    if suffix in (".csv", ".tsv", ".txt") or "," in first:
        header = _header_names(first)
        if "body" in header and "text" not in header:
            return "4cat"
        return "csv"
    raise InputFormatError(f"{path}: cannot tell the format (not JSON Lines, not CSV); pass --format")


def read_items(path: Path, fmt: str, source: str) -> Iterator[RawItem | InvalidItem]:
    """Stream the records of ``path`` (format ``fmt``) as :class:`RawItem`s of ``source``.

    A line that cannot be read becomes an :class:`InvalidItem` (``FILE:LINE: field: problem``); a file that cannot
    be used at all raises :class:`InputFormatError` before the first item.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise InputFormatError(f"{path}: unknown format {fmt!r} (one of: {', '.join(FORMATS)})")
    with _open(path) as (fh, offset):
        if fmt in ("jsonl", "zeeschuimer"):
            yield from _json_lines(path, fh, offset, fmt, source)
        else:
            yield from _csv_rows(path, fh, offset, fmt, source)


# ----------------------------------------------------------------------------------------------------------------
# Opening and lines


@contextmanager
def _open(path: Path) -> Iterator[tuple[io.BufferedReader, int]]:
    """Open ``path`` for binary reading after the whole-file checks; yields ``(file, offset of the first byte)``."""
    if path.is_dir():
        raise InputFormatError(f"{path}: is a directory, not a file")
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise InputFormatError(f"{path}: no such file") from None
    except PermissionError:
        raise InputFormatError(f"{path}: cannot read: permission denied") from None
    except OSError as exc:
        raise InputFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with fh:
        yield fh, _check_head(path, fh)


def _check_head(path: Path, fh: io.BufferedReader) -> int:
    """Refuse a file that is clearly not UTF-8 text; skip a UTF-8 byte order mark. Returns the start offset."""
    try:
        head = fh.peek(_HEAD)[:_HEAD]  # peek, not read and seek: a pipe cannot seek
    except OSError as exc:
        raise InputFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    for bom, name in _BOMS:
        if head.startswith(bom):
            raise InputFormatError(f"{path}: not UTF-8: the file starts with a {name} byte order mark; "
                                   "save it as UTF-8")
    for magic, name, tool in _COMPRESSED:
        if head.startswith(magic):
            raise InputFormatError(f"{path}: {name}, not text; decompress it first (e.g. {tool}) and import "
                                   "the result")
    nul = head.find(b"\x00")
    if nul >= 0 and head.count(b"\x00") * 10 >= len(head):  # a stray NUL in text is left to the line it is on
        raise InputFormatError(f"{path}: not UTF-8 text: NUL byte at byte offset {nul} "
                               "(a binary file, or UTF-16 without a byte order mark?)")
    if b"\r" in head and b"\n" not in head:
        raise InputFormatError(f"{path}: lines end with a bare carriage return (CR, old Mac line endings), not LF "
                               "or CRLF; convert the line endings (e.g. tr '\\r' '\\n') and import the result")
    if head.startswith(_UTF8_BOM):
        fh.read(len(_UTF8_BOM))
        return len(_UTF8_BOM)
    return 0


def _lines(fh: BinaryIO, offset: int) -> Iterator[_Line]:
    """Physical lines (split on ``\\n``), at most :data:`LINE_LIMIT` bytes held at a time."""
    number = 0
    while True:
        chunk = fh.readline(LINE_LIMIT + 1)
        if not chunk:
            return
        number += 1
        start = offset
        offset += len(chunk)
        if len(chunk) > LINE_LIMIT and not chunk.endswith(b"\n"):
            size = len(chunk)
            while True:  # skip the rest of the long line
                more = fh.readline(1 << 16)
                if not more:
                    break
                offset += len(more)
                if more.endswith(b"\n"):
                    size += len(more) - 1
                    break
                size += len(more)
            yield _Line(number, start, None, size, chunk[: 1 << 16])
        else:
            data = chunk[:-1] if chunk.endswith(b"\n") else chunk
            yield _Line(number, start, data, len(data))


def _decode_problem(line: _Line, exc: UnicodeDecodeError) -> str:
    assert line.data is not None
    return f"not UTF-8: invalid byte 0x{line.data[exc.start]:02x} at byte offset {line.offset + exc.start}"


def _too_long(origin: str, line: _Line) -> InvalidItem:
    return InvalidItem(origin, line.number, "line", f"line too long ({line.size} bytes, limit {LINE_LIMIT})")


def _first_line(path: Path, fh: BinaryIO, offset: int) -> str | None:
    """The first non-blank line, decoded (up to its first 64 KiB when it is too long); ``None`` if none."""
    for line in _lines(fh, offset):
        if line.data is None:
            return line.head.decode("utf-8", errors="ignore")
        if not line.data.strip():
            continue
        try:
            return line.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if line.data.lstrip()[:1] == b"{":  # a JSON object with a bad byte: that line's problem (read_items)
                return line.data.decode("utf-8", errors="replace")
            raise InputFormatError(f"{path}: {_decode_problem(line, exc)} (line {line.number})") from None
    return None


# ----------------------------------------------------------------------------------------------------------------
# JSON Lines (openear's own and Zeeschuimer's NDJSON)


def _looks_zeeschuimer(text: str) -> bool:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return '"source_platform"' in text and '"data"' in text
    return isinstance(value, dict) and "source_platform" in value and "data" in value


def _parse_json(origin: str, line: _Line, text: str, source: str) -> RawItem | InvalidItem:
    try:
        value = json.loads(text)
    except RecursionError:
        return InvalidItem(origin, line.number, "json", "not valid JSON: nested too deeply")
    except json.JSONDecodeError as exc:
        return InvalidItem(origin, line.number, "json", f"not valid JSON: {exc.msg} (column {exc.colno})")
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        return InvalidItem(origin, line.number, "json", f"not valid JSON: {' '.join(str(exc).split())}")
    if not isinstance(value, dict):
        return InvalidItem(origin, line.number, "json", f"expected a JSON object, got {json_type(value)}")
    return RawItem(source=source, payload=value, origin=origin, line=line.number)


def _check_first_object(path: Path, item: RawItem, fmt: str) -> None:
    """Refuse a JSON Lines file whose first object is plainly another format."""
    p = item.payload
    zeeschuimer = "source_platform" in p and "data" in p
    if fmt == "zeeschuimer" and not zeeschuimer:
        raise InputFormatError(f"{path}: not a Zeeschuimer export: line {item.line} has no 'source_platform' "
                               "and 'data' (openear's own JSON Lines? use --format jsonl)")
    if fmt == "jsonl" and zeeschuimer and "text" not in p:
        raise InputFormatError(f"{path}: line {item.line} is a Zeeschuimer item, not openear JSON Lines; "
                               "use --format zeeschuimer")


def _not_json_lines(path: Path, count: int, first_bad: InvalidItem | None, first_text: str | None) -> str:
    msg = f"{path}: not JSON Lines: none of the first {count} non-blank line(s) is a JSON object"
    if first_bad is not None:
        msg += f" (line {first_bad.line}: {first_bad.field}: {first_bad.problem})"
    head = (first_text or "").lstrip()
    if head.startswith("["):
        msg += "; it looks like one JSON array, not one object per line"
    elif "," in head and not head.startswith(("{", '"')):
        msg += "; it looks like CSV, try --format csv or --format 4cat"
    return msg


def _json_lines(path: Path, fh: BinaryIO, offset: int, fmt: str, source: str) -> Iterator[RawItem | InvalidItem]:
    origin = str(path)
    held: list[InvalidItem] = []  # problems before the first object, held until the file proves to be JSON Lines
    found = False
    nonblank = 0
    first_text: str | None = None
    for line in _lines(fh, offset):
        item: RawItem | InvalidItem
        if line.data is None:
            item = _too_long(origin, line)
        elif not line.data.strip():
            continue
        else:
            try:
                text = line.data.decode("utf-8")
            except UnicodeDecodeError as exc:  # held like any problem before the first object (below)
                item = InvalidItem(origin, line.number, "encoding", _decode_problem(line, exc))
            else:
                first_text = text if first_text is None else first_text
                item = _parse_json(origin, line, text, source)
        nonblank += 1
        if found:
            yield item
        elif isinstance(item, RawItem):
            _check_first_object(path, item, fmt)
            found = True
            yield from held
            held.clear()
            yield item
        else:
            held.append(item)
            if nonblank >= SNIFF_LINES:
                raise InputFormatError(_not_readable(path, nonblank, held, first_text))
    if not found:
        if nonblank == 0:
            raise InputFormatError(f"{path}: empty file")
        raise InputFormatError(_not_readable(path, nonblank, held, first_text))


def _not_readable(path: Path, nonblank: int, held: list[InvalidItem], first_text: str | None) -> str:
    """Why no line of the file's start is a JSON object: not UTF-8 at all (every line so far failed to decode),
    else not JSON Lines. A single bad byte in an otherwise good file is only that line's problem."""
    if held and all(item.field == "encoding" for item in held):
        return f"{path}: {held[0].problem} (line {held[0].line})"
    return _not_json_lines(path, nonblank, held[0] if held else None, first_text)


# ----------------------------------------------------------------------------------------------------------------
# CSV (openear's own and 4CAT's export)


def _header_names(text: str) -> list[str]:
    try:
        row = next(csv.reader([text]), [])
    except csv.Error:
        return []
    return [c.strip().lower() for c in row]


def _check_header(path: Path, fmt: str, header: list[str]) -> None:
    names = set(header)
    missing = [c for c in REQUIRED_COLUMNS[fmt] if c not in names]
    if fmt == "4cat" and not names.intersection(_4CAT_TIME_COLUMNS):
        missing.append(" or ".join(_4CAT_TIME_COLUMNS))
    if not missing:
        return
    shown = ", ".join(echo(h) for h in header[:8]) + (", ..." if len(header) > 8 else "")
    what = "CSV header" if fmt == "csv" else "not a 4CAT CSV export: header"
    msg = f"{path}: {what} lacks required column(s): {', '.join(missing)} (found: {shown})"
    first = header[0] if header else ""
    if first.startswith("{"):
        msg += "; it looks like JSON Lines, try --format jsonl or --format zeeschuimer"
    elif fmt == "csv" and "body" in names:
        msg += "; it looks like a 4CAT export, try --format 4cat"
    elif fmt == "4cat" and "text" in names:
        msg += "; it looks like openear's own CSV, try --format csv"
    raise InputFormatError(msg)


def _csv_rows(path: Path, fh: BinaryIO, offset: int, fmt: str, source: str) -> Iterator[RawItem | InvalidItem]:
    origin = str(path)
    problems: list[InvalidItem] = []  # physical-line problems inside the record being read
    held: list[tuple[int, str, InvalidItem | None]] = []  # the physical lines of the record being read
    held_bytes = [0]  # their size (UTF-8); over RECORD_LIMIT, the record is refused, so memory stays bounded
    replay: deque[tuple[int, str, InvalidItem | None]] = deque()  # lines to read again (after a broken quote)
    header: list[str] | None = None

    def physical() -> Iterator[tuple[int, str, InvalidItem | None]]:
        for line in _lines(fh, offset):
            if line.data is None:
                yield line.number, "\n", _too_long(origin, line)
                continue
            try:
                yield line.number, line.data.decode("utf-8") + "\n", None
            except UnicodeDecodeError as exc:
                if header is None and line.data.strip():
                    raise InputFormatError(f"{path}: {_decode_problem(line, exc)} (line {line.number})") from None
                yield line.number, "\n", InvalidItem(origin, line.number, "encoding", _decode_problem(line, exc))

    lines = physical()

    class TextLines:  # not a generator: after the end of the file, lines to read again may still come
        def __iter__(self) -> TextLines:
            return self

        def __next__(self) -> str:
            entry = replay.popleft() if replay else next(lines)
            if not held:
                held_bytes[0] = 0
            held_bytes[0] += len(entry[1]) if entry[1].isascii() else len(entry[1].encode("utf-8", "replace"))
            held.append(entry)
            if held_bytes[0] > RECORD_LIMIT and len(held) > 1:
                raise _RecordTooLong
            if entry[2] is not None:
                problems.append(entry[2])
            return entry[1]

    if csv.field_size_limit() < LINE_LIMIT:
        csv.field_size_limit(LINE_LIMIT)
    # strict: a quote that closes a quoted field before its end, or one never closed, is an error, not a field that
    # silently takes in the rest of the line or of the file
    reader = csv.reader(TextLines(), strict=True)
    while header is None:
        held.clear()
        try:
            row = next(reader)
        except StopIteration:
            raise InputFormatError(f"{path}: empty file") from None
        except csv.Error as exc:
            number, field, problem = _quote_problem(held, exc, None)
            raise InputFormatError(f"{path}: not CSV: header (line {number}): {problem}") from None
        except _RecordTooLong:
            raise InputFormatError(f"{path}: not CSV: header (line {held[0][0]}): {_record_too_long(held)}") from None
        if problems:
            raise InputFormatError(f"{path}: header (line {problems[0].line}): {problems[0].problem}")
        if any(c.strip() for c in row):
            header = [c.strip().lower() for c in row]
    _check_header(path, fmt, header)
    while True:
        held.clear()
        problems.clear()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if not held:  # cannot happen: an error comes from a line read
                raise
            number, field, problem = _quote_problem(held, exc, header)
            # A quoted field that runs over several lines and breaks is most likely one stray quote on its first
            # line: that line is invalid, the lines it swallowed are read again as records of their own.
            replay.extendleft(reversed(held[1:]))
            yield InvalidItem(origin, number, field, problem)
            continue
        except _RecordTooLong:  # read again like a broken quoted field (above): most likely a stray quote
            replay.extendleft(reversed(held[1:]))
            yield InvalidItem(origin, held[0][0], "csv", _record_too_long(held))
            continue
        start = held[0][0] if held else 0
        if problems:
            yield problems[0]
            continue
        if not any(c.strip() for c in row):
            continue
        if len(row) > len(header):
            yield InvalidItem(origin, start, "csv", f"row has {len(row)} fields, the header has {len(header)}")
            continue
        payload = {name: cell for name, cell in zip(header, row, strict=False) if name and cell.strip()}
        yield RawItem(source=source, payload=payload, origin=origin, line=start)


class _RecordTooLong(Exception):
    """A CSV record's lines (quoted line breaks) add up to more than :data:`RECORD_LIMIT` bytes."""


def _record_too_long(held: list[tuple[int, str, InvalidItem | None]]) -> str:
    return (f"record too long (lines {held[0][0]}-{held[-1][0]} hold more than {RECORD_LIMIT} bytes, limit "
            f"{RECORD_LIMIT}): a quoted field is not closed, or holds too much")


def _quote_problem(held: list[tuple[int, str, InvalidItem | None]], exc: csv.Error,
                   header: list[str] | None) -> tuple[int, str, str]:
    """``(line, field, problem)`` for a record the strict CSV reader refused (``held``: its physical lines).

    The line is the record's first; the field is the column whose quoted value is broken (``csv`` when it cannot be
    told). A quoted field is either never closed (up to the end of the file, or to the field size limit), or closed
    by a quote that is followed by something other than a comma or the end of the line."""
    number, first, _ = held[0]
    last = held[-1][0]
    message = str(exc)
    state = _scan_quotes(first.rstrip("\r\n"))
    if message.startswith("new-line character seen in unquoted field"):
        return number, "csv", ("a carriage return (CR) inside an unquoted field: lines must end with LF or CRLF, and "
                               "a line break inside a field must be quoted")
    if state is None:
        return number, "csv", message
    index, what, char = state
    column = _column(header, index)
    if what == "after":  # closed in the middle of a field on the record's first line
        return number, column, (f"a quoted field's closing quote is followed by {_char(char)}, not a comma or the "
                                'end of the line (a quote inside a quoted field is written "")')
    if message.startswith("unexpected end of data"):
        return number, column, "a quoted field is never closed"
    if message.startswith("field larger than field limit"):
        return number, column, f"a quoted field is not closed within the field size limit ({LINE_LIMIT} bytes)"
    if "expected after" in message:
        return number, column, (f"a quoted field is closed on line {last} by a quote followed by other text, not "
                                'a comma or the end of the line (a quote inside a quoted field is written "")')
    return number, "csv", message


def _char(char: str) -> str:
    return echo(char) if char.isprintable() else f"U+{ord(char):04X}"


def _column(header: list[str] | None, index: int) -> str:
    if header is None:
        return "header"
    return (header[index] or "csv") if index < len(header) else "csv"


def _scan_quotes(line: str) -> tuple[int, str, str] | None:
    """Where ``line`` (one CSV line, newline excluded) breaks the quoting rules: ``(field index, "open", "")`` for
    a quoted field still open at its end, ``(field index, "after", char)`` for a closing quote followed by
    ``char``; ``None`` when its quotes are well formed."""
    index = 0
    i = 0
    n = len(line)
    while i <= n:
        if i < n and line[i] == '"':  # a quoted field
            i += 1
            while True:
                close = line.find('"', i)
                if close < 0:
                    return index, "open", ""
                if line.startswith('""', close):
                    i = close + 2
                    continue
                i = close + 1
                break
            if i < n and line[i] != ",":
                return index, "after", line[i]
        else:
            comma = line.find(",", i)
            if comma < 0:
                return None
            i = comma
        if i >= n:
            return None
        i += 1  # past the comma
        index += 1
    return None
