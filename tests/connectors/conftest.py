"""Fixtures of the connector tests: a replay server on 127.0.0.1 (see replay.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from replay import ReplayServer


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    s = ReplayServer()
    yield s
    s.close()
