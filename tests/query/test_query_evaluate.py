"""Meaning on one post: the examples of issue 3, in Python."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from openear.query import Document, parse, prepare

POST = Document(
    text="My tips went missing again. La app no muestra las Propinas tras la desactivación.",
    title="Flex drivers say tips vanish",
    kind="news",
    lang="es",
    source="reddit",
    category="pay_tips",
    categories=frozenset({"pay_tips", "app_bugs"}),
    sentiment="negative",
    country="GB",
    created_at=datetime(2026, 1, 15, 8, tzinfo=UTC),
    cluster_id=42,
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tips", True), ("tip", False), ("propinas", True), ("desactivacion", True), ("TIPS", True),
        ('"missing tips"', False), ('"tips went missing"', True), ('"tips. went"', True),
        ("tips AND app", True), ("tips OR nothing", True), ("tips -app", False), ("tips NOT app", False),
        ("deactivat*", False), ("desactiva*", True), ("t?ps", True), ("t?p", False), ("pro*nas", True),
        ("tips NEAR/1 missing", True), ("tips NEAR/0 missing", False), ("missing NEAR/1 tips", True),
        ("tips NEAR/1f missing", True), ("missing NEAR/1f tips", False),
        ("(tip OR tips) NEAR/3 (missing OR stolen)", True), ('"went missing" NEAR/0 again', True),
        ("flex", True), ('title:"flex"', True), ("title:app", False), ("title:(vanish NEAR/0 tips)", True),
        ("vanish NEAR/3 again", False),  # never spans title into text
        ("lang:es", True), ("lang:EN", False), ("source:reddit", True), ("kind:news", True),
        ("category:pay_tips", True), ("category:app_bugs", True), ("category:safety", False),
        ("sentiment:negative", True), ("country:gb", True),
        ("after:2026-01-15", True), ("after:2026-01-16", False), ("before:2026-01-15", False),
        ("before:2026-01-16", True),
        ("cluster:42", True), ("cluster:042", True), ("cluster:4", False), ("-cluster:42", False),
        ("cluster:43 OR cluster:42", True),
    ],
)
def test_examples(query: str, expected: bool) -> None:
    assert parse(query).matches(POST) is expected


def test_titles_count_for_news_only() -> None:
    social = Document(text="nothing here", title="Flex", kind="social")
    assert not parse("flex").matches(social)
    assert not parse("title:flex").matches(social)
    assert parse("flex").matches(Document(text="nothing here", title="Flex", kind="news"))


def test_posts_without_an_attribute_match_its_negation() -> None:
    doc = Document(text="tips")
    assert parse("-country:GB").matches(doc)
    assert not parse("after:2020-01-01").matches(doc)
    assert parse("-cluster:1").matches(doc) and not parse("cluster:1").matches(doc)


def test_from_row_reads_the_cluster() -> None:
    doc = Document.from_row({"text": "tips", "cluster_id": 9})
    assert parse("cluster:9").matches(doc) and not parse("cluster:8").matches(doc)


def test_a_prepared_document_serves_many_queries() -> None:
    p = prepare(POST)
    assert [parse(q).matches(p) for q in ("tips", "tip", "lang:es")] == [True, False, True]
