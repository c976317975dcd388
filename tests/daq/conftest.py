"""Fixtures shared by the web tests (pages and API) of the DAQ app."""

from __future__ import annotations

import pytest
from django.utils import timezone

from attpcdaq.daq.models import EngineHeartbeat


def beat(**fields) -> EngineHeartbeat:
    """Write the engine's heartbeat row as an engine does (``beat`` now unless given)."""
    now = timezone.now()
    values = {"beat": now, "started": now, "pid": 1, "hostname": "here", **fields}
    row, _ = EngineHeartbeat.objects.update_or_create(pk=1, defaults=values)
    return row


@pytest.fixture
def engine_beating(settings):
    """An engine that beat just now, as far as the web side can tell.

    No engine runs in these tests, so its beat is written once and counts as fresh
    for the length of a test (ENGINE_STALE_AFTER is raised to 10 minutes); the tests
    of liveness itself (tests/daq/test_liveness.py) keep the real threshold.
    """
    settings.ENGINE_STALE_AFTER = 600
    return beat()
