"""Access to the team's shared data (``../shared``), skipping with a reason where a clone does not have it.

A module of its own (not ``conftest``) so that test files in any folder can import it unambiguously.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """A file in ../shared, or skip the test with the reason when the folder is absent (a user's clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs ../shared/{'/'.join(parts)} (the team's shared data), absent here")
    return path
