"""Compiling a query to a SQL ``WHERE`` clause over ``posts``, so search never loads every post into Python.

The generic part (this module's :class:`Compiler`) turns field and date filters into column comparisons, category
into "the primary category or any stored ``category`` label", and ``AND``/``OR``/``NOT`` into SQL booleans. Word
tests go to a :class:`TextBackend`, the seam between databases:

- :class:`Fts5Backend` (SQLite): as much of the query as FTS5 can say exactly goes into one ``posts_fts MATCH``
  (terms, phrases, trailing ``*``, ``NEAR``, ``AND``/``OR``/``NOT`` between them, the news-title rule as column
  filters). What FTS5 cannot say (``NEAR/nf``, ``?`` and inner ``*`` wildcards) is narrowed by FTS5 to a superset,
  then checked exactly by ``oe_match()``, a Python function registered on SQLite connections that runs the
  evaluator on that one test. Results are therefore identical to :meth:`Query.matches`.
- :class:`PostgresBackend` (PostgreSQL): ``posts_search`` (migration 0001) keeps each post's folded words, the
  same words as here, as arrays per field and as a ``tsvector`` under a GIN index. A word test becomes
  ``doc @@ tsquery`` (a superset, from the index) and an exact test on the word arrays (``= ANY``, and the SQL
  functions ``openear_has_phrase`` / ``openear_near`` for phrases, wildcards as ``LIKE`` and ``NEAR``), so results
  are identical to :meth:`Query.matches` there too.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, time
from functools import lru_cache
from typing import Any, Literal, Protocol

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Select,
    Text,
    and_,
    any_,
    cast,
    column,
    event,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    table,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSQUERY, TSVECTOR

from openear.errors import OpenearError
from openear.query.ast import And, DateFilter, Field, Near, Node, Not, Operand, Or, Phrase, Term, format_node, is_text
from openear.query.evaluate import Document, Prepared, compile_node
from openear.query.text import WILDCARDS
from openear.store.schema import labels, posts

__all__ = [
    "Compiler",
    "Fts5Backend",
    "FtsSearch",
    "PostgresBackend",
    "TextBackend",
    "fts_search",
    "install_sqlite_functions",
    "to_sql",
]

Scope = Literal["news", "other"]
Fts = str | bool | None  # an FTS5 expression; True / False when constant; None when FTS5 cannot say it exactly

_FTS = table("posts_fts", column("rowid"))


class TextBackend(Protocol):
    """Turns a word-only subtree into a SQL condition on ``posts``, or ``None`` to have it split further."""

    def text(self, node: Node) -> ColumnElement[bool] | None: ...


# -- FTS5 expressions ----------------------------------------------------------------------------------------
def _quote(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _fts_word(pattern: str) -> str | None:
    stem = pattern.rstrip("*")
    if "*" in stem or "?" in stem:
        return None
    return _quote(stem) + (" *" if stem != pattern else "")


def _fts_phrase(patterns: tuple[str, ...]) -> str | None:
    parts = [_fts_word(p) for p in patterns]
    if any(p is None for p in parts):
        return None
    return " + ".join(parts)  # type: ignore[arg-type]


def _columns(field: str, scope: Scope) -> str | None:
    if field == "title":
        return "title" if scope == "news" else None
    return "{text title}" if scope == "news" else "text"


def _near_parts(op: Operand) -> list[str] | None:
    items = op.items if isinstance(op, Or) else (op,)
    out = [_fts_phrase(n.words) for n in items]  # type: ignore[union-attr]
    return None if any(p is None for p in out) else out  # type: ignore[return-value]


def _fts_and(parts: list[Fts], negs: list[Fts]) -> Fts:
    if any(p is None for p in parts) or any(n is None for n in negs):
        return None
    if False in parts or True in negs:
        return False
    pos = [p for p in parts if p is not True]
    neg = [n for n in negs if n is not False]
    if not pos:
        return True if not neg else None
    expr = " AND ".join(f"({p})" for p in pos)
    if neg:
        expr = f"({expr}) NOT (" + " OR ".join(f"({n})" for n in neg) + ")"
    return expr


def fts(node: Node, scope: Scope, relax: bool = False) -> Fts:
    """The FTS5 expression for ``node`` on posts of one scope (news, other).

    ``relax``: a superset is fine, with no ``NOT`` in it (never ``None``). On the news scope that is a superset in
    both scopes, as dropping ``NOT`` leaves a monotone expression and the news scope searches more columns.
    """
    if isinstance(node, Term | Phrase):
        cols = _columns(node.field, scope)
        if cols is None:
            return False
        phrase = _fts_phrase(node.words)
        if phrase is None:
            return _relaxed(node.words, cols) if relax else None
        return f"{cols} : ({phrase})"
    if isinstance(node, Near):
        cols = _columns(node.field, scope)
        if cols is None:
            return False
        lefts, rights = _near_parts(node.left), _near_parts(node.right)
        if lefts is None or rights is None or node.ordered:
            if not relax:
                return None
            if lefts is None or rights is None:
                words = [w for op in (node.left, node.right) for w in _operand_words(op)]
                return _relaxed(tuple(words), cols) if words else True
        if len(lefts) * len(rights) > 64:  # too many NEAR pairs: both sides present is a superset
            if not relax:
                return None
            return f"{cols} : ((" + " OR ".join(lefts) + ") AND (" + " OR ".join(rights) + "))"
        nears = [f"NEAR({a} {b}, {node.distance})" for a in lefts for b in rights]
        return f"{cols} : (" + " OR ".join(nears) + ")"
    if isinstance(node, And):
        parts = [fts(n, scope, relax) for n in node.items if not isinstance(n, Not)]
        negs = [] if relax else [fts(n.item, scope) for n in node.items if isinstance(n, Not)]
        return _fts_and(parts, negs)
    if isinstance(node, Or):
        parts = [fts(n, scope, relax) for n in node.items]
        if any(p is None for p in parts) or True in parts:
            return None if None in parts else True
        kept = [p for p in parts if p is not False]
        return " OR ".join(f"({p})" for p in kept) if kept else False
    if isinstance(node, Not):
        if relax:
            return True
        inner = fts(node.item, scope)
        return (not inner) if isinstance(inner, bool) else None
    return None


def _operand_words(op: Operand) -> list[str]:
    items = op.items if isinstance(op, Or) else (op,)
    if len(items) > 1:
        return []  # an OR group says nothing that every match must contain
    return list(items[0].words)  # type: ignore[union-attr]


def _relaxed(patterns: tuple[str, ...], cols: str) -> Fts:
    """A superset of the posts holding all these words: each word's literal stem as a prefix, in any position."""
    parts = []
    for p in patterns:
        stem = p[: min((p.index(c) for c in "*?" if c in p), default=len(p))]
        if stem:
            parts.append(_quote(stem) + (" *" if stem != p else ""))
    return f"{cols} : (" + " AND ".join(parts) + ")" if parts else True


