"""The GET board state machine: states, transition codes, operations and a planner.

The transition table is data (:data:`OPERATIONS`); the planner walks it. Numbers
are those the ECC server speaks on the wire (see GET-PROTOCOL.md)::

    Idle --Describe--> Described --Prepare--> Prepared --Configure--> Ready
    Ready --Start--> Running --Pause--> Paused --Resume--> Running
    Running/Paused --Stop--> Ready
    Ready/Running/Paused --Breakup--> Prepared --Undo--> Described --Undo--> Idle
    Off --Breakup--> Prepared   (Off is where a failed Breakup leaves a board)

The real server ignores a transition its state does not allow (it answers
ErrorCode 0 and nothing moves), so the table is also what a client must check
before it trusts an answer.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from .exceptions import PlanError

__all__ = [
    "OPERATIONS",
    "Operation",
    "State",
    "Step",
    "TransitionCode",
    "backward_step",
    "plan",
    "step_for",
]


class State(enum.IntEnum):
    """A board's state, numbered as in GetState's ``State`` field."""

    OFF = 0
    IDLE = 1
    DESCRIBED = 2
    PREPARED = 3
    READY = 4
    RUNNING = 5
    PAUSED = 6

    @property
    def label(self) -> str:
        """The name shown to people: ``Ready``."""
        return self.name.capitalize()


class TransitionCode(enum.IntEnum):
    """The transition running, as in GetState's ``Transition`` field (0: none)."""

    NONE = 0
    DESCRIBING = 1
    PREPARING = 2
    CONFIGURING = 3
    STARTING = 4
    STOPPING = 5
    PAUSING = 6
    RESUMING = 7
    BREAKING_UP = 8
    RESETTING = 9

    @property
    def label(self) -> str:
        """The name shown to people: ``Breaking up``."""
        return self.name.replace("_", " ").capitalize()


class Operation(enum.StrEnum):
    """A state-changing SOAP operation, valued by its wire name."""

    DESCRIBE = "Describe"
    PREPARE = "Prepare"
    CONFIGURE = "Configure"
    START = "Start"
    STOP = "Stop"
    PAUSE = "Pause"
    RESUME = "Resume"
    BREAKUP = "Breakup"
    UNDO = "Undo"


@dataclass(frozen=True, slots=True)
class Step:
    """One allowed edge of the state machine."""

    operation: Operation
    source: State
    target: State
    code: TransitionCode

    @property
    def forward(self) -> bool:
        """True for a step that moves towards Running."""
        return self.operation in _FORWARD


_FORWARD = {Operation.DESCRIBE, Operation.PREPARE, Operation.CONFIGURE, Operation.START,
            Operation.PAUSE, Operation.RESUME}

S, Op, T = State, Operation, TransitionCode
#: Every allowed transition of the real getEccSoapServer.
OPERATIONS: tuple[Step, ...] = (
    Step(Op.DESCRIBE, S.IDLE, S.DESCRIBED, T.DESCRIBING),
    Step(Op.PREPARE, S.DESCRIBED, S.PREPARED, T.PREPARING),
    Step(Op.CONFIGURE, S.PREPARED, S.READY, T.CONFIGURING),
    Step(Op.START, S.READY, S.RUNNING, T.STARTING),
    Step(Op.PAUSE, S.RUNNING, S.PAUSED, T.PAUSING),
    Step(Op.RESUME, S.PAUSED, S.RUNNING, T.RESUMING),
    Step(Op.STOP, S.RUNNING, S.READY, T.STOPPING),
    Step(Op.STOP, S.PAUSED, S.READY, T.STOPPING),
    Step(Op.BREAKUP, S.READY, S.PREPARED, T.BREAKING_UP),
    Step(Op.BREAKUP, S.RUNNING, S.PREPARED, T.BREAKING_UP),  # stops the run first
    Step(Op.BREAKUP, S.PAUSED, S.PREPARED, T.BREAKING_UP),
    Step(Op.BREAKUP, S.OFF, S.PREPARED, T.BREAKING_UP),  # the way out of a failed Breakup
    Step(Op.UNDO, S.PREPARED, S.DESCRIBED, T.RESETTING),
    Step(Op.UNDO, S.DESCRIBED, S.IDLE, T.RESETTING),
)
del S, Op, T

_BY_EDGE = {(step.operation, step.source): step for step in OPERATIONS}


def step_for(operation: Operation | str, source: State | int) -> Step:
    """Return the step that ``operation`` makes from ``source``.

    Raises
    ------
    PlanError
        When the operation is not allowed from that state.
    """
    op, state = Operation(operation), State(source)
    try:
        return _BY_EDGE[(op, state)]
    except KeyError:
        raise PlanError(f"{op} is not allowed from {state.label}") from None


def backward_step(source: State | int) -> Step:
    """Return the one step back from ``source`` (what "Reset" does).

    Running and Paused go back by Stop (to Ready), Ready by Breakup, Off by
    Breakup (to Prepared: the only way out of a failed Breakup).

    Raises
    ------
    PlanError
        From Idle, where there is nothing to go back to.
    """
    state = State(source)
    for step in OPERATIONS:  # in table order: Stop comes before Breakup
        if step.source == state and not step.forward:
            return step
    raise PlanError(f"there is no step back from {state.label}")


def plan(current: State | int, target: State | int) -> list[Step]:
    """Return the shortest list of steps from ``current`` to ``target``.

    ``plan(IDLE, READY)`` is Describe, Prepare, Configure; ``plan(RUNNING, IDLE)``
    is Breakup, Undo, Undo (Breakup stops the run first); ``plan(RUNNING, READY)``
    is Stop; ``plan(OFF, IDLE)`` is Breakup, Undo, Undo; ``plan(x, x)`` is empty.

    Raises
    ------
    PlanError
        When either state is not a state, the target is Off, or no path exists.
    """
    try:
        start, goal = State(current), State(target)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    if goal == State.OFF:
        raise PlanError("Off is not a target: a board is Off only after a failed Breakup")
    came_from: dict[State, Step | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if state == goal:
            break
        for step in OPERATIONS:
            if step.source == state and step.target not in came_from:
                came_from[step.target] = step
                queue.append(step.target)
    if goal not in came_from:
        raise PlanError(f"no path from {start.label} to {goal.label}")
    steps: list[Step] = []
    state = goal
    while (step := came_from[state]) is not None:
        steps.append(step)
        state = step.source
    return steps[::-1]
