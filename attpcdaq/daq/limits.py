"""Limits of a timed run: checked, changed or removed during the run, and what is left.

A run may stop by itself after a duration (live time: Running, Paused time not
counted), an amount of data (the bytes its routers hold, summed) or a number of
events per CoBo (estimated during the run, see :mod:`attpcdaq.engine.timed`), and
restart by itself into a new run with the same metadata and limits. The engine
checks them (``engine/timed.py``); people change them here, from the status page's
run panel or ``PATCH /api/runs/NUMBER/limits``. Every change is kept as a
:class:`~attpcdaq.daq.models.RunEdit` and said in an event.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import Event, RunEdit, RunMetadata
from .services import Conflict, ControlError, require_engine

#: The fields a limit change may name, in the order they are said.
FIELDS = ("limit_seconds", "limit_bytes", "limit_events", "auto_restart")
#: The longest duration limit: a year of live time.
MAX_SECONDS = 366 * 24 * 3600.0
#: The largest data or event limit (beyond any disk and well inside a 64-bit integer).
MAX_COUNT = 10**18
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_NAMES = {"limit_seconds": "duration limit", "limit_bytes": "data limit",
          "limit_events": "event limit", "auto_restart": "automatic restart"}


def live_seconds(run: RunMetadata, now=None) -> float:
    """Seconds the run has been Running: from its start, less its time Paused."""
    if run.start_datetime is None:
        return 0.0
    end = run.stop_datetime or now or timezone.now()
    paused = run.paused_seconds
    if run.paused_since is not None and run.stop_datetime is None:
        paused += max(0.0, (end - run.paused_since).total_seconds())
    return max(0.0, (end - run.start_datetime).total_seconds() - paused)


def hms(seconds: float) -> str:
    """``H:MM:SS`` of a number of seconds (floored)."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def size_text(nbytes: float) -> str:
    """Bytes as people read them: ``1.5 GB``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} B"


def describe(field: str, value) -> str:
    """A limit's value in words: ``0:10:00``, ``2.0 GB``, ``5,000 events``, ``none``."""
    if value is None or value is False:
        return "off" if field == "auto_restart" else "none"
    if field == "auto_restart":
        return "on"
    if field == "limit_seconds":
        return hms(value)
    if field == "limit_bytes":
        return size_text(value)
    return f"{int(value):,} events"


# Parsing ----------------------------------------------------------------------------------

def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(f"{what}: expected a number, got {str(value)[:40]!r}")
    if not math.isfinite(value):
        raise ControlError(f"{what}: expected a finite number")
    return float(value)


