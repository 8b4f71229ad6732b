"""``openear reenrich``: relabel stored posts with the current enrichers, batch by batch.

For each post created in ``[since, until)`` the current enrichers (the language detector, the taxonomy rules with
the active trained model, the sentiment model of ``mode``) label it again; a post's machine labels of a name
(``lang``, ``category``, ``subcategory``, ``primary``, ``sentiment``) are replaced when their values or enrichers
differ, and its ``lang``/``category``/``sentiment`` columns follow (the dashboard's rollups with them, by trigger).
The language is detected again with the stored one as the hint, so a text too short to tell keeps it, and the
other enrichers of the same run see the new language. Analyst overrides (labels by ``analyst@...``) are never
touched, and the columns they set stay.

Each batch commits on its own with the run's progress (``runs`` row of kind ``reenrich``, the last post id done):
an interrupted run keeps what it did, and the same command again resumes after the last committed batch. A second
run over the same posts with the same enrichers changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from openear.enrich import Enrichment
from openear.settings import Settings
from openear.store import Store, to_aware_utc, to_naive_utc, utcnow
from openear.store.schema import labels, posts, runs

__all__ = ["ONLY", "ReenrichResult", "reenrich"]

ONLY: dict[str, tuple[str, ...]] = {
    "categories": ("category", "subcategory", "primary"),
    "sentiment": ("sentiment",),
    "language": ("lang",),
    "all": ("lang", "category", "subcategory", "primary", "sentiment"),
}
COLUMN = {"lang": "lang", "primary": "category", "sentiment": "sentiment"}  # label name -> the posts column it sets
DEFAULT_BATCH = 200


@dataclass
class ReenrichResult:
    """What one run did: posts looked at, and per label name the posts whose labels changed."""

    run_id: int
    scanned: int = 0
    posts_changed: int = 0
    changed: dict[str, int] = field(default_factory=dict)
    enrichers: list[str] = field(default_factory=list)
    resumed_after: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "scanned": self.scanned,
            "posts_changed": self.posts_changed,
            "changed": dict(self.changed),
            "enrichers": self.enrichers,
            "resumed_after": self.resumed_after,
            "since": to_aware_utc(self.since).isoformat() if self.since else None,  # with its offset, as --json
            "until": to_aware_utc(self.until).isoformat() if self.until else None,
        }


def _enrichers(enrichment: Enrichment, only: str) -> list[str]:
    names = []
    if only in ("language", "all"):
        names.append(enrichment.language.enricher)
    if only in ("categories", "all"):
        names.append(enrichment.classifier.enricher)
        if enrichment.classifier.trained is not None:
            names.append(enrichment.classifier.trained.enricher)
    if only in ("sentiment", "all"):
        names.append(enrichment.sentiment.enricher)
    return names


def _resume_point(conn: Connection, key: str) -> tuple[int, dict[str, Any]] | None:
    """The last unfinished run of the same command and enrichers: (its last post id, its state)."""
    rows = conn.execute(
        select(runs.c.id, runs.c.status, runs.c.stats).where(runs.c.kind == "reenrich").order_by(runs.c.id.desc())
    ).all()
    for _rid, status, stats in rows:
        try:
            state = json.loads(stats or "{}")
        except ValueError:
            continue
        if state.get("key") != key:
            continue
        if status == "ok":
            return None
        return int(state.get("last_id", 0)), state
    return None


def reenrich(
    store: Store,
    settings: Settings,
    *,
    since: datetime,
    until: datetime | None = None,
    since_spec: str | None = None,
    until_spec: str | None = None,
    mode: str = "fast",
    only: str = "all",
    batch_size: int = DEFAULT_BATCH,
    enrichment: Enrichment | None = None,
    on_total: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReenrichResult:
    """Relabel the posts created in ``[since, until)``; see the module's docstring. ``since_spec``/``until_spec``:
    the command's own words (``30d``), which with the enrichers identify a run to resume."""
    from openear.train import active_model

    if only not in ONLY:
        raise ValueError(f"--only: must be one of {', '.join(ONLY)}, not {only!r}")
    if enrichment is None:
        taxonomy = settings.taxonomy_path if settings.taxonomy_path.exists() else None
        enrichment = Enrichment(taxonomy, mode, trained=active_model(store, settings.home))
    enrichers = _enrichers(enrichment, only)
    lo, hi = to_naive_utc(since), to_naive_utc(until) if until is not None else None
    key_src = {
        "since": since_spec or lo.isoformat(),
        "until": until_spec or (hi.isoformat() if hi else None),
        "only": only,
        "enrichers": enrichers,
    }
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:32]
    with store.connect() as conn:
        resume = _resume_point(conn, key)
    last_id = 0
    result_changed: dict[str, int] = {n: 0 for n in ONLY[only]}
    resumed_after = None
    if resume is not None:
        last_id, state = resume
        resumed_after = last_id
        # naive UTC, as the column: a state's times carry their offset (older runs wrote them without)
        lo = to_naive_utc(datetime.fromisoformat(state["since"]))
        hi = to_naive_utc(datetime.fromisoformat(state["until"])) if state.get("until") else None
    with store.begin() as conn:
        run_id = int(
            conn.execute(
                insert(runs).values(kind="reenrich", source=None, started_at=utcnow(), status="running")
            ).inserted_primary_key[0]
        )
    result = ReenrichResult(
        run_id, changed=result_changed, enrichers=enrichers, resumed_after=resumed_after, since=lo, until=hi
    )
    window = posts.c.created_at >= lo if hi is None else and_(posts.c.created_at >= lo, posts.c.created_at < hi)

    def state(status: str) -> None:
        body = {
            "key": key,
            **key_src,
            "since": lo.isoformat(),
            "until": hi.isoformat() if hi else None,
            "last_id": last_id,
            "mode": enrichment.mode,
            **result.as_dict(),
        }
        with store.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(stats=json.dumps(body), status=status, finished_at=utcnow() if status != "running" else None)
            )

    status = "failed"
    try:
        if on_total is not None:
            with store.connect() as conn:
                on_total(
                    int(
                        conn.execute(
                            select(func.count()).select_from(posts).where(window, posts.c.id > last_id)
                        ).scalar_one()
                    )
                )
        while True:
            with store.connect() as conn:
                batch = conn.execute(
                    select(posts.c.id, posts.c.text, posts.c.title, posts.c.kind, posts.c.lang)
                    .where(window, posts.c.id > last_id)
                    .order_by(posts.c.id)
                    .limit(batch_size)
                ).all()
            if not batch:
                break
            new = _labels_for(enrichment, batch, only)
            with store.begin() as conn:
                store._write_lock(conn)
                n_changed = _apply(conn, new, ONLY[only], result.changed)
                last_id = int(batch[-1].id)
                result.scanned += len(batch)
                result.posts_changed += n_changed
                body = {
                    "key": key,
                    **key_src,
                    "since": lo.isoformat(),
                    "until": hi.isoformat() if hi else None,
                    "last_id": last_id,
                    "mode": enrichment.mode,
                    **result.as_dict(),
                }
                conn.execute(update(runs).where(runs.c.id == run_id).values(stats=json.dumps(body)))
            if progress is not None:
                progress(len(batch))
        status = "ok"
    finally:
        state(status if status == "ok" else "partial")
    return result


