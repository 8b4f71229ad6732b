"""Users, passwords (argon2id), server-side sessions, login throttling and CSRF checks.

A session id is 32 random bytes, sent only in the ``openear_session`` cookie; the database keeps its SHA-256. A
session ends after 30 minutes idle or 12 hours in all, at logout, or when its user is disabled.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, func, insert, select, update

from openear.store.schema import login_failures, login_locks, sessions, users

if TYPE_CHECKING:
    from openear.store import Store

__all__ = [
    "ABSOLUTE_TIMEOUT",
    "COOKIE_NAME",
    "IDLE_TIMEOUT",
    "ROLES",
    "TRIAGE_ROLES",
    "LoginThrottle",
    "User",
    "authenticate",
    "create_session",
    "create_user",
    "delete_session",
    "generate_password",
    "is_cross_site",
    "load_session",
    "session_hash",
    "set_disabled",
    "set_password",
    "with_teams",
]

ROLES: tuple[str, ...] = ("viewer", "analyst", "owner", "admin")
TRIAGE_ROLES: tuple[str, ...] = ("analyst", "owner", "admin")  # work cases and alerts (owners: their team's)
COOKIE_NAME = "openear_session"
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
MIN_PASSWORD = 12
IP_MAX_FAILURES = 20  # failed sign-ins from one address in the window before it is locked out too
_TOUCH_EVERY = timedelta(seconds=60)  # refresh last_seen_at at most once a minute

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))  # verified against for unknown users: same timing


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    teams: frozenset[str] = frozenset()  # owners: the teams whose cases they work (loaded with the session)


def with_teams(conn: Connection, user: User) -> User:
    """The user with their team membership loaded (owners only: other roles' access does not depend on it)."""
    if user.role != "owner":
        return user
    from openear.web.membership import user_teams_of

    return User(user.id, user.username, user.role, user_teams_of(conn, user.id))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def generate_password(length: int = 20) -> str:
    """A random password from letters and digits (about 119 bits at the default length)."""
    if length < 16:
        raise ValueError("a generated password has at least 16 characters")
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def create_user(conn: Connection, username: str, password: str, role: str) -> int:
    """Add a user; returns its id. Raises ``ValueError`` for an unknown role, empty name or short password."""
    username = username.strip()
    if not username or len(username) > 100:
        raise ValueError("username: 1 to 100 characters")
    if role not in ROLES:
        raise ValueError(f"role: one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password: at least {MIN_PASSWORD} characters")
    result = conn.execute(
        insert(users).values(
            username=username, password_hash=_hasher.hash(password), role=role, disabled=False, created_at=_now()
        )
    )
    return int(result.inserted_primary_key[0])


def set_password(conn: Connection, username: str, password: str) -> bool:
    """Replace a user's password and end their sessions; False if there is no such user."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password: at least {MIN_PASSWORD} characters")
    uid = conn.execute(select(users.c.id).where(users.c.username == username)).scalar()
    if uid is None:
        return False
    conn.execute(update(users).where(users.c.id == uid).values(password_hash=_hasher.hash(password)))
    conn.execute(delete(sessions).where(sessions.c.user_id == uid))
    return True


def set_disabled(conn: Connection, username: str, disabled: bool = True) -> bool:
    """Disable (or re-enable) a user; disabling ends their sessions. False if there is no such user."""
    uid = conn.execute(select(users.c.id).where(users.c.username == username)).scalar()
    if uid is None:
        return False
    conn.execute(update(users).where(users.c.id == uid).values(disabled=disabled))
    if disabled:
        conn.execute(delete(sessions).where(sessions.c.user_id == uid))
    return True


def authenticate(conn: Connection, username: str, password: str) -> User | None:
    """The user if the name and password match an enabled account, else None (same work either way)."""
    row = conn.execute(
        select(users.c.id, users.c.username, users.c.role, users.c.password_hash, users.c.disabled).where(
            users.c.username == username.strip()
        )
    ).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    if _hasher.check_needs_rehash(stored):
        conn.execute(update(users).where(users.c.id == row.id).values(password_hash=_hasher.hash(password)))
    return User(row.id, row.username, row.role)


# -- sessions ---------------------------------------------------------------------------------------------------


def session_hash(token: str) -> str:
    """What the database keeps of a session id."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def create_session(conn: Connection, user_id: int) -> str:
    """Start a session; returns the cookie value (shown to no one else, never stored)."""
    token = secrets.token_urlsafe(32)
    now = _now()
    conn.execute(
        insert(sessions).values(id_hash=session_hash(token), user_id=user_id, created_at=now, last_seen_at=now)
    )
    return token


def load_session(conn: Connection, token: str | None, now: datetime | None = None) -> User | None:
    """The session's user, or None when it is unknown, expired or its user disabled (expired rows are deleted)."""
    if not token or len(token) > 100:
        return None
    now = now or _now()
    h = session_hash(token)
    row = conn.execute(
        select(
            sessions.c.created_at, sessions.c.last_seen_at, users.c.id, users.c.username, users.c.role, users.c.disabled
        )
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.id_hash == h)
    ).first()
    if row is None:
        return None
    if row.disabled or now - row.last_seen_at > IDLE_TIMEOUT or now - row.created_at > ABSOLUTE_TIMEOUT:
        conn.execute(delete(sessions).where(sessions.c.id_hash == h))
        return None
    if now - row.last_seen_at > _TOUCH_EVERY:
        conn.execute(update(sessions).where(sessions.c.id_hash == h).values(last_seen_at=now))
    return with_teams(conn, User(row.id, row.username, row.role))


