"""Hand-labelled examples and an analyst-labelled store, shared by the tests of ``openear train`` and ``reenrich``.

A module of its own (like ``shared_data``, not ``conftest``) so that test files import it by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from openear.cli import app
from openear.pipeline import import_file
from openear.settings import SourceSpec
from openear.store.schema import posts
from openear.web.labeling import override_label

runner = CliRunner()
ALLOWED = {
    "primary": ["account_status", "app_issue", "other", "pay_tips", "safety", "support"],
    "sentiment": ["positive", "neutral", "negative"],
}

# Words no taxonomy rule matches, so that only a trained model can tell these themes apart.
THEMES: dict[str, list[str]] = {
    "pay_tips": [
        "the evening envelope came up thin",
        "my weekly envelope shrank again",
        "the envelope after the shift looked lighter",
        "envelope money was short this friday",
        "thin envelope, long week",
    ],
    "app_issue": [
        "the blue screen froze twice",
        "the screen went white and froze",
        "white screen, frozen buttons",
        "screen froze, nothing moved",
        "frozen blue screen again during the run",
    ],
    "safety": [
        "a dog chased me near the orchard lane",
        "that orchard lane dog bit my boot",
        "dog near the orchard lane",
        "orchard lane has a loose dog",
        "chased by the big dog on orchard lane",
    ],
}
TAILS = [
    "today",
    "this morning",
    "tonight",
    "again",
    "yesterday",
    "on sunday",
    "this week",
    "at noon",
    "lately",
    "at dusk",
    "before lunch",
    "after the rain",
    "once more",
]


def texts(theme: str, n: int) -> list[str]:
    """``n`` distinct texts on one of the :data:`THEMES`."""
    base = THEMES[theme]
    return [f"{base[i % len(base)]} {TAILS[i % len(TAILS)]} #{i}" for i in range(n)]


def write_labelled(path: Path, counts: dict[str, int]) -> Path:
    """A labelled file (``openear eval`` / ``train --from`` format) with ``counts[theme]`` examples of each."""
    with path.open("w", encoding="utf-8") as fh:
        for theme, n in counts.items():
            for text in texts(theme, n):
                fh.write(json.dumps({"text": text, "lang": "en", "primary": theme}) + "\n")
    return path


def invoke(home: Path, *args: str, input: str | None = None) -> Any:
    """``openear --home HOME ARGS``, exceptions raised."""
    return runner.invoke(app, ["--home", str(home), *args], input=input, catch_exceptions=False)


def labelled_store(
    workspace: Any,
    rows: list[dict[str, Any]],
    overrides: dict[str, dict[str, str]],
    *,
    source: str = "test-source",
    mode: str | None = None,
) -> dict[str, int]:
    """Import ``rows`` (native JSON Lines records) as public ``source`` (sentiment ``mode``: default the
    workspace's), then let analyst ``ana`` set ``overrides`` (external id -> {label: value}) in one transaction.
    Returns the post ids by external id."""
    path = workspace.write_jsonl("rows.jsonl", rows)
    import_file(workspace.settings, workspace.store, path, "jsonl", SourceSpec(source, visibility="public"), mode=mode)
    with workspace.store.begin() as conn:
        ids = {ext: pid for pid, ext in conn.execute(select(posts.c.id, posts.c.external_id))}
        for ext, labels in overrides.items():
            for name, value in labels.items():
                override_label(conn, ids[ext], name, value, "ana", ALLOWED)
    return ids
