"""The command line walked as a demanding analyst and operator would: bad names, bad hints, contradictory options,
out-of-range numbers. Each error is one line that names the option, exits non-zero and stores nothing; ``--json``
prints JSON alone on stdout; times in JSON say they are UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from labelled import write_labelled
from openear.cli import app
from openear.reenrich import reenrich
from openear.store import Store
from openear.store.schema import posts, runs, sources

runner = CliRunner()


def invoke(home: Path, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False, env=env)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("OPENEAR_DATABASE_URL", "OPENEAR_PSEUDONYM_KEY", "OPENEAR_KEY_FILE", "OPENEAR_HOME"):
        monkeypatch.delenv(var, raising=False)
    h = tmp_path / "ws"
    assert invoke(h, "init").exit_code == 0
    return h


def rows_file(path: Path, n: int = 2, **extra: object) -> Path:
    rows = [{"id": f"p{i}", "text": f"my tips went missing again on block {i}", "author": f"author_{i}",
             "created_at": f"2026-11-{i + 10:02d}T10:00:00Z", **extra} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def one_error_line(result, *needles: str) -> str:
    """The result failed with exactly one line, ``error: ...``, holding every needle."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def stored(home: Path) -> list[tuple[str, str | None, str | None]]:
    store = Store(f"sqlite:///{home / 'openear.db'}")
    try:
        with store.connect() as conn:
            return [tuple(r) for r in conn.execute(select(posts.c.source, posts.c.lang, posts.c.country))]
    finally:
        store.close()


@pytest.mark.parametrize("name", ["", "   ", " padded", "a/b", "two\nlines", "x" * 201])
def test_import_refuses_a_source_name_no_one_could_query(home: Path, tmp_path: Path, name: str) -> None:
    result = invoke(home, "import", str(rows_file(tmp_path / "p.jsonl")), "--source", name, "--visibility", "public")
    one_error_line(result, "--source:")
    assert stored(home) == []
    store = Store(f"sqlite:///{home / 'openear.db'}")
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sources)).scalar_one() == 0
    store.close()