# -- the SQLite backend --------------------------------------------------------------------------------------
def _in_fts(expr: Fts, walk: bool = False) -> ColumnElement[bool]:
    """``posts.id`` among the ``posts_fts MATCH expr`` rows; ``walk``: in a form SQLite cannot use to look up
    ``posts`` by id, so it walks an index (``ix_posts_created_at`` for newest first) and tests each row."""
    if isinstance(expr, bool) or expr is None:
        return true() if expr else false()
    return (posts.c.id + 0 if walk else posts.c.id).in_(select(_FTS.c.rowid).where(_fts_match(expr)))


def _fts_match(expr: Fts) -> ColumnElement[bool]:
    if isinstance(expr, bool) or expr is None:
        return true() if expr else false()
    return literal_column("posts_fts").op("MATCH")(literal(expr))


def _plain() -> ColumnElement[bool]:
    """The posts on which the news-scope FTS5 expression is exact: news, and posts without a title."""
    return or_(posts.c.kind == "news", posts.c.title.is_(None))


def _check(node: Node) -> ColumnElement[bool]:
    return func.oe_match(literal(format_node(node)), posts.c.kind, posts.c.text, posts.c.title) == 1


class Fts5Backend:
    """Word tests through ``posts_fts`` (external-content FTS5 on ``posts(text, title)``).

    One FTS5 query per word test: its news-scope form (text and title) is exact for news posts and for posts
    without a title, which are nearly all; the rare social post with a title, and what FTS5 cannot say exactly,
    are decided by ``oe_match()`` among the candidates FTS5 found.
    """

    def text(self, node: Node) -> ColumnElement[bool] | None:
        superset = fts(node, "news", relax=True)
        if superset is False:
            return false()
        if superset is True and not isinstance(node, Term | Phrase | Near):
            return None  # e.g. "a OR NOT b": split it, so each part can use the index
        exact = fts(node, "news")
        check = _check(node)
        if exact is None:
            return and_(_in_fts(superset), check)
        plain = _plain()
        if exact == superset:
            return FtsSearch(exact, node).condition()
        exact_sql = _in_fts(exact)
        if superset is not True:
            exact_sql = and_(_in_fts(superset), exact_sql)
        return or_(and_(plain, exact_sql), and_(not_(plain), _in_fts(superset), check))