def parse_duration(text) -> float | None:
    """Seconds from ``3600``, ``90.5``, ``1:30`` (minutes:seconds) or ``1:00:00``;
    None for an empty text (no limit). Raises ControlError saying what is wrong."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        return _number(text, "duration limit")
    parts = text.strip().split(":")
    if len(parts) > 3 or not all(re.fullmatch(r"[0-9]+(\.[0-9]+)?", p) for p in parts):
        raise ControlError(f"duration limit: {text.strip()[:40]!r} is not a duration: write "
                           "seconds, M:SS or H:MM:SS")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds


def parse_size(text) -> int | None:
    """Bytes from ``1000000``, ``500M``, ``2 GB``, ``1.5 GiB``; None for an empty text."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        return int(_number(text, "data limit"))
    match = _SIZE.match(text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ControlError(f"data limit: {text.strip()[:40]!r} is not an amount of data: "
                           "write bytes, or a number with k, M, G or T")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value > MAX_COUNT:
        raise ControlError(f"data limit: at most {MAX_COUNT:,} bytes")
    return int(value)


def parse_count(text) -> int | None:
    """An event count from ``5000`` or ``5,000``; None for an empty text."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        return int(_number(text, "event limit"))
    cleaned = text.strip().replace(",", "").replace("_", "")
    if not cleaned.isascii() or not cleaned.isdigit():
        raise ControlError(f"event limit: {text.strip()[:40]!r} is not a whole number")
    return int(cleaned)


def check(changes: dict) -> dict:
    """The changes, checked: limits positive and bounded (None removes one), the
    restart a yes/no. Raises ControlError naming the field."""
    unknown = [key for key in changes if key not in FIELDS]
    if unknown:
        raise ControlError(f"{unknown[0][:40]}: not a limit (expected {', '.join(FIELDS)})")
    checked = {}
    for field, value in changes.items():
        what = _NAMES[field]
        if field == "auto_restart":
            if not isinstance(value, bool):
                raise ControlError(f"{field}: expected true or false")
            checked[field] = value
            continue
        if value is None:
            checked[field] = None
            continue
        number = _number(value, field)
        if number <= 0:
            raise ControlError(f"{field}: the {what} must be more than zero (null removes it)")
        top = MAX_SECONDS if field == "limit_seconds" else MAX_COUNT
        if number > top:
            most = describe(field, top) if field == "limit_seconds" else f"{top:,}"
            raise ControlError(f"{field}: the {what} is at most {most}")
        if field != "limit_seconds" and number != int(number):
            raise ControlError(f"{field}: the {what} is a whole number")
        checked[field] = number if field == "limit_seconds" else int(number)
    return checked


# Changing them ---------------------------------------------------------------------------

def set_limits(user, run: RunMetadata, changes: dict) -> list[str]:
    """Change or remove limits of an open run; return what changed, in words.

    ``changes`` maps fields of :data:`FIELDS` to values (None removes a limit);
    fields not named stay as they are.

    Raises
    ------
    ControlError
        A value that is not a limit (the message names the field).
    Conflict
        When the run is not open any more: its limits are history.
    """
    checked = check(changes)
    require_engine()
    who = user.get_username() if user and user.is_authenticated else "the system"
    with transaction.atomic():
        run = RunMetadata.objects.select_for_update().get(pk=run.pk)
        if not run.is_open:
            raise Conflict(f"run {run.run_number} is {run.get_status_display().lower()}: "
                           "its limits can no longer change")
        said = []
        for field, value in checked.items():
            old = getattr(run, field)
            if old == value:
                continue
            setattr(run, field, value)
            RunEdit.objects.create(run=run, user=user if user and user.is_authenticated
                                   else None, field=field, old=old, new=value)
            said.append(f"{_NAMES[field]} {describe(field, old)} → {describe(field, value)}")
        if said:
            run.save(update_fields=[*checked])
            Event.objects.create(level=Event.Level.INFO, source="run control", run=run,
                                 message=f"run {run.run_number}: {'; '.join(said)} "
                                 f"(by {who})")
    return said


# What is left, for the status page -------------------------------------------------------

@dataclass
class Left:
    """What remains of an open run's limits."""

    #: Seconds of live time left; None without a duration limit.
    seconds: float | None = None
    #: When the duration limit is reached if the run goes on Running (None while Paused).
    until: object = None
    #: Bytes left (None without a data limit or before the engine measured any).
    bytes: int | None = None
    #: Events left per CoBo, estimated (None when it cannot be estimated yet).
    events: int | None = None
    #: Why the event count is not known, when it is not.
    events_unknown: str = ""

    @property
    def seconds_text(self) -> str:
        return hms(self.seconds or 0)

    @property
    def bytes_text(self) -> str:
        return size_text(self.bytes or 0)


def left(run: RunMetadata | None, now=None) -> Left | None:
    """What is left of ``run``'s limits (None when it is not open or has none).

    The data so far is what the engine last measured (``coverage["progress"]``,
    written by ``engine/timed.py`` while a data or event limit is set).
    """
    if run is None or not run.is_open or not (run.limit_seconds or run.limit_bytes
                                              or run.limit_events):
        return None
    now = now or timezone.now()
    result = Left()
    if run.limit_seconds:
        result.seconds = max(0.0, run.limit_seconds - live_seconds(run, now))
        if run.status == RunMetadata.Status.RUNNING and run.start_datetime:
            # Constant while it runs (the page ticks it down): no churn in the live swap.
            result.until = run.start_datetime + timedelta(
                seconds=run.paused_seconds + run.limit_seconds)
    progress = (run.coverage or {}).get("progress") if isinstance(run.coverage, dict) else None
    progress = progress if isinstance(progress, dict) else {}
    if run.limit_bytes and isinstance(progress.get("bytes"), int):
        result.bytes = max(0, run.limit_bytes - progress["bytes"])
    if run.limit_events:
        if isinstance(progress.get("events"), int):
            result.events = max(0, run.limit_events - progress["events"])
        else:
            result.events_unknown = str(progress.get("events_unknown") or
                                        "not measured yet")
    return result
