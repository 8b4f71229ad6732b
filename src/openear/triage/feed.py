"""The pipeline feeds triage: after a run (an import, or one pass of a live source) that stored posts, one triage
pass attaches the new posts to the open cases of their clusters, lets the case rules open cases, checks for
spikes and applies the escalation rules (what ``openear cases sync`` does). Once per run, not per post; a run
that stored nothing costs nothing. Passes are serialised in the process, as live sources run in threads.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any

log = logging.getLogger("openear.triage")
LOCK = threading.Lock()  # one triage pass at a time in the process (the scheduler's jobs take it too)

__all__ = ["LOCK", "feed", "feeder"]


def feed(settings: Any, store: Any, *, now: datetime | None = None, notifier: Any = None) -> Any:
    """One triage pass over the store (a :class:`openear.triage.SyncResult`)."""
    from openear.triage import load_triage, run

    with LOCK:
        return run(store, load_triage(settings), now=now, notifier=notifier)


def feeder(settings: Any, store: Any) -> Callable[[Any], None]:
    """The hook a :class:`openear.pipeline.Pipeline` calls after a run with its stats. A failing triage pass is
    logged and never fails the run: the posts are stored, and the next pass (or ``cases sync``) catches up."""

    def after_run(stats: Any) -> None:
        if not getattr(stats, "stored", 0):
            return
        try:
            feed(settings, store)
        except Exception:
            log.error("triage after the run failed: %s", traceback.format_exc())

    return after_run
