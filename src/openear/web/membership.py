"""Owner team membership: the teams whose cases and alerts a user with the ``owner`` role sees and works.

Teams come from the triage config (``[[teams]]`` in ``openear.toml``, else the taxonomy's owners, plus the
management group). Membership lives in ``user_teams`` and is loaded onto :class:`~openear.web.auth.User` at every
session or token lookup, so object-level checks (:func:`openear.web.roles.may_access_team_object`) read no table.
Only owners belong to teams: analysts and admins see every team's objects, viewers none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from openear.store.schema import user_teams, users

__all__ = ["known_teams", "parse_teams", "set_user_teams", "teams_by_user", "user_teams_of"]

TEAM_CHARS = 100


def known_teams(settings: Any) -> list[str]:
    """The team names of a workspace's triage config, in config order (raises ``ConfigError`` for a bad config)."""
    from openear.triage import load_triage

    return [t.name for t in load_triage(settings).teams]


def parse_teams(text: str) -> list[str]:
    """``"Driver app, Payments"`` -> ``["Driver app", "Payments"]`` (blanks dropped, order kept, no repeats)."""
    out: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if name and name not in out:
            out.append(name)
    return out


def user_teams_of(conn: Connection, user_id: int) -> frozenset[str]:
    """The teams a user belongs to."""
    return frozenset(conn.execute(select(user_teams.c.team).where(user_teams.c.user_id == user_id)).scalars())


def teams_by_user(conn: Connection) -> dict[int, list[str]]:
    """``{user id: [team, ...]}`` for every user who belongs to a team (teams sorted)."""
    out: dict[int, list[str]] = {}
    for uid, team in conn.execute(select(user_teams.c.user_id, user_teams.c.team).order_by(user_teams.c.team)):
        out.setdefault(int(uid), []).append(str(team))
    return out


def set_user_teams(
    conn: Connection, username: str, teams: Iterable[str], known: Iterable[str]
) -> tuple[list[str], list[str]]:
    """Replace a user's teams; returns ``(before, after)``, each sorted.

    Raises ``ValueError`` naming the problem: no such user, a team that is not in the triage config, or teams for
    a user whose role is not ``owner`` (clearing them is always allowed).
    """
    wanted = sorted({t.strip() for t in teams if t.strip()})
    row = conn.execute(select(users.c.id, users.c.role).where(users.c.username == username.strip())).first()
    if row is None:
        raise ValueError(f"no user {username.strip()!r}")
    allowed = list(known)
    unknown = [t for t in wanted if t not in allowed]
    if unknown:
        raise ValueError(
            f"team: unknown team {unknown[0]!r}; the teams are: {', '.join(allowed) or '(none)'} "
            "([[teams]] in openear.toml, else the taxonomy's owners)"
        )
    too_long = [t for t in wanted if len(t) > TEAM_CHARS]
    if too_long:
        raise ValueError(f"team: {too_long[0][:40]!r}...: at most {TEAM_CHARS} characters")
    if wanted and row.role != "owner":
        raise ValueError(f"team: only owners belong to teams; {username.strip()} is {row.role}")
    before = sorted(user_teams_of(conn, row.id))
    if before != wanted:
        conn.execute(delete(user_teams).where(user_teams.c.user_id == row.id))
        if wanted:
            conn.execute(insert(user_teams), [{"user_id": row.id, "team": t} for t in wanted])
    return before, wanted
