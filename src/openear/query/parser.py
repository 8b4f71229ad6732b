"""The query parser: a lark LALR grammar, then a checked conversion to the syntax tree of :mod:`.ast`.

Every failure is a :class:`QuerySyntaxError` that names the column (1-based) and what was expected, e.g.
``col 14: expected a term after NEAR/5``; nothing else escapes, whatever the input.
"""

from __future__ import annotations

import re
from datetime import date

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from openear.errors import OpenearError
from openear.query.ast import (
    DATE_FIELDS,
    FIELDS,
    MAX_CLUSTER_ID,
    And,
    DateFilter,
    Field,
    Near,
    Node,
    Not,
    Operand,
    Or,
    Phrase,
    Term,
)
from openear.query.text import WILDCARDS

__all__ = ["MAX_DEPTH", "MAX_DISTANCE", "MAX_LENGTH", "QuerySyntaxError", "parse_node"]

MAX_LENGTH = 10_000
MAX_DEPTH = 100
MAX_DISTANCE = 1000

GRAMMAR = r"""
start: or_expr
or_expr: and_expr (OR and_expr)*
and_expr: unary (AND? unary)*
unary: NOT unary | MINUS unary | near
near: operand (NEAR operand)?
operand: TERM | PHRASE | LPAR or_expr RPAR | FIELD value | TITLE title_value
value: TERM | PHRASE
title_value: TERM | PHRASE | LPAR or_expr RPAR

AND.3: /AND(?![^\s()"])/
OR.3: /OR(?![^\s()"])/
NOT.3: /NOT(?![^\s()"])/
NEAR.3: /NEAR\/[0-9]+f?(?![^\s()"])/
FIELD.2: /(lang|source|kind|category|sentiment|country|cluster|after|before):/
TITLE.2: /title:/
MINUS: "-"
LPAR: "("
RPAR: ")"
PHRASE: /"[^"]*"/
TERM: /[^\s()"\-][^\s()"]*/
%ignore /\s+/
"""

_LARK = Lark(GRAMMAR, parser="lalr", lexer="basic", propagate_positions=True, keep_all_tokens=True)

_VALUES = {"kind": ("social", "news"), "sentiment": ("positive", "neutral", "negative")}
_FIELDISH = re.compile(r"^([A-Za-z_]+):")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_DIGITS = re.compile(r"[0-9]+")


