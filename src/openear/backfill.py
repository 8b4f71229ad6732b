"""``openear backfill``: import a large file in batches, resumably, on the local or the Ray engine (issue 7).

Like ``openear import``, but each batch commits with a checkpoint (the file line of its last item and a digest
of the file's first 4 KiB) in the ``cursors`` table, under ``backfill:<source>:<digest of the file's path>``. A
re-run of the same file (or of the same file with lines appended) skips every line up to the checkpoint (they are
read again, not guarded, enriched or written) and goes on from there; a different file at that path (its start
changed) and ``restart=True`` start from the first line. Nothing is lost or stored twice whichever batch a crash
interrupts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from openear.connectors import files
from openear.distributed import BatchPipeline
from openear.models import CursorMark, InvalidItem, RawItem, RunStats
from openear.pipeline import Progress
from openear.settings import SourceSpec
from openear.store import Store

HEAD_BYTES = 4096


@dataclass
class BackfillResult:
    run_id: int
    stats: RunStats
    skipped: int  # items before the checkpoint, already stored by an earlier run
    checkpoint: str  # the cursors row holding the checkpoint


def checkpoint_key(path: Path, source: str) -> str:
    """The ``cursors`` row of a backfill of ``path`` into ``source``."""
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:24]
    return f"backfill:{source[:150]}:{digest}"


def file_head(path: Path) -> str:
    """A digest of the file's first :data:`HEAD_BYTES`: a checkpoint holds only for the file it was made on."""
    with Path(path).open("rb") as fh:
        return hashlib.sha256(fh.read(HEAD_BYTES)).hexdigest()[:24]


def done_line(store: Store, key: str, head: str) -> int:
    """The file line of the last item a backfill of this file committed (0 if none)."""
    value = store.get_cursor(key)
    if not value:
        return 0
    try:
        saved = json.loads(value)
        return int(saved["line"]) if saved.get("head") == head else 0
    except (ValueError, AttributeError, TypeError, KeyError):
        return 0


def _resume(
    items: Iterator[RawItem | InvalidItem], after: int, head: str, skipped: list[int]
) -> Iterator[RawItem | InvalidItem | CursorMark]:
    """The items after line ``after``, each followed by a checkpoint mark naming its line."""
    for item in items:
        line = item.line or 0
        if line <= after:
            skipped[0] += 1
            continue
        yield item
        yield CursorMark(json.dumps({"line": line, "head": head}))


def backfill(
    store: Store,
    path: Path,
    fmt: str | None,
    spec: SourceSpec,
    pipeline: BatchPipeline,
    *,
    restart: bool = False,
    progress: Progress | None = None,
) -> BackfillResult:
    """Import ``path`` into ``spec``'s source from its checkpoint; see the module's docstring."""
    fmt = fmt or files.detect_format(path)
    key, head = checkpoint_key(path, spec.name), file_head(path)
    after = 0 if restart else done_line(store, key, head)
    skipped = [0]
    raw = iter(files.read_items(path, fmt, spec.name))
    first = next(raw, None)  # a wrong-format or unreadable file fails here, before a run is recorded
    items = _resume(itertools.chain([first], raw) if first is not None else raw, after, head, skipped)
    run_id, stats = pipeline.run(
        spec, items, lambda raw: files.normalise(raw, fmt, spec), kind="import", progress=progress, cursor=key
    )
    return BackfillResult(run_id, stats, skipped[0], key)
