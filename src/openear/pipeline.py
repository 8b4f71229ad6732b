"""One run: read -> normalise -> guard -> enrich -> store, in batches. Returns the run's :class:`RunStats`.

Each batch (posts, labels, guard counts and, for live sources, the deletions and the cursor) commits in one
transaction, so a run that dies part-way keeps every batch before the failure and a re-run stores each item exactly
once and applies each deletion exactly when the cursor that covers it is saved.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

from openear import clock, overrides
from openear.connectors.base import Deleted
from openear.enrich import Enrichment
from openear.errors import InvalidField
from openear.guard import Guard, load_key
from openear.models import CursorMark, EnrichedPost, GuardedPost, InvalidItem, Post, RawItem, Rejection, RunStats
from openear.settings import Settings, SourceSpec
from openear.store import Store

DEFAULT_BATCH = 500
DEDUPE_WINDOW = timedelta(days=30)

Normaliser = Callable[[RawItem], Post]
Progress = Callable[[int], None]  # called with the number of items just processed
Stream = Iterable[RawItem | InvalidItem | CursorMark | Deleted]


def normalised(item: RawItem | InvalidItem, normalise: Normaliser) -> Post | InvalidItem:
    """``item``'s post, or the item as invalid (as read, or when ``normalise`` rejects one of its fields)."""
    if isinstance(item, InvalidItem):
        return item
    try:
        return normalise(item)
    except InvalidField as exc:
        return InvalidItem(item.origin, item.line, exc.field, exc.problem)


class Batch(Protocol):
    """What :func:`batches` fills; its ``len`` is what counts towards the batch size."""

    read: int  # items read into it (valid or not)

    def __len__(self) -> int: ...

    def add(self, post: Post) -> None: ...

    def delete(self, external_id: str) -> None:
        """The stream deleted this item: delete it, and cancel any version of it added earlier in the batch."""


B = TypeVar("B", bound=Batch)


def batches(
    items: Stream, normalise: Normaliser, stats: RunStats, size: int, new: Callable[[], B], cursor: str,
    cutoff: datetime | None = None,
) -> Iterator[tuple[B, tuple[str, str] | None, bool]]:
    """A run's stream in batches of ``size``: ``(batch, (cursor, the latest mark so far), final)``; counts
    reads and invalid items in ``stats``. A post created before ``cutoff`` (the retention limit) is counted as
    expired and never reaches the batch: the purge would delete it anyway, so it is never stored.

    A full batch is yielded lazily, when the next item shows up, so a mark that closes it goes with it; the last
    one (maybe empty) is yielded with ``final`` true. Shared by :class:`Pipeline` and
    :class:`openear.distributed.BatchPipeline`, so both make the same batches.
    """
    batch: B = new()
    mark: tuple[str, str] | None = None
    for item in items:
        if isinstance(item, CursorMark):
            mark = (cursor, item.value)
            continue
        if len(batch) >= size:
            yield batch, mark, False
            batch = new()
        if isinstance(item, Deleted):
            batch.delete(item.external_id)
            continue
        stats.read += 1
        batch.read += 1
        post = normalised(item, normalise)
        if isinstance(post, InvalidItem):
            stats.invalid += 1
            stats.add_error(str(post))
        elif cutoff is not None and post.created_at < cutoff:
            stats.expired += 1
        else:
            batch.add(post)
    yield batch, mark, True


def count_rejection(stats: RunStats, r: Rejection) -> None:
    """Count one of the guard's rejections (withheld or rejected, by reason) in ``stats``."""
    if r.action == "withheld":
        stats.withheld += 1
        stats.withheld_by_reason[r.reason] = stats.withheld_by_reason.get(r.reason, 0) + 1
    else:
        stats.rejected[r.reason] = stats.rejected.get(r.reason, 0) + 1


def retention_of(settings: Settings, store: Store) -> timedelta:
    """How long posts are kept: ``retention_days``, or the value set on the admin Settings page, which wins."""
    with store.connect() as conn:
        return timedelta(days=overrides.effective(settings, conn).retention_days)


def cutoff_for(retention: timedelta | None) -> datetime | None:
    """The creation time before which a run drops posts: ``retention`` before :func:`openear.clock.now`."""
    return None if retention is None else clock.now() - retention


def store_key(settings: Settings, store: Store) -> bytes:
    """The workspace's pseudonym key, bound to ``store``: the first writer records its fingerprint, and a writer
    with another key is refused (:meth:`Store.bind_key`), so one author never gets two pseudonyms unnoticed."""
    from openear.guard import key_fingerprint

    key = load_key(settings.key_path)
    store.bind_key(key_fingerprint(key))
    return key


