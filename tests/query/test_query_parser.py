"""Parsing: the syntax, canonical printing that round-trips, and clean errors for anything else."""

from __future__ import annotations

from datetime import date

import pytest
from _query_strategies import trees
from hypothesis import given, settings
from hypothesis import strategies as st

from openear.errors import OpenearError
from openear.query import QuerySyntaxError, format_query, parse
from openear.query.ast import And, DateFilter, Field, Near, Not, Or, Phrase, Term


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("tips", Term("tips")),
        ('"missing tips"', Phrase("missing tips")),
        ("a b", And((Term("a"), Term("b")))),
        ("a AND b OR c", Or((And((Term("a"), Term("b"))), Term("c")))),
        ("a (b OR c)", And((Term("a"), Or((Term("b"), Term("c")))))),
        ("a -b", And((Term("a"), Not(Term("b"))))),
        ("a NOT b", And((Term("a"), Not(Term("b"))))),
        ("e-mail", Term("e-mail")),
        ("deactivat* t?p", And((Term("deactivat*"), Term("t?p")))),
        ("tips NEAR/5 app", Near(Term("tips"), Term("app"), 5)),
        ("tips NEAR/5f app", Near(Term("tips"), Term("app"), 5, ordered=True)),
        ("(tip OR tips) NEAR/3 (missing OR stolen)",
         Near(Or((Term("tip"), Term("tips"))), Or((Term("missing"), Term("stolen"))), 3)),
        ('"no tip" NEAR/2 app', Near(Phrase("no tip"), Term("app"), 2)),
        ("lang:ES source:reddit kind:News",
         And((Field("lang", "es"), Field("source", "reddit"), Field("kind", "news")))),
        ("category:pay_tips sentiment:negative country:gb",
         And((Field("category", "pay_tips"), Field("sentiment", "negative"), Field("country", "GB")))),
        ('source:"my feed"', Field("source", "my feed")),
        ("cluster:123", Field("cluster", "123")),
        ('cluster:"0042" -cluster:7', And((Field("cluster", "42"), Not(Field("cluster", "7"))))),
        ("cluster:4611686018427387904", Field("cluster", str(2**62))),
        ("after:2026-01-01 before:2026-02-01",
         And((DateFilter("after", date(2026, 1, 1)), DateFilter("before", date(2026, 2, 1))))),
        ('title:"flex"', Phrase("flex", "title")),
        ("title:(flex OR block)", Or((Term("flex", "title"), Term("block", "title")))),
        ("title:(a NEAR/2 b)", Near(Term("a"), Term("b"), 2, field="title")),
        ("ANDROID ORacle NOTE", And((Term("ANDROID"), Term("ORacle"), Term("NOTE")))),
    ],
)
def test_syntax(text: str, tree: object) -> None:
    assert parse(text).root == tree
    assert parse(format_query(parse(text))).root == tree


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "col 1: the query is empty"),
        ("   ", "col 1: the query is empty"),
        ("missing tips NEAR/5", "col 20: expected a term after NEAR/5"),
        ("tips NEAR/5 )", "col 13: expected a term after NEAR/5"),
        ("a AND", "col 6: expected a term after AND"),
        ("a -", "col 4: expected a term after -"),
        ("(a OR b", "col 8: expected ')'"),
        ("a)", "col 2: unmatched ')'"),
        ('"abc', "col 1: unterminated phrase"),
        ("OR a", "col 1: expected a term before OR"),
        ("lang:", "col 6: expected a value after lang:"),
        ("foo:bar", "col 1: unknown field 'foo'"),
        ("after:2026-13-01", "col 7: after: expected a day as YYYY-MM-DD"),
        ("kind:blog", "col 6: kind: expected one of social, news"),
        ("cluster:abc", "col 9: cluster: expected a cluster id (a whole number from 1, e.g. cluster:123), not 'abc'"),
        ("tips cluster:12a", "col 14: cluster: expected a cluster id"),
        ("cluster:0", "col 9: cluster: expected a cluster id"),
        ("cluster:1.5", "col 9: cluster: expected a cluster id"),
        ("cluster:4611686018427387905", "col 9: cluster: expected a cluster id"),
        ("cluster:١٢", "col 9: cluster: expected a cluster id"),  # Arabic-Indic digits: int() reads them, ids are ASCII
        ("cluster:", "col 9: expected a value after cluster:"),
        ("clusters:1", "col 1: unknown field 'clusters'; fields are lang, source, kind, category, sentiment, country, "
                       "cluster, after, before, title"),
        ("a NEAR/2 b NEAR/3 c", "col 12: expected a term before NEAR/3"),
        ("a NEAR/3 lang:es", "col 10: NEAR/3 joins terms, phrases"),
        ("(a b) NEAR/3 c", "col 1: NEAR/3 joins terms"),
        ("title:(lang:es)", "col 8: title:( … ) takes terms"),
        ("!!!", "col 1: '!!!' has no letters or digits"),
        ("*", "col 1: '*': a wildcard needs a letter or digit"),
        ("NEAR/x", "col 1: write NEAR/n"),
        ("a NEAR/5000 b", "col 3: NEAR/5000: the distance is at most 1000"),
        ("(" * 80 + "a" + ")" * 80, "col 51: the query nests deeper than 100 levels"),
    ],
)
def test_errors_name_the_column_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse(text)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, OpenearError)


@settings(max_examples=1000)
@given(trees())
def test_printing_then_parsing_gives_the_same_tree(tree: object) -> None:
    text = format_query(tree)  # type: ignore[arg-type]
    assert parse(text).root == tree
    assert format_query(parse(text)) == text


_QUERYISH = st.sampled_from(
    ['"', "(", ")", "-", " ", "AND", "OR", "NOT", "NEAR/2", "NEAR/3f", "lang:", "title:", "after:", "*", "?", "tips",
     "é", ":", "\n", "x", "2026-01-01", "NEAR", "f", "cluster:", "12", "0"]
)


@settings(max_examples=3000)
@given(st.text(max_size=60) | st.lists(_QUERYISH, max_size=25).map("".join)
       | st.lists(_QUERYISH, max_size=25).map(" ".join))
def test_any_string_parses_or_fails_cleanly(text: str) -> None:
    try:
        q = parse(text)
    except QuerySyntaxError as exc:
        assert str(exc).startswith("col ") and "\n" not in str(exc)
    else:
        assert parse(format_query(q)) == q
