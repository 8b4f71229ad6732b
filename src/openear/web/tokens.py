"""API tokens: ``Authorization: Bearer oe_...`` on ``/api/`` requests.

A token is 32 random bytes shown once at creation; the database keeps its SHA-256 and its first characters. It
acts as its user with the role the user had when it was made: once the user is disabled or given another role,
the token stops working (make a new one).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from openear.store.schema import api_tokens, users
from openear.web.auth import User, with_teams

__all__ = ["PREFIX", "create_token", "list_tokens", "load_token_user", "revoke_token", "token_hash"]

PREFIX = "oe_"
_TOUCH_EVERY = timedelta(minutes=5)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def token_hash(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def create_token(conn: Connection, username: str, name: str = "api") -> tuple[int, str]:
    """A new token for an enabled user: ``(id, token)``; the token is not kept. ``ValueError`` for an unknown or
    disabled user."""
    row = conn.execute(select(users.c.id, users.c.role, users.c.disabled).where(users.c.username == username)).first()
    if row is None or row.disabled:
        raise ValueError(f"no enabled user {username!r}")
    token = PREFIX + secrets.token_urlsafe(32)
    result = conn.execute(
        insert(api_tokens).values(
            user_id=row.id,
            name=(name.strip() or "api")[:100],
            token_hash=token_hash(token),
            prefix=token[:10],
            role=row.role,
            created_at=_now(),
        )
    )
    return int(result.inserted_primary_key[0]), token


def load_token_user(conn: Connection, token: str | None) -> User | None:
    """The user a live token acts for, or ``None`` (unknown, revoked, user disabled or role changed)."""
    if not token or not token.startswith(PREFIX) or len(token) > 100:
        return None
    h = token_hash(token)
    row = conn.execute(
        select(
            api_tokens.c.id,
            api_tokens.c.role.label("token_role"),
            api_tokens.c.revoked_at,
            api_tokens.c.last_used_at,
            users.c.id.label("user_id"),
            users.c.username,
            users.c.role,
            users.c.disabled,
        )
        .join(users, users.c.id == api_tokens.c.user_id)
        .where(api_tokens.c.token_hash == h)
    ).first()
    if row is None or row.revoked_at is not None or row.disabled or row.role != row.token_role:
        return None
    now = _now()
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        conn.execute(update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=now))
    return with_teams(conn, User(row.user_id, row.username, row.token_role))


def list_tokens(conn: Connection, username: str | None = None) -> list[dict[str, Any]]:
    """Tokens (never their values), newest first; one user's when ``username`` is given."""
    stmt = (
        select(
            api_tokens.c.id,
            users.c.username,
            api_tokens.c.name,
            api_tokens.c.prefix,
            api_tokens.c.role,
            api_tokens.c.created_at,
            api_tokens.c.last_used_at,
            api_tokens.c.revoked_at,
        )
        .join(users, users.c.id == api_tokens.c.user_id)
        .order_by(api_tokens.c.id.desc())
    )
    if username is not None:
        stmt = stmt.where(users.c.username == username)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def revoke_token(conn: Connection, token_id: int) -> bool:
    """Revoke a token; False if there is no such live token."""
    result = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=_now())
    )
    return bool(result.rowcount)
