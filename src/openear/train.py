"""``openear train``: fit a category model from analysts' labels, measure it by cross-validation, version it.

Examples come from the store (posts whose primary category an analyst set: labels by ``analyst@...``) or from a
labelled JSON Lines file in the ``openear eval`` format (``categories`` and/or ``primary``). Every class needs at
least :data:`MIN_EXAMPLES` examples; protected topics are never learnt (the guard withholds those posts).

Models are saved under the workspace's ``models/`` folder as ``categories-vN/`` (plain JSON and ``.npz``) and
recorded in the ``models`` table (version, data hash, cross-validated figures, active flag). Only the active model
takes part in classification (:func:`active_model`); activation and rollback are audited.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import OperationalError, ProgrammingError

from openear import audit
from openear.enrich.trained import FEATURES, Example, TfidfBlock, TrainedCategories, _tagged, model_text
from openear.errors import ConfigError, OpenearError
from openear.evaluate import PROTECTED, read_items
from openear.store import Store, utcnow
from openear.store.schema import labels, models, posts

__all__ = [
    "MIN_EXAMPLES",
    "TooFewExamples",
    "TrainResult",
    "activate",
    "active_model",
    "examples_from_file",
    "examples_from_store",
    "list_models",
    "models_dir",
    "train",
]

log = logging.getLogger(__name__)
MIN_EXAMPLES = 10
KIND = "categories"
# Inverse regularisation of each class's logistic regression, by features (5-fold CV on driver-feedback dev;
# the n-gram blocks fit several times faster with a smaller C, at no loss there).
C = {"embeddings": 16.0, "tfidf": 4.0, "both": 4.0}


class TooFewExamples(OpenearError):
    """Some classes have fewer than :data:`MIN_EXAMPLES` labelled examples."""


def models_dir(home: Path) -> Path:
    return home / "models"


# -- examples -----------------------------------------------------------------------------------------------------
def examples_from_store(conn: Connection, allowed: set[str] | None = None) -> list[Example]:
    """Posts whose primary category an analyst set (the latest override wins), oldest first."""
    q = (
        select(posts.c.id, posts.c.text, posts.c.title, posts.c.kind, posts.c.lang, labels.c.value)
        .join(labels, labels.c.post_id == posts.c.id)
        .where(labels.c.name == "primary", labels.c.enricher.like("analyst@%"))
        .order_by(posts.c.id, labels.c.id)
    )
    found: dict[int, Example] = {}
    for pid, text, title, kind, lang, value in conn.execute(q):
        if value in PROTECTED or (allowed is not None and value not in allowed):
            continue
        found[pid] = Example(model_text(text, title), kind, lang or "", (value,), value)
    return list(found.values())


def examples_from_file(path: Path, known: set[str] | None = None) -> list[Example]:
    """Labelled lines of an ``openear eval`` file: ``categories`` (multi-label) or else ``primary``."""
    out = []
    for item in read_items(path, None if known is None else known | set(PROTECTED)):
        cats = item.categories if item.categories is not None else ((item.primary,) if item.primary else None)
        if cats is None:
            continue
        keep = tuple(c for c in cats if c not in PROTECTED)
        primary = item.primary if item.primary in keep else None
        out.append(Example(model_text(item.text, item.title), item.kind, item.lang or "", keep, primary))
    return out


def data_hash(examples: Sequence[Example]) -> str:
    digest = hashlib.sha256()
    for e in sorted(examples, key=lambda e: (e.text, e.labels)):
        digest.update(json.dumps([e.text, e.kind, e.lang, list(e.labels), e.primary]).encode("utf-8"))
    return digest.hexdigest()


def class_counts(examples: Sequence[Example]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in examples:
        for c in e.labels:
            counts[c] = counts.get(c, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def check_examples(examples: Sequence[Example], minimum: int = MIN_EXAMPLES, *, from_store: bool = False) -> list[str]:
    """The classes to learn; :class:`TooFewExamples` naming every class below ``minimum``. ``from_store``: the
    examples are analysts' corrections, so the advice is to correct more posts (there is no file to edit)."""
    counts = class_counts(examples)
    few = {c: n for c, n in counts.items() if n < minimum}
    if from_store:
        advice = "correct the category of more posts of those classes on their pages, or train from a file: --from"
    else:
        advice = "label more posts of those classes, or leave them out of the file"
    if few:
        listed = ", ".join(f"{c} ({n})" for c, n in sorted(few.items()))
        raise TooFewExamples(f"too few labelled examples: {listed}; every class needs at least {minimum} ({advice})")
    if len(counts) < 2:
        where = " among the analysts' category corrections" if from_store else ""
        raise TooFewExamples(f"need at least 2 classes with {minimum} examples each, found {len(counts)}{where}")
    return sorted(counts)


