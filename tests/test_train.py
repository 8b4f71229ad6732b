"""``openear train``: refusal on too few labels, cross-validated output, versions activated only on confirmation,
plain (never pickled) model files that load with the network disabled, and the active model in classification."""

from __future__ import annotations

import json
import pickle
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from labelled import invoke, labelled_store, texts, write_labelled
from openear.enrich import Enrichment
from openear.enrich.classify import Classifier
from openear.enrich.sentiment import clear_model_cache
from openear.enrich.trained import TrainedCategories
from openear.store.schema import audit_log, labels, models, posts
from openear.train import active_model, examples_from_file, train


def _refuse(*args: object, **kwargs: object) -> Any:
    raise OSError("network disabled by the test")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    for target, name in (
        (socket.socket, "connect"),
        (socket.socket, "connect_ex"),
        (socket, "create_connection"),
        (socket, "getaddrinfo"),
    ):
        monkeypatch.setattr(target, name, _refuse)
    clear_model_cache()


def _import_and_override(workspace: Any, counts: dict[str, int]) -> None:
    """Import posts of each theme; an analyst sets each one's primary category to its theme."""
    rows = [
        {"id": f"{theme}-{i}", "text": text, "created_at": f"2026-11-{(i % 20) + 1:02d}T10:00:00Z", "author": f"a{i}"}
        for theme, n in counts.items()
        for i, text in enumerate(texts(theme, n))
    ]
    labelled_store(workspace, rows, {row["id"]: {"primary": row["id"].rsplit("-", 1)[0]} for row in rows})


def test_train_refuses_too_few_labels_and_names_the_classes(db_url: str, workspace: Any) -> None:
    _import_and_override(workspace, {"pay_tips": 12, "app_issue": 4, "safety": 7})
    result = invoke(workspace.home, "train", "--features", "tfidf", "--yes")
    assert result.exit_code == 2
    assert "too few labelled examples" in result.output
    assert "app_issue (4)" in result.output and "safety (7)" in result.output
    assert "pay_tips" not in result.output.split("too few labelled examples")[1].split(";")[0]
    flat = " ".join(result.output.split())
    assert "correct the category of more posts" in flat and "out of the file" not in flat  # no file: the store
    with workspace.store.connect() as conn:
        assert conn.execute(select(models)).all() == []


def test_train_from_the_store_prints_cv_and_activates_only_on_yes(db_url: str, workspace: Any) -> None:
    _import_and_override(workspace, {"pay_tips": 12, "app_issue": 12, "safety": 12})
    result = invoke(workspace.home, "train", "--features", "tfidf", input="n\n")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Cross-validated (5-fold, stratified) on 36 examples" in out
    for col in ("precision", "recall", "F1", "Confusion matrix"):
        assert col in out
    assert "Activate model v1? [y/N]" in out and "saved, not active" in out
    with workspace.store.connect() as conn:
        row = conn.execute(select(models)).mappings().one()
    assert row["version"] == 1 and row["active"] is False and row["data_source"] == "store"
    assert json.loads(row["classes"]) == ["app_issue", "pay_tips", "safety"]
    assert len(row["data_hash"]) == 64 and json.loads(row["metrics"])["macro_f1"] > 0.8
    assert active_model(workspace.store, workspace.home) is None

    result = invoke(workspace.home, "train", "--features", "tfidf", input="y\n")
    assert result.exit_code == 0, result.output
    assert "Model v2 saved and active" in result.output
    listed = json.loads(invoke(workspace.home, "train", "--list", "--json").output)
    assert [(m["version"], m["active"]) for m in listed] == [(2, True), (1, False)]
    assert listed[0]["data_hash"] == listed[1]["data_hash"]  # same examples
    model = active_model(workspace.store, workspace.home)
    assert model is not None and model.enricher == "trained@v2"

    assert invoke(workspace.home, "train", "--activate", "v1").exit_code == 0  # rollback
    listed = json.loads(invoke(workspace.home, "train", "--list", "--json").output)
    assert [(m["version"], m["active"]) for m in listed] == [(2, False), (1, True)]
    assert invoke(workspace.home, "train", "--activate", "9").exit_code == 2
    dry = invoke(workspace.home, "train", "--features", "tfidf", "--dry-run")
    assert dry.exit_code == 0 and "nothing saved" in dry.output
    assert "Activate" not in dry.output
    with workspace.store.connect() as conn:
        assert sorted(conn.execute(select(models.c.version)).scalars().all()) == [1, 2]
        actions = conn.execute(select(audit_log.c.action)).scalars().all()
    assert actions.count("model.train") == 2 and actions.count("model.activate") == 2


def test_train_from_a_file_with_embeddings_and_yes(tmp_path: Path, workspace: Any) -> None:
    f = write_labelled(tmp_path / "labels.jsonl", {"pay_tips": 10, "app_issue": 11, "safety": 10})
    result = invoke(workspace.home, "train", "--from", str(f), "--yes", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)  # the JSON alone on stdout; messages go to stderr
    assert figures["examples"] == 31 and figures["features"] == "embeddings" and figures["folds"] == 5
    assert set(figures["per_class"]) == {"app_issue", "pay_tips", "safety"}
    assert {"precision", "recall", "f1"} <= set(figures["per_class"]["safety"])
    assert "rules_macro_f1" in figures and "combined_macro_f1" in figures
    model = active_model(workspace.store, workspace.home)
    assert model is not None and model.features == "embeddings"


