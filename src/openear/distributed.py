"""Guard and enrich in parallel workers, local or on a Ray cluster; the driver writes, in order (issue 7).

:class:`BatchPipeline` has the interface of :class:`openear.pipeline.Pipeline` (``run(spec, items, normalise)``)
and the same batches, cursor marks and deletions, but hands each batch of normalised posts to an *engine*:

- :class:`LocalEngine`: one :class:`BatchWorker` in this process (``openear backfill --engine local``);
- :class:`RayEngine`: a pool of Ray actors, one :class:`BatchWorker` each, models loaded once per actor
  (``--engine ray [--address ADDR]``).

A worker guards and enriches a batch and returns, per post, the guard's rejection or the guarded post with its
labels and its MinHash signature. The driver keeps ``2 x workers`` batches in flight and takes results back in
input order: it assigns near-duplicate clusters (the one stateful enricher, so clusters are the same as in one
process), then writes the batch with its cursor mark in one transaction. A batch is kept in the driver until it
is written; if its worker dies (a killed process, a lost node, no answer within ``batch_timeout``) the batch is
sent to another worker (the dead actor is restarted by Ray). Guard and enrichers are deterministic and writes
are idempotent, so a re-sent batch stores exactly what the first would have: nothing lost, nothing twice.

The pseudonym key reaches each actor once, as its constructor's argument wrapped in :class:`_Key`, whose
``repr`` shows nothing: it is in no task's arguments and never printed or logged. Batches of normalised posts
still hold authors' identities until the worker's guard has run: object spilling is off in a local Ray, and
``docs/deploy.md`` says how to keep it so on a cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from datasketch import MinHash

from openear.enrich import Enrichment
from openear.enrich.dedupe import SCHEME, Deduper
from openear.enrich.sentiment import DEFAULT_MODE
from openear.errors import ConfigError, OpenearError
from openear.guard import Guard, load_key
from openear.models import EnrichedPost, Label, Post, Rejection, RunStats
from openear.pipeline import (
    DEDUPE_WINDOW,
    DEFAULT_BATCH,
    Normaliser,
    Progress,
    Stream,
    batches,
    count_rejection,
    cutoff_for,
    recorded_run,
    store_batch,
    store_key,
)
from openear.settings import Settings, SourceSpec
from openear.store import Store

log = logging.getLogger("openear.distributed")

ENGINES = ("local", "ray")
MAX_TRIES = 4  # sends of one batch before the run fails
BATCH_TIMEOUT = 600.0  # seconds a worker may take for one batch before it is presumed hung


class EngineError(OpenearError):
    """The engine could not process a batch (every worker it was sent to died or hung)."""


# ------------------------------------------------------------------------------------------------------------
# The worker: guard + enrich one batch


@dataclass(frozen=True, slots=True)
class Outcome:
    """A worker's answer for one post that passed the guard: everything but its cluster."""

    fields: tuple[Any, ...]  # GuardedPost's fields, in order, without the seal (Guard.ship)
    mac: bytes  # the worker guard's MAC over them: the driver's guard seals them again only if it verifies
    labels: tuple[Label, ...]
    lang: str
    sentiment: str | None
    category: str | None
    content_hash: str
    digest: str  # exact-duplicate digest of the normalised text
    signature: bytes | None  # MinHash hash values (None for texts too short for near-duplicates)


class _Signatures:
    """Stands in for the deduper inside a worker: computes each post's signature, leaves clustering to the driver."""

    def __init__(self) -> None:
        self._deduper = Deduper()

    def assign(self, post_key: str, text: str) -> tuple[str, bytes | None]:
        digest, m = self._deduper.signature(text)
        return digest, (m.hashvalues.astype(np.uint64).tobytes() if m is not None else None)