# -- fitting ------------------------------------------------------------------------------------------------------
def _fit(
    examples: Sequence[Example],
    classes: list[str],
    features: str,
    emb: np.ndarray | None,
    *,
    version: int,
    multi_label: bool,
    encoder: dict[str, str] | None,
) -> TrainedCategories:
    from sklearn.linear_model import LogisticRegression

    texts, kinds, langs = [e.text for e in examples], [e.kind for e in examples], [e.lang for e in examples]
    tfidf = None if features == "embeddings" else TfidfBlock.fit(_tagged(texts, kinds, langs))
    dim = (tfidf.size if tfidf else 0) + (emb.shape[1] if emb is not None and features != "tfidf" else 0)
    shell = TrainedCategories(
        version,
        classes,
        features,
        np.zeros((len(classes), dim)),
        np.zeros(len(classes)),
        tfidf,
        multi_label=multi_label,
        encoder=encoder,
    )
    x = shell.featurise(texts, kinds, langs, emb)
    coef, intercept = np.zeros((len(classes), x.shape[1])), np.zeros(len(classes))
    for k, c in enumerate(classes):
        y = np.array([c in e.labels for e in examples], dtype=int)
        lr = LogisticRegression(
            C=C[features], class_weight="balanced", solver="liblinear", dual=features != "embeddings", max_iter=2000
        )  # dual: n-grams outnumber examples
        lr.fit(x, y)
        coef[k], intercept[k] = lr.coef_[0], lr.intercept_[0]
    return TrainedCategories(
        version, classes, features, coef, intercept, tfidf, multi_label=multi_label, encoder=encoder
    )


@dataclass
class TrainResult:
    """What a training run measured and made."""

    model: TrainedCategories
    examples: int
    classes: list[str]
    counts: dict[str, int]
    folds: int
    per_class: dict[str, dict[str, float]]  # class -> precision, recall, f1, support
    macro_f1: float
    confusion: dict[str, dict[str, int]]  # gold primary -> predicted primary -> n
    data_hash: str
    data_source: str
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        return {
            "folds": self.folds,
            "macro_f1": self.macro_f1,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "counts": self.counts,
            **self.extra,
        }


def _strata(examples: Sequence[Example], counts: dict[str, int]) -> list[str]:
    """One stratum per example for the folds: its primary, else its rarest category."""
    return [
        e.primary if e.primary else min(e.labels, key=lambda c: (counts[c], c)) if e.labels else "-" for e in examples
    ]


def train(
    examples: Sequence[Example],
    *,
    version: int,
    features: str = "both",
    data_source: str = "store",
    folds: int = 5,
    classifier: Any = None,
) -> TrainResult:
    """Cross-validate (stratified ``folds``-fold), then fit on every example. Refuses too few examples.

    With ``classifier`` (the taxonomy rules), the folds also measure the rules alone and the rules combined with
    the model (as classification will combine them once it is active): ``extra["rules_macro_f1"]`` and
    ``extra["combined_macro_f1"]`` over the same classes."""
    import time

    from sklearn.model_selection import StratifiedKFold

    if features not in FEATURES:
        raise ConfigError(f"--features: must be one of {', '.join(FEATURES)}, not {features!r}")
    start = time.perf_counter()
    examples = list(examples)
    classes = check_examples(examples, from_store=data_source == "store")
    counts = class_counts(examples)
    multi_label = any(len(e.labels) != 1 for e in examples)
    encoder_files = None
    emb = None
    if features != "tfidf":
        from openear.enrich.sentiment import SentenceEncoder

        encoder_files = SentenceEncoder.installed()
        emb = SentenceEncoder.load(encoder_files).encode([e.text for e in examples]).astype(np.float64)
    strata = _strata(examples, counts)
    stratum_counts = {s: strata.count(s) for s in set(strata)}
    k = max(2, min(folds, min(stratum_counts.values())))
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=0)
    predicted: list[set[str]] = [set() for _ in examples]
    best: list[str] = [""] * len(examples)
    rules_cats: list[Any] = [None] * len(examples)
    rows: list[dict[str, float]] = [{} for _ in examples]
    for train_idx, test_idx in splitter.split(np.zeros(len(examples)), strata):
        tr = [examples[i] for i in train_idx]
        te = [examples[i] for i in test_idx]
        model = _fit(
            tr,
            classes,
            features,
            None if emb is None else emb[train_idx],
            version=version,
            multi_label=multi_label,
            encoder=encoder_files,
        )
        p = model.probabilities(
            [e.text for e in te], [e.kind for e in te], [e.lang for e in te], None if emb is None else emb[test_idx]
        )
        for i, found, row in zip(test_idx, model.predict_sets(p), p, strict=True):
            predicted[i] = found
            best[i] = classes[int(row.argmax())]
            if classifier is not None:
                e = examples[i]
                rules_cats[i] = classifier.classify_rules(e.text, kind=e.kind, lang=e.lang)
                rows[i] = {c: float(v) for c, v in zip(classes, row, strict=True)}
    per_class = _per_class(examples, predicted, classes)
    confusion: dict[str, dict[str, int]] = {}
    for e, b in zip(examples, best, strict=True):
        if e.primary in classes:
            row = confusion.setdefault(e.primary, {})
            row[b] = row.get(b, 0) + 1
    final = _fit(examples, classes, features, emb, version=version, multi_label=multi_label, encoder=encoder_files)
    macro = round(sum(v["f1"] for v in per_class.values()) / len(per_class), 4)
    result = TrainResult(
        final, len(examples), classes, counts, k, per_class, macro, confusion, data_hash(examples), data_source
    )
    final.metadata.update(
        {
            "created_at": utcnow().isoformat(timespec="seconds"),
            "data_hash": result.data_hash,
            "data_source": data_source,
            "n_examples": len(examples),
            "cv": result.metrics(),
        }
    )
    if classifier is not None:
        _choose_combine_threshold(result, classifier, examples, rules_cats, rows)
    result.seconds = round(time.perf_counter() - start, 2)
    return result


