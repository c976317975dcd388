"""Running commands: lockstep walks, starting and stopping runs, one step back.

Every server of a system-wide command moves concurrently, one step per round;
a walk stops at the first round in which a server fails, naming it. Every step
is confirmed by GetState: a board that ignored it fails the round ("CoBo[2]
ignored Configure: it is Described"). Start reserves the run number before any
server is asked, and marks the run started only when every server confirmed;
Stop always completes and always closes the run.

When the MuTAnT has an ECC server of its own, a round goes in two phases
(:data:`TRIGGER_FIRST`): the MuTAnT is prepared before the CoBos, and configured,
started and resumed after them, as the original attpc-daq and attpc_envoy do. GET
settles nothing for Stop, Pause and Breakup; the trigger is stopped first, so
that no board sees a trigger after its own Stop and the boards stop together.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.utils import timezone

from attpcdaq.daq.models import Command, DataRouter, ECCServer, RunMetadata
from attpcdaq.daq.models.hardware import data_link_sets
from attpcdaq.get import (
    ConfigId,
    EccError,
    EccIgnored,
    EccTimeout,
    Operation,
    PlanError,
    State,
    Step,
    backward_step,
    plan,
    step_for,
)

from .coordinator import Abandoned, EccCoordinator
from .loaded import check_drift, drift_refusal, record_configure_answers
from .runs import StartRefused

if TYPE_CHECKING:
    from .supervisor import Engine

log = logging.getLogger(__name__)
_NEEDS_CONFIG = {Operation.DESCRIBE, Operation.PREPARE, Operation.CONFIGURE}
#: Operations whose MuTAnT server moves before the CoBos' (the others: after them,
#: except Describe and Undo, which need no order).
TRIGGER_FIRST = frozenset({Operation.PREPARE, Operation.STOP, Operation.PAUSE,
                           Operation.BREAKUP})
_TRIGGER_LAST = frozenset({Operation.CONFIGURE, Operation.START, Operation.RESUME})
# Ending the acquisition goes on after a failed phase: Stop always works.
_ENDING = frozenset({Operation.STOP, Operation.PAUSE, Operation.BREAKUP})


class Refused(Exception):
    """The command cannot run as things stand; nothing was changed."""


class StepFailed(Exception):
    """A round of transitions failed on one or more servers, named in the message."""

    def __init__(self, operation: str, failures: list[tuple[EccCoordinator, BaseException]]):
        self.failures = failures
        names = "; ".join(_failure(coord, exc) for coord, exc in failures)
        super().__init__(f"{operation} failed on {names}")


def _failure(coord: EccCoordinator, exc: BaseException) -> str:
    """``CoBo[2]: <reason>``, or ``CoBo[2] ignored Configure: it is Described``."""
    if isinstance(exc, EccIgnored):
        return f"{coord.name} {exc.detail}"
    return f"{coord.name}: {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EccError):
        return exc.detail
    return str(exc) or type(exc).__name__


def _names(coords: Iterable[EccCoordinator]) -> str:
    return ", ".join(sorted(coord.name for coord in coords))


class Controller:
    """Runs claimed commands against the engine's coordinators."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db = engine.db
        self.run_id: int | None = None  # the run the last command started or stopped
        self.command: Command | None = None  # the transition command running
        self.confirm_drift = False  # the operator confirmed a Start despite drift

    async def execute(self, command: Command) -> str | None:
        """Run one command and return what it produced, if anything.

        Raises :class:`Refused` or :class:`StepFailed` when it fails.
        """
        # Quick commands run beside a transition: they must leave run_id, the
        # transition's, alone.
        if command.kind == Command.Kind.TAIL_LOG:
            return await self.engine.tail_log(command)
        if command.kind in (Command.Kind.EXCLUDE, Command.Kind.INCLUDE):
            return await self.set_excluded(command, command.kind == Command.Kind.EXCLUDE)
        if command.kind == Command.Kind.ABORT:
            return await self.abort(command)
        coords = self._coordinators(command)
        if command.kind == Command.Kind.REFRESH_CONFIGS:
            await asyncio.gather(*(self.engine.fetch_configs(c, raise_errors=True)
                                   for c in coords))
            return None
        self.run_id = None
        self.confirm_drift = command.confirm_drift
        self.command = command  # who asked, and a Start's options for the run
        coords = await self._usable(coords, command)
        if command.kind == Command.Kind.RESET:
            await self.reset(coords, system=command.ecc_server_id is None)
        elif command.ecc_server_id is None:
            await self.system_transition(coords, State(command.target))
        else:
            await self.walk(coords, State(command.target), system=False)
        return None

    def _coordinators(self, command: Command) -> list[EccCoordinator]:
        if command.ecc_server_id is not None:
            coord = self.engine.coordinators.get(command.ecc_server_id)
            if coord is None:
                raise Refused(f"the engine does not know ECC server {command.ecc_server}")
            return [coord]
        coords = self.engine.keeper.participants()
        if not coords:
            raise Refused("there are no enabled ECC servers that are not excluded")
        return coords

    async def _usable(self, coords: list[EccCoordinator],
                      command: Command) -> list[EccCoordinator]:
        """The servers the command can move; refuse when one it needs cannot move.

        A system-wide command that takes an open run down (Stop, Reset, a walk below
        Running) skips a server that is offline or busy with someone else's
        transition, naming it, rather than refusing: Stop always works.
        """
        offline = [c for c in coords if not c.online or c.state is None]
        busy = [c for c in coords if c not in offline and c.data and c.data.transitioning]
        if not offline and not busy:
            return coords
        lowering = command.kind == Command.Kind.RESET or (
            command.target is not None and command.target < State.RUNNING)
        if command.ecc_server_id is None and lowering and self.engine.keeper.open_run_id:
            skipped = "; ".join(part for part in (
                offline and f"offline: {_names(offline)}",
                busy and f"busy with another transition: {_names(busy)}") if part)
            await self.db.event("warning", "run control", f"{command.describe()} skips "
                                f"{skipped}", self.engine.keeper.open_run_id)
            rest = [c for c in coords if c not in offline and c not in busy]
            if rest:
                return rest
        if offline:
            raise Refused(f"offline: {_names(offline)}")
        raise Refused(f"a transition is already running on {_names(busy)}")

    async def set_excluded(self, command: Command, excluded: bool) -> None:
        """Take an ECC server or a data router out of the system, or put it back."""
        target = command.ecc_server or command.data_router
        if target is None:
            raise Refused("exclude and include name an ECC server or a data router")
        kind = "boards" if command.ecc_server_id else "routers"
        who = command.user.get_username() if command.user else "the engine"
        await self._mark_excluded(kind, target.pk, target.name, excluded, command.reason)
        verb = "taken out of the system" if excluded else "put back into the system"
        await self.db.event("warning" if excluded else "info", target.name,
                            f"{target.name} {verb} by {who}"
                            + (f": {command.reason}" if command.reason else ""),
                            self.engine.keeper.open_run_id)

    async def _mark_excluded(self, kind: str, pk: int, name: str, excluded: bool,
                             reason: str) -> None:
        model = ECCServer if kind == "boards" else DataRouter
        await self.db.run(lambda: model.objects.filter(pk=pk).update(
            excluded=excluded, excluded_reason=reason if excluded else "",
            excluded_at=timezone.now() if excluded else None))
        coord = self.engine.coordinators.get(pk) if kind == "boards" else None
        if coord is not None:  # seen at once by walks and the run keeper
            coord.info = dataclasses.replace(coord.info, excluded=excluded)
        await self.engine.keeper.excluded(kind, name, reason, included=not excluded)

    async def abort(self, command: Command) -> None:
        """Abandon the transition running on one server: it is marked hung and
        excluded, and whatever waited for it goes on without it."""
        coord = self.engine.coordinators.get(command.ecc_server_id)
        if coord is None or coord.busy is None:
            raise Refused(f"no transition of the engine runs on {command.ecc_server}")
        who = command.user.get_username() if command.user else "the engine"
        await self.abandon(coord, f"{coord.busy} hung: abandoned by {who}"
                           + (f" ({command.reason})" if command.reason else ""))

    async def abandon(self, coord: EccCoordinator, reason: str) -> None:
        """Stop waiting for ``coord``'s transition; exclude it, with an alarm."""
        await self._mark_excluded("boards", coord.info.pk, coord.name, True, reason)
        await coord.abandon(reason)
        await self.engine.keeper.alarm(self.engine.keeper.open_run_id, coord.name, "hung",
                                       f"{coord.name}: {reason}; it is excluded until an "
                                       "operator puts it back")

    async def system_transition(self, coords: list[EccCoordinator], target: State) -> None:
        """Take every enabled server to ``target``; Start and Resume are run operations."""
        states = {c.state for c in coords}
        if target == State.RUNNING:
            if states == {State.PAUSED}:
                await self.run_round(coords, Operation.RESUME, RunMetadata.Status.RUNNING)
            else:
                await self.start_run(coords)
            return
        if target == State.PAUSED:
            if states != {State.RUNNING}:
                raise Refused("Pause needs every server Running; "
                              f"{self._not_in(coords, State.RUNNING)}")
            await self.run_round(coords, Operation.PAUSE, RunMetadata.Status.PAUSED)
            return
        await self.walk(coords, target, system=True)

    @staticmethod
    def _not_in(coords: list[EccCoordinator], state: State) -> str:
        others = [c for c in coords if c.state != state]
        return "not " + state.label + ": " + ", ".join(
            f"{c.name} ({c.state.label})" for c in sorted(others, key=lambda c: c.name))

    async def walk(self, coords: list[EccCoordinator], target: State, *, system: bool) -> None:
        """Walk the servers to ``target``, the furthest first, then all in lockstep."""
        for _ in range(12):  # no walk is longer than five rounds; this bounds a confused one
            try:
                plans = {c: plan(c.state, target) for c in coords}
            except PlanError as exc:
                raise Refused(str(exc)) from None
            pending = {c: steps for c, steps in plans.items() if steps}
            if not pending:
                return
            longest = max(len(steps) for steps in pending.values())
            steps = {c: s[0] for c, s in pending.items() if len(s) == longest}
            operations = {step.operation for step in steps.values()}
            ending = {c: s for c, s in steps.items() if _ends_run(s)}
            if ending and system:
                # Stop, or Breakup from Running/Paused (which stops the run first).
                await self.stop_run(list(ending), ending)
                continue
            if operations & {Operation.START, Operation.RESUME} and not system:
                raise Refused("Start and Resume are system-wide: use Start")
            await self.round(steps)
        raise Refused(f"the servers did not reach {target.label}")

    async def reset(self, coords: list[EccCoordinator], *, system: bool) -> None:
        """Take each server one step back; Running or Paused servers stop the run."""
        steps = {c: backward_step(c.state) for c in coords if c.state > State.IDLE}
        if not steps:
            raise Refused("every server is already Idle")
        stopping = [c for c, s in steps.items() if _ends_run(s)]
        if stopping and system:
            await self.stop_run(stopping)
            steps = {c: s for c, s in steps.items() if c not in stopping}
        if steps:
            await self.round(steps)

    async def round(self, steps: dict[EccCoordinator, Step]) -> None:
        """Run one step on each server concurrently; raise naming every failure."""
        args = await self.db.run(_transition_args, [c.info.pk for c in steps])
        unconfigured = [c for c, s in steps.items() if s.operation in _NEEDS_CONFIG
                        and args[c.info.pk][0] is None]
        if unconfigured:
            raise Refused(f"no configuration selected for {_names(unconfigured)}")
        failures: list[tuple[EccCoordinator, BaseException]] = []
        for phase in _phases(steps):
            if failures and not _ENDING & {s.operation for s in phase.values()}:
                break  # the trigger is not configured or started after a board failed
            results = await asyncio.gather(*(
                c.transition(s, *args[c.info.pk]) for c, s in phase.items()),
                return_exceptions=True)
            await record_configure_answers(self.db, phase, args, results)
            # An abandoned server is excluded (see abort): the others go on without it.
            failures += [(c, r) for c, r in zip(phase, results, strict=True)
                         if isinstance(r, BaseException) and not isinstance(r, Abandoned)]
            for _, exc in failures:
                if not isinstance(exc, Exception):
                    raise exc  # cancellation goes on up
        keeper = self.engine.keeper
        for coord, exc in failures:
            if isinstance(exc, EccTimeout):  # the server never gives up: it may still run
                await keeper.alarm(keeper.open_run_id, coord.name, f"hung {exc.detail}",
                                   f"{coord.name}: {steps[coord].operation} hung: "
                                   f"{exc.detail}")
        if failures:
            operation = "/".join(sorted({str(steps[c].operation) for c, _ in failures}))
            raise StepFailed(operation, failures)

    async def start_run(self, coords: list[EccCoordinator]) -> None:
        """Open the next run, Start every server, and mark it started when all confirm.

        The preconditions and the run's records are the run keeper's (engine/runs.py).
        """
        keeper = self.engine.keeper
        try:
            await keeper.check_start(coords)
        except StartRefused as exc:
            raise Refused(str(exc)) from None
        drift = await check_drift(self.db, self.engine.pool, coords)
        if drift and not self.confirm_drift:
            raise Refused(drift_refusal(drift))
        args = await self.db.run(_transition_args, [c.info.pk for c in coords])
        configs = {c.name: str(args[c.info.pk][0]) for c in coords}
        try:
            command = self.command
            run = await keeper.open(coords, configs, options=command.options if command else {},
                                    user_id=command.user_id if command else None)
        except StartRefused as exc:
            raise Refused(str(exc)) from None
        self.run_id = run.pk
        if drift:
            await self.db.event("warning", "run control", f"run {run.run_number} started as "
                                "the operator confirmed, despite configuration drift: "
                                + "; ".join(drift), run.pk)
        keeper.moving = True
        try:
            await self.round({c: step_for(Operation.START, State.READY) for c in coords})
        except StepFailed as failure:
            await self._abort(run, coords, failure)
            raise
        finally:
            keeper.moving = False
        await keeper.started(run)

    async def _abort(self, run: RunMetadata, coords, failure: StepFailed) -> None:
        """Bring servers that did start back to Ready and record the run as aborted."""
        started = [c for c in coords if c.state in (State.RUNNING, State.PAUSED)]
        if started:
            stop = step_for(Operation.STOP, State.RUNNING)
            try:
                await self.round({c: stop for c in started})
            except StepFailed as exc:
                await self.engine.keeper.alarm(run.pk, _names(started), "abort",
                                               f"after a failed Start: {exc}")
        await self.engine.keeper.aborted(run, str(failure))

    async def run_round(self, coords, operation: Operation, status: str) -> None:
        """Pause or Resume every server and record the run's new status."""
        keeper = self.engine.keeper
        keeper.moving = True
        try:
            await self.round({c: step_for(operation, c.state) for c in coords})
        finally:
            keeper.moving = False
        run = await keeper.set_status(status)
        if run:
            self.run_id = run.pk

    async def stop_run(self, coords: list[EccCoordinator],
                       steps: dict[EccCoordinator, Step] | None = None) -> None:
        """Stop every given server (by Stop, or the given run-ending ``steps``); always
        close the run; then raise naming failures."""
        keeper = self.engine.keeper
        run = await keeper.stopping()
        if run:
            self.run_id = run.pk
        failure = None
        keeper.moving = True
        try:
            await self.round(steps or {c: step_for(Operation.STOP, c.state) for c in coords})
        except StepFailed as exc:
            failure = exc
            for coord, error in exc.failures:
                await keeper.alarm(run.pk if run else None, coord.name, "stop",
                                   f"{coord.name} did not stop: {_reason(error)}")
        finally:
            keeper.moving = False
        if run:
            # Closed at once; the filer waits until every board of the run has left
            # Running (or was excluded) and its files have settled.
            await keeper.close(run, str(failure) if failure else "",
                               user_id=self.command.user_id if self.command else None)
        if failure:
            raise failure


