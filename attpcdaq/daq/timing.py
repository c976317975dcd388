"""How long the transition the engine runs on a server has taken, against its usual time.

The status page shows it ("14 s, usually 2 s") and calls a transition "slow: maybe
hung" past a limit; Abort is offered only for a transition the engine runs.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from attpcdaq import get

from .models import ECCServer

#: A transition the engine runs is "slow: maybe hung" once it has taken this many times
#: its usual time (the median of its recent ones) and at least SLOW_MIN_SECONDS...
SLOW_FACTOR = 3
SLOW_MIN_SECONDS = 10.0
#: ... or, when that server has no history of the operation, this long.
SLOW_WITHOUT_HISTORY = 30.0
_OPERATION_OF_CODE = {step.code.value: str(step.operation) for step in get.OPERATIONS}


@dataclass(frozen=True)
class TransitionTiming:
    """How long the transition the engine runs on a server has taken, against usual."""

    #: The operation running ("Start"), or "" when none is known.
    operation: str = ""
    #: Seconds since the engine began it; None when the engine runs none on the server.
    elapsed: float | None = None
    #: The median of the server's recent durations of that operation; None without any.
    usual: float | None = None
    #: Past SLOW_FACTOR times the usual time and SLOW_MIN_SECONDS (or, without
    #: history, SLOW_WITHOUT_HISTORY): "slow: maybe hung".
    slow: bool = False
    started: datetime | None = None

    @property
    def usual_text(self) -> str:
        """``2 s``, ``0.4 s``; empty when not known."""
        return "" if self.usual is None else _seconds_text(self.usual)

    @property
    def elapsed_text(self) -> str:
        """``14 s``; empty when no transition runs."""
        return "" if self.elapsed is None else f"{int(self.elapsed)} s"


def _seconds_text(seconds: float) -> str:
    """``0.05 s``, ``0.4 s``, ``1.5 s``, ``2 s``, ``14 s``."""
    if seconds >= 9.95:
        return f"{seconds:.0f} s"
    if seconds < 1:
        return f"{seconds:.2g} s"
    return f"{seconds:.1f}".rstrip("0").rstrip(".") + " s"


def transition_timing(server: ECCServer, now: datetime | None = None) -> TransitionTiming:
    """The timing of the transition the engine runs on ``server`` (see TransitionTiming).

    Only a transition the engine began (``transition_started`` set, which the engine
    clears when it ends, fails, times out, is abandoned or the server goes offline)
    has a timing; ``transition_times`` may hold anything: what is not a list of
    numbers counts as no history.
    """
    operation = _OPERATION_OF_CODE.get(server.transition, "") if server.is_transitioning else ""
    if not server.is_transitioning or server.transition_started is None:
        return TransitionTiming(operation)
    now = now or timezone.now()
    elapsed = max(0.0, (now - server.transition_started).total_seconds())
    history = server.transition_times if isinstance(server.transition_times, dict) else {}
    times = history.get(operation)
    times = [t for t in times if isinstance(t, int | float) and not isinstance(t, bool)
             and t >= 0] if isinstance(times, list) else []
    usual = float(statistics.median(times)) if times else None
    limit = SLOW_WITHOUT_HISTORY if usual is None else max(SLOW_FACTOR * usual,
                                                          SLOW_MIN_SECONDS)
    return TransitionTiming(operation, elapsed, usual, elapsed >= limit,
                            server.transition_started)
