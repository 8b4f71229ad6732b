"""The pipeline feeds triage: right after an import, the case rules have opened cases and new posts of a linked
cluster are on its open case, without ``openear cases sync``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from openear import alerts, triage
from openear.store.schema import case_posts, cases, runs

COMPLAINT = "The app crashes every time I scan a package at the station and support never answers my tickets"


def _rows(n: int, start: datetime, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}{i}",
            "text": f"{COMPLAINT} {'!' * (i % 3)}",
            "author": f"a{prefix}{i}",
            "created_at": (start + timedelta(minutes=30 * i)).isoformat().replace("+00:00", "Z"),
        }
        for i in range(n)
    ]


def test_import_opens_a_case_for_a_matching_cluster_and_attaches_later_posts(workspace: Any, db_url: str) -> None:
    ws = workspace
    ws.store.migrate()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    ws.import_rows(_rows(9, start, "a"), name="a.jsonl")  # the default rule: 8 negative posts in one cluster
    with ws.store.connect() as conn:
        listed = [c for c in triage.list_cases(conn) if c["origin"].startswith("rule:")]
        assert [(c["origin"], c["category"], c["posts"]) for c in listed] == [
            ("rule:repeated complaints", "app_issue", 9)
        ]
        case_id = listed[0]["id"]
        # the spike check ran too: 9 posts on a category that had none is a spike, and it opened its own case
        assert sorted((a["dimension"], a["value"]) for a in alerts.list_alerts(conn) if a["granularity"] == "day") == [
            ("category", "app_issue"),
            ("lang", "en"),
            ("source", "test-source"),
        ]
        n_cases = len(triage.list_cases(conn))
    ws.import_rows(_rows(3, start + timedelta(days=1), "b"), name="b.jsonl")
    with ws.store.connect() as conn:
        assert triage.get_case(conn, case_id)["post_count"] == 12  # type: ignore[index]
        assert conn.execute(select(func.count()).select_from(cases)).scalar_one() == n_cases
    with ws.store.connect() as conn:
        before = conn.execute(select(func.count()).select_from(case_posts)).scalar_one()
    # re-importing the same file stores nothing, so it costs no triage pass and changes nothing
    ws.import_rows(_rows(3, start + timedelta(days=1), "b"), name="b.jsonl")
    with ws.store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(case_posts)).scalar_one() == before
        assert conn.execute(select(func.count()).select_from(runs)).scalar_one() == 3


def test_a_broken_triage_config_never_fails_an_import(workspace: Any) -> None:
    ws = workspace
    ws.store.migrate()
    config = ws.home / "openear.toml"
    config.write_text(config.read_text(encoding="utf-8") + '\n[alerts]\nsensitivity = "extreme"\n', encoding="utf-8")
    from openear import settings as settings_mod

    ws.settings = settings_mod.load(ws.home)
    _, stats = ws.import_rows(_rows(9, datetime(2026, 11, 1, tzinfo=UTC), "a"))
    assert stats.stored == 9
    with ws.store.connect() as conn:
        assert triage.list_cases(conn) == []  # the posts are stored; triage catches up once the config is fixed


def test_a_backfill_on_the_batch_engine_feeds_triage_too(workspace: Any) -> None:
    """`openear backfill` (and `run --engine ray`) write through BatchPipeline: its runs feed triage as well."""
    from typer.testing import CliRunner

    from openear.cli import app

    ws = workspace
    ws.store.migrate()
    path = ws.write_jsonl("big.jsonl", _rows(9, datetime.now(UTC).replace(microsecond=0) - timedelta(days=2), "a"))
    res = CliRunner().invoke(
        app,
        ["backfill", str(path), "--source", "archive", "--visibility", "public", "--engine", "local",
         "--home", str(ws.home)],
    )
    assert res.exit_code == 0, res.output
    with ws.store.connect() as conn:
        assert [(c["origin"], c["posts"]) for c in triage.list_cases(conn) if c["origin"].startswith("rule:")] == [
            ("rule:repeated complaints", 9)
        ]
