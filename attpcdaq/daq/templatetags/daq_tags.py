"""Colours, badges and number formats of the DAQ pages, all in one place."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template

from ..forms import BACK_FROM, FORWARD_STEPS
from ..models import Command, ECCServer, Event, Experiment, RunMetadata

register = template.Library()

#: Bootstrap colour of each server state; offline servers show "danger" instead.
STATE_COLOURS = {
    ECCServer.OFF: "dark",
    ECCServer.IDLE: "secondary",
    ECCServer.DESCRIBED: "info",
    ECCServer.PREPARED: "info",
    ECCServer.READY: "success",
    ECCServer.RUNNING: "primary",
    ECCServer.PAUSED: "warning",
}
RUN_COLOURS = {
    RunMetadata.Status.STARTING: "info",
    RunMetadata.Status.RUNNING: "primary",
    RunMetadata.Status.PAUSED: "warning",
    RunMetadata.Status.STOPPING: "info",
    RunMetadata.Status.STOPPED: "secondary",
    RunMetadata.Status.ABORTED: "danger",
}
COMMAND_COLOURS = {
    Command.Status.PENDING: "secondary",
    Command.Status.RUNNING: "info",
    Command.Status.DONE: "success",
    Command.Status.FAILED: "danger",
}
EVENT_COLOURS = {
    Event.Level.INFO: "info",
    Event.Level.WARNING: "warning",
    Event.Level.ERROR: "danger",
    Event.Level.ALARM: "danger",
}
#: Colours with a light background need dark text to stay readable.
_DARK_TEXT = {"info", "warning", "light"}


def _badge_class(colour: str) -> str:
    text = "text-dark" if colour in _DARK_TEXT else ""
    return f"text-bg-{colour} {text}".strip()


@register.filter
def state_badge(state: int | None) -> str:
    """Badge classes of a server state; None (servers disagree) is "Mixed"."""
    if state is None:
        return "text-bg-light border border-secondary"
    return _badge_class(STATE_COLOURS.get(state, "dark"))


@register.filter
def run_badge(status: str) -> str:
    """Badge classes of a run status."""
    return _badge_class(RUN_COLOURS.get(status, "secondary"))


@register.filter
def command_badge(status: str) -> str:
    """Badge classes of a command status."""
    return _badge_class(COMMAND_COLOURS.get(status, "secondary"))


@register.filter
def event_colour(level: str) -> str:
    """Bootstrap colour of an event level."""
    return EVENT_COLOURS.get(level, "secondary")


@register.filter
def hms(duration: timedelta | None) -> str:
    """A duration as ``H:MM:SS`` (hours keep counting past a day)."""
    if not isinstance(duration, timedelta):
        return "\N{EN DASH}"
    seconds = max(0, int(duration.total_seconds()))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@register.filter
def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, for the page's script."""
    return int(moment.timestamp() * 1000)


def _in_units(value: float, units: tuple[str, ...]) -> str:
    """``value`` in the decimal unit that reads best: ``units`` go up by 1000."""
    for unit in units:
        if abs(value) < 1000 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == units[0] else f"{value:.1f} {unit}"
        value /= 1000
    return ""  # unreachable: the loop returns on its last unit


@register.filter
def data_rate(bytes_per_second: float | None) -> str:
    """A rate in bytes per second, in the unit that reads best."""
    return _in_units(float(bytes_per_second or 0), ("B/s", "kB/s", "MB/s", "GB/s"))


@register.filter
def size(nbytes: int | None) -> str:
    """A size in bytes, in the unit that reads best (decimal, like :func:`data_rate`)."""
    if not isinstance(nbytes, int | float) or isinstance(nbytes, bool):
        return "\N{EN DASH}"
    return _in_units(float(nbytes), ("B", "kB", "MB", "GB", "TB"))


@register.filter
def thousands(number: int | None) -> str:
    """An exact count with thousands separated: ``1,234,567``."""
    if not isinstance(number, int) or isinstance(number, bool):
        return "\N{EN DASH}"
    return f"{number:,}"


@register.filter
def forward_step(server: ECCServer) -> tuple[str, str] | None:
    """The server's forward button as (target, label), or None past Prepared."""
    return FORWARD_STEPS.get(server.state)


@register.filter
def can_step_back(server: ECCServer) -> bool:
    """The server's back button is offered."""
    return server.state in BACK_FROM


@register.filter
def config_choosable(server: ECCServer) -> bool:
    """A configuration may be chosen now: the server is Idle and not moving."""
    return server.state == ECCServer.IDLE and not server.is_transitioning


@register.simple_tag
def active_experiment() -> Experiment | None:
    """The active experiment, for the navbar."""
    return Experiment.active()