class BatchWorker:
    """The guard and the enrichers, loaded once; :meth:`process` handles one batch of normalised posts."""

    def __init__(self, key: bytes, taxonomy: tuple[str, str] | None = None, mode: str | None = None,
                 trained: tuple[str, bytes] | None = None) -> None:
        from openear.enrich.classify import Classifier
        from openear.enrich.trained import TrainedCategories

        self.guard = Guard(key)
        model = TrainedCategories.from_portable(*trained, where="the active category model") if trained else None
        self.enrichment = Enrichment(None, mode or DEFAULT_MODE, trained=model)
        if taxonomy is not None:  # (TOML text, where it came from): workers on other machines lack the file
            import tomllib

            self.enrichment.classifier = Classifier.from_dict(tomllib.loads(taxonomy[0]), source=taxonomy[1])
            if model is not None and (self.enrichment.mode != "rules" or not model.needs_encoder):
                self.enrichment.classifier.attach(model)
        self.enrichment.deduper = _Signatures()  # type: ignore[assignment]
        self.enrichment.sentiment.predict(["warm up"], ["en"])  # load the sentence encoder now, not in batch 1

    def __repr__(self) -> str:
        return "BatchWorker(key=***)"

    def process(self, visibility: str, posts: Sequence[Post]) -> list[Rejection | Outcome]:
        verdicts = [self.guard.check(p, visibility) for p in posts]
        guarded = [v.post for v in verdicts if v.post is not None]
        enriched = iter(self.enrichment.enrich(guarded))
        out: list[Rejection | Outcome] = []
        for v in verdicts:
            if v.rejection is not None:
                out.append(v.rejection)
                continue
            e = next(enriched)
            fields, mac = self.guard.ship(e.post)
            out.append(
                Outcome(
                    fields,
                    mac,
                    e.labels,
                    e.lang,
                    e.sentiment,
                    e.category,
                    e.content_hash,
                    e.cluster_key or "",
                    e.minhash,
                )
            )
        return out

    def pid(self) -> int:
        return os.getpid()


class _ClusterDeduper(Deduper):
    """The driver's deduper: assigns clusters in input order from signatures the workers computed."""

    _given: tuple[str, MinHash | None] | None = None

    def assign_signed(self, post_key: str, digest: str, signature: bytes | None) -> tuple[str, bytes | None]:
        m = None
        if signature is not None:
            hv = np.frombuffer(signature, dtype=np.uint64)
            m = MinHash(
                num_perm=self.num_perm, seed=1, hashvalues=hv, permutations=self._template.permutations, scheme=SCHEME
            )
        self._given = (digest, m)
        try:
            return self.assign(post_key, "")
        finally:
            self._given = None

    def signature(self, text: str) -> tuple[str, MinHash | None]:
        return self._given if self._given is not None else super().signature(text)


# ------------------------------------------------------------------------------------------------------------
# Engines


def _taxonomy(settings: Settings) -> tuple[str, str] | None:
    """The operator's taxonomy as (text, path), checked here so a bad file fails before any worker starts."""
    from openear.enrich.classify import Classifier

    path = settings.taxonomy_path
    if not path.exists():
        return None
    Classifier.load(path)
    return path.read_text(encoding="utf-8"), str(path)


def _trained(settings: Settings, store: Store | None) -> tuple[str, bytes] | None:
    """The store's active analyst-trained category model (``openear train``), portable to workers elsewhere."""
    from openear.train import active_model

    model = active_model(store, settings.home) if store is not None else None
    return model.portable() if model is not None else None


@dataclass
class _Pending:
    """A batch sent to a worker and not yet written."""

    seq: int
    visibility: str
    posts: list[Post]
    ref: Any = None  # the engine's handle on the result
    worker: int = -1
    tries: int = 0


class LocalEngine:
    """One worker in this process: each batch is processed when it is sent."""

    workers = 1

    def __init__(self, settings: Settings, *, mode: str | None = None, store: Store | None = None) -> None:
        key = store_key(settings, store) if store is not None else load_key(settings.key_path)
        self.worker = BatchWorker(key, _taxonomy(settings), mode, _trained(settings, store))
        self.guard = self.worker.guard  # checks and seals what the worker shipped (the same process here)
        self.resubmitted = 0

    def submit(self, batch: _Pending) -> None:
        batch.ref = self.worker.process(batch.visibility, batch.posts)

    def result(self, batch: _Pending) -> list[Rejection | Outcome]:
        return batch.ref

    def close(self) -> None:
        pass


