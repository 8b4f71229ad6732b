"""Cross-validated category figures: the taxonomy rules, a model on sentence embeddings, and the two combined.

1. ``driver-feedback/dev.jsonl`` (164 items): 5-fold CV, folds stratified by ``primary`` (seed 0). In each fold a
   one-vs-rest logistic regression on USE-multilingual embeddings (+ a news flag) is fitted on the other four folds;
   the rules need no fitting. Prints the multi-label macro-F1 over the non-protected categories (the definition of
   ``openear eval``'s ``category_macro_f1``), pooled over the five held-out folds and as the mean of the per-fold
   values, for: the rules alone, the model alone, and rules + model (union of the labels).
2. ``--maalej``: Maalej et al. app reviews (Bug, Feature, UserExperience, Rating), stratified 10-fold CV over the
   3,356 distinct reviews (title + comment), one-vs-rest on embeddings + hashed n-grams, realistic (unbalanced)
   negatives; per-type precision, recall and F1.

Nothing is written. Usage: ``nice -n 19 .venv/bin/python scripts/cv_categories.py [--data DIR] [--maalej]``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from openear.enrich.classify import Classifier  # noqa: E402
from openear.enrich.sentiment import FeatureParams, Featuriser, SentenceEncoder  # noqa: E402
from openear.evaluate import PROTECTED  # noqa: E402

THRESHOLDS = (0.5, 0.7, 0.9)


def macro_f1(gold: list[set[str]], pred: list[set[str]], keys: list[str]) -> float:
    scores = []
    for c in keys:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if c in g and c in p)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if c not in g and c in p)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if c in g and c not in p)
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def driver_feedback(data: Path, encoder: SentenceEncoder) -> None:
    items = [json.loads(line) for line in (data / "driver-feedback" / "dev.jsonl").read_text("utf-8").splitlines()
             if line.strip()]
    classifier = Classifier.load(None)
    texts = [f"{i['title']}. {i['text']}" if i.get("title") else i["text"] for i in items]
    gold = [set(i["categories"]) for i in items]
    keys = sorted({c for g in gold for c in g if c not in PROTECTED})
    rules = [set(classifier.classify(i["text"], title=i.get("title"), kind=i["kind"], lang=i["lang"]).categories)
             for i in items]
    x = np.hstack([encoder.encode(texts), np.array([[1.0 if i["kind"] == "news" else 0.0] for i in items])])
    probs = np.zeros((len(items), len(keys)))
    fold_of = np.zeros(len(items), dtype=int)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    for f, (train, test) in enumerate(folds.split(x, [i["primary"] for i in items])):
        fold_of[test] = f
        for j, c in enumerate(keys):
            y = np.array([c in gold[k] for k in train])
            if y.all() or not y.any():
                continue
            lr = LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000).fit(x[train], y)
            probs[test, j] = lr.predict_proba(x[test])[:, 1]

    def above(threshold: float) -> list[set[str]]:
        return [{c for j, c in enumerate(keys) if probs[k, j] >= threshold} for k in range(len(items))]

    systems: dict[str, list[set[str]]] = {"rules": rules, "model (p >= 0.5)": above(0.5)}
    for threshold in THRESHOLDS:
        systems[f"rules + model (p >= {threshold})"] = [r | m for r, m in zip(rules, above(threshold), strict=True)]
    print(f"driver-feedback dev ({len(items)} items, {len(keys)} non-protected categories), 5-fold CV macro-F1 "
          "(the thresholds are a sweep, not tuned: read the combination rows as one experiment):")
    for name, pred in systems.items():
        per_fold = [macro_f1([gold[k] for k in range(len(items)) if fold_of[k] == f],
                             [pred[k] for k in range(len(items)) if fold_of[k] == f], keys) for f in range(5)]
        print(f"  {name:<28} pooled {macro_f1(gold, pred, keys):.3f}   per-fold mean {np.mean(per_fold):.3f} "
              f"(sd {np.std(per_fold):.3f})")


def _read_maalej(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(re.sub(r",\s*\]\s*$", "]", path.read_text(encoding="utf-8"))))


def maalej(data: Path, encoder: SentenceEncoder) -> None:
    types = ("Bug", "Feature", "UserExperience", "Rating")
    reviews: dict[tuple[str, str, str], dict[str, Any]] = {}
    for t in types:
        for r in _read_maalej(data / "maalej-app-reviews" / f"{t}.json"):
            key = (str(r.get("dataSource", "")).casefold(), str(r.get("reviewId", "")), str(r.get("comment", "")))
            entry = reviews.setdefault(key, {"text": f"{r.get('title') or ''}. {r.get('comment', '')}".strip(". "),
                                             "labels": set()})
            entry["labels"].add(t)
    rows = list(reviews.values())
    texts = [r["text"] for r in rows]
    dense = sparse.csr_matrix(encoder.encode(texts))
    hashed = Featuriser(FeatureParams(word_features=2**16, char_features=2**15)).transform(texts, ["en"] * len(rows))
    x = sparse.hstack([dense, hashed], format="csr")
    print(f"Maalej app reviews: {len(rows)} distinct reviews, stratified 10-fold CV, one-vs-rest, unbalanced:")
    f1s = []
    for t in types:
        y = np.array([t in r["labels"] for r in rows])
        pred = np.zeros(len(rows), dtype=bool)
        for train, test in StratifiedKFold(n_splits=10, shuffle=True, random_state=0).split(x, y):
            lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000).fit(x[train], y[train])
            pred[test] = lr.predict(x[test])
        tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
        precision, recall = tp / max(1, tp + fp), tp / max(1, tp + fn)
        f1 = 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)
        f1s.append(f1)
        print(f"  {t:<15} P {precision:.3f}  R {recall:.3f}  F1 {f1:.3f}  ({int(y.sum())} positives)")
    print(f"  macro-F1 {np.mean(f1s):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data")
    ap.add_argument("--maalej", action="store_true", help="also the Maalej app-review types (10-fold CV)")
    args = ap.parse_args()
    encoder = SentenceEncoder.load()
    driver_feedback(args.data, encoder)
    if args.maalej:
        maalej(args.data, encoder)


if __name__ == "__main__":
    main()