class QuerySyntaxError(OpenearError):
    """A query that does not parse; ``column`` is 1-based, ``message`` names what was expected."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"col {column}: {message}")
        self.column = column
        self.message = message


def _fail(pos: int, message: str) -> QuerySyntaxError:
    return QuerySyntaxError(pos + 1, message)


def parse_node(text: str) -> Node:
    """Parse ``text`` into a syntax tree or raise :class:`QuerySyntaxError`."""
    if not isinstance(text, str):
        raise QuerySyntaxError(1, "a query is text")
    if not text.strip():
        raise QuerySyntaxError(1, "the query is empty")
    if len(text) > MAX_LENGTH:
        raise QuerySyntaxError(MAX_LENGTH + 1, f"the query is longer than {MAX_LENGTH} characters")
    if "\x00" in text:
        raise _fail(text.index("\x00"), "unexpected NUL character")
    try:
        tree = _LARK.parse(text)
    except UnexpectedInput_ as exc:
        raise _explain(text, exc) from None
    except (LarkError, RecursionError):  # pragma: no cover - defensive: lark should only raise the above
        raise QuerySyntaxError(1, "the query does not parse") from None
    return _Converter(text).or_expr(tree.children[0], 0)


UnexpectedInput_ = (UnexpectedCharacters, UnexpectedToken, UnexpectedEOF)

_DESCRIBE = {
    "AND": "AND",
    "OR": "OR",
    "NOT": "NOT",
    "MINUS": "'-'",
    "LPAR": "'('",
    "RPAR": "')'",
    "$END": "the end of the query",
}


def _tokens_before(text: str, pos: int) -> list[Token]:
    out: list[Token] = []
    try:
        for tok in _LARK.lex(text):
            if tok.start_pos is None or tok.start_pos >= pos:
                break
            out.append(tok)
    except LarkError:
        pass
    return out


def _explain(text: str, exc: Exception) -> QuerySyntaxError:
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream
        if text[pos] == '"':
            return _fail(pos, "unterminated phrase: missing closing '\"'")
        return _fail(pos, f"unexpected character {text[pos]!r}")
    tok = getattr(exc, "token", None)
    if tok is None or tok.type == "$END":
        pos = len(text.rstrip())
        found = "$END"
    else:
        pos = tok.start_pos if tok.start_pos is not None else len(text)
        found = tok.type
    before = _tokens_before(text, pos)
    prev = before[-1] if before else None
    if prev is not None and prev.type in ("NEAR", "AND", "OR", "NOT", "MINUS", "LPAR"):
        return _fail(pos, f"expected a term after {prev.value}")
    if prev is not None and prev.type == "FIELD":
        return _fail(pos, f"expected a value after {prev.value}")
    if prev is not None and prev.type == "TITLE":
        return _fail(pos, "expected a term, phrase or (group) after title:")
    if found == "$END":
        depth = 0
        for t in before:
            depth += (t.type == "LPAR") - (t.type == "RPAR")
        if depth > 0:
            return _fail(pos, "expected ')'")
        return _fail(pos, "unexpected end of the query")  # pragma: no cover - every rule can end after a term
    if found == "RPAR":
        return _fail(pos, "unmatched ')'")
    if found == "NEAR":
        return _fail(pos, f"expected a term before {tok.value}; NEAR joins two terms and cannot be chained")
    if found in ("AND", "OR") and (prev is None or prev.type in ("LPAR",)):
        return _fail(pos, f"expected a term before {tok.value}")
    return _fail(pos, f"unexpected {_DESCRIBE.get(found, repr(tok.value) if tok else found)}")


class _Converter:
    """Lark tree -> checked syntax tree. Raises :class:`QuerySyntaxError` with the offending column."""

    def __init__(self, text: str) -> None:
        self.text = text

    @staticmethod
    def _pos(item: Tree | Token) -> int:
        if isinstance(item, Token):
            return item.start_pos or 0
        return getattr(item.meta, "start_pos", 0) or 0

    def _deeper(self, item: Tree | Token, depth: int) -> int:
        if depth >= MAX_DEPTH:
            raise _fail(self._pos(item), f"the query nests deeper than {MAX_DEPTH} levels")
        return depth + 1

    def or_expr(self, tree: Tree, depth: int) -> Node:
        depth = self._deeper(tree, depth)
        items = [self.and_expr(c, depth) for c in tree.children if isinstance(c, Tree)]
        flat: list[Node] = []
        for n in items:
            flat.extend(n.items if isinstance(n, Or) else (n,))
        return flat[0] if len(flat) == 1 else Or(tuple(flat))

    def and_expr(self, tree: Tree, depth: int) -> Node:
        items = [self.unary(c, depth) for c in tree.children if isinstance(c, Tree)]
        flat: list[Node] = []
        for n in items:
            flat.extend(n.items if isinstance(n, And) else (n,))
        return flat[0] if len(flat) == 1 else And(tuple(flat))

    def unary(self, tree: Tree, depth: int) -> Node:
        depth = self._deeper(tree, depth)
        first = tree.children[0]
        if isinstance(first, Token):  # NOT or MINUS
            return Not(self.unary(tree.children[1], depth))
        return self.near(first, depth)

    def near(self, tree: Tree, depth: int) -> Node:
        if len(tree.children) == 1:
            return self.operand(tree.children[0], depth)
        left_t, op, right_t = tree.children
        left = self._near_operand(left_t, depth, op.value)
        right = self._near_operand(right_t, depth, op.value)
        distance = int(op.value[5:].rstrip("f"))
        if distance > MAX_DISTANCE:
            raise _fail(op.start_pos, f"{op.value}: the distance is at most {MAX_DISTANCE}")
        return Near(left, right, distance, op.value.endswith("f"))

    def _near_operand(self, tree: Tree, depth: int, op: str) -> Operand:
        node = self.operand(tree, depth)
        ok = isinstance(node, Term | Phrase) and node.field == "any"
        if isinstance(node, Or):
            ok = all(isinstance(n, Term | Phrase) and n.field == "any" for n in node.items)
        if not ok:
            raise _fail(self._pos(tree), f"{op} joins terms, phrases or (… OR …) groups of them")
        return node  # type: ignore[return-value]

    def operand(self, tree: Tree, depth: int) -> Node:
        first = tree.children[0]
        kind = first.type
        if kind == "TERM":
            return self.term(first)
        if kind == "PHRASE":
            return self.phrase(first)
        if kind == "LPAR":
            return self.or_expr(tree.children[1], depth)
        if kind == "FIELD":
            return self.field(first, tree.children[1].children[0])
        # title:
        value = tree.children[1]
        inner = value.children[0]
        if inner.type == "TERM":
            return Term(self.term(inner).text, "title")
        if inner.type == "PHRASE":
            return Phrase(self.phrase(inner).text, "title")
        return self._titled(self.or_expr(value.children[1], depth), self._pos(value.children[1]))

    def _titled(self, node: Node, pos: int) -> Node:
        if isinstance(node, Term | Phrase):
            return type(node)(node.text, "title")
        if isinstance(node, Near):
            return Near(node.left, node.right, node.distance, node.ordered, "title")
        if isinstance(node, And | Or):
            return type(node)(tuple(self._titled(n, pos) for n in node.items))
        if isinstance(node, Not):
            return Not(self._titled(node.item, pos))
        raise _fail(pos, "title:( … ) takes terms, phrases and NEAR only, not field filters")

    def _words_check(self, tok: Token, text: str) -> None:
        words = Term(text).words
        if not words:
            raise _fail(tok.start_pos or 0, f"{tok.value!r} has no letters or digits")
        for w in words:
            if not w.strip(WILDCARDS) and set(w) <= set(WILDCARDS):
                raise _fail(tok.start_pos or 0, f"{tok.value!r}: a wildcard needs a letter or digit in its word")

    def term(self, tok: Token) -> Term:
        value = str(tok.value)
        pos = tok.start_pos or 0
        if value == "NEAR" or value.startswith("NEAR/"):
            raise _fail(pos, "write NEAR/n with a distance, e.g. NEAR/5 (or NEAR/5f for that order)")
        m = _FIELDISH.match(value)
        if m:
            names = ", ".join((*FIELDS, *DATE_FIELDS, "title"))
            raise _fail(pos, f"unknown field {m.group(1)!r}; fields are {names} (quote the term to search for it)")
        self._words_check(tok, value)
        return Term(value)

    def phrase(self, tok: Token) -> Phrase:
        value = str(tok.value)[1:-1]
        self._words_check(tok, value)
        return Phrase(value)

    def field(self, name_tok: Token, value_tok: Token) -> Node:
        name = str(name_tok.value)[:-1]
        raw = str(value_tok.value)
        value = raw[1:-1] if value_tok.type == "PHRASE" else raw
        pos = value_tok.start_pos or 0
        if not value.strip():
            raise _fail(pos, f"expected a value after {name}:")
        if value != value.strip():
            raise _fail(pos, f"{name}: the value has leading or trailing spaces")
        if name in DATE_FIELDS:
            try:
                if not _DAY.match(value):
                    raise ValueError
                day = date.fromisoformat(value)
            except ValueError:
                raise _fail(pos, f"{name}: expected a day as YYYY-MM-DD, not {value!r}") from None
            return DateFilter(name, day)  # type: ignore[arg-type]
        if name == "cluster":
            n = int(value) if _DIGITS.fullmatch(value) and len(value) <= 30 else 0
            if not 1 <= n <= MAX_CLUSTER_ID:
                expected = "a cluster id (a whole number from 1, e.g. cluster:123)"
                raise _fail(pos, f"cluster: expected {expected}, not {value!r}")
            return Field(name, str(n))
        if name in ("lang", "kind", "sentiment"):
            value = value.lower()
        elif name == "country":
            value = value.upper()
        allowed = _VALUES.get(name)
        if allowed and value not in allowed:
            raise _fail(pos, f"{name}: expected one of {', '.join(allowed)}, not {value!r}")
        return Field(name, value)