def _labels_for(enrichment: Enrichment, batch: list[Any], only: str) -> dict[int, list[tuple[str, str, float, str]]]:
    """The current enrichers' labels of each post: ``post id -> [(name, value, score, enricher)]``."""
    texts = [f"{r.title}. {r.text}" if r.title else r.text for r in batch]
    langs = [r.lang or "" for r in batch]
    out: dict[int, list[tuple[str, str, float, str]]] = {int(r.id): [] for r in batch}
    embeddings = None
    if only in ("language", "all"):
        detected = [enrichment.language.detect(text, hint=lang) for text, lang in zip(texts, langs, strict=True)]
        langs = [lang for lang, _ in detected]
        for r, (lang, score) in zip(batch, detected, strict=True):
            out[int(r.id)].append(("lang", lang, score, enrichment.language.enricher))
    if only in ("sentiment", "all"):
        sentiments, embeddings = enrichment._sentiment(texts, langs)
        for r, (value, score) in zip(batch, sentiments, strict=True):
            out[int(r.id)].append(("sentiment", value, score, enrichment.sentiment.enricher))
    if only in ("categories", "all"):
        cats = enrichment.classifier.classify_many(
            [(r.text, r.title, r.kind, lang) for r, lang in zip(batch, langs, strict=True)], embeddings
        )
        for r, c in zip(batch, cats, strict=True):
            out[int(r.id)].extend((lb.name, lb.value, lb.score, lb.enricher) for lb in c.labels)
    return out


def _apply(
    conn: Connection, new: dict[int, list[tuple[str, str, float, str]]], names: tuple[str, ...], changed: dict[str, int]
) -> int:
    """Replace the machine labels that differ; returns how many posts changed. Analyst labels stay."""
    ids = sorted(new)
    old: dict[tuple[int, str], list[tuple[int, str, str]]] = {}
    overridden: set[tuple[int, str]] = set()
    for lid, pid, name, value, enricher in conn.execute(
        select(labels.c.id, labels.c.post_id, labels.c.name, labels.c.value, labels.c.enricher).where(
            labels.c.post_id.in_(ids), labels.c.name.in_(names)
        )
    ):
        if enricher.startswith("analyst@"):
            overridden.add((pid, name))
        else:
            old.setdefault((pid, name), []).append((lid, value, enricher))
    posts_changed = 0
    inserts: list[dict[str, Any]] = []
    delete_ids: list[int] = []
    now = utcnow()
    for pid in ids:
        post_changed = False
        columns: dict[str, Any] = {}
        for name in names:
            fresh = [(v, s, e) for n, v, s, e in new[pid] if n == name]
            before = old.get((pid, name), [])
            if sorted((v, e) for v, _, e in fresh) == sorted((v, e) for _, v, e in before):
                continue
            post_changed = True
            changed[name] = changed.get(name, 0) + 1
            delete_ids.extend(lid for lid, _, _ in before)
            inserts.extend({"post_id": pid, "name": name, "value": v, "score": s, "enricher": e} for v, s, e in fresh)
            if name in COLUMN and (pid, name) not in overridden and fresh:
                columns[COLUMN[name]] = fresh[0][0]
        if post_changed:
            posts_changed += 1
            conn.execute(update(posts).where(posts.c.id == pid).values(updated_at=now, **columns))
    for i in range(0, len(delete_ids), 500):
        conn.execute(labels.delete().where(labels.c.id.in_(delete_ids[i : i + 500])))
    if inserts:
        conn.execute(insert(labels), inserts)
    return posts_changed