def test_a_file_with_an_unknown_category_fails_naming_the_line(tmp_path: Path, workspace: Any) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(
        json.dumps({"text": "x", "primary": "pay_tips"})
        + "\n"
        + json.dumps({"text": "y", "primary": "no_such_category"})
        + "\n",
        encoding="utf-8",
    )
    result = invoke(workspace.home, "train", "--from", str(f))
    assert result.exit_code == 2
    assert f"{f}:2: primary: unknown category 'no_such_category'" in result.output


def _trained(tmp_path: Path, features: str) -> Path:
    examples = examples_from_file(write_labelled(tmp_path / "l.jsonl", {"pay_tips": 10, "app_issue": 10, "safety": 10}))
    result = train(examples, version=1, features=features, data_source="test")
    result.model.save(tmp_path / "m")
    return tmp_path / "m"


def test_model_files_are_plain_and_load_without_pickle_or_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    directory = _trained(tmp_path, "both")
    assert sorted(p.name for p in directory.iterdir()) == ["metadata.json", "weights.npz"]
    meta = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    assert meta["version"] == 1 and meta["classes"] == ["app_issue", "pay_tips", "safety"]
    with np.load(directory / "weights.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype.kind == "f" for k in npz.files)

    def no_pickle(*args: object, **kwargs: object) -> Any:
        raise AssertionError("a model file was unpickled")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    model = TrainedCategories.load(directory)
    texts = ["the blue screen froze again tonight", "a loose dog chased me by the orchard lane"]
    p = model.probabilities(texts, ["social", "social"], ["en", "en"])
    assert [model.classes[i] for i in p.argmax(axis=1)] == ["app_issue", "safety"]
    again = TrainedCategories.load(directory).probabilities(texts, ["social", "social"], ["en", "en"])
    assert np.allclose(p, again)  # deterministic


def test_a_broken_model_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    from openear.errors import ConfigError

    directory = _trained(tmp_path, "tfidf")
    (directory / "weights.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="category model unreadable"):
        TrainedCategories.load(directory)
    (directory / "weights.npz").unlink()
    with pytest.raises(ConfigError, match=r"weights\.npz: category model file missing"):
        TrainedCategories.load(directory)


def test_the_active_model_labels_posts_with_its_own_provenance(tmp_path: Path) -> None:
    model = TrainedCategories.load(_trained(tmp_path, "tfidf"))
    clf = Classifier.load(None)
    rules_only = clf.classify("the white screen froze, nothing moved at dusk")
    assert rules_only.primary == "other"
    clf.attach(model)
    cats = clf.classify("the white screen froze, nothing moved at dusk")
    assert cats.primary == "app_issue" and "other" not in cats.categories
    by_name = {(lb.name, lb.value): lb.enricher for lb in cats.labels}
    assert by_name[("primary", "app_issue")] == "trained@v1"
    assert by_name[("category", "app_issue")] == "trained@v1"
    mixed = clf.classify("my tips were missing and the app crashed")  # the rules find these
    assert all(lb.enricher == "taxonomy-rules@1" for lb in mixed.labels if lb.name == "subcategory")
    assert {lb.enricher for lb in mixed.labels if lb.name == "category"} >= {"taxonomy-rules@1"}
    news = clf.classify("the white screen froze, nothing moved", kind="news", title="City report")
    assert "media_coverage" in news.categories


def test_enrichment_in_rules_mode_skips_a_model_that_needs_the_encoder(tmp_path: Path) -> None:
    model = TrainedCategories.load(_trained(tmp_path, "embeddings"))
    assert Enrichment(None, "rules", trained=model).classifier.trained is None
    assert Enrichment(None, "fast", trained=model).classifier.trained is model


def test_imports_use_the_active_model(db_url: str, workspace: Any, tmp_path: Path) -> None:
    f = write_labelled(tmp_path / "labels.jsonl", {"pay_tips": 10, "app_issue": 10, "safety": 10})
    assert invoke(workspace.home, "train", "--from", str(f), "--features", "tfidf", "--yes").exit_code == 0
    workspace.import_rows(
        [
            {
                "id": "n1",
                "text": "the blue screen froze twice at noon, what a day",
                "created_at": "2026-11-20T10:00:00Z",
                "author": "z",
            }
        ],
        name="new.jsonl",
    )
    with workspace.store.connect() as conn:
        got = conn.execute(
            select(labels.c.name, labels.c.value, labels.c.enricher).where(labels.c.name.in_(["primary", "category"]))
        ).all()
        category = conn.execute(select(posts.c.category)).scalar_one()
    assert ("primary", "app_issue", "trained@v1") in got and category == "app_issue"