@dataclass(frozen=True)
class FtsSearch:
    """A word-only query without ``NOT`` that one FTS5 expression says exactly on the news scope: ``to_sql`` tests
    it as "in ``posts_fts MATCH match``, and news, untitled or ``oe_match``" (:meth:`condition`)."""

    match: Fts
    node: Node

    def condition(self, walk: bool = False) -> ColumnElement[bool]:
        """The ``WHERE`` clause ``to_sql`` gives; ``walk``: the same rows, found by walking an index of ``posts``."""
        return and_(_in_fts(self.match, walk), or_(_plain(), _check(self.node)))

    def doubt(self) -> Fts:
        """An FTS5 expression (or constant) for the only matches ``oe_match`` may reject: those whose text alone does
        not match (a social post matches on its text only); ``None`` when FTS5 cannot say the text-only match."""
        return _fts_and([self.match], [fts(self.node, "other")])

    def hits(self) -> Select[Any]:
        """How many posts ``match`` finds, counted by the FTS5 index alone."""
        return select(func.count()).select_from(_FTS).where(_fts_match(self.match))

    def rejected(self) -> ColumnElement[bool]:
        """The ``MATCH`` rows that are not matches: ``count(MATCH) - count(rejected)`` is the count of matches."""
        return and_(_in_fts(self.doubt()), not_(_plain()), not_(_check(self.node)))


def fts_search(node: Node) -> FtsSearch | None:
    """The :class:`FtsSearch` for ``node`` when ``to_sql`` searches it with one FTS5 expression, else ``None``."""
    if not is_text(node):
        return None
    superset = fts(node, "news", relax=True)
    if not isinstance(superset, str) or fts(node, "news") != superset:
        return None
    found = FtsSearch(superset, node)
    return found if found.doubt() is not None else None


# -- the PostgreSQL backend ----------------------------------------------------------------------------------
PG_SEARCH = table(
    "posts_search",
    column("post_id", Integer),
    column("is_news", Boolean),
    column("text_words", ARRAY(Text)),
    column("title_words", ARRAY(Text)),
    column("doc", TSVECTOR),
)
PG_LEXEME_CHARS = 500  # lexemes in posts_search.doc are cut to this many characters (migration 0001)


def _pg_lexeme(word: str, prefix: bool = False) -> str:
    """A tsquery operand for one folded word (``prefix``: any word starting with it)."""
    cut = word[:PG_LEXEME_CHARS]
    quoted = "'" + cut.replace("\\", "\\\\").replace("'", "''") + "'"
    return quoted + (":*" if prefix or len(word) > PG_LEXEME_CHARS else "")


def _pg_word(pattern: str) -> str | None:
    """The tsquery operand that every word matching ``pattern`` satisfies, or ``None`` when there is none."""
    cut = min((pattern.index(c) for c in WILDCARDS if c in pattern), default=len(pattern))
    if cut == len(pattern):
        return _pg_lexeme(pattern)
    return _pg_lexeme(pattern[:cut], prefix=True) if cut else None