class _Key:
    """The pseudonym key on its way to the actors: its ``repr`` shows nothing."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "_Key(***)"


class _RayWorker:
    """The Ray actor: a :class:`BatchWorker` (its models loaded once, in the constructor)."""

    def __init__(self, key: _Key, taxonomy: tuple[str, str] | None, mode: str | None,
                 trained: tuple[str, bytes] | None = None) -> None:
        self._worker = BatchWorker(key.reveal(), taxonomy, mode, trained)

    def __repr__(self) -> str:
        return "openear-worker"

    def ready(self) -> int:
        return os.getpid()

    def process(self, visibility: str, posts: Sequence[Post]) -> list[Rejection | Outcome]:
        return self._worker.process(visibility, posts)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'openear[ray]'") from None
    return ray


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse at once an ``--address`` where nothing listens (Ray itself retries for minutes before it gives up)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected HOST:PORT as `ray start --head` prints it, or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"--address {address}: nothing answers there ({exc.strerror or exc}); start the head "
                          "with `ray start --head` or check the address it printed") from None


def _connect_failed(address: str, exc: Exception) -> str:
    """One line for a Ray cluster that answered but would not take this driver."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    hint = ""
    if "token" in str(exc).lower() or "auth" in str(exc).lower():
        hint = ("; the cluster wants its token: set RAY_AUTH_MODE=token and give this machine the head's token "
                "(docs/deploy.md, Ray)")
    return f"--address {address}: Ray refused the connection: {first}{hint}"


