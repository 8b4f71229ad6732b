"""``openear eval``: score the enrichers and the guard's protected-topic detector on a labelled JSON Lines file.

Each line is an object like ``../shared/data/driver-feedback/dev.jsonl``: ``text`` (required), ``kind``
(``social``/``news``, default ``social``), ``lang`` (detected when absent), ``title`` (optional), and the labels
``categories``, ``primary`` and ``sentiment``, any of which may be missing; a metric whose labels are absent from
every line is ``None``.

Metrics:
- ``category_macro_f1``: multi-label F1 per category, averaged over the non-protected categories that occur in the
  gold labels, on lines that have ``categories``;
- ``primary_accuracy``: share of lines with ``primary`` whose predicted primary equals it (a protected primary
  counts as a miss: the rules never assign protected topics);
- ``sentiment_macro_f1`` / ``sentiment_macro_recall``: averaged over the sentiment classes present in the gold
  labels;
- ``protected_recall``: share of lines labelled with a protected topic (any kind) that the guard's detector flags;
- ``false_withhold_rate``: share of ``social`` lines with ``categories`` but no protected topic that it flags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from openear.errors import InputFormatError
from openear.guard import ProtectedTopicDetector
from openear.models import KINDS, SENTIMENTS

__all__ = ["PROTECTED", "evaluate", "format_table", "read_items"]

PROTECTED: tuple[str, ...] = ("collective_action", "research_press_contact")
KEYS: tuple[str, ...] = (
    "n", "category_macro_f1", "primary_accuracy", "sentiment_macro_f1", "sentiment_macro_recall",
    "protected_recall", "false_withhold_rate",
)


@dataclass(frozen=True)
class Item:
    """One labelled line."""

    line: int
    text: str
    title: str | None
    kind: str
    lang: str | None
    categories: tuple[str, ...] | None
    primary: str | None
    sentiment: str | None


def _bad(path: Path, line: int, field: str, problem: str) -> InputFormatError:
    return InputFormatError(f"{path}:{line}: {field}: {problem}")


def read_items(path: Path, known_categories: set[str] | None = None) -> list[Item]:
    """Parse and check the file; the first bad line raises :class:`InputFormatError` (``FILE:LINE: field: problem``)."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFormatError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"{path}: not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise InputFormatError(f"{path}: cannot read: {exc.strerror}") from None
    items: list[Item] = []
    for no, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _bad(path, no, "line", f"not valid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise _bad(path, no, "line", "must be a JSON object")
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _bad(path, no, "text", "missing or empty (a non-empty string is required)")
        title = obj.get("title")
        if title is not None and not isinstance(title, str):
            raise _bad(path, no, "title", "must be a string")
        kind = obj.get("kind", "social")
        if kind not in KINDS:
            raise _bad(path, no, "kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
        lang = obj.get("lang")
        if lang is not None and (not isinstance(lang, str) or not lang.strip()):
            raise _bad(path, no, "lang", "must be a language code such as 'en' or 'es'")
        cats = obj.get("categories")
        if cats is not None:
            if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
                raise _bad(path, no, "categories", "must be a list of category keys")
            for c in cats:
                if known_categories is not None and c not in known_categories:
                    raise _bad(path, no, "categories", f"unknown category {c!r}")
            cats = tuple(cats)
        primary = obj.get("primary")
        if primary is not None:
            if not isinstance(primary, str):
                raise _bad(path, no, "primary", "must be a category key")
            if known_categories is not None and primary not in known_categories:
                raise _bad(path, no, "primary", f"unknown category {primary!r}")
            if cats is not None and primary not in cats:
                raise _bad(path, no, "primary", f"{primary!r} is not one of the line's categories")
        sentiment = obj.get("sentiment")
        if sentiment is not None and sentiment not in SENTIMENTS:
            raise _bad(path, no, "sentiment", f"must be one of {', '.join(SENTIMENTS)}, not {sentiment!r}")
        items.append(Item(no, text, title, kind, lang.strip().lower()[:2] if lang else None, cats, primary,
                          sentiment))
    if not items:
        raise InputFormatError(f"{path}: empty file: no line to score (one JSON object per line)")
    return items


def _f1(tp: int, fp: int, fn: int) -> float:
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def evaluate(path: Path, *, enrichment: Any = None, mode: str = "fast") -> dict[str, Any]:
    """Score the classifier, the sentiment model and the protected-topic detector on a labelled file.

    ``enrichment`` may be an :class:`openear.enrich.Enrichment` (its ``classifier``, ``sentiment`` and
    ``language`` are reused); by default the shipped preset and the shipped sentiment model of ``mode``
    (``fast``, ``accurate`` or ``rules``; see :func:`openear.enrich.sentiment.load_sentiment`) are loaded.
    """
    from openear.enrich.classify import Classifier
    from openear.enrich.sentiment import check_mode, load_sentiment

    check_mode(mode)
    classifier = getattr(enrichment, "classifier", None) or Classifier.load(None)
    sentiment_model = getattr(enrichment, "sentiment", None) or load_sentiment(mode)
    items = read_items(path, set(classifier.categories) | set(PROTECTED))
    language = getattr(enrichment, "language", None)
    if language is None and any(i.lang is None for i in items):
        from openear.enrich.language import LanguageDetector

        language = LanguageDetector()
    langs = [i.lang or language.detect(i.text)[0] for i in items]  # type: ignore[union-attr]
    full = [f"{i.title}. {i.text}" if i.title else i.text for i in items]
    detector = ProtectedTopicDetector()

    # categories and primary
    preds = [classifier.classify(i.text, title=i.title, kind=i.kind, lang=lang) for i, lang in zip(items, langs,
                                                                                                   strict=True)]
    with_cats = [(i, p) for i, p in zip(items, preds, strict=True) if i.categories is not None]
    gold_keys = sorted({c for i, _ in with_cats for c in i.categories or () if c not in PROTECTED})
    f1s = []
    for c in gold_keys:
        tp = sum(1 for i, p in with_cats if c in (i.categories or ()) and c in p.categories)
        fp = sum(1 for i, p in with_cats if c not in (i.categories or ()) and c in p.categories)
        fn = sum(1 for i, p in with_cats if c in (i.categories or ()) and c not in p.categories)
        f1s.append(_f1(tp, fp, fn))
    with_primary = [(i, p) for i, p in zip(items, preds, strict=True) if i.primary is not None]
    primary_accuracy = _share(sum(1 for i, p in with_primary if p.primary == i.primary), len(with_primary))

    # sentiment
    idx = [k for k, i in enumerate(items) if i.sentiment is not None]
    sent_f1 = sent_recall = None
    if idx:
        predicted = sentiment_model.predict([full[k] for k in idx], [langs[k] for k in idx])
        pairs = [(items[k].sentiment, label) for k, (label, _) in zip(idx, predicted, strict=True)]
        classes = [s for s in SENTIMENTS if any(g == s for g, _ in pairs)]
        recalls, fscores = [], []
        for s in classes:
            tp = sum(1 for g, p in pairs if g == s and p == s)
            fp = sum(1 for g, p in pairs if g != s and p == s)
            fn = sum(1 for g, p in pairs if g == s and p != s)
            recalls.append(tp / (tp + fn))
            fscores.append(_f1(tp, fp, fn))
        sent_f1, sent_recall = _mean(fscores), _mean(recalls)

    # the guard's detector
    flagged = [detector.detect(t) is not None for t in full]
    protected_idx = [k for k, i in enumerate(items) if i.categories and set(i.categories) & set(PROTECTED)]
    ordinary_social = [k for k, i in enumerate(items)
                       if i.kind == "social" and i.categories is not None and not set(i.categories) & set(PROTECTED)]
    return {
        "n": len(items),
        "category_macro_f1": _mean(f1s),
        "primary_accuracy": primary_accuracy,
        "sentiment_macro_f1": sent_f1,
        "sentiment_macro_recall": sent_recall,
        "protected_recall": _share(sum(flagged[k] for k in protected_idx), len(protected_idx)),
        "false_withhold_rate": _share(sum(flagged[k] for k in ordinary_social), len(ordinary_social)),
    }


_DESCRIPTIONS = {
    "n": "labelled items",
    "category_macro_f1": "categories: multi-label macro F1 (non-protected)",
    "primary_accuracy": "primary category: accuracy",
    "sentiment_macro_f1": "sentiment: macro F1",
    "sentiment_macro_recall": "sentiment: macro recall",
    "protected_recall": "guard: protected-topic recall (all kinds)",
    "false_withhold_rate": "guard: ordinary social items withheld",
}


def format_table(result: dict[str, Any]) -> Table:
    """The result of :func:`evaluate` as a rich table (``-`` where a metric has no labels)."""
    table = Table(title="openear eval", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    for key in KEYS:
        value = result.get(key)
        shown = "-" if value is None else (str(value) if isinstance(value, int) else f"{value:.3f}")
        table.add_row(key, shown, _DESCRIPTIONS[key])
    return table
