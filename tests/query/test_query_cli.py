"""``openear search``: newest first, JSON with source/external_id/created_at/text, audited, clean errors."""

from __future__ import annotations

import json

from sqlalchemy import select
from typer.testing import CliRunner

from openear.cli import app
from openear.store.schema import audit_log

runner = CliRunner()


def test_search_prints_matching_posts_newest_first_and_audits(workspace) -> None:
    rows = [
        {"id": f"p{i}", "text": text, "created_at": f"2026-11-{i + 1:02d}T10:00:00Z", "author": f"a{i}"}
        for i, text in enumerate(["My tips went missing", "La app no muestra las propinas", "Tips stolen again",
                                  "Great weather today"])
    ]
    workspace.import_rows(rows)
    home = str(workspace.home)
    result = runner.invoke(app, ["--home", home, "search", "tips OR propinas", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert [p["external_id"] for p in found] == ["p2", "p1", "p0"]
    assert {"source", "external_id", "created_at", "text"} <= set(found[0])
    assert found[0]["created_at"].startswith("2026-11-03")
    limited = runner.invoke(app, ["--home", home, "search", "tips", "--limit", "1", "--json"])
    assert [p["external_id"] for p in json.loads(limited.output)] == ["p2"]
    table = runner.invoke(app, ["--home", home, "search", "weather"])
    assert table.exit_code == 0 and "Great weather today" in table.output
    with workspace.store.connect() as conn:
        events = conn.execute(select(audit_log.c.action, audit_log.c.target).where(audit_log.c.action == "search"))
        assert [t for _, t in events] == ["tips OR propinas", "tips", "weather"]


def test_a_bad_query_is_one_line_and_exit_2(workspace) -> None:
    result = runner.invoke(app, ["--home", str(workspace.home), "search", "tips NEAR/5"])
    assert result.exit_code == 2
    assert "col 12: expected a term after NEAR/5" in result.output
    assert "Traceback" not in result.output