COMBINE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _choose_combine_threshold(
    result: TrainResult,
    classifier: Any,
    examples: Sequence[Example],
    rules_cats: list[Any],
    rows: list[dict[str, float]],
) -> None:
    """Pick the probability at which the model's labels join the rules' by the folds' macro F1 of the combination
    (the middle of the best ones when several tie); record it and the rules' own figure."""

    def macro(sets: Sequence[set[str]]) -> float:
        scores = _per_class(examples, sets, result.classes)
        return round(sum(v["f1"] for v in scores.values()) / len(scores), 4)

    model = result.model
    attached = classifier.trained
    found: dict[float, float] = {}
    try:
        classifier.trained = model
        for t in COMBINE_THRESHOLDS:
            model.combine_threshold = t
            found[t] = macro(
                [
                    set(classifier.combine(r, row, kind=e.kind).categories)
                    for e, r, row in zip(examples, rules_cats, rows, strict=True)
                ]
            )
    finally:
        classifier.trained = attached
    top = max(found.values())
    tied = [t for t, f1 in found.items() if f1 >= top - 1e-9]
    model.combine_threshold = tied[len(tied) // 2]
    result.extra.update(
        {
            "rules_macro_f1": macro([set(r.categories) for r in rules_cats]),
            "combined_macro_f1": top,
            "combine_threshold": model.combine_threshold,
        }
    )


def _per_class(
    examples: Sequence[Example], predicted: Sequence[set[str]], classes: list[str]
) -> dict[str, dict[str, float]]:
    per_class: dict[str, dict[str, float]] = {}
    for c in classes:
        tp = sum(1 for e, p in zip(examples, predicted, strict=True) if c in e.labels and c in p)
        fp = sum(1 for e, p in zip(examples, predicted, strict=True) if c not in e.labels and c in p)
        fn = sum(1 for e, p in zip(examples, predicted, strict=True) if c in e.labels and c not in p)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[c] = {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(f1, 4), "support": tp + fn}
    return per_class


# -- the registry -------------------------------------------------------------------------------------------------
def next_version(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(models.c.version), 0))).scalar_one()) + 1


def save(store: Store, home: Path, result: TrainResult, actor: str) -> int:
    """Write the model's files and its registry row (inactive); returns its version."""
    with store.begin() as conn:
        version = next_version(conn)
        result.model.version = version
        result.model.metadata["version"] = version
        rel = f"{KIND}-v{version}"
        target = models_dir(home) / rel
        if target.exists():  # left by a run whose registry row never committed
            shutil.rmtree(target)
        result.model.save(target)
        conn.execute(
            insert(models).values(
                version=version,
                kind=KIND,
                created_at=utcnow(),
                created_by=actor,
                data_hash=result.data_hash,
                data_source=result.data_source,
                n_examples=result.examples,
                classes=json.dumps(result.classes),
                metrics=json.dumps(result.metrics()),
                path=rel,
                active=False,
            )
        )
        audit.record(
            conn,
            actor,
            "model.train",
            f"model:v{version}",
            {"examples": result.examples, "macro_f1": result.macro_f1, "data_hash": result.data_hash},
        )
    return version


def parse_version(value: str) -> int:
    text = value.strip().lower().removeprefix("v")
    if not text.isdigit():
        raise ConfigError(f"model version {value!r}: expected a number such as 3 or v3")
    return int(text)


