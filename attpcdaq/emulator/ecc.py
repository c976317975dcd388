"""The state machine of one emulated ECC server, with fault injection; no network here.

It behaves as GET-PROTOCOL.md says getEccSoapServer does:

- a transition takes its time (``asyncio.sleep``), then answers ErrorCode 0 and
  the state moves to the step's target;
- while it runs, :meth:`EmulatedEcc.get_state` answers the old state, the running
  transition's code and "The ECC state machine is busy!";
- a transition asked meanwhile is refused at once with ErrorCode = its own code;
- a transition not allowed from the state is **ignored**: ErrorCode 0, nothing
  changes (Describe and Configure still answer their last texts);
- a transition that fails (a configuration that cannot be read, a described
  board without a data link) answers ErrorCode = its own code (Describe 1 ...
  Undo 9) with the real server's message, and keeps the state, except a failed
  Breakup, which leaves the board Off (0);
- Describe answers the ``<DataSenderSet>`` of the boards described; Configure the
  data links in use, a newline and a ``<ConfigSet>`` holding the text of every
  configuration file it used.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from ..get.exceptions import BUSY_MESSAGE, PlanError, XmlError
from ..get.states import OPERATIONS, Operation, State, Step, TransitionCode, step_for
from ..get.xmldocs import ConfigId, DataLinkSet
from .configs import ConfigDir, ConfigFileError, describe_boards
from .datapath import DataPath, DataPathError

__all__ = [
    "DEFAULT_TRANSITION_SECONDS",
    "Answer",
    "EmulatedCrash",
    "EmulatedEcc",
    "FaultKind",
    "Performed",
    "StateAnswer",
    "TransitionSeconds",
    "parse_transition_seconds",
]

#: How long a transition takes when not told otherwise (every op, or an op a mapping omits).
DEFAULT_TRANSITION_SECONDS = 0.2
# The code an operation reports, whatever state it starts from.
_CODES = {step.operation: step.code for step in OPERATIONS}
# The file each step reads, by operation: (prefix, the ConfigId name it takes). Prepare
# reads a configure- file, by its prepare name; prepare- files are never read.
_READS = {Operation.DESCRIBE: ("describe", "describe"),
          Operation.PREPARE: ("configure", "prepare"),
          Operation.CONFIGURE: ("configure", "configure")}
#: Special commands the real server knows; others are refused.
SPECIAL_COMMANDS = frozenset({"asad-inject", "connect", "write", "writereg"})
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
class Performed:
    """A transition the emulator ran: when it began and ended (monotonic), and how."""

    operation: Operation
    began: float
    ended: float
    code: int


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
        Directory of ``describe-*`` and ``configure-*`` files (``.xcfg``, else ``.xml``).
    transition_seconds
        How long each transition takes: a number for all, or a mapping
        Operation → seconds (operations it omits take
        :data:`DEFAULT_TRANSITION_SECONDS`).
    data
        The boards' data side: they link to their routers at Configure and stream
        while Running; None: no data side. The boards outlive a server process, so
        a restarted server is given the same one.

    Raises
    ------
    NotADirectoryError
        When ``config_dir`` is not a directory.
    ValueError
        When a transition time is negative or not a number.
    """

    def __init__(self, config_dir: Path | str,
                 transition_seconds: TransitionSeconds = DEFAULT_TRANSITION_SECONDS,
                 data: DataPath | None = None) -> None:
        self.configs = ConfigDir(config_dir)
        self.data = data
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
        #: The files the configuration in force was read from: file name -> text.
        self.files: dict[str, str] = {}
        #: What Describe and Configure last answered (an ignored one answers it again).
        self.texts: dict[Operation, str] = {}
        #: The transitions run lately, oldest first (tests read their order).
        self.history: deque[Performed] = deque(maxlen=200)
        self._faults: dict[Operation, tuple[FaultKind, str]] = {}
        self._release: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def __repr__(self) -> str:
        running = f", running {self.running.operation}" if self.running else ""
        return f"<EmulatedEcc {self.state.label}{running}>"

    def get_state(self) -> StateAnswer:
        """Answer GetState: busy while a transition runs, the old state until it ends."""
        if self.running is None:
            return StateAnswer(0, "", self.state, TransitionCode.NONE)
        return StateAnswer(0, BUSY_MESSAGE, self.state, self.running.code)

    def get_config_ids(self) -> Answer:
        """Answer GetConfigIDs: every describe by configure name (prepare = configure).

        One tab-indented ``<ConfigId>`` line per set, as the real server writes it;
        a missing directory is an empty set, another filesystem error ErrorCode 1.
        """
        try:
            configs = self.configs.config_ids()
        except FileNotFoundError:
            configs = []
        except OSError as exc:
            return Answer(_OTHER_FAILURE, f"cannot list {self.configs.path}: {exc.strerror}")
        lines = "".join(f"\t{config.as_xml()}\n" for config in configs)
        return Answer(0, "", f"<ConfigIdSet>\n{lines}</ConfigIdSet>")

    def special(self, command: str, table: str = "") -> Answer:
        """Answer Special: "" for the commands the real server knows, else ErrorCode 1."""
        if command not in SPECIAL_COMMANDS:
            return Answer(_OTHER_FAILURE, f"Special command '{command}' is unknown.")
        return Answer(0, "", "")

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
        except PlanError:
            # The real state machine drops an event its state does not take: no error.
            return Answer(0, "", self.texts.get(op, ""))
        self._faults.pop(op, None)
        self.running, self._task = step, asyncio.current_task()
        began, code = time.monotonic(), None
        try:
            answer = await self._perform(step, config_id, table, kind, message)
            code = answer.code
            return answer
        finally:
            self.running, self._task = None, None
            if code is not None:
                self.history.append(Performed(op, began, time.monotonic(), code))

    async def _perform(self, step: Step, config_id: str, table: str, kind: FaultKind | None,
                       message: str) -> Answer:
        """Take the step's time, then move on, unless it fails or a fault says otherwise."""
        if kind is FaultKind.HANG:
            self._release = asyncio.Event()
            await self._release.wait()
            return self._failed(step, f"{step.operation} hung and was released by the "
                                "emulator")
        # Read first, as the real server loads its configuration; failures answer at the end.
        try:
            accepted, failure = self._check(step, config_id, table), None
        except _StepFailed as exc:
            accepted, failure = {}, str(exc)
        await asyncio.sleep(self.durations[step.operation])
        if kind is FaultKind.FAIL:
            return self._failed(step, message)
        if failure is not None:
            return self._failed(step, failure)
        try:
            if self.data is not None:
                await self.data.step(step.operation, accepted.get("links", self.links))
        except DataPathError as exc:
            return self._failed(step, str(exc))
        for name, value in accepted.items():
            setattr(self, name, value)
        self.state = step.target
        text = self._text(step.operation)
        if step.operation in (Operation.DESCRIBE, Operation.CONFIGURE):
            self.texts[step.operation] = text
        return Answer(0, "", text)

    def _failed(self, step: Step, message: str) -> Answer:
        """A failed step keeps its state, except Breakup, which leaves the board Off."""
        if step.operation is Operation.BREAKUP:
            self.state = State.OFF
        return Answer(step.code, message)

    def _text(self, operation: Operation) -> str:
        """What a successful Describe or Configure answers; the others answer ""."""
        if operation is Operation.DESCRIBE:
            senders = "".join(f"\t<DataSender id={quoteattr(board)} />\n"
                              for board in sorted(self.boards or ()))
            return f"<DataSenderSet>\n{senders}</DataSenderSet>"
        if operation is Operation.CONFIGURE:
            files = "".join(f"<File filename={quoteattr(name)}>{escape(text)}</File>"
                            for name, text in self.files.items())
            links = self.links.as_xml() if self.links else "<DataLinkSet/>"
            return f"{links}\n<ConfigSet>{files}</ConfigSet>"
        return ""

    def _check(self, step: Step, config_id: str, table: str) -> dict[str, object]:
        """Read what the step needs; return the attributes to set if it succeeds."""
        op = step.operation
        if op not in _READS:
            return {}
        try:
            config = ConfigId.from_xml(config_id)
        except XmlError:
            raise _StepFailed(f"Configuration identifier '{config_id}' is not valid.") from None
        prefix, name = _READS[op]
        try:
            found = self.configs.read(prefix, getattr(config, name))
        except ConfigFileError as exc:
            raise _StepFailed(f"Exception: {exc}") from None
        accepted: dict[str, object] = {"config": config}
        if op is Operation.DESCRIBE:
            accepted["boards"] = describe_boards(found.root)
            accepted["boards_file"] = found.filename
            accepted["files"] = {found.filename: found.text}
        elif op is Operation.PREPARE:
            accepted["files"] = {**self.files, found.filename: found.text}
        elif op is Operation.CONFIGURE:
            accepted["files"] = {**self.files, found.filename: found.text}
            accepted["links"] = self._links(table)
        return accepted

    def _links(self, table: str) -> DataLinkSet:
        """The links of Configure's table that this server keeps.

        As the real server: one link per sender (the first stays), links for senders
        it does not control are dropped, and only a described board without a link
        fails (GET-PROTOCOL.md, "table").
        """
        try:
            links = DataLinkSet.from_xml(table) if table.strip() else DataLinkSet(())
        except XmlError as exc:
            raise _StepFailed(f"Exception: cannot read the data link table: {exc}") from None
        kept: dict[str, object] = {}
        for link in links:
            if self.boards is None or link.sender in self.boards:
                kept.setdefault(link.sender, link)
        for board in sorted(self.boards or ()):
            if board not in kept:
                raise _StepFailed(f"Could not find a valid data router for data sender "
                                  f"'{board}'")
        return DataLinkSet(tuple(kept[sender] for sender in sorted(kept)))

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
        """Stop a running transition without an answer, as the death of the process does.

        The boards are hardware: they go on acquiring (see :mod:`.datapath`).
        """
        self._faults.clear()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
