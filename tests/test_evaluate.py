"""``openear.evaluate``: metrics on a small labelled fixture with exact numbers, input errors, the dev set."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console
from rich.table import Table

from openear.enrich.classify import Classifier
from openear.enrich.sentiment import FeatureParams, Featuriser, SentimentModel
from openear.errors import InputFormatError
from openear.evaluate import KEYS, evaluate, format_table
from shared_data import shared_path

FIXTURE = [
    {"text": "My tips were missing again this week, no tips on 5 orders.", "lang": "en", "kind": "social",
     "categories": ["pay_tips"], "primary": "pay_tips", "sentiment": "negative"},
    {"text": "La app se cuelga cada vez que intento escanear.", "lang": "es", "kind": "social",
     "categories": ["app_issue"], "primary": "app_issue", "sentiment": "negative"},
    {"text": "Love this gig, great people.", "lang": "en", "kind": "social",
     "categories": ["other"], "primary": "other", "sentiment": "positive"},
    {"text": "We are organizing a strike next Monday, join the union.", "lang": "en", "kind": "social",
     "categories": ["collective_action"], "primary": "collective_action", "sentiment": "neutral"},
    {"text": "Amazon launches Flex in Seattle.", "lang": "en", "kind": "news",
     "categories": ["media_coverage"], "primary": "media_coverage", "sentiment": "neutral"},
    {"text": "Got deactivated for no reason", "lang": "en", "kind": "social",
     "categories": ["account_status"], "primary": "account_status"},
]


def always_negative() -> SentimentModel:
    """A real (tiny) model whose weights are zero and whose intercept favours 'negative'."""
    params = FeatureParams(word_features=2**8, char_features=2**8)
    return SentimentModel(Featuriser(params), np.zeros((3, 2**9), np.float32),
                          np.array([1.0, 0.0, 0.0], np.float32), "test")


def write(tmp_path: Path, rows: list[object], name: str = "set.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_exact_numbers_on_a_small_fixture(tmp_path: Path) -> None:
    enrichment = SimpleNamespace(classifier=Classifier.load(None), sentiment=always_negative(), language=None)
    result = evaluate(write(tmp_path, FIXTURE), enrichment=enrichment)
    assert tuple(result) == KEYS
    # categories: pay_tips, app_issue, media_coverage, account_status F1 = 1; other: TP 1, FP 1 (the strike post,
    # whose protected label the rules never give) -> 2/3; macro over 5 = (4 + 2/3) / 5
    assert result == {
        "n": 6,
        "category_macro_f1": round((4 + 2 / 3) / 5, 4),
        "primary_accuracy": round(5 / 6, 4),
        "sentiment_macro_f1": round((4 / 7) / 3, 4),  # negative: P 2/5, R 1 -> F1 4/7; others 0
        "sentiment_macro_recall": round(1 / 3, 4),
        "protected_recall": 1.0,
        "false_withhold_rate": 0.0,
    }


def test_absent_labels_give_null(tmp_path: Path) -> None:
    result = evaluate(write(tmp_path, [{"text": "The app crashed", "kind": "social", "lang": "en"}]))
    assert result == {"n": 1, "category_macro_f1": None, "primary_accuracy": None, "sentiment_macro_f1": None,
                      "sentiment_macro_recall": None, "protected_recall": None, "false_withhold_rate": None}


def test_missing_lang_is_detected_and_blank_lines_skipped(tmp_path: Path) -> None:
    rows = ["", {"text": "Me han desactivado la cuenta", "categories": ["account_status"]}, "   "]
    result = evaluate(write(tmp_path, rows))
    assert result["n"] == 1 and result["category_macro_f1"] == 1.0 and result["false_withhold_rate"] == 0.0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", ":2: line: not valid JSON"),
        ("[1, 2]", ":2: line: must be a JSON object"),
        ('{"kind": "social"}', ":2: text: missing or empty"),
        ('{"text": "x", "kind": "blog"}', ":2: kind: must be one of social, news"),
        ('{"text": "x", "categories": "pay_tips"}', ":2: categories: must be a list"),
        ('{"text": "x", "categories": ["tipz"]}', ":2: categories: unknown category 'tipz'"),
        ('{"text": "x", "categories": ["pay_tips"], "primary": "support"}', ":2: primary: 'support' is not one"),
        ('{"text": "x", "sentiment": "angry"}', ":2: sentiment: must be one of positive, neutral, negative"),
        ('{"text": "x", "lang": 3}', ":2: lang: must be a language code"),
    ],
)
def test_bad_lines_name_file_line_field_and_problem(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, [FIXTURE[0], line])
    with pytest.raises(InputFormatError) as err:
        evaluate(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="file not found"):
        evaluate(tmp_path / "absent.jsonl")
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputFormatError, match="not UTF-8"):
        evaluate(binary)


def test_format_table() -> None:
    result = {"n": 2, "category_macro_f1": 0.5, "primary_accuracy": None, "sentiment_macro_f1": 1.0,
              "sentiment_macro_recall": 1.0, "protected_recall": 1.0, "false_withhold_rate": 0.0}
    table = format_table(result)
    assert isinstance(table, Table) and table.row_count == len(KEYS)
    console = Console(record=True, width=120)
    console.print(table)
    text = console.export_text()
    assert "category_macro_f1" in text and "0.500" in text and "primary_accuracy" in text and " - " in text


def test_driver_feedback_dev_set() -> None:
    result = evaluate(shared_path("data", "driver-feedback", "dev.jsonl"))
    assert result["n"] == 164
    assert result["protected_recall"] >= 0.9
    assert result["false_withhold_rate"] <= 0.05
    assert result["category_macro_f1"] >= 0.6  # keyword rules: 0.72 when written
    assert result["sentiment_macro_f1"] is not None
