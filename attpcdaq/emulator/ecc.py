"""The state machine of one emulated ECC server, with fault injection; no network here.

It behaves as GET-PROTOCOL.md says getEccSoapServer does:

- a transition takes its time (``asyncio.sleep``), then answers ErrorCode 0 and
  the state moves to the step's target;
- while it runs, :meth:`EmulatedEcc.get_state` answers the old state, the running
  transition's code and "The ECC state machine is busy!";
- a transition asked meanwhile is refused at once with ErrorCode = its own code;
- a transition not allowed from the state, or whose configuration cannot be
  read, answers ErrorCode = its own code and changes nothing.

Refusals and failures always carry the asked operation's transition code
(Describe 1 ... Undo 9), never 0.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..get.exceptions import BUSY_MESSAGE, PlanError, XmlError
from ..get.states import OPERATIONS, Operation, State, Step, TransitionCode, step_for
from ..get.xmldocs import ConfigId, DataLinkSet
from .configs import ConfigDir, ConfigFileError, describe_boards
from .datapath import DataPath, DataPathError, DataSettings

__all__ = [
    "DEFAULT_TRANSITION_SECONDS",
    "Answer",
    "EmulatedCrash",
    "EmulatedEcc",
    "FaultKind",
    "StateAnswer",
    "TransitionSeconds",
    "parse_transition_seconds",
]

#: How long a transition takes when not told otherwise (every op, or an op a mapping omits).
DEFAULT_TRANSITION_SECONDS = 0.2
# The code an operation reports, whatever state it starts from.
_CODES = {step.operation: step.code for step in OPERATIONS}
# The steps that read their own configuration file, by operation.
_READS = {Operation.DESCRIBE: "describe", Operation.PREPARE: "prepare",
          Operation.CONFIGURE: "configure"}
#: Seconds for every transition, or per operation.
TransitionSeconds = float | Mapping[Operation | str, float]
# ErrorCode of a non-transition call that fails (GetConfigIDs on a vanished directory).
_OTHER_FAILURE = 1


class FaultKind(enum.StrEnum):
    """What an injected fault does to the next transition of its operation."""

    FAIL = "fail"
    HANG = "hang"
    CRASH = "crash"


class EmulatedCrash(Exception):
    """Raised by a transition armed with ``crash_next``: the server must die unanswered."""


class _StepFailed(Exception):
    """A transition that cannot run; the message is what the client sees."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A ``ResponseText`` (or ``Response``, without text) to send back."""

    code: int
    message: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class StateAnswer:
    """A ``ResponseState`` to send back."""

    code: int
    message: str
    state: State
    transition: TransitionCode


def _durations(spec: TransitionSeconds) -> dict[Operation, float]:
    """Seconds per operation from a number (every op) or a mapping (others: the default)."""
    if isinstance(spec, Mapping):
        durations = dict.fromkeys(Operation, DEFAULT_TRANSITION_SECONDS)
        durations.update({Operation(op): float(seconds) for op, seconds in spec.items()})
    else:
        durations = dict.fromkeys(Operation, float(spec))
    for op, seconds in durations.items():
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"transition time of {op} must be a number of seconds >= 0, "
                             f"not {seconds}")
    return durations


def parse_transition_seconds(text: str) -> float | dict[Operation, float]:
    """Read ``1.5`` (every operation) or ``Describe=1,Configure=3`` (others: the default).

    Raises
    ------
    ValueError
        When it is neither, names an unknown operation or gives a negative time.
    """
    spec: float | dict[Operation, float]
    if "=" not in text:
        spec = _seconds(text)
    else:
        by_name = {op.value.lower(): op for op in Operation}
        spec = {}
        for item in text.split(","):
            name, _, seconds = item.partition("=")
            if name.strip().lower() not in by_name:
                raise ValueError(f"unknown operation {name.strip()!r}; expected one of "
                                 f"{', '.join(op.value for op in Operation)}")
            spec[by_name[name.strip().lower()]] = _seconds(seconds)
    _durations(spec)
    return spec


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number of seconds") from None


