"""Creating a workspace: config, pseudonym key (0600), taxonomy copy, database schema and the first admin."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy.exc import OperationalError

from openear import settings as settings_mod
from openear.errors import ConfigError
from openear.guard import create_key
from openear.settings import CONFIG_TEMPLATE, DEFAULT_PURPOSE, DEFAULT_RETENTION_DAYS, Settings
from openear.store import Store

ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class InitResult:
    settings: Settings
    created: list[str]  # what this call made (config, key, taxonomy, database, admin)
    admin_username: str | None  # set when an admin was created now
    admin_password: str | None  # shown once, never stored in clear


def shipped_taxonomy() -> str:
    return resources.files("openear.data").joinpath("taxonomy.toml").read_text(encoding="utf-8")


def init_workspace(home: str | os.PathLike[str] | None = None, *, organisation: str = "openear") -> InitResult:
    """Create (or complete) the workspace at ``home``. Never overwrites the key, config or taxonomy."""
    root = settings_mod.resolve_home(home)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    created: list[str] = []
    cfg = root / settings_mod.CONFIG_NAME
    if not cfg.exists():
        cfg.write_text(
            CONFIG_TEMPLATE.format(
                organisation=organisation, purpose=DEFAULT_PURPOSE, retention_days=DEFAULT_RETENTION_DAYS
            ),
            encoding="utf-8",
        )
        created.append("config")
    settings = settings_mod.load(root)
    if not settings.key_path.exists() and not os.environ.get("OPENEAR_PSEUDONYM_KEY"):
        create_key(settings.key_path)
        created.append("key")
    if not settings.taxonomy_path.exists():
        settings.taxonomy_path.write_text(shipped_taxonomy(), encoding="utf-8")
        created.append("taxonomy")
    store = Store(settings.database_url)
    try:
        try:
            fresh = store.revision() is None
        except OperationalError as exc:  # a server down, a wrong port or host, a database not created yet
            raise ConfigError(f"cannot open the database: {exc.orig}") from None
        if fresh:
            created.append("database")
        store.migrate()
        username = password = None
        from sqlalchemy import func, select

        from openear.store.schema import users
        from openear.web.auth import create_user, generate_password

        with store.begin() as conn:
            if conn.execute(select(func.count()).select_from(users)).scalar_one() == 0:
                username, password = ADMIN_USERNAME, generate_password()
                create_user(conn, username, password, "admin")
                created.append("admin")
    finally:
        store.close()
    return InitResult(settings, created, username, password)


def workspace_exists(home: Path) -> bool:
    return (home / settings_mod.CONFIG_NAME).exists()
