"""Typed settings: environment > ``openear.toml`` > defaults.

The workspace is ``$OPENEAR_HOME`` (or ``--home``), default ``./openear-data``. It holds ``openear.toml``, the
SQLite database (unless ``OPENEAR_DATABASE_URL`` points elsewhere), the pseudonym key (mode 0600) and the
operator's copy of the taxonomy.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openear.errors import ConfigError

SENTIMENT_MODES: tuple[str, ...] = ("fast", "accurate", "rules")  # see openear.enrich.sentiment

DEFAULT_HOME = "./openear-data"
CONFIG_NAME = "openear.toml"
KEY_NAME = "pseudonym.key"
TAXONOMY_NAME = "taxonomy.toml"
DEFAULT_RETENTION_DAYS = 180
DEFAULT_PURPOSE = (
    "We listen to what delivery drivers say in public about our app, pay, scheduling, support and safety so "
    "that the teams who own those areas can fix problems. We never store posts about organising or about "
    "talking to researchers or journalists, never identify individuals, and delete posts after the retention "
    "period."
)


@dataclass(frozen=True)
class SourceSpec:
    """A declared source: every item from it carries its name, visibility and kind."""

    name: str
    connector: str = "files"
    visibility: str = "public"
    kind: str = "social"
    country: str | None = None
    lang: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about its workspace."""

    home: Path
    database_url: str
    key_path: Path
    taxonomy_path: Path
    retention_days: int = DEFAULT_RETENTION_DAYS
    purpose: str = DEFAULT_PURPOSE
    organisation: str = "openear"
    sentiment_mode: str = "fast"
    sources: tuple[SourceSpec, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_NAME

    def source(self, name: str) -> SourceSpec | None:
        return next((s for s in self.sources if s.name == name), None)

    def __repr__(self) -> str:  # the database URL may carry a password
        return f"Settings(home={str(self.home)!r}, database_url={mask_url(self.database_url)!r})"


def mask_url(url: str) -> str:
    """Hide the password in a database URL."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user, colon, _password = creds.partition(":")
        return f"{scheme}://{user}:***@{host}" if colon else url  # no password: nothing to hide
    return url


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: the argument, else ``$OPENEAR_HOME``, else ``./openear-data``."""
    value = home if home is not None else os.environ.get("OPENEAR_HOME") or DEFAULT_HOME
    return Path(value).expanduser().resolve()


def default_database_url(home: Path) -> str:
    return os.environ.get("OPENEAR_DATABASE_URL") or f"sqlite:///{home / 'openear.db'}"


def load(home: str | os.PathLike[str] | None = None, *, require_config: bool = True) -> Settings:
    """Read the workspace's settings. Raises :class:`ConfigError` naming the file and the problem."""
    root = resolve_home(home)
    cfg_path = root / CONFIG_NAME
    data: dict[str, Any] = {}
    if cfg_path.exists():
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg_path}: not valid TOML: {exc}") from None
    elif require_config:
        raise ConfigError(f"no workspace at {root} (no {CONFIG_NAME}); run 'openear init' first")

    retention = data.get("retention_days", DEFAULT_RETENTION_DAYS)
    if not isinstance(retention, int) or isinstance(retention, bool) or retention < 1:
        raise ConfigError(f"{cfg_path}: retention_days: must be a positive whole number of days")
    mode = data.get("sentiment_mode", "fast")
    if mode not in SENTIMENT_MODES:
        raise ConfigError(f"{cfg_path}: sentiment_mode: must be one of {', '.join(SENTIMENT_MODES)}, not {mode!r}")
    sources = tuple(_source(cfg_path, i, s) for i, s in enumerate(data.get("sources", [])))
    names = [s.name for s in sources]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"{cfg_path}: sources: duplicate name {sorted(dupes)[0]!r}")
    key_path = Path(os.environ.get("OPENEAR_KEY_FILE") or root / data.get("key_file", KEY_NAME))
    taxonomy = data.get("taxonomy_file", TAXONOMY_NAME)
    return Settings(
        home=root,
        database_url=os.environ.get("OPENEAR_DATABASE_URL") or data.get("database_url") or default_database_url(root),
        key_path=key_path if key_path.is_absolute() else root / key_path,
        taxonomy_path=root / taxonomy,
        retention_days=retention,
        purpose=str(data.get("purpose", DEFAULT_PURPOSE)),
        organisation=str(data.get("organisation", "openear")),
        sentiment_mode=mode,
        sources=sources,
        raw=data,
    )


def source_name_ok(name: str) -> bool:
    """A name the Sources page and ``--source`` accept: 1 to 200 characters, no slashes, tabs or line breaks, no
    surrounding spaces."""
    return bool(name.strip()) and name == name.strip() and len(name) <= 200 and not any(c in name for c in "\n\r\t/")


def _source(cfg_path: Path, index: int, raw: Any) -> SourceSpec:
    where = f"{cfg_path}: sources[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: name: required")
    visibility = raw.get("visibility", "public")
    if visibility not in ("public", "consented"):
        raise ConfigError(f"{where}: visibility: must be 'public' or 'consented', not {visibility!r}")
    kind = raw.get("kind", "social")
    if kind not in ("social", "news"):
        raise ConfigError(f"{where}: kind: must be 'social' or 'news', not {kind!r}")
    from openear.errors import InvalidField
    from openear.normalise import country_field, lang_field  # here: normalise imports this module

    try:  # checked as the CLI's --country and --lang and files' own fields are; the country in upper case
        country = country_field(raw.get("country"), "country")
        lang = lang_field(raw.get("lang"), "lang")
    except InvalidField as exc:
        example = "US, GB, ES" if exc.field == "country" else "en, es, es-419"
        raise ConfigError(f"{where} ({name!r}): {exc.field}: {exc.problem} (e.g. {example})") from None
    known = {"name", "connector", "visibility", "kind", "country", "lang"}
    return SourceSpec(
        name=name,
        connector=str(raw.get("connector", "files")),
        visibility=visibility,
        kind=kind,
        country=country,
        lang=lang,
        options={k: v for k, v in raw.items() if k not in known},
    )


CONFIG_TEMPLATE = """\
# openear workspace configuration. Environment variables override: OPENEAR_HOME, OPENEAR_DATABASE_URL,
# OPENEAR_KEY_FILE.
organisation = "{organisation}"

# Why this workspace listens, shown on the public /transparency page and in every report.
purpose = \"\"\"{purpose}\"\"\"

# Posts older than this are purged with their labels and search index entries.
retention_days = {retention_days}

# The pseudonym key (HMAC-SHA256) lives outside the database; keep it secret and back it up.
key_file = "pseudonym.key"

# The sentiment model collection and imports use unless a command says --mode: "fast" (the default), "accurate"
# (opt-in: pip install 'openear[accurate]'; about 10-15x slower, 3-4 points better) or "rules" (bulk backfills).
# sentiment_mode = "fast"

# The category taxonomy with its English and Spanish rules (a copy of the shipped preset; edit freely).
taxonomy_file = "taxonomy.toml"

# Declared sources. Only public sources, or consented ones the operator owns (its forum, a survey export).
# [[sources]]
# name = "driver-forum"
# connector = "files"
# visibility = "consented"
# kind = "social"
"""
