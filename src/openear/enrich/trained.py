"""Analyst-trained category models (``openear train``): tf-idf n-grams and sentence embeddings, one logistic
regression per category (one-vs-rest), saved as plain files and never unpickled.

A model directory holds ``metadata.json`` (version, classes, feature settings, vocabulary, the encoder's pinned file
hashes, cross-validated figures) and ``weights.npz`` (idf, coefficients, intercepts; loaded with
``allow_pickle=False``). Labels it produces carry the enricher ``trained@vN``. The sentence encoder is the one the
fast sentiment mode loads (:class:`openear.enrich.sentiment.SentenceEncoder`, shared within a process).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize

from openear.enrich.sentiment import ENCODER_DIM, SentenceEncoder, normalise
from openear.errors import ConfigError

__all__ = ["FEATURES", "Example", "TrainedCategories", "model_text"]

FEATURES: tuple[str, ...] = ("both", "tfidf", "embeddings")
NAME = "trained"
WORD_NGRAMS = (1, 2)
CHAR_NGRAMS = (2, 5)
MAX_FEATURES = 20_000  # per n-gram block, the most frequent (keeps fitting fast and the files small)
TFIDF_SCALE = 0.35  # the n-gram block's weight next to the (unit-length) sentence embedding
_TOKEN = r"(?u)\b\w\w+\b|[!?]"


@dataclass(frozen=True)
class Example:
    """One labelled post for training: what the model sees, and its categories (``primary`` first when known)."""

    text: str
    kind: str
    lang: str
    labels: tuple[str, ...]
    primary: str | None = None


def model_text(text: str, title: str | None) -> str:
    """The text a category model (and the fast sentiment model) reads for a post."""
    return f"{title}. {text}" if title else text


def _tagged(texts: Sequence[str], kinds: Sequence[str], langs: Sequence[str]) -> list[str]:
    return [
        f"{normalise(t)} xxkind{k} xxlang{(lang or 'xx')[:2]}" for t, k, lang in zip(texts, kinds, langs, strict=True)
    ]


class TfidfBlock:
    """Word and char_wb n-gram tf-idf (sublinear tf, L2 per block) over a fixed vocabulary: no fitted state but
    the vocabulary and idf, so it saves as JSON and arrays."""

    def __init__(
        self, word_vocab: list[str], char_vocab: list[str], word_idf: np.ndarray, char_idf: np.ndarray
    ) -> None:
        if len(word_vocab) != len(word_idf) or len(char_vocab) != len(char_idf):
            raise ConfigError("category model: vocabulary and idf lengths differ")
        self.word_vocab, self.char_vocab = list(word_vocab), list(char_vocab)
        self.word_idf = word_idf.astype(np.float64)
        self.char_idf = char_idf.astype(np.float64)
        self._word = CountVectorizer(
            analyzer="word",
            ngram_range=WORD_NGRAMS,
            token_pattern=_TOKEN,
            lowercase=False,
            vocabulary={t: i for i, t in enumerate(self.word_vocab)},
        )
        self._char = CountVectorizer(
            analyzer="char_wb",
            ngram_range=CHAR_NGRAMS,
            lowercase=False,
            vocabulary={t: i for i, t in enumerate(self.char_vocab)},
        )

    @property
    def size(self) -> int:
        return len(self.word_vocab) + len(self.char_vocab)

    @classmethod
    def fit(cls, tagged: list[str], min_df: int = 2, max_features: int = MAX_FEATURES) -> TfidfBlock:
        word = TfidfVectorizer(
            analyzer="word",
            ngram_range=WORD_NGRAMS,
            token_pattern=_TOKEN,
            lowercase=False,
            min_df=min_df,
            sublinear_tf=True,
            max_features=max_features,
        ).fit(tagged)
        char = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=CHAR_NGRAMS,
            lowercase=False,
            min_df=min_df,
            sublinear_tf=True,
            max_features=max_features,
        ).fit(tagged)
        wv = sorted(word.vocabulary_, key=word.vocabulary_.__getitem__)
        cv = sorted(char.vocabulary_, key=char.vocabulary_.__getitem__)
        return cls(wv, cv, np.asarray(word.idf_), np.asarray(char.idf_))

    @staticmethod
    def _weigh(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
        x = counts.astype(np.float64).tocsr()
        x.data = 1.0 + np.log(x.data)
        x = x @ sparse.diags(idf)
        return normalize(x, norm="l2", copy=False)

    def transform(self, tagged: list[str]) -> sparse.csr_matrix:
        w = self._weigh(self._word.transform(tagged), self.word_idf)
        c = self._weigh(self._char.transform(tagged), self.char_idf)
        return sparse.hstack([w, c], format="csr") * TFIDF_SCALE


class TrainedCategories:
    """``probabilities(texts, kinds, langs)`` -> one column per class (independent one-vs-rest sigmoids)."""

    name = NAME

    def __init__(
        self,
        version: int,
        classes: Sequence[str],
        features: str,
        coef: np.ndarray,
        intercept: np.ndarray,
        tfidf: TfidfBlock | None,
        *,
        threshold: float = 0.5,
        multi_label: bool = False,
        encoder: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if features not in FEATURES:
            raise ConfigError(f"category model: features {features!r}: must be one of {', '.join(FEATURES)}")
        if (tfidf is None) != (features == "embeddings"):
            raise ConfigError("category model: the tf-idf vocabulary does not fit the feature setting")
        dim = (tfidf.size if tfidf else 0) + (ENCODER_DIM if features != "tfidf" else 0)
        if coef.shape != (len(classes), dim) or intercept.shape != (len(classes),):
            raise ConfigError(f"category model: weights have shape {coef.shape}, expected ({len(classes)}, {dim})")
        self.version = int(version)
        self.classes = tuple(classes)
        self.features = features
        self.coef_t = np.ascontiguousarray(coef.T, dtype=np.float64)
        self.intercept = intercept.astype(np.float64)
        self.tfidf = tfidf
        self.threshold = float(threshold)  # the model alone: a class is predicted from this probability
        # combined with the taxonomy rules (openear.enrich.classify): chosen by ``openear train``'s folds
        self.combine_threshold = float((metadata or {}).get("combine_threshold", threshold))
        self.multi_label = multi_label
        self.encoder_files = dict(encoder or {})
        self.metadata = dict(metadata or {})
        self._encoder: SentenceEncoder | None = None

    @property
    def enricher(self) -> str:
        return f"{NAME}@v{self.version}"

    @property
    def needs_encoder(self) -> bool:
        return self.features != "tfidf"

    def encoder(self) -> SentenceEncoder:
        """The shared sentence encoder, checked against the files the model was trained with."""
        if self._encoder is None:
            self._encoder = SentenceEncoder.load(self.encoder_files or None)
        return self._encoder

    def featurise(
        self, texts: Sequence[str], kinds: Sequence[str], langs: Sequence[str], embeddings: np.ndarray | None = None
    ) -> sparse.csr_matrix:
        blocks = []
        if self.tfidf is not None:
            blocks.append(self.tfidf.transform(_tagged(texts, kinds, langs)))
        if self.needs_encoder:
            emb = embeddings if embeddings is not None else self.encoder().encode(list(texts))
            blocks.append(sparse.csr_matrix(np.asarray(emb, dtype=np.float64)))
        return sparse.hstack(blocks, format="csr")

    def probabilities(
        self, texts: Sequence[str], kinds: Sequence[str], langs: Sequence[str], embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """Per-class probabilities, one row per text (``embeddings``: precomputed encoder rows, if any)."""
        if not texts:
            return np.zeros((0, len(self.classes)))
        z = np.asarray(self.featurise(texts, kinds, langs, embeddings) @ self.coef_t) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def scores(
        self, texts: Sequence[str], kinds: Sequence[str], langs: Sequence[str], embeddings: np.ndarray | None = None
    ) -> list[dict[str, float]]:
        """``probabilities`` as one ``{class: p}`` per text (what :meth:`Classifier.classify` combines)."""
        p = self.probabilities(texts, kinds, langs, embeddings)
        return [{c: round(float(row[i]), 4) for i, c in enumerate(self.classes)} for row in p]

    def predict_sets(self, p: np.ndarray) -> list[set[str]]:
        """The predicted categories of each row: over the threshold (multi-label) or the best, always the best."""
        out = []
        for row in p:
            best = int(row.argmax())
            found = {self.classes[i] for i in np.flatnonzero(row >= self.threshold)} if self.multi_label else set()
            out.append(found | {self.classes[best]})
        return out

    # -- files ----------------------------------------------------------------------------------------------------
    def portable(self) -> tuple[str, bytes]:
        """The model as (metadata JSON, ``weights.npz`` bytes): what :meth:`save` writes and :meth:`from_portable`
        reads; Ray workers on other machines get it this way."""
        arrays: dict[str, np.ndarray] = {
            "coef": self.coef_t.T.astype(np.float32),
            "intercept": self.intercept.astype(np.float32),
        }
        meta: dict[str, Any] = {
            **self.metadata,
            "name": NAME,
            "version": self.version,
            "classes": list(self.classes),
            "features": self.features,
            "threshold": self.threshold,
            "combine_threshold": self.combine_threshold,
            "multi_label": self.multi_label,
            "encoder": self.encoder_files,
            "word_ngrams": list(WORD_NGRAMS),
            "char_ngrams": list(CHAR_NGRAMS),
        }
        if self.tfidf is not None:
            arrays["word_idf"] = self.tfidf.word_idf.astype(np.float32)
            arrays["char_idf"] = self.tfidf.char_idf.astype(np.float32)
            meta["word_vocabulary"] = self.tfidf.word_vocab
            meta["char_vocabulary"] = self.tfidf.char_vocab
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return json.dumps(meta, ensure_ascii=False), buffer.getvalue()

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta, weights = self.portable()
        (directory / "weights.npz").write_bytes(weights)
        (directory / "metadata.json").write_text(meta, encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> TrainedCategories:
        """Read a saved model; :class:`ConfigError` naming the file when it is missing or does not fit together."""
        try:
            meta = (directory / "metadata.json").read_text(encoding="utf-8")
            weights = (directory / "weights.npz").read_bytes()
        except FileNotFoundError as exc:
            raise ConfigError(f"{exc.filename}: category model file missing") from None
        return cls.from_portable(meta, weights, str(directory))

    @classmethod
    def from_portable(cls, metadata: str, weights: bytes, where: str = "category model") -> TrainedCategories:
        """The model from :meth:`portable`'s output (arrays read with ``allow_pickle=False``)."""
        try:
            meta = json.loads(metadata)
            with np.load(io.BytesIO(weights), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            if meta.get("name") != NAME:
                raise ValueError(f"not a category model (name {meta.get('name')!r})")
            if [*meta["word_ngrams"], *meta["char_ngrams"]] != [*WORD_NGRAMS, *CHAR_NGRAMS]:
                raise ValueError("n-gram settings differ from this version of openear")
            tfidf = None
            if meta["features"] != "embeddings":
                tfidf = TfidfBlock(
                    meta["word_vocabulary"], meta["char_vocabulary"], arrays["word_idf"], arrays["char_idf"]
                )
            rest = {k: v for k, v in meta.items() if k not in ("word_vocabulary", "char_vocabulary")}
            return cls(
                int(meta["version"]),
                [str(c) for c in meta["classes"]],
                str(meta["features"]),
                arrays["coef"],
                arrays["intercept"],
                tfidf,
                threshold=float(meta["threshold"]),
                multi_label=bool(meta["multi_label"]),
                encoder={str(k): str(v) for k, v in meta.get("encoder", {}).items()},
                metadata=rest,
            )
        except (KeyError, ValueError, TypeError, AttributeError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ConfigError(f"{where}: category model unreadable: {exc}") from None