def _ends_run(step: Step) -> bool:
    """Whether ``step`` ends a board's acquisition: Stop, or Breakup from Running/Paused."""
    return step.source in (State.RUNNING, State.PAUSED) and step.operation in (
        Operation.STOP, Operation.BREAKUP)


def _phases(steps: dict[EccCoordinator, Step]) -> list[dict[EccCoordinator, Step]]:
    """Split a round in the MuTAnT's order (module docstring); one phase when no
    separate MuTAnT server takes part, or the operation needs no order."""
    trigger = {c: s for c, s in steps.items() if c.info.controls_trigger}
    boards = {c: s for c, s in steps.items() if not c.info.controls_trigger}
    operations = {s.operation for s in steps.values()}
    if not trigger or not boards:
        return [steps]
    if operations <= TRIGGER_FIRST:
        return [trigger, boards]
    if operations <= _TRIGGER_LAST:
        return [boards, trigger]
    return [steps]


def _transition_args(pks: list[int]):
    """The configuration set and data links of each server, by primary key."""
    links = data_link_sets(pks)
    return {pk: (ConfigId(*config) if config[0] is not None else None, links[pk])
            for pk, *config in ECCServer.objects.filter(pk__in=pks).values_list(
                "pk", "selected_config__describe", "selected_config__prepare",
                "selected_config__configure")}
