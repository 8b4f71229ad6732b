"""Train openear's bilingual sentiment baseline and write it to ``src/openear/data/sentiment/``.

Data (read from ``../shared/data`` next to the repository, or ``--data``):
- TweetEval sentiment, English: ``train_reconstructed/train_text.txt`` + ``train_labels.txt`` (rebuilt from
  SemEval-2017 gold; see its PROVENANCE.md; the official labels-only file has a different line order), official
  val and test;
- XLM-T/UMSAB Spanish: train, val, test (files have no trailing newline).

C and the Spanish sample weight are chosen on the two validation sets; the final model is refitted on train only,
so the test figures stay honest. Prints TweetEval test macro-recall and UMSAB test macro-F1 and records them in
``metadata.json``. Usage: ``.venv/bin/python scripts/train_sentiment.py [--data DIR] [--quick]``.

This is the ``rules`` mode's sentiment model, and the ``fast`` mode mixes it in: after retraining it (with a new
``VERSION``), retrain the fast model too (``scripts/train_sentiment_fast.py``), whose metadata names this one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, recall_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from openear.enrich.sentiment import LABELS, FeatureParams, Featuriser, SentimentModel  # noqa: E402

OUT = ROOT / "src" / "openear" / "data" / "sentiment"
VERSION = "1"


def read_lines(path: Path) -> list[str]:
    """Rows of a one-item-per-line file, tolerating a missing trailing newline; blank rows kept as ''."""
    rows = path.read_text(encoding="utf-8").split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    return rows


def load_split(text: Path, labels: Path) -> tuple[list[str], np.ndarray]:
    xs, ys = read_lines(text), [int(v) for v in read_lines(labels)]
    if len(xs) != len(ys):
        raise SystemExit(f"{text}: {len(xs)} texts but {labels}: {len(ys)} labels")
    return xs, np.asarray(ys)


def fit(x: sparse.csr_matrix, y: np.ndarray, w: np.ndarray, c: float) -> LogisticRegression:
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, solver="lbfgs", tol=1e-4)
    model.fit(x, y, sample_weight=w)
    return model


def scores(model: LogisticRegression, x: sparse.csr_matrix, y: np.ndarray) -> tuple[float, float]:
    pred = model.predict(x)
    return (float(recall_score(y, pred, average="macro")), float(f1_score(y, pred, average="macro")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data")
    ap.add_argument("--quick", action="store_true", help="skip the C / weight search")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    te, es = args.data / "tweeteval-sentiment", args.data / "xlmt-umsab-spanish"
    if not te.is_dir() or not es.is_dir():
        raise SystemExit(f"{args.data}: tweeteval-sentiment/ and xlmt-umsab-spanish/ not found")

    rebuilt = te / "train_reconstructed"
    te_train = load_split(rebuilt / "train_text.txt", rebuilt / "train_labels.txt")
    te_val = load_split(te / "val_text.txt", te / "val_labels.txt")
    te_test = load_split(te / "test_text.txt", te / "test_labels.txt")
    es_train = load_split(es / "train_text.txt", es / "train_labels.txt")
    es_val = load_split(es / "val_text.txt", es / "val_labels.txt")
    es_test = load_split(es / "test_text.txt", es / "test_labels.txt")

    params = FeatureParams()
    feat = Featuriser(params)

    def featurise(split: tuple[list[str], np.ndarray], lang: str) -> sparse.csr_matrix:
        return feat.transform(split[0], [lang] * len(split[0]))

    t0 = time.perf_counter()
    x_te, x_es = featurise(te_train, "en"), featurise(es_train, "es")
    xv_te, xv_es = featurise(te_val, "en"), featurise(es_val, "es")
    xt_te, xt_es = featurise(te_test, "en"), featurise(es_test, "es")
    print(f"featurised in {time.perf_counter() - t0:.1f}s", flush=True)
    x_train = sparse.vstack([x_te, x_es], format="csr")
    y_train = np.concatenate([te_train[1], es_train[1]])

    grid = [(1.0, 8.0)] if args.quick else [(c, w) for c in (0.5, 1.0, 2.0) for w in (4.0, 8.0)]
    best: tuple[float, float, float] | None = None
    for c, w_es in grid:
        weights = np.concatenate([np.ones(len(te_train[1])), np.full(len(es_train[1]), w_es)])
        t0 = time.perf_counter()
        model = fit(x_train, y_train, weights, c)
        rec_en, _ = scores(model, xv_te, te_val[1])
        _, f1_es = scores(model, xv_es, es_val[1])
        objective = (rec_en + f1_es) / 2
        print(f"C={c} w_es={w_es}: TweetEval val macro-recall {rec_en:.3f}, UMSAB val macro-F1 {f1_es:.3f} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)
        if best is None or objective > best[0]:
            best = (objective, c, w_es)
    assert best is not None
    _, c, w_es = best
    weights = np.concatenate([np.ones(len(te_train[1])), np.full(len(es_train[1]), w_es)])
    model = fit(x_train, y_train, weights, c)
    assert list(model.classes_) == [0, 1, 2]
    te_rec, te_f1 = scores(model, xt_te, te_test[1])
    es_rec, es_f1 = scores(model, xt_es, es_test[1])
    val_rec, _ = scores(model, xv_te, te_val[1])
    _, val_f1 = scores(model, xv_es, es_val[1])
    print(f"chosen C={c} w_es={w_es}")
    print(f"TweetEval test macro-recall: {100 * te_rec:.1f} (macro-F1 {100 * te_f1:.1f})")
    print(f"UMSAB Spanish test macro-F1: {100 * es_f1:.1f} (macro-recall {100 * es_rec:.1f})")

    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "model.npz", coef=model.coef_.astype(np.float32),
                        intercept=model.intercept_.astype(np.float32))
    meta = {
        "name": SentimentModel.name,
        "version": VERSION,
        "labels": list(LABELS),
        "features": params.as_dict(),
        "model": {"type": "LogisticRegression", "C": c, "class_weight": "balanced", "spanish_sample_weight": w_es},
        "training_data": [
            "TweetEval sentiment, train reconstructed from SemEval-2017 GOLD (45,555 tweets, English)",
            "XLM-T/UMSAB Spanish train (1,839 tweets)",
        ],
        "figures": {
            "tweeteval_test_macro_recall": round(100 * te_rec, 2),
            "tweeteval_test_macro_f1": round(100 * te_f1, 2),
            "tweeteval_val_macro_recall": round(100 * val_rec, 2),
            "umsab_es_test_macro_f1": round(100 * es_f1, 2),
            "umsab_es_test_macro_recall": round(100 * es_rec, 2),
            "umsab_es_val_macro_f1": round(100 * val_f1, 2),
        },
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sklearn_version": __import__("sklearn").__version__,
    }
    (args.out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    size = (args.out / "model.npz").stat().st_size
    print(f"wrote {args.out} (model.npz {size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
