"""openear's boolean query language, for search, category rules, routing rules and alert filters.

One syntax tree, two back ends: :meth:`Query.matches` evaluates a query on one post in Python;
:func:`to_sql` compiles it to a ``WHERE`` clause over ``posts`` (SQLite FTS5) with the same results. The
language is described in ``docs/query-language.md``::

    q = parse('(tip OR tips) NEAR/3 (missing OR stolen) lang:en -refund')
    q.matches(Document(text="My tips went missing again", lang="en"))   # True
    rows = search(conn, q, limit=20)                                       # newest first
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from openear.query.ast import Node, format_node
from openear.query.evaluate import Document, Prepared, compile_node, prepare
from openear.query.parser import QuerySyntaxError, parse_node
from openear.query.sql import ensure_functions, install_sqlite_functions, to_sql
from openear.store.schema import posts

__all__ = [
    "Document",
    "Prepared",
    "Query",
    "QuerySyntaxError",
    "format_query",
    "install_sqlite_functions",
    "parse",
    "prepare",
    "search",
    "to_sql",
]


@dataclass(frozen=True)
class Query:
    """A parsed query. Equal queries have equal trees; ``text`` is what was typed (not compared)."""

    root: Node
    text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_test", compile_node(self.root))

    def matches(self, doc: Document | Prepared) -> bool:
        """Whether the post matches. Pass :func:`prepare` (doc) to test many queries on one post cheaply."""
        return self._test(prepare(doc))  # type: ignore[attr-defined,no-any-return]

    def __str__(self) -> str:
        return format_node(self.root)


def parse(text: str) -> Query:
    """Parse a query; raises :class:`QuerySyntaxError` (``col N: expected ...``) when it is not valid."""
    return Query(parse_node(text), text)


def format_query(query: Query | Node) -> str:
    """The canonical text of a query: parsing it gives the same query back."""
    return format_node(query.root if isinstance(query, Query) else query)


SEARCH_COLUMNS = (
    posts.c.id,
    posts.c.source,
    posts.c.external_id,
    posts.c.kind,
    posts.c.created_at,
    posts.c.lang,
    posts.c.country,
    posts.c.category,
    posts.c.sentiment,
    posts.c.title,
    posts.c.text,
    posts.c.url,
)


def search(
    conn: Connection, query: Query | str, *, limit: int | None = 50, offset: int = 0, columns: Sequence[Any] = ()
) -> list[RowMapping]:
    """The posts matching ``query``, newest first (no author pseudonyms unless asked for in ``columns``)."""
    q = parse(query) if isinstance(query, str) else query
    ensure_functions(conn)
    stmt = (
        select(*(columns or SEARCH_COLUMNS))
        .where(to_sql(q, conn.dialect.name))
        .order_by(posts.c.created_at.desc(), posts.c.id.desc())
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(conn.execute(stmt).mappings())
