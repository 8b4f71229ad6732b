"""The moment ingest counts retention from: UTC now, or the fixed moment ``OPENEAR_NOW`` names.

``OPENEAR_NOW`` (ISO 8601 with a UTC offset, e.g. ``2026-12-01T00:00:00+00:00``) freezes that moment, so that a
re-run of an old import, or a test suite whose fixtures carry fixed dates, decides the same way on any day.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from openear.errors import ConfigError

ENV = "OPENEAR_NOW"


def now() -> datetime:
    """The current moment (timezone-aware, UTC), or ``OPENEAR_NOW`` when it is set."""
    fixed = os.environ.get(ENV, "").strip()
    if not fixed:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(fixed.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{ENV}: {fixed!r} is not an ISO 8601 moment (e.g. 2026-12-01T00:00:00+00:00)") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{ENV}: {fixed!r} has no UTC offset (e.g. 2026-12-01T00:00:00+00:00)")
    return moment.astimezone(UTC)