class RayEngine:
    """A pool of ``workers`` Ray actors (one CPU each), shared by every pipeline of this process.

    ``address`` is a running cluster's (``ray start --head`` prints it; ``auto`` finds a local one); without it a
    private local Ray starts with ``workers`` CPUs and stops on :meth:`close`. If this process already called
    ``ray.init`` (tests), that connection is used.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        address: str | None = None,
        workers: int | None = None,
        mode: str | None = None,
        store: Store | None = None,
        batch_timeout: float = BATCH_TIMEOUT,
        start_timeout: float = 600.0,
    ) -> None:
        ray = _ray()
        self._ray = ray
        taxonomy = _taxonomy(settings)
        key = store_key(settings, store) if store is not None else load_key(settings.key_path)
        self.guard = Guard(key)  # checks and seals what the workers ship back
        if workers is not None and workers < 1:
            raise ConfigError("--workers: must be at least 1")
        self._owns_ray = False
        if address:
            _reachable(address)
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
                "namespace": "openear",
            }
            if address:
                try:
                    ray.init(address=address, **kwargs)
                except (ConnectionError, RuntimeError) as exc:
                    raise ConfigError(_connect_failed(address, exc)) from None
            else:
                ray.init(
                    address="local",
                    num_cpus=workers or os.cpu_count() or 1,
                    _system_config={"automatic_object_spilling_enabled": False},
                    **kwargs,
                )
            self._owns_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 0))
        self.workers = workers or max(1, cpus)
        if self.workers > cpus:
            self.close()
            raise ConfigError(f"--workers {self.workers}: the Ray cluster has {cpus} CPU(s)")
        self.batch_timeout = batch_timeout
        self._actor_cls = ray.remote(num_cpus=1, max_restarts=4, max_task_retries=0)(_RayWorker)
        self._args = (_Key(key), taxonomy, mode, _trained(settings, store))
        self.actors = [self._actor_cls.remote(*self._args) for _ in range(self.workers)]
        self._load = [0] * self.workers
        self._down: dict[int, Any] = {}  # worker -> a pending ready() probe, for workers that died or hung
        self._lock = threading.Lock()
        self.resubmitted = 0
        try:  # every actor loads its models once, now
            ray.get([a.ready.remote() for a in self.actors], timeout=start_timeout)
        except Exception:
            self.close()
            raise

    def pids(self, timeout: float = 300.0) -> list[int]:
        """The actors' process ids, waiting for any that is restarting (then the new process's). Every actor has
        then answered, so none is kept from new batches as down: the next batches are spread over all of them."""
        from ray.exceptions import ActorUnavailableError

        deadline = time.monotonic() + timeout
        while True:
            try:
                pids = list(self._ray.get([a.ready.remote() for a in self.actors], timeout=timeout))
            except ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                continue
            with self._lock:
                self._down.clear()
            return pids

    def submit(self, batch: _Pending, avoid: int = -1) -> None:
        with self._lock:
            self._check_down()
            up = [i for i in range(self.workers) if i not in self._down] or list(range(self.workers))
            order = sorted(up, key=lambda i: (i == avoid, self._load[i], i))
            batch.worker = order[0]
            self._load[batch.worker] += 1
        batch.tries += 1
        batch.ref = self.actors[batch.worker].process.remote(batch.visibility, batch.posts)

    def _check_down(self) -> None:
        """Forget the workers that answer again (restarted by Ray); probe again those still down."""
        for i, probe in list(self._down.items()):
            ready, _ = self._ray.wait([probe], timeout=0)
            if ready:
                try:
                    self._ray.get(probe)
                    del self._down[i]
                except Exception:  # still restarting, or gone for good
                    self._down[i] = self.actors[i].ready.remote()

    def result(self, batch: _Pending) -> list[Rejection | Outcome]:
        from ray.exceptions import GetTimeoutError, ObjectLostError, RayActorError, WorkerCrashedError

        while True:
            try:
                try:
                    return self._ray.get(batch.ref, timeout=self.batch_timeout)
                finally:
                    with self._lock:
                        self._load[batch.worker] -= 1
            except (RayActorError, WorkerCrashedError, ObjectLostError, GetTimeoutError) as exc:
                why = "no answer" if isinstance(exc, GetTimeoutError) else type(exc).__name__
                if isinstance(exc, GetTimeoutError):  # presumed hung: restart it
                    self._ray.kill(self.actors[batch.worker], no_restart=False)
                with self._lock:  # no new batches for it until it answers again
                    if batch.worker not in self._down:
                        self._down[batch.worker] = self.actors[batch.worker].ready.remote()
                if batch.tries >= MAX_TRIES:
                    raise EngineError(f"batch {batch.seq}: {why} from {batch.tries} worker(s); giving up") from None
                log.warning("batch %d: worker %d lost (%s); sending it again", batch.seq, batch.worker, why)
                self.resubmitted += 1
                self.submit(batch, avoid=batch.worker)

    def close(self) -> None:
        for a in getattr(self, "actors", []):
            with contextlib.suppress(Exception):  # already gone
                self._ray.kill(a, no_restart=True)
        self.actors = []
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()


Engine = LocalEngine | RayEngine


def make_engine(
    settings: Settings, engine: str, *, address: str | None = None, workers: int | None = None,
    mode: str | None = None, store: Store | None = None,
) -> Engine:
    """The engine called ``engine`` (``local`` or ``ray``); its workers use ``store``'s active category model and
    the sentiment ``mode`` (default: the workspace's ``sentiment_mode``)."""
    mode = mode or settings.sentiment_mode
    if engine == "local":
        if address:
            raise ConfigError("--address: only with --engine ray")
        return LocalEngine(settings, mode=mode, store=store)
    if engine == "ray":
        return RayEngine(settings, address=address, workers=workers, mode=mode, store=store)
    raise ConfigError(f"--engine: must be one of {', '.join(ENGINES)}, not {engine!r}")


# ------------------------------------------------------------------------------------------------------------
# The driver


@dataclass
class _Batch:
    """A batch of :meth:`BatchPipeline.run` (see :func:`openear.pipeline.batches`): posts for a worker."""

    posts: list[Post] = field(default_factory=list)
    deletions: dict[str, None] = field(default_factory=dict)
    cancelled: set[int] = field(default_factory=set)  # positions of posts a later deletion in the batch undid
    read: int = 0
    cursor: tuple[str, str] | None = None
    sent: _Pending | None = None

    def __len__(self) -> int:
        return len(self.posts) - len(self.cancelled) + len(self.deletions)

    def add(self, post: Post) -> None:
        self.posts.append(post)

    def delete(self, external_id: str) -> None:
        self.deletions[external_id] = None
        self.cancelled.update(i for i, p in enumerate(self.posts) if p.external_id == external_id)


class BatchPipeline:
    """A pipeline whose guard and enrichers run on an engine's workers; this process normalises and writes.

    Same batches, cursor marks and deletions as :class:`openear.pipeline.Pipeline`, and the same results.
    """

    def __init__(
        self,
        store: Store,
        engine: Engine,
        *,
        batch_size: int = DEFAULT_BATCH,
        after_run: Callable[[RunStats], None] | None = None,
        retention: timedelta | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.batch_size = batch_size
        self.after_run = after_run  # the triage pass after a run that stored posts, as Pipeline.after_run
        self.retention = retention  # as Pipeline.retention: older posts are dropped when read
        self.deduper = _ClusterDeduper()
        self.deduper.load(store.recent_signatures(datetime.now(UTC) - DEDUPE_WINDOW))
        self._seq = 0

    def run(
        self,
        spec: SourceSpec,
        items: Stream,
        normalise: Normaliser,
        *,
        kind: str = "import",
        progress: Progress | None = None,
        on_deleted: Callable[[int], None] | None = None,
        cursor: str | None = None,
    ) -> tuple[int, RunStats]:
        """Process ``items`` from one source; returns ``(run_id, stats)``. Marks go to ``cursor`` (default: the
        source's own cursor)."""
        window: deque[_Batch] = deque()

        def send(b: _Batch, *, final: bool = False) -> None:
            if not b.posts and not b.deletions and not (final and b.cursor):
                if progress and b.read:
                    window.append(b)  # nothing to write; its progress is reported in turn
                return
            if b.posts:
                self._seq += 1
                b.sent = _Pending(self._seq, spec.visibility, b.posts)
                self.engine.submit(b.sent)
            window.append(b)
            while len(window) > 2 * self.engine.workers:
                self._write(run_id, spec, window.popleft(), stats, progress, on_deleted)

        with recorded_run(self.store, spec, kind) as (run_id, stats):
            cutoff = cutoff_for(self.retention)
            for batch, mark, final in batches(items, normalise, stats, self.batch_size, _Batch, cursor or spec.name,
                                              cutoff):
                batch.cursor = mark
                send(batch, final=final)
            while window:
                self._write(run_id, spec, window.popleft(), stats, progress, on_deleted)
        if self.after_run is not None and stats.stored:
            self.after_run(stats)
        return run_id, stats

    def _write(
        self,
        run_id: int,
        spec: SourceSpec,
        b: _Batch,
        stats: RunStats,
        progress: Progress | None,
        on_deleted: Callable[[int], None] | None,
    ) -> None:
        outcomes = self.engine.result(b.sent) if b.sent is not None else []
        enriched: list[EnrichedPost] = []
        rejections: list[Rejection] = []
        for i, o in enumerate(outcomes):
            if isinstance(o, Rejection):
                rejections.append(o)
                count_rejection(stats, o)
                continue
            post = self.engine.guard.receive(o.fields, o.mac)
            if post.scrubbed:
                stats.scrubbed += 1
            if i in b.cancelled:  # the stream deleted it after sending it: the deletion wins
                continue
            cluster, minhash = self.deduper.assign_signed(f"{post.source}\x1f{post.external_id}", o.digest, o.signature)
            enriched.append(
                EnrichedPost(post, o.labels, o.lang, o.sentiment, o.category, o.content_hash, cluster, minhash)
            )
        if enriched or rejections or b.deletions or b.cursor:
            store_batch(self.store, run_id, spec.name, enriched, rejections, b.cursor, b.deletions, stats, on_deleted)
        if progress and b.read:
            progress(b.read)


def pipeline_factory(
    store: Store, engine: Engine, after_run: Callable[[RunStats], None] | None = None,
    retention: timedelta | None = None,
) -> Callable[[int], BatchPipeline]:
    """``batch_size -> pipeline`` for :class:`openear.collector.Collector`: every source shares the engine."""
    return lambda batch_size: BatchPipeline(store, engine, batch_size=batch_size, after_run=after_run,
                                            retention=retention)
