"""One run: read -> normalise -> guard -> enrich -> store, in batches. Returns the run's :class:`RunStats`.

Each batch (posts, labels, guard counts and, for live sources, the deletions and the cursor) commits in one
transaction, so a run that dies part-way keeps every batch before the failure and a re-run stores each item exactly
once and applies each deletion exactly when the cursor that covers it is saved.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from openear.connectors.base import Deleted
from openear.enrich import Enrichment
from openear.errors import InvalidField
from openear.guard import Guard, load_key
from openear.models import CursorMark, GuardedPost, InvalidItem, Post, RawItem, Rejection, RunStats
from openear.settings import Settings, SourceSpec
from openear.store import Store

DEFAULT_BATCH = 500
DEDUPE_WINDOW = timedelta(days=30)

Normaliser = Callable[[RawItem], Post]
Progress = Callable[[int], None]  # called with the number of items just processed
Stream = Iterable[RawItem | InvalidItem | CursorMark | Deleted]


@dataclass
class Pipeline:
    """The stages, loaded once and reused across runs of one process."""

    store: Store
    guard: Guard
    enrichment: Enrichment
    batch_size: int = DEFAULT_BATCH
    after_run: Callable[[RunStats], None] | None = None  # the triage pass after a run that stored posts (issue 5)

    @classmethod
    def for_settings(cls, settings: Settings, store: Store, *, batch_size: int = DEFAULT_BATCH,
                     mode: str | None = None) -> Pipeline:
        """The workspace's pipeline; ``mode``: the sentiment mode (default: the workspace's ``sentiment_mode``)."""
        from openear.train import active_model

        taxonomy = settings.taxonomy_path if settings.taxonomy_path.exists() else None
        enrichment = Enrichment(taxonomy, mode or settings.sentiment_mode, trained=active_model(store, settings.home))
        enrichment.warm_deduper(store.recent_signatures(datetime.now(UTC) - DEDUPE_WINDOW))
        from openear.triage.feed import feeder

        return cls(store, Guard(load_key(settings.key_path)), enrichment, batch_size, feeder(settings, store))

    def run(
        self,
        spec: SourceSpec,
        items: Stream,
        normalise: Normaliser,
        *,
        kind: str = "import",
        progress: Progress | None = None,
        on_deleted: Callable[[int], None] | None = None,
    ) -> tuple[int, RunStats]:
        """Process ``items`` from one source; returns ``(run_id, stats)``.

        A :class:`CursorMark` in the stream is saved with the batch that holds the items before it. A
        :class:`Deleted` is applied in that batch's transaction too (before its upserts, and cancelling an upsert
        of the same item earlier in the batch, so the stream's order wins); ``on_deleted`` gets each batch's count
        of posts deleted.
        """
        self.store.declare_source(
            spec.name, connector=spec.connector, visibility=spec.visibility, kind=spec.kind, country=spec.country
        )
        run_id = self.store.start_run(kind, spec.name)
        stats = RunStats()
        pending: dict[str, GuardedPost] = {}  # by external id, in order: a later version of a post replaces it
        rejections: list[Rejection] = []
        deletions: dict[str, None] = {}  # external ids, in order
        status = "failed"
        reported = 0
        mark: tuple[str, str] | None = None
        try:
            for item in items:
                if isinstance(item, CursorMark):
                    mark = (spec.name, item.value)
                    continue
                if len(pending) + len(rejections) + len(deletions) >= self.batch_size:
                    # Flush lazily, when the next item shows up, so a mark that closes this batch goes with it.
                    self._flush(run_id, pending, rejections, stats, mark, (spec.name, deletions), on_deleted)
                    pending, rejections, deletions = {}, [], {}
                    if progress:
                        progress(stats.read - reported)
                        reported = stats.read
                if isinstance(item, Deleted):
                    deletions[item.external_id] = None
                    pending.pop(item.external_id, None)
                    continue
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
                        if pending.pop(verdict.post.external_id, None) is not None:
                            stats.unchanged += 1  # an earlier version in this batch, superseded: never written
                        pending[verdict.post.external_id] = verdict.post
                        if verdict.scrubbed:
                            stats.scrubbed += 1
            self._flush(run_id, pending, rejections, stats, mark, (spec.name, deletions), on_deleted, final=True)
            if progress:
                progress(stats.read - reported)
            status = "partial" if stats.invalid else "ok"
        finally:
            self.store.finish_run(run_id, stats, status)
        if self.after_run is not None and stats.stored:
            self.after_run(stats)
        return run_id, stats

    def _flush(
        self,
        run_id: int,
        pending: dict[str, GuardedPost],
        rejections: list[Rejection],
        stats: RunStats,
        cursor: tuple[str, str] | None,
        deletions: tuple[str, dict[str, None]],
        on_deleted: Callable[[int], None] | None,
        *,
        final: bool = False,
    ) -> None:
        if not pending and not rejections and not deletions[1] and not (final and cursor):
            return
        enriched = self.enrichment.enrich(list(pending.values()))
        gone = (deletions[0], list(deletions[1])) if deletions[1] else None
        result = self.store.write_batch(run_id, enriched, rejections=rejections, cursor=cursor, deletions=gone)
        stats.stored += result.stored
        stats.unchanged += result.unchanged
        if on_deleted and result.deleted:
            on_deleted(result.deleted)


def import_file(
    settings: Settings,
    store: Store,
    path: Path,
    fmt: str | None,
    spec: SourceSpec,
    *,
    pipeline: Pipeline | None = None,
    progress: Progress | None = None,
    mode: str | None = None,
) -> tuple[int, RunStats]:
    """Import one file (``jsonl``, ``csv``, ``zeeschuimer`` or ``4cat``) into the store as source ``spec``
    (``mode``: the sentiment mode, see :meth:`Pipeline.for_settings`)."""
    from openear.connectors import files

    fmt = fmt or files.detect_format(path)
    items = iter(files.read_items(path, fmt, spec.name))
    first = next(items, None)  # a wrong-format or unreadable file fails here, before a run is recorded
    if first is not None:
        items = itertools.chain([first], items)
    pipe = pipeline or Pipeline.for_settings(settings, store, mode=mode)
    return pipe.run(spec, items, lambda raw: files.normalise(raw, fmt, spec), kind="import", progress=progress)
