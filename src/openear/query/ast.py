"""The query's syntax tree (frozen, hashable dataclasses) and its pretty printer.

``format_query`` prints a canonical form that parses back to the same tree: explicit ``AND``, ``OR``, ``NOT``,
parentheses only where precedence needs them (``NOT`` > ``AND`` > ``OR``; ``NEAR`` binds its two operands).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from openear.query.text import pattern_words

__all__ = [
    "FIELDS",
    "And",
    "DateFilter",
    "Field",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Term",
    "TextField",
    "field_names",
    "format_node",
    "is_text",
]

TextField = Literal["any", "title"]
FIELDS = ("lang", "source", "kind", "category", "sentiment", "country", "cluster")
MAX_CLUSTER_ID = 2**62  # cluster ids are 1 to this, as the web routes take them
DATE_FIELDS = ("after", "before")


@dataclass(frozen=True, slots=True)
class Term:
    """A bare word as typed (``tips``, ``deactivat*``, ``t?p``). Punctuation splits it into a phrase (``e-mail``)."""

    text: str
    field: TextField = "any"

    @property
    def words(self) -> tuple[str, ...]:
        return pattern_words(self.text)


@dataclass(frozen=True, slots=True)
class Phrase:
    """A quoted phrase (``"missing tips"``): its words, consecutive, in one field. Wildcards work inside."""

    text: str
    field: TextField = "any"

    @property
    def words(self) -> tuple[str, ...]:
        return pattern_words(self.text)


@dataclass(frozen=True, slots=True)
class Near:
    """``left NEAR/n right``: at most ``distance`` other words between them, in one field; ``ordered``: left first."""

    left: Operand
    right: Operand
    distance: int
    ordered: bool = False
    field: TextField = "any"


@dataclass(frozen=True, slots=True)
class Field:
    """``name:value`` on a post attribute (lang, source, kind, category, sentiment, country, cluster).

    ``cluster``'s value is a near-duplicate cluster id in canonical digits (``"123"``), tested on ``cluster_id``."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class DateFilter:
    """``after:DAY`` (created at or after DAY 00:00 UTC) or ``before:DAY`` (created before DAY 00:00 UTC)."""

    name: Literal["after", "before"]
    day: date


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Leaf = Term | Phrase
Operand = Term | Phrase | Or  # an Or of Term/Phrase only, all with field "any"
Node = Term | Phrase | Near | Field | DateFilter | And | Or | Not


def is_text(node: Node) -> bool:
    """True when the node tests only words (no field or date filter anywhere below it)."""
    if isinstance(node, Term | Phrase | Near):
        return True
    if isinstance(node, And | Or):
        return all(is_text(n) for n in node.items)
    if isinstance(node, Not):
        return is_text(node.item)
    return False


def field_names(node: Node) -> frozenset[str]:
    """The ``name:`` fields a query tests anywhere (``cluster``, ``lang``, ``after``, ...)."""
    if isinstance(node, Field | DateFilter):
        return frozenset({node.name})
    if isinstance(node, And | Or):
        return frozenset().union(*(field_names(n) for n in node.items))
    if isinstance(node, Not):
        return field_names(node.item)
    return frozenset()


# -- printing ------------------------------------------------------------------------------------------------
_BARE = re.compile(r'[^\s()"\-][^\s()"]*')
_RESERVED = re.compile(r"^(AND|OR|NOT|NEAR(/.*)?)$|^[A-Za-z_]+:")


def _quote_value(value: str) -> str:
    if _BARE.fullmatch(value) and not _RESERVED.search(value):
        return value
    return f'"{value}"'


def _leaf(node: Leaf, in_near: bool = False) -> str:
    body = f'"{node.text}"' if isinstance(node, Phrase) else node.text
    return f"title:{body}" if node.field == "title" and not in_near else body


def _operand(node: Operand) -> str:
    if isinstance(node, Or):
        return "(" + " OR ".join(_leaf(n, True) for n in node.items) + ")"  # type: ignore[arg-type]
    return _leaf(node, True)


_PREC = {Or: 1, And: 2, Not: 3}


def format_node(node: Node, parent: int = 0) -> str:
    """Print ``node``; ``parent`` is the precedence of the enclosing operator (wraps in parentheses if needed)."""
    if isinstance(node, Term | Phrase):
        return _leaf(node)
    if isinstance(node, Near):
        op = f"NEAR/{node.distance}{'f' if node.ordered else ''}"
        body = f"{_operand(node.left)} {op} {_operand(node.right)}"
        return f"title:({body})" if node.field == "title" else body
    if isinstance(node, Field):
        return f"{node.name}:{_quote_value(node.value)}"
    if isinstance(node, DateFilter):
        return f"{node.name}:{node.day.isoformat()}"
    if isinstance(node, Not):
        return "NOT " + format_node(node.item, _PREC[Not])
    prec = _PREC[type(node)]
    joiner = " OR " if isinstance(node, Or) else " AND "
    body = joiner.join(format_node(n, prec) for n in node.items)
    return f"({body})" if parent >= prec else body
