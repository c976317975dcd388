"""Template filters of timed runs: what is left of a run's limits (daq/limits.py)."""

from __future__ import annotations

from django import template

from attpcdaq.daq import limits

register = template.Library()


@register.filter
def limits_left(run) -> limits.Left | None:
    """What is left of an open run's limits; None without limits or once it is over."""
    return limits.left(run)


@register.filter
def duration_text(seconds: float | None) -> str:
    """A duration limit as the form takes it back: ``H:MM:SS`` ("" for none)."""
    return "" if seconds is None else limits.hms(seconds)
