"""One run: read -> normalise -> guard -> enrich -> store, in batches. Returns the run's :class:`RunStats`.

Each batch (posts, labels, guard counts and, for live sources, the cursor) commits in one transaction, so a run
that dies part-way keeps every batch before the failure and a re-run stores each item exactly once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from openear.enrich import Enrichment
from openear.errors import InvalidField
from openear.guard import Guard, load_key
from openear.models import CursorMark, InvalidItem, Post, RawItem, Rejection, RunStats
from openear.settings import Settings, SourceSpec
from openear.store import Store

DEFAULT_BATCH = 500
DEDUPE_WINDOW = timedelta(days=30)

Normaliser = Callable[[RawItem], Post]
Progress = Callable[[int], None]  # called with the number of items just processed


@dataclass
class Pipeline:
    """The stages, loaded once and reused across runs of one process."""

    store: Store
    guard: Guard
    enrichment: Enrichment
    batch_size: int = DEFAULT_BATCH

    @classmethod
    def for_settings(cls, settings: Settings, store: Store, *, batch_size: int = DEFAULT_BATCH) -> Pipeline:
        taxonomy = settings.taxonomy_path if settings.taxonomy_path.exists() else None
        enrichment = Enrichment(taxonomy)
        enrichment.warm_deduper(store.recent_signatures(datetime.now(UTC) - DEDUPE_WINDOW))
        return cls(store, Guard(load_key(settings.key_path)), enrichment, batch_size)

    def run(
        self,
        spec: SourceSpec,
        items: Iterable[RawItem | InvalidItem | CursorMark],
        normalise: Normaliser,
        *,
        kind: str = "import",
        progress: Progress | None = None,
    ) -> tuple[int, RunStats]:
        """Process ``items`` from one source; returns ``(run_id, stats)``.

        A :class:`CursorMark` in the stream is saved with the batch that holds the items before it.
        """
        self.store.declare_source(
            spec.name, connector=spec.connector, visibility=spec.visibility, kind=spec.kind, country=spec.country
        )
        run_id = self.store.start_run(kind, spec.name)
        stats = RunStats()
        pending: list = []
        rejections: list[Rejection] = []
        status = "failed"
        reported = 0
        mark: tuple[str, str] | None = None
        try:
            for item in items:
                if isinstance(item, CursorMark):
                    mark = (spec.name, item.value)
                    continue
                if len(pending) + len(rejections) >= self.batch_size:
                    # Flush lazily, when the next item shows up, so a mark that closes this batch goes with it.
                    self._flush(run_id, pending, rejections, stats, mark)
                    pending, rejections = [], []
                    if progress:
                        progress(stats.read - reported)
                        reported = stats.read
                stats.read += 1
                if isinstance(item, RawItem):
                    try:
                        post = normalise(item)
                    except InvalidField as exc:
                        item = InvalidItem(item.origin, item.line, exc.field, exc.problem)
                if isinstance(item, InvalidItem):
                    stats.invalid += 1
                    stats.errors.append(str(item))
                else:
                    verdict = self.guard.check(post, spec.visibility)
                    if verdict.rejection is not None:
                        r = verdict.rejection
                        rejections.append(r)
                        if r.action == "withheld":
                            stats.withheld += 1
                            stats.withheld_by_reason[r.reason] = stats.withheld_by_reason.get(r.reason, 0) + 1
                        else:
                            stats.rejected[r.reason] = stats.rejected.get(r.reason, 0) + 1
                    else:
                        pending.append(verdict.post)
                        if verdict.scrubbed:
                            stats.scrubbed += 1
            self._flush(run_id, pending, rejections, stats, mark, final=True)
            if progress:
                progress(stats.read - reported)
            status = "partial" if stats.invalid else "ok"
        finally:
            self.store.finish_run(run_id, stats, status)
        return run_id, stats

    def _flush(
        self,
        run_id: int,
        pending: list,
        rejections: list[Rejection],
        stats: RunStats,
        cursor: tuple[str, str] | None,
        *,
        final: bool = False,
    ) -> None:
        if not pending and not rejections and not (final and cursor):
            return
        enriched = self.enrichment.enrich(pending)
        result = self.store.write_batch(run_id, enriched, rejections=rejections, cursor=cursor)
        stats.stored += result.stored
        stats.unchanged += result.unchanged


def import_file(
    settings: Settings,
    store: Store,
    path: Path,
    fmt: str | None,
    spec: SourceSpec,
    *,
    pipeline: Pipeline | None = None,
    progress: Progress | None = None,
) -> tuple[int, RunStats]:
    """Import one file (``jsonl``, ``csv``, ``zeeschuimer`` or ``4cat``) into the store as source ``spec``."""
    from openear.connectors import files

    fmt = fmt or files.detect_format(path)
    items = iter(files.read_items(path, fmt, spec.name))
    first = next(items, None)  # a wrong-format or unreadable file fails here, before a run is recorded
    if first is not None:
        items = itertools.chain([first], items)
    pipe = pipeline or Pipeline.for_settings(settings, store)
    return pipe.run(spec, items, lambda raw: files.normalise(raw, fmt, spec), kind="import", progress=progress)
