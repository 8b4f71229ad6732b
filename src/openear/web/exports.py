"""Exports of posts (and of the audit log) as CSV, JSON Lines or Parquet, each carrying the guard's notice.

The notice travels inside the file (a leading ``#`` line in CSV, a first ``{"notice": ...}`` line in JSON Lines,
the ``openear.notice`` key of the Parquet schema metadata) and in the ``X-Openear-Notice`` header. Exports never
carry author pseudonyms.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import Response

__all__ = ["FORMATS", "MAX_ROWS", "guard_notice", "render", "response"]

MAX_ROWS = 50_000
FORMATS: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}


def guard_notice(guard: dict[str, int], organisation: str = "openear") -> str:
    """What every export says about itself: pseudonyms, scrubbing, what the guard kept out, and its purpose. The
    organisation is named as given (any name reads right: it is never made possessive)."""
    organisation = " ".join(organisation.split())
    origin = "openear" if organisation in ("", "openear") else f"openear (organisation: {organisation})"
    return (
        f"Exported from {origin} on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Texts are scrubbed of "
        "e-mail addresses, phone numbers and handles; authors are left out. The privacy guard withheld "
        f"{guard.get('withheld', 0)} items on protected topics and rejected {guard.get('rejected', 0)} items from "
        "private or closed groups; they are not in this file. Use it only to fix problems with the service: never "
        "to identify, profile or monitor people or their organising."
    )


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat() + "+00:00"
    return value


def render(rows: Iterable[dict[str, Any]], columns: Sequence[str], fmt: str, notice: str) -> bytes:
    """The file's bytes. ``fmt``: csv, jsonl or parquet."""
    if fmt == "csv":
        buf = io.StringIO()
        buf.write("# " + notice.replace("\n", " ") + "\n")
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_safe(_cell(row.get(c))) for c in columns])
        return buf.getvalue().encode("utf-8")
    if fmt == "jsonl":
        lines = [json.dumps({"notice": notice}, ensure_ascii=False)]
        lines += [json.dumps({c: _cell(row.get(c)) for c in columns}, ensure_ascii=False, default=str) for row in rows]
        return ("\n".join(lines) + "\n").encode("utf-8")
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = [{c: _parquet_cell(row.get(c)) for c in columns} for row in rows]
        table = pa.Table.from_pylist(data, schema=_arrow_schema(data, columns))
        table = table.replace_schema_metadata({"openear.notice": notice})
        out = io.BytesIO()
        pq.write_table(table, out)
        return out.getvalue()
    raise ValueError(f"format: one of {', '.join(FORMATS)}, not {fmt!r}")


def _arrow_schema(data: list[dict[str, Any]], columns: Sequence[str]) -> Any:
    import pyarrow as pa

    fields = []
    for c in columns:
        sample = next((d[c] for d in data if d.get(c) is not None), None)
        if isinstance(sample, datetime):  # a real timestamp: readers filter and sort by it without parsing
            fields.append(pa.field(c, pa.timestamp("us", tz="UTC")))
            continue
        whole = isinstance(sample, int) and not isinstance(sample, bool)
        fields.append(pa.field(c, pa.int64() if whole else pa.string()))
    return pa.schema(fields)


def _parquet_cell(value: Any) -> Any:
    """Parquet keeps datetimes as UTC timestamps (the store's naive values are UTC); anything else as is."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def _csv_safe(value: Any) -> Any:
    """Defuse spreadsheet formulas in untrusted text (a cell starting with = + - @ is prefixed with ')."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def response(body: bytes, fmt: str, stem: str, notice: str) -> Response:
    """A download: the right type, an attachment file name, the notice as a header (ASCII)."""
    ext = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}[fmt]
    name = f"{stem}-{datetime.now(UTC):%Y%m%d-%H%M}.{ext}"
    return Response(
        body,
        media_type=FORMATS[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Openear-Notice": notice.encode("ascii", "replace").decode("ascii"),
        },
    )
