"""Ingest keeps the retention limit: a post already older than it when read is never stored (issue 7, part 3).

Before, an import of an old file after a purge stored posts that the next purge would delete, so they were
searchable, reported and routed for up to a day past the limit the transparency page promises.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openear import clock
from openear.cli import app
from openear.errors import ConfigError
from openear.overrides import set_override

runner = CliRunner()
NOW = "2026-12-01T00:00:00+00:00"  # 180 days before it: 2026-06-04


def rows() -> list[dict]:
    return [
        {"id": "old", "text": "The app froze at pickup again", "created_at": "2026-05-01T10:00:00Z", "author": "a"},
        {"id": "edge", "text": "Tips went missing on three orders", "created_at": "2026-06-04T00:00:00Z",
         "author": "b"},
        {"id": "new", "text": "Support closed my ticket unanswered", "created_at": "2026-11-20T10:00:00Z",
         "author": "c"},
    ]


def stored_ids(workspace) -> set[str]:
    from sqlalchemy import select

    from openear.store.schema import posts

    with workspace.store.connect() as conn:
        return set(conn.execute(select(posts.c.external_id)).scalars())


def test_import_drops_posts_older_than_the_retention_limit_and_counts_them(
    workspace, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(clock.ENV, NOW)
    _, stats = workspace.import_rows(rows())
    assert (stats.read, stats.stored, stats.expired) == (3, 2, 1)
    assert stored_ids(workspace) == {"edge", "new"}  # the limit itself is kept, as the purge keeps it
    cutoff = clock.now() - timedelta(days=180)
    assert workspace.store.purge(cutoff, dry_run=True)["posts"] == 0  # nothing stored that the purge would delete


def test_the_retention_set_on_the_admin_page_wins_at_ingest(workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(clock.ENV, NOW)
    with workspace.store.begin() as conn:
        set_override(conn, workspace.settings, "retention_days", "30", "admin")
    _, stats = workspace.import_rows(rows())
    assert (stats.stored, stats.expired) == (1, 2)
    assert stored_ids(workspace) == {"new"}


def test_an_import_without_a_frozen_clock_counts_from_today(workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(clock.ENV)
    _, stats = workspace.import_rows(
        [{"id": "ancient", "text": "The app froze", "created_at": "2019-01-01T00:00:00Z", "author": "a"}]
    )
    assert (stats.stored, stats.expired) == (0, 1)


@pytest.mark.parametrize(("command", "override"), [("import", None), ("backfill", None), ("import", "30"),
                                                  ("backfill", "30")])
def test_import_and_backfill_say_how_many_posts_were_past_the_limit(
    command: str, override: str | None, workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary names the limit that ingest applied: openear.toml's, or the admin page's when it is set."""
    monkeypatch.setenv(clock.ENV, NOW)
    if override:
        with workspace.store.begin() as conn:
            set_override(conn, workspace.settings, "retention_days", override, "admin")
    path = workspace.write_jsonl("old.jsonl", rows())
    args = ["--home", str(workspace.home), command, str(path), "--source", "forum", "--visibility", "consented"]
    shown = runner.invoke(app, args, catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    caption = " ".join(shown.output.split())
    if override:
        assert "older than the retention limit of 30 days, not stored: 2" in caption
        assert stored_ids(workspace) == {"new"}
        return
    assert "older than the retention limit of 180 days, not stored: 1" in caption
    assert stored_ids(workspace) == {"edge", "new"}
    if command == "import":  # the JSON summary carries the count too; a second import stores nothing new
        again = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
        summary = json.loads(again.output.strip().splitlines()[-1])
        assert (summary["expired"], summary["stored"], summary["unchanged"]) == (1, 0, 2)


@pytest.mark.parametrize("value", ["tomorrow", "2026-12-01T00:00:00"])
def test_a_wrong_frozen_clock_is_named(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(clock.ENV, value)
    with pytest.raises(ConfigError, match="OPENEAR_NOW"):
        clock.now()