class EmulatedEcc:
    """The state machine of one ECC server, reading its configuration directory.

    Parameters
    ----------
    config_dir
        Directory of ``describe-*.xcfg``, ``prepare-*.xcfg``, ``configure-*.xcfg``.
    transition_seconds
        How long each transition takes: a number for all, or a mapping
        Operation → seconds (operations it omits take
        :data:`DEFAULT_TRANSITION_SECONDS`).
    data
        When given, the boards stream data to their routers while Running and
        Configure checks that every router can be reached; None: no data side.

    Raises
    ------
    NotADirectoryError
        When ``config_dir`` is not a directory.
    ValueError
        When a transition time is negative or not a number.
    """

    def __init__(self, config_dir: Path | str,
                 transition_seconds: TransitionSeconds = DEFAULT_TRANSITION_SECONDS,
                 data: DataSettings | None = None) -> None:
        self.configs = ConfigDir(config_dir)
        self.data = DataPath(data) if data is not None else None
        self.durations = _durations(transition_seconds)
        self.state = State.IDLE
        #: The step running now, or None.
        self.running: Step | None = None
        #: The last configuration set and data links accepted (for streaming while Running).
        self.config: ConfigId | None = None
        self.links: DataLinkSet | None = None
        #: The boards of the describe file last described (None: the file names no Node).
        self.boards: frozenset[str] | None = None
        self.boards_file = ""
        self._faults: dict[Operation, tuple[FaultKind, str]] = {}
        self._release: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing: asyncio.Future | None = None

    def __repr__(self) -> str:
        running = f", running {self.running.operation}" if self.running else ""
        return f"<EmulatedEcc {self.state.label}{running}>"

    def get_state(self) -> StateAnswer:
        """Answer GetState: busy while a transition runs, the old state until it ends."""
        if self.running is None:
            return StateAnswer(0, "", self.state, TransitionCode.NONE)
        return StateAnswer(0, BUSY_MESSAGE, self.state, self.running.code)

    def get_config_ids(self) -> Answer:
        """Answer GetConfigIDs: a ``<ConfigIdSet>`` of every combination of files."""
        try:
            return Answer(0, "", ConfigId.list_as_xml(self.configs.config_ids()))
        except OSError as exc:
            return Answer(_OTHER_FAILURE, f"cannot list {self.configs.path}: {exc.strerror}")

    def special(self, command: str, table: str = "") -> Answer:
        """Answer Special: the emulator echoes the command in Text."""
        return Answer(0, "", command)

    async def transition(self, operation: Operation | str, config_id: str = "",
                         table: str = "") -> Answer:
        """Run one transition and answer when it is over (see the module docstring).

        Raises
        ------
        EmulatedCrash
            When ``crash_next`` armed this operation: the caller must drop everything.
        """
        op = Operation(operation)
        kind, message = self._faults.get(op, (None, ""))
        if kind is FaultKind.CRASH:
            del self._faults[op]
            raise EmulatedCrash(f"{op} crashed the emulated server")
        if self.running is not None:
            return Answer(_CODES[op], BUSY_MESSAGE)
        try:
            step = step_for(op, self.state)
            accepted = self._check(step, config_id, table)
        except (PlanError, _StepFailed) as exc:
            return Answer(_CODES[op], str(exc))
        self._faults.pop(op, None)
        self.running, self._task = step, asyncio.current_task()
        try:
            return await self._perform(step, accepted, kind, message)
        finally:
            self.running, self._task = None, None

    async def _perform(self, step: Step, accepted: dict[str, object], kind: FaultKind | None,
                       message: str) -> Answer:
        """Take the step's time, then move on, unless a fault says otherwise."""
        if kind is FaultKind.HANG:
            self._release = asyncio.Event()
            await self._release.wait()
            return Answer(step.code, f"{step.operation} hung and was released by the "
                          f"emulator; still {self.state.label}")
        await asyncio.sleep(self.durations[step.operation])
        if kind is FaultKind.FAIL:
            return Answer(step.code, message)
        if self.data is not None:
            try:
                await self.data.step(step.operation, accepted.get("links", self.links))
            except DataPathError as exc:
                return Answer(step.code, str(exc))
        for name, value in accepted.items():
            setattr(self, name, value)
        self.state = step.target
        return Answer(0, "")

    def _check(self, step: Step, config_id: str, table: str) -> dict[str, object]:
        """Read what the step needs; return the attributes to set if it succeeds."""
        op = step.operation
        if op not in _READS:
            return {}
        try:
            config = ConfigId.from_xml(config_id)
            root = self.configs.read(_READS[op], getattr(config, _READS[op]))
        except (XmlError, ConfigFileError) as exc:
            raise _StepFailed(f"{op} failed: {exc}") from None
        accepted: dict[str, object] = {"config": config}
        if op is Operation.DESCRIBE:
            accepted["boards"] = describe_boards(root)
            accepted["boards_file"] = config.filenames()["describe"]
        elif op is Operation.CONFIGURE:
            accepted["links"] = self._links(table)
        return accepted

    def _links(self, table: str) -> DataLinkSet:
        """Read Configure's table, refusing senders the described hardware lacks."""
        try:
            links = DataLinkSet.from_xml(table)
        except XmlError as exc:
            raise _StepFailed(f"Configure failed: cannot read the table: {exc}") from None
        if not links:
            raise _StepFailed("Configure failed: the DataLinkSet holds no DataLink")
        unknown = sorted({link.sender for link in links} - (self.boards or set()))
        if self.boards is not None and unknown:
            raise _StepFailed(
                f"Configure failed: DataSender {', '.join(unknown)} is not a board of "
                f"{self.boards_file} (its boards: {', '.join(sorted(self.boards)) or 'none'})")
        return links

    @property
    def faults(self) -> dict[str, str]:
        """The faults armed, operation → kind."""
        return {str(op): str(kind) for op, (kind, _) in self._faults.items()}

    def fail_next(self, operation: Operation | str,
                  message: str = "Emulated failure (injected by the test)") -> None:
        """Make the next ``operation`` that runs fail after its usual time, state unchanged."""
        self._faults[Operation(operation)] = (FaultKind.FAIL, message)

    def hang_next(self, operation: Operation | str) -> None:
        """Make the next ``operation`` never finish, until :meth:`clear_faults`."""
        self._faults[Operation(operation)] = (FaultKind.HANG, "")

    def crash_next(self, operation: Operation | str) -> None:
        """Make the next ``operation`` kill the server without answering."""
        self._faults[Operation(operation)] = (FaultKind.CRASH, "")

    def clear_faults(self) -> None:
        """Disarm every fault and release a hung transition (it then fails)."""
        self._faults.clear()
        if self._release is not None:
            self._release.set()
            self._release = None

    def kill(self) -> None:
        """Stop a running transition without an answer, as the death of the process does."""
        self._faults.clear()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        if self.data is not None and self.data.streamer is not None:
            # A dead server's boards stop sending; their sockets close with the loop's.
            self.data.streamer, streamer = None, self.data.streamer
            self._closing = asyncio.ensure_future(streamer.stop(timeout=1.0))
