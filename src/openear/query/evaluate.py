"""Evaluating a query on one post, in Python: for category rules, routing and alert filters.

A :class:`Document` is what a query can see of a post. :func:`prepare` splits its text and title into words once
(per field: a word index and positions), so many queries can test one post cheaply; each query is compiled once
into nested closures (words are set look-ups; wildcards are precompiled regular expressions).

Words are searched in the text and, for news, in the title; a phrase or ``NEAR`` never spans two fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from openear.query.ast import And, DateFilter, Field, Near, Node, Not, Operand, Or, Phrase, Term, TextField
from openear.query.text import words

__all__ = ["Document", "Prepared", "compile_node", "prepare"]


@dataclass(frozen=True, slots=True)
class Document:
    """What a query sees of a post. ``categories`` holds every category label, ``category`` the primary one;
    ``cluster_id`` is the post's near-duplicate cluster (``cluster:``), ``None`` when it has none."""

    text: str
    title: str | None = None
    kind: str = "social"
    lang: str | None = None
    source: str | None = None
    category: str | None = None
    categories: frozenset[str] = field(default_factory=frozenset)
    sentiment: str | None = None
    country: str | None = None
    created_at: datetime | None = None
    cluster_id: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any], categories: frozenset[str] | set[str] = frozenset()) -> Document:
        """From a ``posts`` row (or any mapping with its column names) and the post's category labels."""
        return cls(
            text=row.get("text") or "",
            title=row.get("title"),
            kind=row.get("kind") or "social",
            lang=row.get("lang"),
            source=row.get("source"),
            category=row.get("category"),
            categories=frozenset(categories),
            sentiment=row.get("sentiment"),
            country=row.get("country"),
            created_at=row.get("created_at"),
            cluster_id=row.get("cluster_id"),
        )


class _Column:
    """One field's words: the list, and where each word occurs."""

    __slots__ = ("index", "words")

    def __init__(self, text: str) -> None:
        self.words = words(text)
        index: dict[str, list[int]] = {}
        for i, w in enumerate(self.words):
            index.setdefault(w, []).append(i)
        self.index = index


class Prepared:
    """A document with its words split, ready for any number of queries."""

    __slots__ = ("doc", "text", "title")

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.text = _Column(doc.text or "")
        self.title = _Column(doc.title) if doc.title and doc.kind == "news" else None

    def columns(self, scope: TextField) -> tuple[_Column, ...]:
        if scope == "title":
            return (self.title,) if self.title is not None else ()
        return (self.text, self.title) if self.title is not None else (self.text,)


def prepare(doc: Document | Prepared) -> Prepared:
    """Split a document's words once, to test it against many queries."""
    return doc if isinstance(doc, Prepared) else Prepared(doc)


# -- word patterns -------------------------------------------------------------------------------------------
WordTest = Callable[[str], bool]


def _word_test(pattern: str) -> WordTest | str:
    """A plain word stays a string (set look-up); a wildcard becomes a precompiled test."""
    if "*" not in pattern and "?" not in pattern:
        return pattern
    stem = pattern.rstrip("*")
    if "*" not in stem and "?" not in stem:
        return lambda w: w.startswith(stem)
    rx = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)
    return lambda w: rx.fullmatch(w) is not None


Starts = Callable[[_Column], list[int]]


def _phrase_starts(patterns: tuple[str, ...]) -> Starts:
    """Positions in a column where the phrase starts."""
    tests = [_word_test(p) for p in patterns]
    first, rest = tests[0], list(enumerate(tests[1:], 1))

    def starts(col: _Column) -> list[int]:
        if isinstance(first, str):
            cands = col.index.get(first, ())
        else:
            cands = [i for w, ps in col.index.items() if first(w) for i in ps]
        ws, n = col.words, len(col.words)
        out = []
        for i in cands:
            if i + len(tests) > n:
                continue
            for k, t in rest:
                w = ws[i + k]
                if not (w == t if isinstance(t, str) else t(w)):
                    break
            else:
                out.append(i)
        return out

    return starts


def _leaf(node: Term | Phrase) -> Callable[[Prepared], bool]:
    starts = _phrase_starts(node.words)
    scope = node.field
    if len(node.words) == 1 and isinstance(t := _word_test(node.words[0]), str):
        word = t
        return lambda p: any(word in c.index for c in p.columns(scope))
    return lambda p: any(starts(c) for c in p.columns(scope))


def _alternatives(op: Operand) -> list[tuple[Starts, int]]:
    items = op.items if isinstance(op, Or) else (op,)
    return [(_phrase_starts(n.words), len(n.words)) for n in items]  # type: ignore[union-attr]


def _near(node: Near) -> Callable[[Prepared], bool]:
    lefts, rights, n, ordered, scope = (
        _alternatives(node.left), _alternatives(node.right), node.distance, node.ordered, node.field
    )

    def close(a: int, la: int, b: int, lb: int) -> bool:
        # FTS5's rule: the earlier phrase ends at most n words before the later one starts (overlap allowed).
        # Ordered: the left phrase ends before the right one starts, with at most n words between.
        if ordered:
            return 0 <= b - a - la <= n
        return (b - a - la <= n) if a <= b else (a - b - lb <= n)

    def test(p: Prepared) -> bool:
        for col in p.columns(scope):
            left = [(s, ln) for f, ln in lefts for s in f(col)]
            if not left:
                continue
            right = [(s, ln) for f, ln in rights for s in f(col)]
            if any(close(a, la, b, lb) for a, la in left for b, lb in right):
                return True
        return False

    return test


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def compile_node(node: Node) -> Callable[[Prepared], bool]:
    """Turn a syntax tree into a test on a prepared document."""
    if isinstance(node, Term | Phrase):
        return _leaf(node)
    if isinstance(node, Near):
        return _near(node)
    if isinstance(node, And):
        parts = [compile_node(n) for n in node.items]
        return lambda p: all(f(p) for f in parts)
    if isinstance(node, Or):
        parts = [compile_node(n) for n in node.items]
        return lambda p: any(f(p) for f in parts)
    if isinstance(node, Not):
        inner = compile_node(node.item)
        return lambda p: not inner(p)
    if isinstance(node, Field):
        name, value = node.name, node.value
        if name == "category":
            return lambda p: p.doc.category == value or value in p.doc.categories
        if name == "cluster":
            cluster = int(value)
            return lambda p: p.doc.cluster_id == cluster
        return lambda p: getattr(p.doc, name) == value
    if isinstance(node, DateFilter):
        edge = datetime.combine(node.day, time())
        if node.name == "after":
            return lambda p: p.doc.created_at is not None and _naive_utc(p.doc.created_at) >= edge
        return lambda p: p.doc.created_at is not None and _naive_utc(p.doc.created_at) < edge
    raise TypeError(f"not a query node: {node!r}")
