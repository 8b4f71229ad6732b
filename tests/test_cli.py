"""The command line as a user runs it: init, import (idempotent, bad input), report, and the privacy scan."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from openear.cli import app
from openear.store import Store
from openear.store.schema import guard_counts, posts, runs, users

runner = CliRunner()


def post_row(i: int, text: str, **extra: object) -> dict:
    """One native JSON Lines record."""
    row: dict = {"id": f"p{i}", "text": text, "created_at": f"2026-11-{(i % 27) + 1:02d}T10:00:00Z",
                 "author": f"author_{i}"}
    row.update(extra)
    return row


def invoke(home: Path, *args: str):
    return runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("OPENEAR_DATABASE_URL", "OPENEAR_PSEUDONYM_KEY", "OPENEAR_KEY_FILE", "OPENEAR_HOME"):
        monkeypatch.delenv(var, raising=False)
    h = tmp_path / "ws"
    result = invoke(h, "init")
    assert result.exit_code == 0, result.output
    return h


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_init_creates_workspace_key_0600_and_a_one_time_admin_password(tmp_path: Path) -> None:
    h = tmp_path / "fresh"
    result = invoke(h, "init")
    assert result.exit_code == 0
    assert "One-time password" in result.output
    assert (h / "openear.toml").exists() and (h / "openear.db").exists() and (h / "taxonomy.toml").exists()
    assert stat.S_IMODE(os.stat(h / "pseudonym.key").st_mode) == 0o600
    password = result.output.split("(shown only now):")[1].split()[0]
    assert len(password) >= 16
    again = invoke(h, "init")  # completes, never resets
    assert again.exit_code == 0 and "One-time password" not in again.output
    store = Store(f"sqlite:///{h / 'openear.db'}")
    with store.connect() as conn:
        (hash_,) = conn.execute(select(users.c.password_hash)).one()
    assert hash_.startswith("$argon2id$") and password not in hash_


def test_import_twice_changes_nothing(home: Path, tmp_path: Path) -> None:
    rows = [post_row(i, f"The app froze on delivery {i}") for i in range(30)]
    rows.append(post_row(99, "Everyone strike on Friday, log off at noon"))
    rows.append(post_row(98, "from a closed group", visibility="closed"))
    f = write(tmp_path / "posts.jsonl", rows)
    first = invoke(home, "import", str(f), "--source", "driver-forum", "--visibility", "consented", "--json")
    assert first.exit_code == 0, first.output
    s1 = json.loads(first.output.strip().splitlines()[-1])
    assert (s1["read"], s1["stored"], s1["withheld"], s1["rejected"]) == (32, 30, 1, {"closed": 1})
    store = Store(f"sqlite:///{home / 'openear.db'}")
    with store.connect() as conn:
        before_posts = conn.execute(select(posts)).all()
        before_counts = conn.execute(select(guard_counts)).all()
    second = invoke(home, "import", str(f), "--source", "driver-forum", "--visibility", "consented", "--json")
    s2 = json.loads(second.output.strip().splitlines()[-1])
    assert (s2["stored"], s2["unchanged"]) == (0, 30)
    with store.connect() as conn:
        assert conn.execute(select(posts)).all() == before_posts
        assert conn.execute(select(guard_counts)).all() == before_counts
        assert conn.execute(select(func.count()).select_from(runs)).scalar() == 2


def test_import_requires_a_declared_visibility(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "p.jsonl", [post_row(1, "hi")])
    result = invoke(home, "import", str(f), "--source", "new-source")
    assert result.exit_code == 2
    assert "--visibility" in result.output
    bad = invoke(home, "import", str(f), "--source", "x", "--visibility", "private")
    assert bad.exit_code == 2 and "never collects private" in bad.output


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"id": "a", "created_at": "2026-11-01T00:00:00Z", "author": "u"}', ":2: text: "),
        ('{"id": "a", "text": "t", "created_at": "yesterday", "author": "u"}', ":2: created_at: "),
        ('{"id": "a", "text": "t", "created_at": "2026-11-01T00:00:00Z"', ":2: json: "),
    ],
)
def test_invalid_lines_are_reported_and_valid_lines_still_imported(
    home: Path, tmp_path: Path, line: str, expected: str
) -> None:
    f = tmp_path / "mixed.jsonl"
    good = json.dumps(post_row(1, "Waited an hour at the station"))
    good2 = json.dumps(post_row(2, "Tips missing again"))
    f.write_text(f"{good}\n{line}\n{good2}\n", encoding="utf-8")
    result = invoke(home, "import", str(f), "--source", "s", "--visibility", "public", "--json")
    assert result.exit_code == 1
    assert f"{f}{expected}" in result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert (summary["stored"], summary["invalid"]) == (2, 1)


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"", "empty"), ("id,text\n1,ä".encode("utf-16"), "UTF-8"), (b"\x00\x01\x02binary\xff\xfe", "UTF-8")],
)
def test_an_unusable_file_fails_at_once_with_one_line(home: Path, tmp_path: Path, content: bytes, needle: str) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_bytes(content)
    result = invoke(home, "import", str(f), "--source", "s", "--visibility", "public")
    assert result.exit_code == 2
    assert needle in result.output and str(f.name) in result.output
    assert "Traceback" not in result.output
    store = Store(f"sqlite:///{home / 'openear.db'}")
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(runs)).scalar() == 0


def test_a_missing_file_fails_with_one_line(home: Path, tmp_path: Path) -> None:
    result = invoke(home, "import", str(tmp_path / "nope.jsonl"), "--source", "s", "--visibility", "public")
    assert result.exit_code == 2 and "nope.jsonl" in result.output and "Traceback" not in result.output


def test_commands_without_a_workspace_say_so(tmp_path: Path) -> None:
    result = invoke(tmp_path / "none", "report")
    assert result.exit_code == 2 and "openear init" in result.output


def test_search_title_says_how_many_match_and_how_many_are_shown(home: Path, tmp_path: Path) -> None:
    from openear.store.schema import audit_log

    f = write(tmp_path / "tips.jsonl", [post_row(i, f"My tips went missing on block {i}") for i in range(25)])
    assert invoke(home, "import", str(f), "--source", "forum", "--visibility", "consented").exit_code == 0
    capped = invoke(home, "search", "tips", "--limit", "20")
    assert capped.exit_code == 0, capped.output
    assert capped.output.splitlines()[0].strip() == "25 posts match tips (newest 20 shown)"
    everything = invoke(home, "search", "tips", "--limit", "25")
    assert everything.output.splitlines()[0].strip() == "25 posts match tips"
    one = invoke(home, "search", "block NEAR/0 7", "--limit", "20")
    assert one.output.splitlines()[0].strip() == "1 post matches block NEAR/0 7"
    listed = json.loads(invoke(home, "search", "tips", "--limit", "20", "--json").output)
    assert isinstance(listed, list) and len(listed) == 20  # --json stays a list of the posts shown
    store = Store(f"sqlite:///{home / 'openear.db'}")
    with store.connect() as conn:
        details = [d for (d,) in conn.execute(select(audit_log.c.detail).where(audit_log.c.action == "search"))]
    assert details == ["20 posts", "25 posts", "1 posts", "20 posts"]  # what was shown
    # a query that starts with "-" (exclude a word) is a query, as on the page and the API, not an unknown option
    excluded = invoke(home, "search", "-block", "--limit", "5")
    assert excluded.exit_code == 0, excluded.output
    assert excluded.output.splitlines()[0].strip() == "0 posts match -block"
    kept = invoke(home, "search", "-missing7", "--limit", "30")
    assert kept.output.splitlines()[0].strip() == "25 posts match -missing7"


def test_report_writes_html_markdown_and_csv(home: Path, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    day = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [post_row(i, t, created_at=day) for i, t in enumerate(
        ["The app crashes on login", "No tips this week", "Me desactivaron la cuenta"])]
    f = write(tmp_path / "p.jsonl", rows)
    assert invoke(home, "import", str(f), "--source", "s", "--visibility", "public").exit_code == 0
    for fmt, name in (("html", "r.html"), ("md", "r.md"), ("csv", "r.csv")):
        out = tmp_path / name
        result = invoke(home, "report", "--since", "30d", "--format", fmt, "--output", str(out))
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 100
    assert "<svg" in (tmp_path / "r.html").read_text()
    # a period that ends in the future (the rest of this month) is fine; one that ends before it starts is not
    end = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    ahead = invoke(home, "report", "--since", "30d", "--until", end, "--format", "csv", "--output", str(tmp_path / "a"))
    assert ahead.exit_code == 0, ahead.output
    backwards = invoke(home, "report", "--since", "2026-01-10", "--until", "2026-01-01", "--format", "csv")
    assert backwards.exit_code != 0 and "--since/--until" in backwards.output


# -- the privacy scan ---------------------------------------------------------------------------------------------
def test_no_handle_email_or_name_reaches_the_database_wal_logs_or_exports(home: Path, tmp_path: Path) -> None:
    """1,000 known handles and e-mails go in; none comes out anywhere openear writes."""
    secrets: list[str] = []
    rows = []
    for i in range(1000):
        handle, email, name = f"zqhandle{i:04d}", f"zq.mail.{i:04d}@example.org", f"Zqname Person{i:04d}"
        secrets += [handle, email, name]
        rows.append({
            "id": f"scan-{i}", "author": handle, "created_at": "2026-11-20T10:00:00Z",
            "url": f"https://x.com/{handle}/status/{1000 + i}",
            "text": f"Tips missing again, write to {email} or ping @{handle} / u/{handle} "
                    f"https://twitter.com/{handle} signed {handle}",
        })
    f = write(tmp_path / "scan.jsonl", rows)
    # Hold a reader open so SQLite keeps the WAL file after the CLI's connections close, and it can be scanned.
    keeper = sqlite3.connect(home / "openear.db")
    keeper.execute("SELECT count(*) FROM posts").fetchone()
    log_file = tmp_path / "openear.log"
    handler = logging.FileHandler(log_file)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        result = invoke(home, "import", str(f), "--source", "scan", "--visibility", "public")
        assert result.exit_code == 0, result.output
        exports = []
        for fmt in ("html", "md", "csv"):
            out = tmp_path / f"export.{fmt}"
            assert invoke(home, "report", "--since", "3650d", "--format", fmt, "--output", str(out)).exit_code == 0
            exports.append(out)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    files = [p for p in home.iterdir() if p.name.startswith("openear.db")] + [log_file, *exports]
    assert any(p.name.endswith("-wal") and p.stat().st_size > 0 for p in files), "the WAL must be scanned too"
    blob = b"".join(p.read_bytes() for p in files).lower()
    keeper.close()
    hits = [s for s in secrets if s.lower().encode() in blob]
    assert hits == []
    store = Store(f"sqlite:///{home / 'openear.db'}")
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(posts)).scalar() == 1000


# -- the demo -----------------------------------------------------------------------------------------------------
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    h = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENEAR_")}
    proc = subprocess.run(
        # the top-level --home, as for every other command (the demo's own --home works the same)
        [sys.executable, "-m", "openear.cli", "--home", str(h), "demo", "--no-serve"],
        capture_output=True, text=True, env={**env, "COLUMNS": "200"}, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Login: user admin, password " in proc.stdout
    report = (h / "reports" / "demo-report.html").read_text()
    assert "<svg" in report
    store = Store(f"sqlite:///{h / 'openear.db'}")
    with store.connect() as conn:
        n_posts = conn.execute(select(func.count()).select_from(posts)).scalar()
        counts = dict(conn.execute(select(guard_counts.c.action, func.sum(guard_counts.c.n))
                                   .group_by(guard_counts.c.action)).all())
        langs = dict(conn.execute(select(posts.c.lang, func.count()).group_by(posts.c.lang)).all())
        cats = {c for (c,) in conn.execute(select(posts.c.category).distinct())}
    assert n_posts > 1500
    assert counts.get("withheld", 0) > 0 and counts.get("rejected", 0) > 0 and counts.get("scrubbed", 0) > 0
    assert langs.get("en", 0) > 500 and langs.get("es", 0) > 300
    assert {"app_issue", "pay_tips", "account_status", "media_coverage"} <= cats
    # The README's search examples find posts in the demo.
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    examples = re.findall(r"^openear search '([^']+)'", readme, flags=re.MULTILINE)
    assert examples
    for example in examples:
        found = invoke(h, "search", example, "--json")
        assert found.exit_code == 0 and json.loads(found.output), example
    # A second demo run starts fresh and gives the same numbers.
    proc2 = subprocess.run(
        # the top-level --home, as for every other command (the demo's own --home works the same)
        [sys.executable, "-m", "openear.cli", "--home", str(h), "demo", "--no-serve"],
        capture_output=True, text=True, env={**env, "COLUMNS": "200"}, timeout=600,
    )
    assert proc2.returncode == 0
    store2 = Store(f"sqlite:///{h / 'openear.db'}")
    with store2.connect() as conn:
        assert conn.execute(select(func.count()).select_from(posts)).scalar() == n_posts


def test_the_workspace_sentiment_mode_is_the_default_and_mode_overrides_it(home: Path, tmp_path: Path) -> None:
    from openear.store.schema import labels

    config = home / "openear.toml"
    config.write_text(config.read_text(encoding="utf-8") + '\nsentiment_mode = "rules"\n', encoding="utf-8")
    first = write(tmp_path / "a.jsonl", [post_row(1, "The app froze again, no tips today")])
    assert invoke(home, "import", str(first), "--source", "forum", "--visibility", "consented").exit_code == 0
    second = write(tmp_path / "b.jsonl", [post_row(2, "Great shift, thanks to the support team")])
    result = invoke(home, "import", str(second), "--source", "forum", "--visibility", "consented", "--mode", "fast")
    assert result.exit_code == 0, result.output
    store = Store(f"sqlite:///{home / 'openear.db'}")
    with store.connect() as conn:
        query = select(posts.c.external_id, labels.c.enricher).join(labels, labels.c.post_id == posts.c.id)
        got = dict(conn.execute(query.where(labels.c.name == "sentiment")).all())
    assert got["p1"].startswith("sentiment-hashlr@") and got["p2"] == "sentiment-fast@1"
    config.write_text(config.read_text(encoding="utf-8").replace('"rules"', '"slow"'), encoding="utf-8")
    result = invoke(home, "import", str(first), "--source", "forum", "--visibility", "consented")
    assert result.exit_code != 0
    assert f"{config}: sentiment_mode: must be one of fast, accurate, rules, not 'slow'" in result.output


def test_error_messages_keep_their_brackets(home: Path) -> None:
    """An error is printed as written: '[[teams]]' (or "openear[ray]") is not eaten as console markup."""
    result = invoke(home, "users", "add", "dana", "--role", "owner", "--team", "Nope")
    assert result.exit_code == 2
    assert "([[teams]] in openear.toml" in " ".join(result.output.split())
    assert "[[teams]]" in " ".join(invoke(home, "users", "teams", "--help").output.split())


def test_search_and_topics_print_posts_with_brackets_as_written(home: Path, tmp_path: Path) -> None:
    """A public post's text is data, not console markup: '[/b]' must not crash the command, '[user]' must show."""
    rows = [post_row(i, f"zzqq app crash [/b] then [user] said [red]same[/red] number {i}",
                     created_at=f"2026-11-{20 + i % 7:02d}T10:00:00Z") for i in range(1, 9)]
    assert invoke(home, "import", str(write(tmp_path / "b.jsonl", rows)), "--source", "forum",
                  "--visibility", "public").exit_code == 0
    result = runner.invoke(app, ["--home", str(home), "search", "zzqq", "--limit", "3"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "[/b] then [user] said [red]same[/red]" in out
    topics = runner.invoke(app, ["--home", str(home), "topics", "--day", "2026-11-27"])
    assert topics.exit_code == 0, topics.output
    # a case titled from such a post (flagging it takes its text as the title): listed and shown as written
    opened = runner.invoke(app, ["--home", str(home), "cases", "open", "--post", "1"])
    assert opened.exit_code == 0, opened.output
    case_id = opened.output.split("#")[1].split()[0].strip(".:,")
    for args in (["cases", "list"], ["cases", "show", case_id]):
        shown = runner.invoke(app, ["--home", str(home), *args])
        assert shown.exit_code == 0, shown.output
        assert "[/b] then [user]" in " ".join(shown.output.split()), args


def test_ctrl_c_in_backfill_and_reenrich_says_what_is_kept_and_how_to_resume(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openear.backfill
    import openear.reenrich

    f = write(tmp_path / "big.jsonl", [post_row(i, f"Tips missing again, order {i}") for i in range(1, 21)])
    real = openear.backfill._resume

    def interrupted(items, after, head, skipped):  # type: ignore[no-untyped-def]
        for n, item in enumerate(real(items, after, head, skipped)):
            if n == 24:  # 12 items and their marks read: some batches of 2 are committed, some in flight
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(openear.backfill, "_resume", interrupted)
    args = ("backfill", str(f), "--source", "archive", "--visibility", "public", "--batch-size", "2")
    result = invoke(home, *args)
    assert result.exit_code == 130
    out = " ".join(result.output.split())
    found = re.search(rf"Interrupted: lines 1 to (\d+) of {re.escape(str(f))} are committed \(the checkpoint\)\. "
                      r"Run the same command again to resume after line (\d+)\.", out)
    assert found is not None, out
    line = int(found.group(1))
    assert 2 <= line < 12 and found.group(2) == found.group(1)
    with sqlite3.connect(home / "openear.db") as db:
        assert db.execute("SELECT count(*) FROM posts WHERE source = 'archive'").fetchone()[0] == line
        last = "SELECT status FROM runs WHERE source = 'archive' ORDER BY id DESC LIMIT 1"
        assert db.execute(last).fetchone()[0] == "interrupted"  # not "failed": nothing went wrong
    monkeypatch.setattr(openear.backfill, "_resume", real)
    again = invoke(home, *args, "--json")
    assert again.exit_code == 0
    summary = json.loads(again.output.splitlines()[-1])
    assert summary["skipped"] == line and summary["stored"] == 20 - line  # resumed where the message said

    def stop(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(openear.reenrich, "reenrich", stop)
    result = invoke(home, "reenrich", "--since", "2026-11-01")
    assert result.exit_code == 130
    assert "Interrupted: the posts of every committed batch keep their new labels" in " ".join(result.output.split())


def test_the_commands_and_files_in_deploy_md_are_the_real_ones() -> None:
    """Every openear command in docs/deploy.md's code blocks uses real commands and options (``--help`` after them
    exits 0; an unknown one exits 2), and every environment file the prose names is the one the units read."""
    import shlex

    doc = (Path(__file__).resolve().parents[1] / "docs" / "deploy.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```[a-z]*\n(.*?)```", doc, flags=re.S)
    commands = []
    for line in "\n".join(blocks).splitlines():
        found = re.search(r"(?:^|/bin/)openear ([a-z][^#'\n]*)", line.split("ExecStart=")[-1])
        if found:
            commands.append(shlex.split(found.group(1)))
    assert len(commands) >= 6 and ["serve", "--host", "127.0.0.1", "--port", "8080"] in commands
    for argv in commands:
        result = runner.invoke(app, [*argv, "--help"])
        assert result.exit_code == 0, f"docs/deploy.md: openear {' '.join(argv)}: {result.output}"
    unit_files = set(re.findall(r"EnvironmentFile=-?(\S+)", doc))
    assert unit_files == {"/etc/openear.env"}
    named = set(re.findall(r"`(/etc/openear[^`\s]*)`", doc))
    assert named and named <= unit_files, f"the prose names {named - unit_files}, the units read {unit_files}"


def test_an_undeclared_source_keeps_the_visibility_of_its_first_import(home: Path, tmp_path: Path) -> None:
    """Re-importing a consented source as public must not silently relabel its stored posts; omitting
    --visibility the second time uses the recorded one, as the first error message promises."""
    f = write(tmp_path / "forum.jsonl", [post_row(i, f"Scheduling blocks vanish, shift {i}") for i in range(1, 4)])
    assert invoke(home, "import", str(f), "--source", "forum", "--visibility", "consented").exit_code == 0
    flipped = invoke(home, "import", str(f), "--source", "forum", "--visibility", "public")
    assert flipped.exit_code == 2
    assert "holds posts imported as 'consented', not 'public'" in " ".join(flipped.output.split())
    again = invoke(home, "import", str(f), "--source", "forum", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output.splitlines()[-1])["unchanged"] == 3
    with sqlite3.connect(home / "openear.db") as db:
        assert db.execute("SELECT DISTINCT visibility FROM posts WHERE source = 'forum'").fetchall() == [("consented",)]
    backfilled = invoke(home, "backfill", str(f), "--source", "forum", "--visibility", "public")
    assert backfilled.exit_code == 2 and "holds posts imported as 'consented'" in " ".join(backfilled.output.split())


def test_docs_sources_md_names_every_connector_a_source_may_declare() -> None:
    """docs/sources.md's `connector =` line lists every connector openear.toml accepts, "files" included."""
    from openear.sources_config import CONNECTORS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "sources.md").read_text(encoding="utf-8")
    line = next(x for x in doc.splitlines() if x.startswith("connector = ") and "#" in x)
    listed = {c.strip() for c in line.split("#", 1)[1].split("|")}
    assert listed == set(CONNECTORS)
    assert '(`connector = "files"`)' in doc  # and says how a file source is declared and imported


def test_run_takes_the_sentiment_mode_like_collect(home: Path) -> None:
    """`openear run` (the long-running service) chooses the sentiment mode as `collect` does, checked up front."""
    for command in ("run", "collect"):
        result = invoke(home, command, "--mode", "bogus")
        assert result.exit_code == 2, result.output
        assert "--mode: must be one of fast, accurate, rules, not 'bogus'" in " ".join(result.output.split())


def test_a_workspace_not_yet_migrated_is_told_to_run_init(home: Path, tmp_path: Path) -> None:
    """After an upgrade, a command that needs a newer table says how to migrate, not SQL's traceback."""
    with sqlite3.connect(home / "openear.db") as db:  # as a workspace from before migration 0013 was
        db.execute("DROP TABLE store_meta")
        db.execute("DELETE FROM alembic_version WHERE version_num = '0013_store_meta'")
    f = write(tmp_path / "a.jsonl", [post_row(1, "Tips missing again")])
    args = ("import", str(f), "--source", "forum", "--visibility", "public")
    result = invoke(home, *args)
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "the database has no store_meta: its schema is older than this openear; run 'openear init'" in out
    assert invoke(home, "init").exit_code == 0  # idempotent: migrates in place
    assert invoke(home, *args).exit_code == 0
