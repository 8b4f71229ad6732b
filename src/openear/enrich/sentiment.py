"""Bilingual (English/Spanish) tweet-style sentiment: hashed word and character n-grams, logistic regression.

An honest baseline, not the state of the art: trained by ``scripts/train_sentiment.py`` on TweetEval (English,
train reconstructed from SemEval-2017 gold) and XLM-T/UMSAB Spanish; its test figures are in
``data/sentiment/metadata.json``. The weights are a plain ``.npz`` (loaded with ``allow_pickle=False``); the
feature extractor is stateless (hashing), so nothing is unpickled and predictions are deterministic.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer

from openear.errors import ConfigError

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")  # TweetEval/UMSAB order: 0, 1, 2
_MENTION = re.compile(r"(?<!\w)@\w+|\[user\]")
_URL = re.compile(r"https?://\S+|www\.\S+")
_LAUGH = re.compile(r"\b(?:ja){2,}j?\b|\b(?:ha){2,}h?\b")
_REPEAT = re.compile(r"(\w)\1{2,}")
TOKEN_PATTERN = r"(?u)\b\w+\b|[!?]|[^\w\s]"


def normalise(text: str) -> str:
    """Fold case and accents, mask handles and links, shorten letter runs ("noooo" -> "noo") and laughter."""
    text = _URL.sub(" http ", _MENTION.sub(" @user ", text))
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = _LAUGH.sub(" jaja ", folded)
    return _REPEAT.sub(r"\1\1", folded)


@dataclass(frozen=True)
class FeatureParams:
    """The vectoriser settings; stored with the weights so training and prediction agree."""

    word_features: int = 2**18
    char_features: int = 2**17
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 4)

    def as_dict(self) -> dict[str, Any]:
        return {
            "word_features": self.word_features,
            "char_features": self.char_features,
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureParams:
        return cls(
            int(d["word_features"]),
            int(d["char_features"]),
            (int(d["word_ngrams"][0]), int(d["word_ngrams"][1])),
            (int(d["char_ngrams"][0]), int(d["char_ngrams"][1])),
        )


class Featuriser:
    """Stateless text -> sparse features: word n-grams (+ a language token) and char_wb n-grams, hashed."""

    def __init__(self, params: FeatureParams) -> None:
        self.params = params
        self._word = HashingVectorizer(
            analyzer="word", ngram_range=params.word_ngrams, n_features=params.word_features,
            token_pattern=TOKEN_PATTERN, lowercase=False, alternate_sign=False, norm="l2", dtype=np.float32,
        )
        self._char = HashingVectorizer(
            analyzer="char_wb", ngram_range=params.char_ngrams, n_features=params.char_features,
            lowercase=False, alternate_sign=False, norm="l2", dtype=np.float32,
        )

    @property
    def n_features(self) -> int:
        return self.params.word_features + self.params.char_features

    def transform(self, texts: list[str], langs: list[str]) -> sparse.csr_matrix:
        norm = [normalise(t) for t in texts]
        tagged = [f"{t} xxlang{(lang or 'xx')[:2]}" for t, lang in zip(norm, langs, strict=True)]
        return sparse.hstack([self._word.transform(tagged), self._char.transform(norm)], format="csr")


def _default_dir() -> Path:
    return Path(str(resources.files("openear") / "data" / "sentiment"))


class SentimentModel:
    """``predict(texts, langs) -> [(label, probability)]`` with labels positive, neutral, negative."""

    name = "sentiment-hashlr"

    def __init__(self, featuriser: Featuriser, coef: np.ndarray, intercept: np.ndarray, version: str,
                 metadata: dict[str, Any] | None = None) -> None:
        if coef.shape != (len(LABELS), featuriser.n_features) or intercept.shape != (len(LABELS),):
            raise ConfigError(f"sentiment model: weights have shape {coef.shape}, expected "
                              f"({len(LABELS)}, {featuriser.n_features})")
        self.featuriser = featuriser
        self.coef_t = np.ascontiguousarray(coef.T, dtype=np.float32)
        self.intercept = intercept.astype(np.float32)
        self.version = version
        self.metadata = metadata or {}

    @property
    def enricher(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def load(cls, directory: Path | None = None) -> SentimentModel:
        """The shipped model (``openear/data/sentiment``) or one in ``directory``."""
        directory = directory or _default_dir()
        weights, meta_path = directory / "model.npz", directory / "metadata.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            with np.load(weights, allow_pickle=False) as npz:
                coef, intercept = npz["coef"], npz["intercept"]
            params = FeatureParams.from_dict(meta["features"])
            labels = tuple(meta["labels"])
        except FileNotFoundError as exc:
            raise ConfigError(f"{exc.filename}: sentiment model missing; run scripts/train_sentiment.py") from None
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise ConfigError(f"{directory}: sentiment model unreadable: {exc}") from None
        if labels != LABELS:
            raise ConfigError(f"{meta_path}: labels: expected {list(LABELS)}, got {list(labels)}")
        return cls(Featuriser(params), coef, intercept, str(meta.get("version", "0")), meta)

    def probabilities(self, texts: list[str], langs: list[str]) -> np.ndarray:
        """Class probabilities, one row per text, columns in :data:`LABELS` order."""
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        x = self.featuriser.transform(texts, langs)
        logits = np.asarray(x @ self.coef_t) + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, texts: list[str], langs: list[str]) -> list[tuple[str, float]]:
        if len(texts) != len(langs):
            raise ValueError("texts and langs must have the same length")
        p = self.probabilities(texts, langs)
        best = p.argmax(axis=1)
        return [(LABELS[i], round(float(p[row, i]), 4)) for row, i in enumerate(best)]
