"""The audit log: append-only and hash-chained (guardrails rule 7).

Each row's ``hash`` is ``sha256(prev_hash + canonical JSON of the row)``, and ``prev_hash`` is the hash of the row
before it (64 zeros for the first). Editing, deleting or reordering any row breaks the chain, which
:func:`verify` detects. Nothing in openear updates or deletes audit rows.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, text

from openear.store.schema import audit_log

__all__ = ["GENESIS", "entries", "log", "record", "row_hash", "transaction", "verify"]

GENESIS = "0" * 64
_LOCK = threading.RLock()  # one writer per process: two rows never chain onto the same predecessor


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _detail_text(detail: Any) -> str | None:
    if detail is None or isinstance(detail, str):
        return detail
    return json.dumps(detail, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def row_hash(prev_hash: str, at: datetime, actor: str, action: str, target: str | None, detail: str | None) -> str:
    """The hash of one row given its predecessor's hash."""
    canonical = json.dumps(
        {
            "at": at.isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "target": target,
            "detail": detail,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def record(conn: Connection, actor: str, action: str, target: str | None = None, detail: Any = None) -> str:
    """Append one event inside the caller's transaction; returns its hash. ``detail`` may be a str or JSON-able.

    Prefer :func:`log`, which also commits under the lock; with ``record`` the caller should commit promptly.
    """
    with _LOCK:
        return _append(conn, actor, action, target, detail)


def _append(conn: Connection, actor: str, action: str, target: str | None, detail: Any) -> str:
    _lock_chain(conn)
    prev = conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)).scalar() or GENESIS
    at = _now()
    actor = (actor or "-")[:100]
    detail_s = _detail_text(detail)
    h = row_hash(prev, at, actor, action, target, detail_s)
    conn.execute(
        insert(audit_log).values(
            at=at, actor=actor, action=action, target=target, detail=detail_s, prev_hash=prev, hash=h
        )
    )
    return h


def _lock_chain(conn: Connection) -> None:
    """Hold the database's lock on the chain's end until the transaction ends, so that no other process (a second
    ``serve`` worker, a CLI command) appends between reading the last hash and inserting onto it.

    PostgreSQL: an advisory transaction lock. SQLite: its single write lock, taken with ``BEGIN IMMEDIATE`` before
    the read (the driver would begin only at the INSERT, after the read); a transaction that has written already
    holds it.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7013)"))
    elif conn.dialect.name == "sqlite" and not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def log(store: Any, actor: str, action: str, target: str | None = None, detail: Any = None) -> str:
    """Append one event in its own transaction on ``store`` (an :class:`openear.store.Store`)."""
    with _LOCK, store.begin() as conn:
        return _append(conn, actor, action, target, detail)


@contextmanager
def transaction(store: Any) -> Iterator[Connection]:
    """A transaction on ``store`` holding the audit lock until it commits: call :func:`record` inside it, and a
    change and its audit row commit together while no other writer chains onto the uncommitted row."""
    with _LOCK, store.begin() as conn:
        yield conn


def entries(conn: Connection, *, after: int = 0) -> Iterator[dict[str, Any]]:
    """Every row (or those after the row ``after``), oldest first."""
    for row in conn.execute(select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id)).mappings():
        yield dict(row)


def page(
    conn: Connection, *, actor: str = "", action: str = "", limit: int = 100, offset: int = 0
) -> tuple[int, list[dict[str, Any]]]:
    """``(total, rows)``: the entries of one ``actor`` and/or ``action`` (all when empty), newest first, ``limit``
    of them after ``offset`` (the admin page, the API and ``openear audit list``)."""
    conds = []
    if actor:
        conds.append(audit_log.c.actor == actor[:100])
    if action:
        conds.append(audit_log.c.action == action[:50])
    total = int(conn.execute(select(func.count()).select_from(audit_log).where(*conds)).scalar_one())
    rows = conn.execute(
        select(audit_log).where(*conds).order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
    ).mappings()
    return total, [dict(r) for r in rows]


def verify(conn: Connection) -> bool:
    """True when every row's hash matches its content and chains onto the row before it."""
    prev = GENESIS
    for row in entries(conn):
        if row["prev_hash"] != prev:
            return False
        expected = row_hash(prev, row["at"], row["actor"], row["action"], row["target"], row["detail"])
        if row["hash"] != expected:
            return False
        prev = row["hash"]
    return True
