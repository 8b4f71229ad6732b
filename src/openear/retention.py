"""The retention purge (guardrail 6), as ``openear purge`` and the scheduler's nightly job both run it.

:meth:`Store.purge <openear.store.Store.purge>` deletes the rows: posts older than the limit and what was derived
from them (archived reports, closed cases, alerts no longer open, topics, deliveries). The store knows no files:
the archived reports' files are deleted here, only inside the workspace's archive folder. Open cases and open
alerts are kept whatever their age: they are work in progress.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["archive_dir", "delete_archive_files", "describe", "purge_expired"]

log = logging.getLogger("openear.retention")


def archive_dir(home: Path) -> Path:
    """The workspace's report archive: ``<home>/reports/archive``."""
    return home / "reports" / "archive"


def delete_archive_files(root: Path, paths: Iterable[str], *, dry_run: bool = False) -> int:
    """Delete the archived reports' files at ``paths`` (relative to ``root``); returns how many were (or, with
    ``dry_run``, would be) deleted. A missing file is no error; a path that resolves outside ``root`` (``..``, an
    absolute path, a link leading out) is never touched, and a file that cannot be deleted is logged."""
    base = root.resolve()
    n = 0
    for rel in paths:
        target = (base / rel).resolve()
        if target == base or not target.is_relative_to(base):
            log.warning("report archive path %r: outside %s; not deleted", rel, base)
            continue
        if dry_run:
            n += target.is_file()
            continue
        try:
            target.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("report archive file %s: not deleted: %s", target, exc)
            continue
        n += 1
    return n


def purge_expired(
    store: Any, home: Path, before: datetime, *, dry_run: bool = False, actor: str | None = None
) -> dict[str, int]:
    """Purge posts created before ``before`` and what was derived from them, then the archived reports' files.

    Returns the counts of :meth:`Store.purge <openear.store.Store.purge>` with ``report_files`` (files deleted)
    in place of the paths. Unless ``dry_run``, an audit record by ``actor`` (when given) holds those counts.
    """
    done = store.purge(before, dry_run=dry_run)
    paths = done.pop("report_paths", [])
    done["report_files"] = delete_archive_files(archive_dir(home), paths, dry_run=dry_run)
    if actor is not None and not dry_run:
        from openear import audit

        with store.begin() as conn:
            audit.record(conn, actor, "purge", target=f"before {before:%Y-%m-%d}", detail=json.dumps(done))
    return done


def _n(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def describe(done: dict[str, int], *, dry_run: bool = False) -> str:
    """What the purge did besides posts, in two sentences, e.g. ``Also deleted 2 archived reports (2 files), ...``."""
    deleted = (
        f"{_n(done['reports'], 'archived report')} ({_n(done['report_files'], 'file')}), "
        f"{_n(done['cases'], 'closed case')} ({_n(done['case_events'], 'event')}), "
        f"{_n(done['alerts'], 'alert')}, {_n(done['topics'], 'topic')} "
        f"and {_n(done['deliveries'], 'delivery', 'deliveries')}"
    )
    kept = f"{_n(done['open_cases_kept'], 'open case')} and {_n(done['open_alerts_kept'], 'open alert')}"
    if dry_run:
        return f"Would also delete {deleted}. Would keep {kept} from before then: open work is kept whatever its age."
    return f"Also deleted {deleted}. Kept {kept} from before then: open work is kept whatever its age."