def _pg_all(parts: list[str | None]) -> str | None:
    kept = [p for p in parts if p is not None]
    return " & ".join(f"({p})" for p in kept) if kept else None


def _pg_any(parts: list[str | None]) -> str | None:
    return None if not parts or None in parts else " | ".join(f"({p})" for p in parts)


def pg_tsquery(node: Node) -> str | None:
    """A ``tsquery`` every post matching ``node`` satisfies on ``posts_search.doc`` (no positions: phrases and
    NEAR need all their words); ``None`` when the index cannot narrow (``NOT``, a wildcard with no stem)."""
    if isinstance(node, Term | Phrase):
        return _pg_all([_pg_word(w) for w in node.words])
    if isinstance(node, Near):
        sides = [
            _pg_any([_pg_all([_pg_word(w) for w in alt.words]) for alt in _alternatives(op)])  # type: ignore[union-attr]
            for op in (node.left, node.right)
        ]
        return _pg_all(sides)
    if isinstance(node, And):
        return _pg_all([pg_tsquery(n) for n in node.items if not isinstance(n, Not)])
    if isinstance(node, Or):
        return _pg_any([pg_tsquery(n) for n in node.items])
    return None


def _like(pattern: str) -> str:
    return "".join("%" if c == "*" else "_" if c == "?" else ("\\" + c if c in "%_\\" else c) for c in pattern)


def _alternatives(op: Operand) -> tuple[Node, ...]:
    return op.items if isinstance(op, Or) else (op,)


def _likes(words: tuple[str, ...]) -> Any:
    return literal([_like(w) for w in words], ARRAY(Text))


def _pg_in_fields(field: str, test: Any) -> ColumnElement[bool]:
    """``test`` on the words a field covers: the text, and the title of news (``title:``: that title only)."""
    title = and_(PG_SEARCH.c.is_news, test(PG_SEARCH.c.title_words))
    return title if field == "title" else or_(test(PG_SEARCH.c.text_words), title)


def _pg_has(words: tuple[str, ...]) -> Any:
    if len(words) == 1 and not any(c in words[0] for c in WILDCARDS):
        return lambda col: literal(words[0], Text) == any_(col)
    return lambda col: func.openear_has_phrase(col, _likes(words), type_=Boolean)


def pg_exact(node: Node) -> ColumnElement[bool]:
    """The exact word test for ``node`` on a ``posts_search`` row."""
    if isinstance(node, Term | Phrase):
        return _pg_in_fields(node.field, _pg_has(node.words))
    if isinstance(node, Near):
        pairs = [(a.words, b.words) for a in _alternatives(node.left) for b in _alternatives(node.right)]  # type: ignore[union-attr]

        def near(col: Any) -> ColumnElement[bool]:
            return or_(*(
                func.openear_near(col, _likes(a), _likes(b), node.distance, node.ordered, type_=Boolean)
                for a, b in pairs
            ))

        return _pg_in_fields(node.field, near)
    if isinstance(node, And):
        return and_(*(pg_exact(n) for n in node.items))
    if isinstance(node, Or):
        return or_(*(pg_exact(n) for n in node.items))
    if isinstance(node, Not):
        return not_(pg_exact(node.item))
    raise TypeError(f"not a word test: {node!r}")


def pg_in_search(cond: ColumnElement[bool], tsquery: str | None) -> ColumnElement[bool]:
    """``posts.id`` among the ``posts_search`` rows meeting ``cond``, narrowed by the GIN index on ``tsquery``."""
    if tsquery is not None:
        cond = and_(PG_SEARCH.c.doc.op("@@")(cast(literal(tsquery, Text), TSQUERY)), cond)
    return posts.c.id.in_(select(PG_SEARCH.c.post_id).where(cond))


class PostgresBackend:
    """Word tests through ``posts_search``: the GIN index finds candidates, the word arrays decide exactly.

    Every post has a ``posts_search`` row (a trigger adds it), so ``NOT`` inside a word test is exact too.
    """

    def text(self, node: Node) -> ColumnElement[bool] | None:
        return pg_in_search(pg_exact(node), pg_tsquery(node))


