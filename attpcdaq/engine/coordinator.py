"""One coordinator per ECC server: polls GetState, writes changes, tracks health.

The pattern of Home Assistant's DataUpdateCoordinator: one ``refresh`` turns
every failure into state (never a crash), logs only when health changes, polls
faster while a transition runs, backs off while the server is unreachable, and
starts with jitter so a hundred servers do not poll in the same millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from attpcdaq.get import (
    ConfigId,
    DataLinkSet,
    EccClient,
    EccError,
    Operation,
    State,
    StateReply,
    Step,
    TextReply,
    TransitionCode,
)

from .database import EngineDatabase, ServerInfo, clean_times

log = logging.getLogger(__name__)

#: How many recent durations of each operation a server keeps (``transition_times``).
TIMES_KEPT = 20
#: How long :meth:`EccCoordinator.abandon` waits for the abandoned transition to be
#: written off (it only waits for the database and one GetState).
ABANDON_WAIT = 10.0


class Abandoned(Exception):
    """An operator abandoned the transition: the engine stopped waiting for it.

    The server goes on with it (GET never gives up); the coordinator polls it as usual.
    """

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass
class PollSettings:
    """How often to poll, and when to give up on a server."""

    interval: float = 1.0
    fast_interval: float = 0.2
    offline_after: int = 3
    backoff_cap: float = 30.0
    state_timeout: float = 3.0
    transition_timeout: float = 120.0


@dataclass
class _Written:
    """What the database holds for the server, as last written by us."""

    state: int | None = None
    transition: int | None = None
    online: bool | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)


class EccCoordinator:
    """Polls one ECC server and runs transitions on it for the controller."""

    def __init__(self, info: ServerInfo, db: EngineDatabase, settings: PollSettings,
                 on_change: Callable[[EccCoordinator, StateReply | None, State | None], None]
                 | None = None):
        self.info = info
        self.db = db
        self.settings = settings
        self.client = EccClient(info.url, state_timeout=settings.state_timeout,
                                transition_timeout=settings.transition_timeout)
        self.data: StateReply | None = None
        self.last_update_success = False
        self.last_exception: EccError | None = None
        self.last_success_at: datetime | None = None
        self.failures = 0
        self.online = False
        self.busy: Operation | None = None  # the transition we are running on it
        self._step: asyncio.Task | None = None  # the client call of that transition
        self._abandoned: str | None = None  # why an operator abandoned it
        self._idle = asyncio.Event()  # set while no transition of ours runs
        self._idle.set()
        self._was_abandoned = False
        self.busy_since = 0.0  # time.monotonic() when the transition of ours began
        self._times: dict[str, list[float]] | None = None  # transition_times, once read
        self._on_change = on_change
        self._written = _Written()
        self._task: asyncio.Task | None = None
        self._first_poll = asyncio.Event()
        self._unexpected_said: str | None = None  # the last unexpected failure logged

    @property
    def name(self) -> str:
        """The server's name."""
        return self.info.name

    @property
    def state(self) -> State | None:
        """The last state the server reported, None before it answered once."""
        return self.data.state if self.data else None

    def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.create_task(self._loop(), name=f"poll {self.name}")

    async def stop(self) -> None:
        """Stop polling and close the connection."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()

    async def wait_first_poll(self) -> None:
        """Wait until the first poll has answered or failed."""
        await self._first_poll.wait()

    def _next_delay(self) -> float:
        s = self.settings
        if not self.last_update_success and self.failures >= s.offline_after:
            # Back off exponentially while it stays unreachable, with jitter.
            base = min(s.interval * 2 ** (self.failures - s.offline_after + 1), s.backoff_cap)
            return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto
        if self.data and self.data.transitioning:
            return s.fast_interval
        return s.interval

    async def _loop(self) -> None:
        await asyncio.sleep(random.uniform(0, self.settings.interval))  # noqa: S311
        while True:
            try:
                if self.busy is None:  # during our own transition its answer will tell
                    await self.refresh()
            except Exception as exc:  # a bug must not end polling
                await self._unexpected(exc)
            finally:
                self._first_poll.set()
            await asyncio.sleep(self._next_delay())

    async def _unexpected(self, exc: Exception) -> None:
        """Show a failure of polling itself (a bug, the database gone) as the server's
        last error; its traceback is logged once, not every second."""
        message = f"polling failed unexpectedly: {type(exc).__name__}: {exc}"
        if message != self._unexpected_said:
            self._unexpected_said = message
            log.error("polling %s failed unexpectedly", self.name, exc_info=exc)
        with contextlib.suppress(Exception):  # the database failing: the log is all there is
            await self.record_error(message)

    async def refresh(self) -> StateReply | None:
        """Ask the server its state once and write what changed."""
        try:
            reply = await self.client.get_state()
        except EccError as exc:
            await self._failed(exc)
            return None
        previous = self.state
        self.data, self.last_exception = reply, None
        self.last_update_success, self.failures = True, 0
        self.last_success_at = timezone.now()
        if not self.online:
            self.online = True
            if self._written.online is False:
                log.info("%s is reachable again", self.name)
        await self._write(state=reply.state.value, transition=reply.transition.value,
                          online=True)
        if self._on_change:
            self._on_change(self, reply, previous)
        return reply

    async def _failed(self, exc: EccError) -> None:
        self.last_update_success, self.last_exception = False, exc
        self.failures += 1
        if self.online and self.failures >= self.settings.offline_after:
            self.online = False
            log.warning("%s is unreachable: %s", self.name, exc)
        if self.failures == 1 or self.failures == self.settings.offline_after:
            await self._write(online=self.online, error=str(exc))
        if self.failures == self.settings.offline_after and self.busy is None:
            # Whatever it was doing, nobody can tell now: it is not "Starting…" for ever.
            await self._write(transition=TransitionCode.NONE.value, force=True)
        if not self.online and self._on_change:
            self._on_change(self, None, self.state)

    async def _write(self, *, state: int | None = None, transition: int | None = None,
                     online: bool | None = None, error: str | None = None,
                     force: bool = False, **more) -> None:
        """Write only the fields that differ from what we last wrote.

        ``force`` writes the transition (and whether one runs) even when unchanged:
        the controller writes them behind our back when a transition begins.
        ``more``: other fields, written as given.
        """
        fields: dict = dict(more)
        w = self._written
        was = w.state
        if state is not None and state != w.state:
            fields["state"] = w.state = state
        if transition is not None and (force or transition != w.transition):
            fields["transition"] = w.transition = transition
            fields["is_transitioning"] = (transition != TransitionCode.NONE
                                          or self.busy is not None)
            if self.busy is None:
                # A transition the engine runs is ours; one polled is the server's own
                # (or one we gave up on, or a stale mark left by an engine that died).
                fields["transition_started"] = None
        if online is not None and online != w.online:
            fields["is_online"] = w.online = online
            fields["last_seen"] = self.last_success_at
        if error is not None and error != w.error:
            w.error = error
            fields.update(last_error=error, last_error_at=timezone.now() if error else None)
        if fields:
            await self.db.update_server(self.info.pk, **fields)
        if "state" in fields and fields["state"] < State.READY and (
                was is None or was >= State.READY):
            # Gone below Ready (or first seen there, maybe after a restart): the boards
            # hold no configuration. Only then: Describe on a hundred servers must not
            # queue a hundred deletes on the database thread.
            await self.db.clear_loaded_config(self.info.pk)

    async def record_error(self, message: str) -> None:
        """Show ``message`` as the server's last error."""
        await self._write(error=message)

    async def transition(self, step: Step, config: ConfigId | None,
                         links: DataLinkSet | None) -> TextReply:
        """Run one step, showing it as running meanwhile, and confirm it with GetState.

        The server answers a transition only once it has finished, and answers 0
        also to a transition it ignored, so the answer is confirmed by GetState
        at once (:meth:`EccClient.run_step`); the confirmed state is written.
        Meanwhile the server shows the transition as the engine's
        (``transition_started``); however it ends, that mark is cleared. A success
        appends its duration to ``transition_times`` and clears "Last error".

        Returns
        -------
        The server's answer (Describe's senders, Configure's links and files).

        Raises
        ------
        EccError
            When the server refuses, fails, ignores the step (EccIgnored), times out
            or cannot be reached. The state is polled before it is raised.
        Abandoned
            When :meth:`abandon` was called meanwhile; the state is polled first.
        """
        self.busy, self._abandoned, self._was_abandoned = step.operation, None, False
        self._idle.clear()
        started = self.busy_since = time.monotonic()
        try:
            if self._times is None:  # read with the servers (ServerInfo) when known
                known = self.info.transition_times
                self._times = ({op: list(t) for op, t in known.items()} if known is not None
                               else await self.db.run(_read_times, self.info.pk))
            # The mark is written while the step is sent, not before: a hundred servers
            # would otherwise wait for a hundred rows to be written before the first
            # request left. The database thread writes it before anything after it.
            marked = asyncio.ensure_future(self.db.update_server(
                self.info.pk, is_transitioning=True, transition=step.code.value,
                target_state=step.target.value, transition_started=timezone.now()))
            try:
                self._step = asyncio.ensure_future(self.client.run_step(step, config, links))
                reply, confirmed = await self._step
            finally:
                await marked
        except asyncio.CancelledError:
            reason, task = self._abandoned, asyncio.current_task()
            if reason is None or (task is not None and task.cancelling()):
                raise  # the engine is stopping: cancellation goes on up
            log.warning("%s: %s abandoned after %.1f s: %s", self.name, step.operation,
                        time.monotonic() - started, reason)
            self._was_abandoned = True
            await self._ended(f"{step.operation} abandoned: {reason}")
            raise Abandoned(reason) from None
        except EccError as exc:
            await self._ended(str(exc))
            raise
        finally:
            self.busy, self._step = None, None
            self._idle.set()
        seconds = time.monotonic() - started
        log.debug("%s: %s took %.2f s", self.name, step.operation, seconds)
        self.data = confirmed
        times = self._times.setdefault(str(step.operation), [])
        times.append(round(seconds, 3))
        del times[:-TIMES_KEPT]
        # A completed transition clears the last error: it is in the events, and kept
        # on the row it would later blame this server for what is over.
        await self._write(state=confirmed.state.value, transition=confirmed.transition.value,
                          error="", force=True,
                          transition_times={op: list(t) for op, t in self._times.items()})
        return reply

    async def _ended(self, error: str) -> None:
        """A transition of ours that did not complete: say why, unmark it, poll."""
        self.busy = None
        await self._write(transition=TransitionCode.NONE.value, error=error, force=True)
        # The poll writes what the server does now (maybe still the transition: its own).
        self._written.transition = None
        await self.refresh()

    def elapsed(self) -> float:
        """Seconds the transition of ours running on the server has taken so far (0: none)."""
        return time.monotonic() - self.busy_since if self.busy is not None else 0.0

    def usual_seconds(self) -> float:
        """The median of the recent durations of the operation running (0: none known)."""
        times = sorted((self._times or {}).get(str(self.busy), ())) if self.busy else []
        return times[len(times) // 2] if times else 0.0

    async def abandon(self, reason: str) -> bool:
        """Stop waiting for the transition running on this server, for ``reason``.

        :meth:`transition` then raises :class:`Abandoned` instead of waiting; the
        server goes on with it, and is polled as usual. Returns True once the
        transition is written off; False when none was running (or it ended by itself
        before it could be abandoned).
        """
        if self.busy is None:
            return False
        self._abandoned = reason
        if self._step is not None:
            self._step.cancel()
        try:
            await asyncio.wait_for(self._idle.wait(), ABANDON_WAIT)
        except TimeoutError:
            return True  # cancelled; still being written off
        return self._was_abandoned


def _read_times(pk: int) -> dict[str, list[float]]:
    """A server's recent transition durations as stored; anything malformed is dropped."""
    from attpcdaq.daq.models import ECCServer

    stored = ECCServer.objects.filter(pk=pk).values_list("transition_times", flat=True).first()
    return clean_times(stored)