def test_a_name_that_openear_toml_declares_is_still_accepted(home: Path, tmp_path: Path) -> None:
    with (home / "openear.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[[sources]]\nname = "forum/uk"\nconnector = "files"\nvisibility = "consented"\n')
    result = invoke(home, "import", str(rows_file(tmp_path / "p.jsonl")), "--source", "forum/uk")
    assert result.exit_code == 0, result.output
    assert {r[0] for r in stored(home)} == {"forum/uk"}


@pytest.mark.parametrize(("option", "value"), [("--country", "USA"), ("--country", "U S"), ("--lang", "e n!")])
def test_import_and_backfill_refuse_a_malformed_country_or_language_hint(
    home: Path, tmp_path: Path, option: str, value: str
) -> None:
    f = rows_file(tmp_path / "p.jsonl")
    for command in ("import", "backfill"):
        result = invoke(home, command, str(f), "--source", "s", "--visibility", "public", option, value)
        one_error_line(result, f"{option}:", repr(value))
    assert stored(home) == []


def test_import_hints_are_stored_as_the_file_fields_are_upper_case_country(home: Path, tmp_path: Path) -> None:
    f = rows_file(tmp_path / "p.jsonl")
    result = invoke(home, "import", str(f), "--source", "s", "--visibility", "public", "--country", "gb",
                    "--lang", "EN")
    assert result.exit_code == 0, result.output
    assert {r[2] for r in stored(home)} == {"GB"}


def test_until_errors_name_until_and_a_since_too_far_back_is_one_line(home: Path) -> None:
    one_error_line(invoke(home, "report", "--until", "banana"), "--until: 'banana'")
    one_error_line(invoke(home, "reenrich", "--since", "3d", "--until", "banana"), "--until: 'banana'")
    one_error_line(invoke(home, "report", "--since", "999999d"), "--since: '999999d'", "too far back")
    one_error_line(invoke(home, "reenrich", "--since", "99999999999d"), "--since:", "too far back")
    one_error_line(invoke(home, "report", "--since", "2026-11-20", "--until", "2026-11-01"), "--since/--until")


def test_report_to_a_folder_or_an_unwritable_place_is_one_line(home: Path, tmp_path: Path) -> None:
    one_error_line(invoke(home, "report", "--output", str(tmp_path)), "--output:", "is a directory")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_error_line(invoke(home, "report", "--output", str(blocker / "r.html")), "--output:", "cannot write")


def test_scheduled_reports_refuse_the_options_they_would_ignore(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    line = one_error_line(invoke(home, "report", "--scheduled", "daily", "--format", "pdf", "-o", str(out)),
                          "--scheduled", "--format", "--output")
    assert "--since" not in line and not out.exists()
    assert not (home / "reports").exists()


@pytest.mark.parametrize("command", [("cases", "list"), ("alerts", "list")])
def test_list_status_filters_are_checked(home: Path, command: tuple[str, str]) -> None:
    one_error_line(invoke(home, *command, "--status", "bogus"), "--status:", "'bogus'")
    assert invoke(home, *command, "--status", "open", "--json").exit_code == 0


def test_a_case_for_an_unknown_team_is_refused_as_the_api_refuses_it(home: Path, tmp_path: Path) -> None:
    assert invoke(home, "import", str(rows_file(tmp_path / "p.jsonl")), "--source", "s",
                  "--visibility", "public").exit_code == 0
    one_error_line(invoke(home, "cases", "open", "--post", "1", "--team", "Nope"), "--team: 'Nope'", "Payments")
    assert json.loads(invoke(home, "cases", "list", "--json").stdout) == []
    assert invoke(home, "cases", "open", "--post", "1", "--team", "Payments").exit_code == 0


def test_cases_alerts_and_schedule_take_home_like_every_other_command(home: Path) -> None:
    for args in (("cases", "list", "--json"), ("alerts", "list", "--json"), ("schedule", "list", "--json")):
        result = runner.invoke(app, [*args, "--home", str(home)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert isinstance(json.loads(result.stdout), list)


def test_train_json_is_json_alone_on_stdout_and_activate_deactivate_clash(home: Path, tmp_path: Path) -> None:
    f = write_labelled(tmp_path / "labels.jsonl", {"pay_tips": 10, "app_issue": 10})
    dry = invoke(home, "train", "--from", str(f), "--features", "tfidf", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["examples"] == 20  # the whole of stdout is one JSON object
    assert "Dry run" in dry.stderr
    saved = invoke(home, "train", "--from", str(f), "--features", "tfidf", "--yes", "--json")
    assert saved.exit_code == 0 and json.loads(saved.stdout)["features"] == "tfidf"
    assert "saved and active" in saved.stderr
    one_error_line(invoke(home, "train", "--activate", "1", "--deactivate"), "--activate", "--deactivate")
    listed = json.loads(invoke(home, "train", "--list", "--json").stdout)
    assert [m["active"] for m in listed] == [True]  # the clash changed nothing
    assert listed[0]["created_at"].endswith("+00:00")


def test_eval_of_an_empty_file_fails_instead_of_scoring_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = runner.invoke(app, ["eval", str(empty), "--json"], catch_exceptions=False)
    one_error_line(result, str(empty), "empty file")


def test_backfill_of_a_folder_says_it_is_a_folder(home: Path, tmp_path: Path) -> None:
    one_error_line(invoke(home, "backfill", str(tmp_path), "--source", "s", "--visibility", "public"),
                   "is a directory")


@pytest.mark.parametrize(("args", "option"), [(("backfill", "x.jsonl", "--source", "s", "--workers", "0"), "--workers"),
                                            (("run", "--workers", "-1"), "--workers"),
                                            (("serve", "--port", "99999"), "--port"),
                                            (("demo", "--no-serve", "--port", "0"), "--port")])
def test_out_of_range_numbers_are_usage_errors_before_anything_runs(
    home: Path, tmp_path: Path, args: tuple[str, ...], option: str
) -> None:
    demo = tmp_path / "demo"
    argv = [*args, "--home", str(demo)] if args[0] == "demo" else ["--home", str(home), *args]
    result = runner.invoke(app, argv, catch_exceptions=False)
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output
    assert not demo.exists()


def test_json_times_carry_their_utc_offset(home: Path, tmp_path: Path) -> None:
    assert invoke(home, "import", str(rows_file(tmp_path / "p.jsonl")), "--source", "s",
                  "--visibility", "public").exit_code == 0
    found = json.loads(invoke(home, "search", "tips", "--json").stdout)
    assert found and all(p["created_at"].endswith("+00:00") for p in found)
    assert found[0]["created_at"] == "2026-11-11T10:00:00+00:00"
    entries = json.loads(invoke(home, "audit", "list", "--json").stdout)
    assert entries and all(e["at"].endswith("+00:00") for e in entries)


def test_reenrich_json_times_carry_their_utc_offset_and_a_run_resumes_from_either_form(
    db_url: str, workspace, tmp_path: Path
) -> None:
    assert invoke(workspace.home, "import", str(rows_file(tmp_path / "p.jsonl", 5)), "--source", "s",
                  "--visibility", "public", "--mode", "rules").exit_code == 0
    result = invoke(workspace.home, "reenrich", "--since", "2026-11-01", "--until", "2026-12-01", "--mode", "rules",
                    "--only", "language", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["since"], summary["until"]) == ("2026-11-01T00:00:00+00:00", "2026-12-01T00:00:00+00:00")

    def interrupted() -> dict:
        """A run stopped after its first batch of two: its state, as stored."""
        def stop(_n: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            reenrich(workspace.store, workspace.settings, since=since, since_spec="7d", mode="rules",
                     only="language", batch_size=2, progress=stop)
        with workspace.store.connect() as conn:
            rid, stats = conn.execute(select(runs.c.id, runs.c.stats).where(runs.c.kind == "reenrich")
                                      .order_by(runs.c.id.desc())).first()
        return {"id": rid, **json.loads(stats)}

    since = datetime(2026, 11, 1, tzinfo=UTC)
    state = interrupted()
    assert state["since"] == "2026-11-01T00:00:00+00:00" and state["until"] is None
    resumed = reenrich(workspace.store, workspace.settings, since=since, since_spec="7d", mode="rules",
                       only="language", batch_size=2)
    assert resumed.resumed_after == state["last_id"] and resumed.scanned == 3
    state = interrupted()  # a run that an older openear stopped: its state's times without their offset
    with workspace.store.begin() as conn:
        conn.execute(runs.update().where(runs.c.id == state.pop("id")).values(
            stats=json.dumps({**state, "since": "2026-11-01T00:00:00"})))
    resumed = reenrich(workspace.store, workspace.settings, since=since, since_spec="7d", mode="rules",
                       only="language", batch_size=2)
    assert resumed.resumed_after == state["last_id"] and resumed.scanned == 3
    assert resumed.as_dict()["since"] == "2026-11-01T00:00:00+00:00"


def test_topics_day_error_names_the_option(home: Path) -> None:
    one_error_line(invoke(home, "topics", "--day", "28/11/2026"), "--day: '28/11/2026'")


def test_the_command_listing_gives_each_summary_unbroken(home: Path) -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "250"})
    assert "migrated, a pseudonym key (0600), the taxonomy, an admin." in result.output
    assert "purge), until SIGTERM or Ctrl+C" in result.output


def test_restore_of_a_folder_says_it_is_a_folder_and_eval_names_mode(home: Path, tmp_path: Path) -> None:
    one_error_line(invoke(home, "restore", str(tmp_path), "--force"), str(tmp_path), "is a directory")
    labelled = rows_file(tmp_path / "l.jsonl", 1)
    one_error_line(runner.invoke(app, ["eval", str(labelled), "--mode", "turbo"], catch_exceptions=False),
                   "--mode:", "'turbo'")
