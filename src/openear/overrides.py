"""Settings changed from the admin page: they win over ``openear.toml`` (retention and the purpose statement).

Every change is audited (``settings.change`` with the old and new values) in the same transaction.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from openear import audit
from openear.settings import Settings
from openear.store.schema import settings_overrides

__all__ = ["KEYS", "effective", "overrides", "set_override", "validate"]

KEYS = ("retention_days", "purpose")
MAX_RETENTION_DAYS = 3650
MAX_PURPOSE = 2000


def validate(key: str, value: str) -> Any:
    """The typed value, or ``ValueError`` with a message for the form."""
    if key == "retention_days":
        try:
            days = int(value.strip())
        except ValueError:
            raise ValueError("Retention: a whole number of days") from None
        if not 1 <= days <= MAX_RETENTION_DAYS:
            raise ValueError(f"Retention: between 1 and {MAX_RETENTION_DAYS} days")
        return days
    if key == "purpose":
        text = value.strip()
        if not text or len(text) > MAX_PURPOSE:
            raise ValueError(f"Purpose: 1 to {MAX_PURPOSE} characters")
        return text
    raise ValueError(f"unknown setting {key!r}")


def overrides(conn: Connection) -> dict[str, Any]:
    """The stored overrides, typed."""
    out: dict[str, Any] = {}
    for key, value in conn.execute(select(settings_overrides.c.key, settings_overrides.c.value)):
        if key in KEYS:
            try:
                out[key] = validate(key, value)
            except ValueError:
                continue
    return out


def effective(settings: Settings, conn: Connection) -> Settings:
    """``settings`` with the admin page's overrides applied."""
    found = overrides(conn)
    return replace(settings, **found) if found else settings


def set_override(conn: Connection, settings: Settings, key: str, value: str, actor: str) -> bool:
    """Store a validated override and audit it; False when the value did not change."""
    new = validate(key, value)
    old = getattr(effective(settings, conn), key)
    if new == old:
        return False
    conn.execute(delete(settings_overrides).where(settings_overrides.c.key == key))
    conn.execute(
        insert(settings_overrides).values(
            key=key, value=str(new), updated_at=datetime.now(UTC).replace(tzinfo=None), updated_by=actor
        )
    )
    audit.record(conn, actor, "settings.change", key, {"from": old, "to": new})
    return True
