"""Emerging topics: a theme injected into the last window is found (terms, representative posts), a stable theme is
not, copies count once, results are stored per day and shown by the CLI and the report."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from openear import reports
from openear.cli import app
from openear.pipeline import import_file
from openear.settings import SourceSpec
from openear.store.queries import Period
from openear.store.schema import posts, topics
from openear.topics import emerging_topics, find_topics, latest_topics, topics_for_day

runner = CliRunner()
DAY = datetime(2026, 11, 20, tzinfo=UTC)
SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ti", "ra", "po", "ve", "zu"]
FILLER = ("".join(p) for p in itertools.product(SYLLABLES, repeat=3))  # unique letter-only words

# Themes no taxonomy rule matches (the posts fall back to "other").
STABLE = (
    ["the grey pigeons", "those pigeons", "a flock of pigeons", "pigeons again"],
    ["sat on the bridge railing", "crowded the bridge railing", "lined the old bridge railing"],
)
NEW = (
    ["the harbour ferry", "that harbour ferry", "the early harbour ferry"],
    ["left the pier before time", "skipped the pier stop", "sailed past the pier"],
)
COMMENTS = [
    "honestly",
    "no idea why",
    "what a sight",
    "every single time",
    "look at that",
    "who knew",
    "unreal",
    "so strange",
    "of all things",
    "just saying",
]


def _text(theme: tuple[list[str], list[str]], i: int) -> str:
    subjects, verbs = theme
    words = " ".join(next(FILLER) for _ in range(4))
    return f"{subjects[i % len(subjects)]} {verbs[(i // 2) % len(verbs)]}, {COMMENTS[i % len(COMMENTS)]}. {words}"


def _rows(with_new: bool) -> list[dict[str, Any]]:
    rows = []
    for day in range(14):  # 14 days up to DAY: two 7-day windows
        when = DAY - timedelta(days=day)
        for j in range(2):  # the stable theme, every day in both windows
            n = day * 2 + j
            rows.append({"id": f"s{n}", "text": _text(STABLE, n), "created_at": when.isoformat(), "author": f"a{n}"})
        if with_new and day < 5:  # the new theme: in the last window only
            for j in range(3):
                n = day * 3 + j
                rows.append({"id": f"n{n}", "text": _text(NEW, n), "created_at": when.isoformat(), "author": f"b{n}"})
    rows.append(
        {
            "id": "copy1",
            "text": "harbour ferry news: it skipped the pier and nobody told anyone",
            "author": "c1",
            "created_at": DAY.isoformat(),
        }
    )
    rows.append(
        {
            "id": "copy2",
            "text": "harbour ferry news: it skipped the pier and nobody told anyone",
            "author": "c2",
            "created_at": DAY.isoformat(),
        }
    )
    return rows


def _import(workspace: Any, rows: list[dict[str, Any]]) -> None:
    path = workspace.write_jsonl("rows.jsonl", rows)
    import_file(workspace.settings, workspace.store, path, "jsonl", SourceSpec("s", visibility="public"), mode="rules")
    with workspace.store.connect() as conn:
        assert set(conn.execute(select(posts.c.category)).scalars()) == {"other"}  # no category explains them


def test_an_injected_new_theme_is_found_and_a_stable_one_is_not(db_url: str, workspace: Any) -> None:
    _import(workspace, _rows(with_new=True))
    found = emerging_topics(workspace.store, DAY.date())
    assert len(found) == 1
    topic = found[0]
    assert {"harbour", "ferry", "pier"} & set(topic.terms) and not {"pigeons", "bridge", "railing"} & set(topic.terms)
    assert topic.n_posts == 15 + 1  # 15 posts and one group of two copies
    assert topic.n_previous == 0 and topic.score >= 3
    with workspace.store.connect() as conn:
        texts = dict(conn.execute(select(posts.c.id, posts.c.text)).all())
    assert len(topic.post_ids) == 3 and all("ferry" in texts[i] for i in topic.post_ids)

    stored = topics_for_day(workspace.store, "2026-11-20")
    assert stored == latest_topics(workspace.store)
    assert stored[0]["terms"] == topic.terms and [p["id"] for p in stored[0]["posts"]] == topic.post_ids
    assert all("ferry" in p["text"] for p in stored[0]["posts"])
    assert "author" not in json.dumps(stored)
    assert emerging_topics(workspace.store, DAY.date()) == found  # deterministic; the day's rows are replaced
    with workspace.store.connect() as conn:
        assert len(conn.execute(select(topics)).all()) == 1

    # a week later the theme is no longer new
    assert emerging_topics(workspace.store, (DAY + timedelta(days=7)).date(), save=False) == []


def test_a_stable_stream_has_no_emerging_topic(db_url: str, workspace: Any) -> None:
    _import(workspace, [r for r in _rows(with_new=False) if not r["id"].startswith("copy")])
    assert emerging_topics(workspace.store, DAY.date()) == []
    assert latest_topics(workspace.store) == []


def test_posts_that_share_only_filler_words_are_no_theme() -> None:
    """Questions such as "anyone else ...?" about unrelated things were reported as a topic "anyone, else"."""
    unrelated = [next(FILLER) + " " + next(FILLER) for _ in range(8)]
    current = [f"Does anyone else get {u}? Something is off, {u}." for u in unrelated]
    current += [f"Alguien más con {u}? Otra vez lo mismo, {u}." for u in unrelated]
    found = find_topics(current, [])
    filler = {"anyone", "else", "something", "alguien", "otra", "vez"}
    assert [terms for terms, *_ in found if filler & set(terms)] == []


def test_topics_command_and_report_section(workspace: Any, tmp_path: Path) -> None:
    _import(workspace, _rows(with_new=True))
    result = runner.invoke(
        app, ["--home", str(workspace.home), "topics", "--day", "2026-11-20", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert len(shown) == 1 and "ferry" in shown[0]["terms"]
    table = runner.invoke(app, ["--home", str(workspace.home), "topics", "--day", "2026-11-20"])
    assert "Emerging topics" in table.output and "ferry" in table.output
    bad = runner.invoke(app, ["--home", str(workspace.home), "topics", "--day", "20/11/2026"])
    assert bad.exit_code == 2 and "expected a date such as" in bad.output

    with workspace.store.connect() as conn:
        rep = reports.build_report(
            conn, Period(DAY - timedelta(days=6), DAY + timedelta(days=1)), settings_like=workspace.settings
        )
    html = reports.render_html(rep)
    assert "Emerging topics" in html and "ferry" in html.split('id="topics"')[1].split("</section>")[0]
    assert "## Emerging topics" in reports.render_markdown(rep)
    with workspace.store.connect() as conn:
        earlier = reports.build_report(
            conn, Period(DAY - timedelta(days=30), DAY - timedelta(days=20)), settings_like=workspace.settings
        )
    assert earlier.topics == [] and "No new theme was found" in reports.render_html(earlier)
