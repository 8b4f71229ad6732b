"""Shared fixtures: a real workspace (config, key, SQLite database) in a temporary folder."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from openear.settings import Settings, SourceSpec
from openear.store import Store
from shared_data import SHARED, shared_path  # noqa: F401 - re-exported for older imports


@dataclass
class Workspace:
    home: Path
    settings: Settings
    store: Store
    admin_password: str | None

    def write_jsonl(self, name: str, rows: Iterable[dict[str, Any]]) -> Path:
        path = self.home / name
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        return path

    def import_rows(self, rows: Iterable[dict[str, Any]], *, source: str = "test-source",
                    visibility: str = "public", kind: str = "social", name: str = "rows.jsonl"):
        from openear.pipeline import import_file

        path = self.write_jsonl(name, rows)
        spec = SourceSpec(source, connector="files", visibility=visibility, kind=kind)
        return import_file(self.settings, self.store, path, "jsonl", spec)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterable[Workspace]:
    from openear.workspace import init_workspace

    monkeypatch.delenv("OPENEAR_DATABASE_URL", raising=False)
    monkeypatch.delenv("OPENEAR_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("OPENEAR_KEY_FILE", raising=False)
    monkeypatch.setenv("OPENEAR_HOME", str(tmp_path / "ws"))
    result = init_workspace(tmp_path / "ws")
    store = Store(result.settings.database_url)
    yield Workspace(tmp_path / "ws", result.settings, store, result.admin_password)
    store.close()


def post_row(i: int, text: str, **extra: Any) -> dict[str, Any]:
    """One native JSON Lines record."""
    row = {"id": f"p{i}", "text": text, "created_at": f"2026-11-{(i % 27) + 1:02d}T10:00:00Z",
           "author": f"author_{i}"}
    row.update(extra)
    return row
