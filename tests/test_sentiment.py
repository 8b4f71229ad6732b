"""The shipped bilingual sentiment baseline: loads without pickle, deterministic, sane on clear en/es text."""

from __future__ import annotations

import functools
import json
import time
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openear.enrich.sentiment import LABELS, FeatureParams, Featuriser, SentimentModel
from openear.errors import ConfigError

MODEL_DIR = Path(str(resources.files("openear") / "data" / "sentiment"))


@functools.cache
def _model() -> SentimentModel:
    return SentimentModel.load()


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return _model()


def test_artefact_is_small_plain_arrays_with_metadata() -> None:
    weights = MODEL_DIR / "model.npz"
    assert weights.stat().st_size < 8_000_000
    with zipfile.ZipFile(weights) as zf:  # only .npy arrays: nothing to unpickle
        assert sorted(zf.namelist()) == ["coef.npy", "intercept.npy"]
    with np.load(weights, allow_pickle=False) as npz:
        assert npz["coef"].dtype == np.float32
    meta = json.loads((MODEL_DIR / "metadata.json").read_text(encoding="utf-8"))
    assert meta["labels"] == list(LABELS)
    figures = meta["figures"]
    assert figures["tweeteval_test_macro_recall"] > 55  # published SVM baseline: 62.9
    assert figures["umsab_es_test_macro_f1"] > 45  # published FastText baseline: 50.1


def test_enricher_names_the_version(model: SentimentModel) -> None:
    assert model.enricher == f"sentiment-hashlr@{model.version}"


@pytest.mark.parametrize(
    ("text", "lang", "label"),
    [
        ("I love this job, best gig ever, so happy today!", "en", "positive"),
        ("This is terrible, they deactivated me for nothing. Worst company ever.", "en", "negative"),
        ("Me encanta este trabajo, estoy muy feliz, gracias!", "es", "positive"),
        ("Es una vergüenza, me han robado las propinas, fatal, lo odio", "es", "negative"),
    ],
)
def test_clear_examples(model: SentimentModel, text: str, lang: str, label: str) -> None:
    assert model.predict([text], [lang])[0][0] == label


def test_predictions_are_deterministic_and_batch_independent(model: SentimentModel) -> None:
    texts = ["no tips again", "Buen día de reparto", "The station opens at 8am", "¡Fatal!"]
    langs = ["en", "es", "en", "es"]
    first = model.predict(texts, langs)
    assert first == model.predict(texts, langs) == _model().predict(texts, langs)
    assert first == [model.predict([t], [lang])[0] for t, lang in zip(texts, langs, strict=True)]
    assert all(label in LABELS and 0 < score <= 1 for label, score in first)


def test_empty_batch_and_length_mismatch(model: SentimentModel) -> None:
    assert model.predict([], []) == []
    with pytest.raises(ValueError, match="same length"):
        model.predict(["a"], [])


def test_throughput(model: SentimentModel) -> None:
    texts = ["Waited two hours at the station and the app crashed, no tips on half the route either."] * 2000
    langs = ["en"] * len(texts)
    start = time.perf_counter()
    for i in range(0, len(texts), 256):
        model.predict(texts[i:i + 256], langs[i:i + 256])
    rate = len(texts) / (time.perf_counter() - start)
    assert rate >= 300, f"{rate:.0f} posts/s"  # ~3,900 measured on an idle core; loose for busy machines


def test_missing_or_broken_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sentiment model missing"):
        SentimentModel.load(tmp_path)
    (tmp_path / "metadata.json").write_text('{"labels": ["negative", "neutral", "positive"]}', encoding="utf-8")
    np.savez(tmp_path / "model.npz", coef=np.zeros((3, 4), np.float32), intercept=np.zeros(3, np.float32))
    with pytest.raises(ConfigError, match="unreadable"):
        SentimentModel.load(tmp_path)


def test_a_small_hand_built_model_works() -> None:
    params = FeatureParams(word_features=2**8, char_features=2**8)
    intercept = np.array([0.0, 0.0, 1.0], np.float32)
    m = SentimentModel(Featuriser(params), np.zeros((3, 2**9), np.float32), intercept, "t")
    assert m.predict(["anything"], ["en"])[0][0] == "positive"


@given(st.lists(st.text(max_size=300), max_size=5), st.sampled_from(["en", "es", "other", ""]))
@settings(max_examples=200, deadline=None)
def test_predict_never_crashes(texts: list[str], lang: str) -> None:
    out = _model().predict(texts, [lang] * len(texts))
    assert len(out) == len(texts) and all(label in LABELS for label, _ in out)
