"""The command line as a user meets it: a usage error (a missing argument, a bad number, an unknown command or
option) is one line on stderr naming what is wrong, exit 2, without Click's usage block and rich error box; a
workspace without a database says so in one line and is left without one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BOX = set("╭│╰─╮╯")


def openear(*args: str, cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``openear ARGS`` as a shell runs it: the installed script (else ``python -m openear.cli``)."""
    script = Path(sys.executable).with_name("openear")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "openear.cli"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENEAR_DATABASE_URL", "OPENEAR_KEY_FILE", "OPENEAR_PSEUDONYM_KEY", "OPENEAR_HOME")}
    env.update(COLUMNS="80", NO_COLOR="1")
    if home is not None:
        env["OPENEAR_HOME"] = str(home)
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("import",), ("openear import:", "Missing argument 'file'", "Try 'openear import --help'.")),
        (("search", "tips", "--limit", "abc"), ("openear search:", "Invalid value for '--limit'", "'abc'",
                                                "Try 'openear search --help'.")),
        (("audit", "list", "--limit", "0"), ("openear audit list:", "Invalid value for '--limit'", "'0'")),
        (("nosuch",), ("openear:", "No such command 'nosuch'", "Try 'openear --help'.")),
        (("serch", "tips"), ("No such command 'serch'", "Did you mean 'search'")),
        (("users", "add", "ana", "--zzz"), ("openear users add:", "No such option: --zzz",
                                            "Try 'openear users add --help'.")),
        (("--bogus", "search", "x"), ("openear:", "No such option: --bogus")),
        (("cases", "show", "abc"), ("openear cases show:", "Invalid value for 'case_id'", "'abc'")),
    ],
)
def test_a_usage_error_is_one_line_on_stderr_with_exit_2(tmp_path: Path, args: tuple[str, ...],
                                                          needles: tuple[str, ...]) -> None:
    result = openear(*args, cwd=tmp_path, home=tmp_path / "ws")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not BOX & set(result.stderr) and "Usage:" not in result.stderr
    assert not (tmp_path / "ws").exists()  # nothing ran


def test_help_is_still_the_rich_help(tmp_path: Path) -> None:
    result = openear("search", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "Usage: openear search" in result.stdout and BOX & set(result.stdout)
    group = openear("cases", cwd=tmp_path)  # a group without its command: its help, as before
    assert "Usage: openear cases" in group.stdout + group.stderr and "error:" not in group.stdout + group.stderr


@pytest.mark.parametrize(
    "args",
    [("search", "tips"), ("cases", "list"), ("alerts", "list"), ("users", "list"), ("audit", "verify"),
     ("report",), ("schedule", "list"), ("tokens", "list"), ("purge", "--dry-run"), ("topics",),
     ("import", "p.jsonl", "--source", "s", "--visibility", "public"), ("backup", "b.db")],
)
def test_a_workspace_without_its_database_says_so_and_is_left_without_one(tmp_path: Path,
                                                                          args: tuple[str, ...]) -> None:
    home = tmp_path / "ws"
    home.mkdir()
    (home / "openear.toml").write_text('purpose = "test"\n', encoding="utf-8")
    (tmp_path / "p.jsonl").write_text('{"id": "1", "text": "my tips went missing", "author": "a"}\n',
                                      encoding="utf-8")
    result = openear("--home", str(home), *args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: no database at {home / 'openear.db'}") and "openear init" in lines[0]
    assert not (home / "openear.db").exists() and not (tmp_path / "b.db").exists()
    assert sorted(p.name for p in home.iterdir()) == ["openear.toml"]