def delete_session(conn: Connection, token: str | None) -> None:
    """End a session server-side (no-op for an unknown id)."""
    if token:
        conn.execute(delete(sessions).where(sessions.c.id_hash == session_hash(token)))


# -- throttling -------------------------------------------------------------------------------------------------


@dataclass
class LoginThrottle:
    """``max_failures`` failed logins for one key (a username, or a client address) within ``window`` seconds lock
    it for ``lockout`` seconds. While locked, attempts are refused without checking the password.

    With a ``store`` the failures and locks live in the database (``login_failures``/``login_locks``, keys hashed):
    they outlive a restart and hold across every process serving the same store. Without one they are kept in
    memory, for this process only.
    """

    max_failures: int = 5
    window: float = 300.0
    lockout: float = 300.0
    clock: Callable[[], float] = time.time
    store: Store | None = None
    scope: str = "user"
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _locked: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _key(username: str) -> str:
        return username.strip().casefold()[:100]

    def _hashed(self, value: str) -> str:
        return hashlib.sha256(f"{self.scope}:{self._key(value)}".encode()).hexdigest()

    def locked(self, username: str) -> bool:
        if self.store is not None:
            with self.store.connect() as conn:
                until = conn.execute(
                    select(login_locks.c.until).where(
                        login_locks.c.scope == self.scope, login_locks.c.key == self._hashed(username)
                    )
                ).scalar()
            return until is not None and self.clock() < until
        key = self._key(username)
        with self._lock:
            until = self._locked.get(key)
            if until is None:
                return False
            if self.clock() >= until:
                del self._locked[key]
                return False
            return True

    def failed(self, username: str) -> bool:
        """Count a failure; True when this failure locks the username."""
        if self.store is not None:
            return self._failed_in_store(self._hashed(username), self.clock())
        key, now = self._key(username), self.clock()
        with self._lock:
            recent = [t for t in self._failures.get(key, []) if now - t < self.window]
            recent.append(now)
            if len(recent) >= self.max_failures:
                self._failures.pop(key, None)
                self._locked[key] = now + self.lockout
                return True
            self._failures[key] = recent
            if len(self._failures) > 10_000:  # bound memory under a spray of random usernames
                for k in list(self._failures)[:5_000]:
                    del self._failures[k]
            return False

    def _failed_in_store(self, key: str, now: float) -> bool:
        assert self.store is not None
        mine = (login_failures.c.scope == self.scope, login_failures.c.key == key)
        with self.store.begin() as conn:
            # Old failures and spent locks of every key go first: the tables stay as small as the window.
            conn.execute(delete(login_failures).where(login_failures.c.at <= now - self.window))
            conn.execute(delete(login_locks).where(login_locks.c.until <= now))
            conn.execute(insert(login_failures).values(scope=self.scope, key=key, at=now))
            n = conn.execute(select(func.count()).select_from(login_failures).where(*mine)).scalar_one()
            if n < self.max_failures:
                return False
            conn.execute(delete(login_failures).where(*mine))
            conn.execute(delete(login_locks).where(login_locks.c.scope == self.scope, login_locks.c.key == key))
            conn.execute(insert(login_locks).values(scope=self.scope, key=key, until=now + self.lockout))
            return True

    def succeeded(self, username: str) -> None:
        if self.store is not None:
            with self.store.begin() as conn:
                conn.execute(
                    delete(login_failures).where(
                        login_failures.c.scope == self.scope, login_failures.c.key == self._hashed(username)
                    )
                )
            return
        with self._lock:
            self._failures.pop(self._key(username), None)


# -- CSRF -------------------------------------------------------------------------------------------------------


def is_cross_site(method: str, headers: dict[str, str] | object, host: str | None) -> bool:
    """True when an unsafe request comes from another site (by ``Sec-Fetch-Site``, else by ``Origin``).

    ``headers`` is a case-insensitive mapping (Starlette's ``Headers``); ``host`` is the request's Host header.
    Requests with neither header come from non-browser clients, which cannot carry a victim's cookie.
    """
    if method.upper() in ("GET", "HEAD", "OPTIONS", "TRACE"):
        return False
    get = headers.get  # type: ignore[attr-defined]
    site = (get("sec-fetch-site") or "").lower()
    if site and site not in ("same-origin", "none"):
        return True
    origin = get("origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    return urlsplit(origin).netloc.lower() != (host or "").lower()