@contextmanager
def recorded_run(store: Store, spec: SourceSpec, kind: str) -> Iterator[tuple[int, RunStats]]:
    """Declare ``spec``'s source, open a run of ``kind`` and yield ``(run_id, stats)``; the run is finished with
    ``stats`` and status ``ok`` (``partial`` when some items were invalid), ``interrupted`` (Ctrl+C) or, when the
    body raises, ``failed``."""
    store.declare_source(
        spec.name, connector=spec.connector, visibility=spec.visibility, kind=spec.kind, country=spec.country
    )
    run_id = store.start_run(kind, spec.name)
    stats = RunStats()
    status = "failed"
    try:
        yield run_id, stats
        status = "partial" if stats.invalid else "ok"
    except KeyboardInterrupt:
        status = "interrupted"  # an operator's choice, not a failure; a re-run resumes
        raise
    finally:
        store.finish_run(run_id, stats, status)


def store_batch(store: Store, run_id: int, source: str, enriched: list[EnrichedPost], rejections: list[Rejection],
                cursor: tuple[str, str] | None, deletions: dict[str, None], stats: RunStats,
                on_deleted: Callable[[int], None] | None) -> None:
    """Write one batch (``deletions``: external ids of ``source``) in one transaction; count what it stored, left
    unchanged and deleted."""
    gone = (source, list(deletions)) if deletions else None
    result = store.write_batch(run_id, enriched, rejections=rejections, cursor=cursor, deletions=gone)
    stats.stored += result.stored
    stats.unchanged += result.unchanged
    if on_deleted and result.deleted:
        on_deleted(result.deleted)


@dataclass
class _Guarded:
    """A batch of :meth:`Pipeline.run`, guarded as it fills."""

    guard: Guard
    visibility: str
    stats: RunStats
    pending: dict[str, GuardedPost] = field(default_factory=dict)  # by external id, in order: a later version wins
    rejections: list[Rejection] = field(default_factory=list)
    deletions: dict[str, None] = field(default_factory=dict)  # external ids, in order
    read: int = 0

    def __len__(self) -> int:
        return len(self.pending) + len(self.rejections) + len(self.deletions)

    def delete(self, external_id: str) -> None:
        self.deletions[external_id] = None
        self.pending.pop(external_id, None)

    def add(self, post: Post) -> None:
        verdict = self.guard.check(post, self.visibility)
        if verdict.rejection is not None:
            self.rejections.append(verdict.rejection)
            count_rejection(self.stats, verdict.rejection)
            return
        if self.pending.pop(verdict.post.external_id, None) is not None:
            self.stats.unchanged += 1  # an earlier version in this batch, superseded: never written
        self.pending[verdict.post.external_id] = verdict.post
        if verdict.scrubbed:
            self.stats.scrubbed += 1


@dataclass
class Pipeline:
    """The stages, loaded once and reused across runs of one process."""

    store: Store
    guard: Guard
    enrichment: Enrichment
    batch_size: int = DEFAULT_BATCH
    after_run: Callable[[RunStats], None] | None = None  # the triage pass after a run that stored posts (issue 5)
    retention: timedelta | None = None  # posts older than this when read are dropped (None: all kept)

    @classmethod
    def for_settings(cls, settings: Settings, store: Store, *, batch_size: int = DEFAULT_BATCH,
                     mode: str | None = None) -> Pipeline:
        """The workspace's pipeline; ``mode``: the sentiment mode (default: the workspace's ``sentiment_mode``)."""
        from openear.train import active_model

        taxonomy = settings.taxonomy_path if settings.taxonomy_path.exists() else None
        enrichment = Enrichment(taxonomy, mode or settings.sentiment_mode, trained=active_model(store, settings.home))
        enrichment.warm_deduper(store.recent_signatures(datetime.now(UTC) - DEDUPE_WINDOW))
        from openear.triage.feed import feeder

        return cls(store, Guard(store_key(settings, store)), enrichment, batch_size, feeder(settings, store),
                   retention_of(settings, store))

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
        with recorded_run(self.store, spec, kind) as (run_id, stats):
            new = partial(_Guarded, self.guard, spec.visibility, stats)
            cutoff = cutoff_for(self.retention)
            for batch, mark, final in batches(items, normalise, stats, self.batch_size, new, spec.name, cutoff):
                # the last batch, even empty, may still have a mark to save; progress hears of every batch
                if batch.pending or batch.rejections or batch.deletions or (final and mark):
                    enriched = self.enrichment.enrich(list(batch.pending.values()))
                    store_batch(self.store, run_id, spec.name, enriched, batch.rejections, mark, batch.deletions,
                                stats, on_deleted)
                if progress:
                    progress(batch.read)
        if self.after_run is not None and stats.stored:
            self.after_run(stats)
        return run_id, stats


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