# -- the generic compiler ------------------------------------------------------------------------------------
@dataclass
class Compiler:
    backend: TextBackend

    def compile(self, node: Node) -> ColumnElement[bool]:
        if is_text(node):
            done = self.backend.text(node)
            if done is not None:
                return done
        if isinstance(node, Field):
            return self._field(node)
        if isinstance(node, DateFilter):
            edge = datetime.combine(node.day, time())
            return posts.c.created_at >= edge if node.name == "after" else posts.c.created_at < edge
        if isinstance(node, Not):
            return not_(self.compile(node.item))
        if isinstance(node, And | Or):
            return self._boolean(node)
        raise TypeError(f"cannot compile {node!r}")  # pragma: no cover - a word test the backend refused

    def _boolean(self, node: And | Or) -> ColumnElement[bool]:
        combine = and_ if isinstance(node, And) else or_
        words = [n for n in node.items if is_text(n)]
        rest = [n for n in node.items if not is_text(n)]
        parts: list[ColumnElement[bool]] = []
        if len(words) > 1:
            group: Node = type(node)(tuple(words))
            if isinstance(node, And) and all(isinstance(n, Not) for n in words):
                group = Not(Or(tuple(n.item for n in words)))  # type: ignore[union-attr]
            done = self.backend.text(group) if isinstance(group, And | Or) else None
            if done is None and isinstance(group, Not):
                done = not_(self.compile(group.item))
            if done is not None:
                parts.append(done)
                words = []
        parts.extend(self.compile(n) for n in words)
        parts.extend(self.compile(n) for n in rest)
        return combine(*parts)

    @staticmethod
    def _field(node: Field) -> ColumnElement[bool]:
        if node.name == "cluster":  # the parser checked the id: canonical digits
            return and_(posts.c.cluster_id.is_not(None), posts.c.cluster_id == int(node.value))
        col = posts.c[node.name]
        same = and_(col.is_not(None), col == node.value)  # never NULL: NOT keeps posts without the attribute
        if node.name != "category":
            return same
        labelled = select(labels.c.post_id).where(labels.c.name == "category", labels.c.value == node.value)
        return or_(same, posts.c.id.in_(labelled))


_BACKENDS: dict[str, TextBackend] = {"sqlite": Fts5Backend(), "postgresql": PostgresBackend()}


def to_sql(query: Any, dialect: str = "sqlite") -> ColumnElement[bool]:
    """A ``WHERE`` clause over ``openear.store.schema.posts`` selecting the posts that ``query`` matches.

    ``query`` is a :class:`~openear.query.Query` or a syntax tree. On SQLite, run it on a connection where
    :func:`install_sqlite_functions` ran (done for every new SQLAlchemy connection once this module is imported).
    """
    node = getattr(query, "root", query)
    backend = _BACKENDS.get(dialect)
    if backend is None:
        raise OpenearError(f"search: unsupported database {dialect!r}")
    return Compiler(backend).compile(node)


# -- the SQLite function behind the exact check ---------------------------------------------------------------
@lru_cache(maxsize=256)
def _compiled(src: str) -> Any:
    from openear.query.parser import parse_node

    return compile_node(parse_node(src))


def _oe_match(src: str, kind: str | None, text: str | None, title: str | None) -> int:
    doc = Document(text=text or "", title=title, kind=kind or "social")
    return 1 if _compiled(src)(Prepared(doc)) else 0


def install_sqlite_functions(dbapi_conn: Any) -> None:
    """Register ``oe_match(query, kind, text, title)`` on a raw ``sqlite3`` connection (idempotent)."""
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.create_function("oe_match", 4, _oe_match, deterministic=True)


def ensure_functions(conn: Connection) -> None:
    """Make sure ``oe_match`` exists on this SQLAlchemy connection's SQLite handle."""
    if conn.dialect.name == "sqlite":
        install_sqlite_functions(conn.connection.driver_connection)


@event.listens_for(Engine, "connect")
def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    install_sqlite_functions(dbapi_conn)

