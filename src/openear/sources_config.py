"""Adding and editing ``[[sources]]`` in the workspace's ``openear.toml`` (the admin's Sources page).

A change is checked exactly as ``openear.toml`` is checked when it is read (:func:`openear.settings.load`), plus the
connector's own option checks and guardrail 5 (no option may select or group by author); then the file is rewritten
with tomlkit (comments and layout kept) through a temporary file and an atomic rename. A version (SHA-256 of the
file) taken when the form was shown makes a concurrent edit fail instead of being overwritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import tomlkit

from openear import settings as settings_mod
from openear.errors import ConfigError, InvalidField
from openear.normalise import country_field, lang_field
from openear.settings import Settings, SourceSpec

__all__ = [
    "CONNECTORS",
    "FIELDS",
    "SourceChange",
    "config_version",
    "parse_options",
    "save_source",
]

FIELDS = ("name", "connector", "visibility", "kind", "country", "lang")
_LOCK = threading.Lock()


def _connectors() -> tuple[str, ...]:
    from openear.connectors.base import LIVE_CONNECTORS

    return ("files", *LIVE_CONNECTORS)


CONNECTORS: tuple[str, ...] = _connectors()


class SourceChange(ConfigError):
    """A source change that was refused; the message names the field."""


def config_version(path: Path) -> str:
    """What the form carries to detect a concurrent change: SHA-256 of the file ('' when there is none)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return ""


def parse_options(text: str) -> dict[str, Any]:
    """The connector options typed in the form, as TOML ``key = value`` lines."""
    try:
        options = tomllib.loads(text.replace("\r\n", "\n"))
    except tomllib.TOMLDecodeError as exc:
        raise SourceChange(f"options: not valid TOML: {exc}") from None
    clash = sorted(set(options) & set(FIELDS))
    if clash:
        raise SourceChange(f"options: {clash[0]}: set it in its own field, not among the options")
    return options


def _entry(form: Mapping[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    name = str(form.get("name") or "").strip()
    if not settings_mod.source_name_ok(name):
        raise SourceChange("name: 1 to 200 characters, no slashes or line breaks")
    connector = str(form.get("connector") or "")
    if connector not in CONNECTORS:
        raise SourceChange(f"connector: one of {', '.join(CONNECTORS)}, not {connector!r}")
    entry: dict[str, Any] = {
        "name": name,
        "connector": connector,
        "visibility": str(form.get("visibility") or ""),
        "kind": str(form.get("kind") or ""),
    }
    for key, check, example in (("country", country_field, "'ES' or 'GB'"), ("lang", lang_field, "'es' or 'es-419'")):
        try:  # checked, and written, as openear.toml's own entries are read (settings._source)
            value = check(str(form.get(key) or "").strip() or None, key)
        except InvalidField as exc:
            raise SourceChange(f"{key}: a code such as {example}; {exc.problem}") from None
        if value:
            entry[key] = value
    entry.update(options)
    return entry


def _tables(doc: tomlkit.TOMLDocument) -> Iterator[tuple[int, Any]]:
    sources = doc.get("sources")
    if sources is None:
        return
    if not isinstance(sources, list):
        raise SourceChange("sources: the config file's sources are not an array of tables")
    yield from enumerate(sources)


class _AnyEnv(dict[str, str]):
    """An environment in which every credential is set: option checks without the real secrets."""

    def get(self, key: str, default: Any = None) -> str:  # type: ignore[override]
        return "set"

    def __getitem__(self, key: str) -> str:
        return "set"

    def __contains__(self, key: object) -> bool:
        return True


def _check_connector(spec: SourceSpec, env: Mapping[str, str]) -> None:
    if spec.connector == "files":
        return
    from openear.connectors.base import make_connector

    make_connector(spec, env=env).close()


def save_source(
    settings: Settings, form: Mapping[str, Any], *, original: str | None, version: str
) -> tuple[Settings, list[str]]:
    """Add a source (``original`` None) or replace the one named ``original``; returns (the settings with the
    new sources, warnings such as a credential not set in this server's environment).

    Raises :class:`SourceChange` (or :class:`ConfigError`) naming the field; the file is then untouched."""
    from openear.triage.config import refuse_author_grouping

    path = settings.config_path
    options = parse_options(str(form.get("options") or ""))
    entry = _entry(form, options)
    if original is not None and entry["name"] != original:
        raise SourceChange("name: a source keeps its name (its posts are stored under it)")
    refuse_author_grouping("options", options)
    with _LOCK:
        if config_version(path) != version:
            raise SourceChange("The config file changed since this form was opened. Reload the page and try again.")
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        try:
            doc = tomlkit.parse(text)
        except tomlkit.exceptions.TOMLKitError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        table = tomlkit.table()
        table.update(entry)
        found = [i for i, t in _tables(doc) if isinstance(t, dict) and t.get("name") == entry["name"]]
        if original is None and found:
            raise SourceChange(f"name: a source called {entry['name']!r} is already declared")
        if original is not None and not found:
            raise SourceChange(f"name: no source called {original!r} is declared in {path.name}")
        if original is None:
            if doc.get("sources") is None:
                doc.append("sources", tomlkit.aot())
            doc["sources"].append(table)
        else:
            old = doc["sources"][found[0]]
            for key in list(old.keys()):
                del old[key]
            old.update(entry)
        new_text = tomlkit.dumps(doc)
        checked = _validate(new_text, path)
        spec = checked.source(entry["name"])
        assert spec is not None
        try:
            _check_connector(spec, _AnyEnv())
        except ConfigError as exc:
            raise SourceChange(str(exc)) from None
        warnings = []
        try:
            _check_connector(spec, os.environ)
        except ConfigError as exc:
            warnings.append(str(exc))
        _write(path, new_text)
    return replace(settings, sources=checked.sources, raw=checked.raw), warnings


def _validate(text: str, path: Path) -> Settings:
    """The settings ``text`` would give, checked by the same code that reads ``openear.toml``."""
    with tempfile.TemporaryDirectory(prefix="openear-check-") as tmp:
        (Path(tmp) / settings_mod.CONFIG_NAME).write_text(text, encoding="utf-8")
        try:
            return settings_mod.load(tmp)
        except ConfigError as exc:
            message = str(exc).replace(str(Path(tmp).resolve() / settings_mod.CONFIG_NAME), str(path))
            raise SourceChange(message) from None


def _write(path: Path, text: str) -> None:
    """Replace the file atomically, keeping its mode (the config may name secrets' variables: 0600 if new)."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(prefix=".openear.toml.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