def activate(store: Store, version: int | None, actor: str) -> None:
    """Make ``version`` the active model (``None``: none, the taxonomy rules alone). Audited."""
    with store.begin() as conn:
        if version is not None:
            row = conn.execute(select(models.c.version).where(models.c.version == version)).first()
            if row is None:
                raise ConfigError(f"no model v{version} (see 'openear train --list')")
        conn.execute(update(models).where(models.c.active.is_(True)).values(active=False))
        if version is not None:
            conn.execute(update(models).where(models.c.version == version).values(active=True, activated_at=utcnow()))
        audit.record(
            conn,
            actor,
            "model.activate" if version is not None else "model.deactivate",
            f"model:v{version}" if version is not None else "model",
        )


def list_models(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(models).order_by(models.c.version.desc())).mappings().all()
    out = []
    for r in rows:
        metrics = json.loads(r["metrics"])
        out.append(
            {
                "version": r["version"],
                "enricher": f"trained@v{r['version']}",
                "created_at": r["created_at"],
                "created_by": r["created_by"],
                "data_hash": r["data_hash"],
                "data_source": r["data_source"],
                "n_examples": r["n_examples"],
                "classes": json.loads(r["classes"]),
                "macro_f1": metrics.get("macro_f1"),
                "active": bool(r["active"]),
                "activated_at": r["activated_at"],
                "path": r["path"],
            }
        )
    return out


def active_model(store: Store | Connection, home: Path) -> TrainedCategories | None:
    """The active category model, loaded from its files; ``None`` when none is active.

    :class:`ConfigError` names the file when the active model's files are missing or broken.
    """
    query = select(models.c.version, models.c.path).where(models.c.active.is_(True))
    try:
        if isinstance(store, Store):
            with store.connect() as conn:
                row = conn.execute(query).first()
        else:
            row = store.execute(query).first()
    except (OperationalError, ProgrammingError):  # a database not migrated to 0008_models yet: no model
        log.warning("no models table (run 'openear init' to migrate): the taxonomy rules alone")
        return None
    if row is None:
        return None
    return _load_cached(str(models_dir(home) / row.path), row.version)


_CACHE: dict[tuple[str, int], TrainedCategories] = {}


def _load_cached(path: str, version: int) -> TrainedCategories:
    key = (path, version)
    if key not in _CACHE:
        model = TrainedCategories.load(Path(path))
        if model.version != version:
            raise ConfigError(f"{path}: holds model v{model.version}, the registry says v{version}")
        _CACHE[key] = model
    return _CACHE[key]


# -- output -------------------------------------------------------------------------------------------------------
def metrics_table(result: TrainResult) -> Table:
    caption = f"model alone: macro F1 {result.macro_f1:.3f}"
    if "combined_macro_f1" in result.extra:
        caption += (
            f"; taxonomy rules alone {result.extra['rules_macro_f1']:.3f}; rules + model (what activating "
            f"gives, model labels from p >= {result.extra['combine_threshold']}) "
            f"{result.extra['combined_macro_f1']:.3f}"
        )
    table = Table(
        title=f"Cross-validated ({result.folds}-fold, stratified) on {result.examples} examples",
        title_justify="left",
        caption=caption,
        caption_justify="left",
    )
    for col, justify in (
        ("class", "left"),
        ("examples", "right"),
        ("precision", "right"),
        ("recall", "right"),
        ("F1", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for c, m in result.per_class.items():
        table.add_row(c, str(result.counts[c]), f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}")
    return table


def confusion_table(result: TrainResult) -> Table:
    classes = result.classes
    table = Table(title="Confusion matrix (primary category: rows true, columns predicted)", title_justify="left")
    table.add_column("true \\ predicted", no_wrap=True)
    for i, _ in enumerate(classes):
        table.add_column(str(i + 1), justify="right", no_wrap=True)
    for i, c in enumerate(classes):
        row = result.confusion.get(c, {})
        cells = [(f"[bold]{row.get(p, 0)}[/]" if p == c else str(row.get(p, 0) or "·")) for p in classes]
        table.add_row(f"{i + 1} {c}", *cells)
    return table


def describe(result: TrainResult) -> dict[str, Any]:
    return {
        "examples": result.examples,
        "classes": result.classes,
        "folds": result.folds,
        "macro_f1": result.macro_f1,
        "per_class": result.per_class,
        "confusion": result.confusion,
        "data_hash": result.data_hash,
        "data_source": result.data_source,
        "seconds": result.seconds,
        "features": result.model.features,
        "multi_label": result.model.multi_label,
        **result.extra,
    }


def when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"
