"""Guardrail 7 on the command line, command by command: every command of ``openear`` is classified here, either as
audited (run on a workspace with posts, a case and an alert, it appends exactly the expected audit rows) or as
showing no post content (and why). The commands come from the Typer app, so a new command that nobody classified
fails :func:`test_every_command_is_classified`. Sends (scheduled reports, alerts, escalations) are kept in the
``deliveries`` table. The web's counterpart is ``tests/web/test_audit_coverage.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import func, insert, select
from typer.main import get_command_name
from typer.testing import CliRunner

from openear import audit
from openear.cli import app
from openear.store.schema import alerts, audit_log, case_posts, deliveries, report_archive

runner = CliRunner()

# command -> (arguments after the command, expected (action, target) rows as actor "cli"); {case} and {backup} filled
AUDITED: dict[str, tuple[list[str], list[tuple[str, str]]]] = {
    "report": (["--format", "markdown", "--since", "60d"], [("report", "stdout")]),
    "search": (["tips"], [("search", "tips")]),
    "topics": (["--day", "2026-11-27"], [("topics.view", "2026-11-27")]),
    "cases list": (["--json"], [("cases.list", "cases")]),
    "cases show": (["{case}", "--json"], [("case.view", "case:{case}")]),
    "alerts list": (["--json"], [("alerts.view", "alerts")]),
    "alerts detect": (["--json"], [("alerts.view", "alerts")]),
    "backup": (["{backup}"], [("backup", "{backup}")]),
    "audit list": ([], [("audit.view", "audit")]),
}
NO_POST_CONTENT: dict[str, str] = {
    "init": "creates a workspace",
    "import": "stores posts, prints counts",
    "backfill": "stores posts, prints counts",
    "collect": "stores posts, prints counts",
    "run": "collectors and scheduled jobs (sends are kept in deliveries), prints counts",
    "serve": "the web app: its routes are classified in tests/web/test_audit_coverage.py",
    "demo": "a new workspace of the bundled synthetic sample, not of anyone's posts",
    "purge": "deletes expired posts, prints counts (audited as purge)",
    "eval": "metrics on a labelled file given on the command line, not on stored posts",
    "train": "trains a model from labels, prints metrics (audited)",
    "reenrich": "relabels stored posts, prints counts (audited as reenrich)",
    "restore": "reads a backup into the store, prints counts (audited as restore)",
    "users add": "accounts",
    "users list": "accounts",
    "users teams": "accounts",
    "users disable": "accounts",
    "tokens create": "API tokens",
    "tokens list": "API tokens",
    "tokens revoke": "API tokens",
    "audit verify": "checks the audit chain, prints ok or broken",
    "key show": "the pseudonym key's fingerprint",
    "key accept": "binds the store to a key (audited as key.accept)",
    "cases open": "prints the new case's number (the case's history and audit log: case.created)",
    "cases status": "a change, in the case's history and the audit log",
    "cases assign": "a change, in the case's history and the audit log",
    "cases note": "a change, in the case's history and the audit log",
    "cases sync": "prints counts and ids; its sends are kept in deliveries",
    "alerts ack": "a change, audited as alert.<status>",
    "schedule list": "the jobs and when they run",
    "schedule run": "scheduled jobs: archived reports in report_archive, sends in deliveries; downloads audited",
}


def _commands(group: typer.Typer, prefix: str = "") -> Iterator[str]:
    for info in group.registered_commands:
        assert info.callback is not None
        yield prefix + (info.name or get_command_name(info.callback.__name__))
    for sub in group.registered_groups:
        assert sub.typer_instance is not None and sub.name
        yield from _commands(sub.typer_instance, f"{prefix}{sub.name} ")


def invoke(home: Path, *args: str) -> Any:
    return runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False)


def test_every_command_is_classified() -> None:
    commands = set(_commands(app))
    classified = set(AUDITED) | set(NO_POST_CONTENT)
    assert not set(AUDITED) & set(NO_POST_CONTENT)
    assert not commands - classified, f"classify in AUDITED or NO_POST_CONTENT: {sorted(commands - classified)}"
    assert not classified - commands, f"no longer commands: {sorted(classified - commands)}"


@pytest.fixture
def seeded(workspace: Any) -> dict[str, Any]:
    """Posts about missing tips, a case flagged on one (titled with its opening words) and a spike alert."""
    rows = [
        {
            "id": f"p{i}",
            "text": f"My tips are missing from the weekly pay statement again, order {i}",
            "created_at": f"2026-11-{20 + i % 7:02d}T10:00:00Z",
            "author": f"author_{i}",
        }
        for i in range(1, 9)
    ]
    workspace.import_rows(rows, source="forum", visibility="public")
    opened = invoke(workspace.home, "cases", "open", "--post", "1")  # or the case rules flagged it already
    assert opened.exit_code == 0 or "already in open case" in opened.output, opened.output
    with workspace.store.begin() as conn:
        case = conn.execute(select(case_posts.c.case_id).where(case_posts.c.post_id == 1)).scalar_one()
        conn.execute(
            insert(alerts).values(
                dimension="category", value="pay_tips", granularity="day", bucket_start=datetime(2026, 11, 27),
                observed=8, expected=1.0, score=7.0, status="open", created_at=datetime(2026, 11, 28),
                terms='["tips", "statement"]', post_ids="[1, 2]", cluster_ids="[]", case_id=None,
            )
        )  # fmt: skip
    return {"case": str(case)}


def _last_id(workspace: Any) -> int:
    with workspace.store.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(audit_log.c.id), 0))).scalar_one())


@pytest.mark.parametrize("command", sorted(AUDITED))
def test_each_command_writes_exactly_its_audit_rows(
    workspace: Any, seeded: dict[str, Any], tmp_path: Path, command: str
) -> None:
    ids = {**seeded, "backup": str(tmp_path / "openear.backup")}
    args, expected = AUDITED[command]
    before = _last_id(workspace)
    result = invoke(workspace.home, *command.split(), *(a.format(**ids) for a in args))
    assert result.exit_code == 0, result.output
    with workspace.store.connect() as conn:
        got = [(e["actor"], e["action"], e["target"]) for e in audit.entries(conn, after=before)]
        assert audit.verify(conn)
    assert got == [("cli", a, t.format(**ids)) for a, t in expected], command


def test_what_the_commands_show_is_post_content(workspace: Any, seeded: dict[str, Any]) -> None:
    """Why ``cases list`` and ``alerts list`` are audited: a flagged post's case is titled with its words, and an
    alert carries its terms and the posts that drove it."""
    listed = json.loads(invoke(workspace.home, "cases", "list", "--json").output)
    assert any("tips are missing" in c["title"].lower() for c in listed), listed
    spikes = json.loads(invoke(workspace.home, "alerts", "list", "--json").output)
    assert spikes[0]["terms"] == ["tips", "statement"] and spikes[0]["post_ids"] == [1, 2]


def test_scheduled_reports_record_every_send_in_deliveries(workspace: Any, seeded: dict[str, Any]) -> None:
    """A scheduled report is a send, not a view: each archived report has its delivery (skipped, with the reason,
    when the team has no channel); a person's download of it is audited as report.view (the web test)."""
    assert invoke(workspace.home, "report", "--scheduled", "weekly").exit_code == 0
    with workspace.store.connect() as conn:
        archived = dict(conn.execute(select(report_archive.c.id, report_archive.c.audience)).all())
        sent = conn.execute(select(deliveries.c.ref, deliveries.c.team).where(deliveries.c.ref.like("report:%")))
        sent_to = {team for ref, team in sent if archived.get(int(ref.split(":")[1])) == team}
    assert archived and sent_to == set(archived.values()), (archived, sent_to)  # one send per audience's report
