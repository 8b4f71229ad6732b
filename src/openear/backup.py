"""Backup and restore of the store: SQLite's online backup API, or ``pg_dump`` / ``pg_restore`` (issue 7).

A backup is one file: a consistent SQLite database (taken while collectors may be writing; WAL included), or a
PostgreSQL custom-format dump. It holds the database only. The pseudonym key lives outside the database by design
(guardrail 2) and is not in the backup: keep a copy of it elsewhere, or pseudonyms of new posts will not match
those of restored ones.

A restore goes into an empty database (a fresh instance) unless ``force`` is given, then brings the schema to the
newest migration, so a backup from an older openear restores into a newer one.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from openear.errors import ConfigError, OpenearError
from openear.store import Store

__all__ = ["BackupResult", "backup", "restore"]

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"


@dataclass(frozen=True)
class BackupResult:
    path: Path
    kind: str  # "sqlite" or "pg_dump"
    bytes: int
    posts: int


def _sqlite_path(url: str) -> Path:
    path = url.split("///", 1)[-1]
    if not path or path == ":memory:":
        raise ConfigError("backup: an in-memory SQLite database has nothing to back up")
    return Path(path)


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    """libpq options for ``pg_dump``/``pg_restore`` from a SQLAlchemy URL: one ``--dbname`` connection string with
    the URL's host, port, user, database and query parameters (``?host=/run/postgresql``, ``sslmode=verify-full``,
    ``sslrootcert=...``: what openear itself connects with; a query parameter wins, as it does for psycopg). The
    password goes in the environment, never on a command line that ``ps`` shows."""
    u = make_url(url)
    params: dict[str, str] = {"dbname": u.database or "postgres"}
    if u.host:
        params["host"] = u.host
    if u.port:
        params["port"] = str(u.port)
    if u.username:
        params["user"] = u.username
    password = str(u.password) if u.password else None
    for key, value in u.query.items():
        value = ",".join(value) if isinstance(value, tuple) else value  # ?host=a&host=b: libpq's list
        if key == "password":
            password = value
        else:
            params[key] = value
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    return ["--dbname", " ".join(f"{k}={_conninfo_value(v)}" for k, v in params.items())], env


def _conninfo_value(value: str) -> str:
    """A value quoted for a libpq connection string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"{name} is not installed (apt-get install postgresql-client); it backs up PostgreSQL")
    return found


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise OpenearError(f"{Path(cmd[0]).name} failed: {message[-1] if message else f'exit {done.returncode}'}")


def backup(url: str, dest: Path) -> BackupResult:
    """Write a consistent backup of the database at ``url`` to ``dest`` (refuses to overwrite a file)."""
    dest = Path(dest)
    if dest.exists():
        raise ConfigError(f"{dest}: already exists; choose a new file name")
    store = Store(url)
    try:
        store.check_ready()
        posts = store.count()
    finally:
        store.close()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        if store.dialect == "sqlite":
            src = sqlite3.connect(_sqlite_path(url))
            out = sqlite3.connect(tmp)
            try:
                src.backup(out)  # the online backup API: a consistent snapshot while writers carry on
                ok = out.execute("PRAGMA integrity_check").fetchone()
                out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                out.close()
                src.close()
            if ok is None or ok[0] != "ok":
                raise OpenearError(f"backup: the copy failed its integrity check: {ok}")
            kind = "sqlite"
        elif store.dialect == "postgresql":
            args, env = _pg_args(url)
            _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", str(tmp), *args],
                 env)
            kind = "pg_dump"
        else:
            raise ConfigError(f"backup: unsupported database {store.dialect!r}")
        tmp.chmod(0o600)  # it holds every stored post
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BackupResult(dest, kind, dest.stat().st_size, posts)


def _kind_of(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "pg_dump"
    raise ConfigError(f"{path}: not an openear backup (neither a SQLite database nor a pg_dump custom archive)")


def _has_schema(store: Store) -> bool:
    try:
        return store.revision() is not None
    except Exception:  # a database that does not exist yet, or cannot be read: no schema to protect
        return False


def _has_data(store: Store) -> bool:
    """Anything collected: posts or runs (a fresh ``openear init`` has neither, only its admin)."""
    return store.count("posts") > 0 or store.count("runs") > 0


def restore(url: str, src: Path, *, force: bool = False) -> int:
    """Restore the backup ``src`` into the database at ``url``; returns the number of posts restored.

    Refuses a database that already holds posts or runs unless ``force`` (which replaces its content); a fresh
    ``openear init`` (schema and admin only) is replaced without it.
    """
    src = Path(src)
    if src.is_dir():
        raise ConfigError(f"{src}: is a directory, not a backup file")
    if not src.is_file():
        raise ConfigError(f"{src}: no such backup file")
    kind = _kind_of(src)
    target = Store(url)
    try:
        schema = _has_schema(target)
        if schema and _has_data(target) and not force:
            raise ConfigError("restore: the database already holds posts or runs; restore into a fresh instance, "
                              "or pass --force to replace its content")
        if (kind == "sqlite") != (target.dialect == "sqlite"):
            raise ConfigError(f"restore: a {kind} backup restores into "
                              f"{'SQLite' if kind == 'sqlite' else 'PostgreSQL'}, not {target.dialect}")
        target.close()
        if kind == "sqlite":
            path = _sqlite_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
            try:
                try:  # before the target is opened: a damaged backup leaves the database as it was
                    ok = source.execute("PRAGMA integrity_check").fetchone()
                except sqlite3.DatabaseError as exc:  # truncated, or not a database past its header
                    raise OpenearError(f"{src}: the backup is damaged ({exc}); nothing was restored") from None
                if ok is None or ok[0] != "ok":
                    raise OpenearError(f"{src}: the backup failed its integrity check: {ok}; nothing was restored")
                out = sqlite3.connect(path)
                try:
                    source.backup(out)
                    out.execute("PRAGMA journal_mode=WAL")
                finally:
                    out.close()
            finally:
                source.close()
        else:
            args, env = _pg_args(url)
            cmd = [_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
            if schema:  # a fresh `openear init` made the schema: the dump's objects replace it
                cmd += ["--clean", "--if-exists"]
            _run([*cmd, *args, str(src)], env)
        target = Store(url)
        target.migrate()  # a backup from an older openear: bring it to the newest schema
        return target.count()
    finally:
        target.close()
