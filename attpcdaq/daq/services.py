"""What users may ask of the DAQ, checked and turned into command rows.

Views and the API call these; none of them talks to a device. Each raises a
:class:`ControlError` whose ``status`` is the HTTP status to answer with.
"""

from __future__ import annotations

import statistics
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from attpcdaq import get

from .models import (
    Command,
    ConfigId,
    DataRouter,
    ECCServer,
    EngineHeartbeat,
    Event,
    Experiment,
    RunMetadata,
    UnattributedData,
)

#: Targets as the API and the forms name them.
TARGETS = {
    "idle": ECCServer.IDLE,
    "described": ECCServer.DESCRIBED,
    "prepared": ECCServer.PREPARED,
    "ready": ECCServer.READY,
    "running": ECCServer.RUNNING,
    "paused": ECCServer.PAUSED,
    "reset": ECCServer.RESET,
}


#: The longest reason an operator may give (exclude, include, abort), in characters.
MAX_REASON = 500
#: A transition the engine runs is "slow: maybe hung" once it has taken this many times
#: its usual time (the median of its recent ones) and at least SLOW_MIN_SECONDS...
SLOW_FACTOR = 3
SLOW_MIN_SECONDS = 10.0
#: ... or, when that server has no history of the operation, this long.
SLOW_WITHOUT_HISTORY = 30.0

#: Commands that run beside transitions (the engine's quick loop): they neither wait
#: for a transition nor make one wait. Abort and Exclude exist for the moment a
#: transition hangs.
QUICK_KINDS = (Command.Kind.REFRESH_CONFIGS, Command.Kind.TAIL_LOG, Command.Kind.ABORT,
               Command.Kind.EXCLUDE, Command.Kind.INCLUDE)
#: The label of a system-wide Stop while a run is open (see _run_label).
STOP_LABEL = "Stop the run"
_OPERATION_OF_CODE = {step.code.value: str(step.operation) for step in get.OPERATIONS}
# Characters that change how the text around them reads (bidirectional overrides and
# isolates, marks) or break lines: refused in a reason with the rest of Cc.
_INVISIBLE = frozenset("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e"
                       "\u2066\u2067\u2068\u2069")


class ControlError(Exception):
    """A request that cannot be accepted; nothing was changed."""

    status = 400


class Conflict(ControlError):
    """A request that conflicts with the state of things (HTTP 409)."""

    status = 409


class EngineNotRunning(ControlError):
    """The engine, which alone acts on the hardware, is not running (HTTP 503).

    503 rather than 409: nothing about the request conflicts with the DAQ's state
    (the same request goes through once the engine runs); the service it needs is
    unavailable, which is what 503 says, and clients may retry after ``retry_after``.
    """

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.retry_after = max(1, round(settings.ENGINE_HEARTBEAT_INTERVAL))


class TooManyRequests(ControlError):
    """The same user asked for this too often (HTTP 429)."""

    status = 429
    retry_after = 1


#: How the error of a command that waited for an engine that was not running begins.
ENGINE_NOT_RUNNING = "the engine is not running"


# The engine's heartbeat ------------------------------------------------------------------

@dataclass(frozen=True)
class EngineLiveness:
    """What the heartbeat row says of the engine."""

    alive: bool
    last_beat: datetime | None = None
    hostname: str = ""

    @property
    def message(self) -> str:
        """Why nothing can be done now, or empty while the engine runs."""
        if self.alive:
            return ""
        if self.last_beat is None:
            return (f"{ENGINE_NOT_RUNNING}: it has never run on this database; start it "
                    "(attpcdaq serve or attpcdaq engine)")
        when = timezone.localtime(self.last_beat).strftime("%Y-%m-%d %H:%M:%S")
        where = f" on {self.hostname}" if self.hostname else ""
        return (f"{ENGINE_NOT_RUNNING}: its last heartbeat{where} was at {when}; start it "
                "(attpcdaq serve or attpcdaq engine)")


def engine_liveness() -> EngineLiveness:
    """Whether the engine beat within ``ENGINE_STALE_AFTER`` seconds (one query).

    A beat from the future (the engine's clock ahead of this one) counts as alive.
    """
    row = EngineHeartbeat.objects.filter(pk=1).first()
    if row is None:
        return EngineLiveness(False)
    stale = timezone.now() - row.beat >= timedelta(seconds=settings.ENGINE_STALE_AFTER)
    return EngineLiveness(not stale, row.beat, row.hostname)


def require_engine() -> None:
    """Raise :class:`EngineNotRunning` unless the engine beat recently.

    Every request that queues a command calls this first: a command the engine
    would take up late (or never) is refused at once instead.
    """
    liveness = engine_liveness()
    if not liveness.alive:
        raise EngineNotRunning(liveness.message)


def expire_command(command: Command, now: datetime | None = None) -> bool:
    """Fail a pending command that waited for the engine too long; False if it was
    taken up meanwhile. Records an event, once per command (the update is the guard).
    """
    now = now or timezone.now()
    waited = (now - command.created).total_seconds()
    error = (f"{ENGINE_NOT_RUNNING}: nobody took this command up for {waited:.0f} s "
             f"(at most {settings.COMMAND_EXPIRY:g} s), so it was not run and will not be; "
             "ask again once the engine runs")
    expired = Command.objects.filter(pk=command.pk, status=Command.Status.PENDING).update(
        status=Command.Status.FAILED, error=error, finished=now)
    if expired:
        source = command.data_router or command.ecc_server
        Event.objects.create(level=Event.Level.WARNING,
                             source=source.name if source else "run control",
                             message=f"{command.describe()} was not run: {error}")
    return bool(expired)


def expire_commands(now: datetime | None = None) -> int:
    """Fail every command pending longer than ``COMMAND_EXPIRY``; return how many.

    The page and the API call this when the engine is not running, so that a command
    asked just before the engine died says so within seconds instead of staying
    "pending"; the engine refuses such a command too, when it comes back (at claim
    time, see ``engine.database``).
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.COMMAND_EXPIRY)
    stale = list(Command.objects.select_related("ecc_server", "data_router")
                 .filter(status=Command.Status.PENDING, created__lt=cutoff)
                 .order_by("created", "pk")[:100])
    return sum(expire_command(command, now) for command in stale)


def expire_if_engine_down(now: datetime | None = None) -> EngineLiveness:
    """The engine's liveness; when it is not running, first :func:`expire_commands`
    (what the page and the API call before they show commands)."""
    engine = engine_liveness()
    if not engine.alive:
        expire_commands(now)  # none waits for an engine that is not there
    return engine


# Configuration needed at Start -------------------------------------------------------------

def unconfigured_servers(pks: list[int] | None = None) -> list[ECCServer]:
    """The servers that would take part in a Start but have no configuration selected.

    ``pks``: the servers to check (the engine passes those it starts); default every
    enabled server that is not excluded.
    """
    servers = ECCServer.objects.filter(selected_config__isnull=True)
    if pks is None:
        servers = servers.filter(enabled=True, excluded=False)
    else:
        servers = servers.filter(pk__in=pks)
    return list(servers.order_by("name"))


def start_config_refusal(pks: list[int] | None = None) -> str:
    """Why a Start must be refused for want of a selected configuration, or "".

    Without one a server cannot be described again and its configuration is not
    backed up with the run. Checked when a Start is asked (409) and by the engine
    when it starts a run (``pks``: the servers it starts; call it on the database
    thread).
    """
    missing = unconfigured_servers(pks)
    if not missing:
        return ""
    names = ", ".join(s.name for s in missing)
    verb = "has" if len(missing) == 1 else "have"
    return (f"cannot start: {names} {verb} no configuration selected; choose one on the "
            "status page (or disable or exclude the server)")


def check_configs_selected(pks: list[int] | None = None) -> None:
    """Raise :class:`Conflict` with :func:`start_config_refusal`'s reason, if any."""
    if refusal := start_config_refusal(pks):
        raise Conflict(refusal)


def parse_target(target: str | int) -> int:
    """The state number of a target name or number; raises ControlError when unknown."""
    if isinstance(target, str) and target.lower() in TARGETS:
        return TARGETS[target.lower()]
    if isinstance(target, int) and (target in ECCServer.STATE_DICT or target == ECCServer.RESET):
        return target
    raise ControlError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")


def request_transition(user, target: str | int, server: ECCServer | None = None, *,
                       confirm_drift: bool = False, options: dict | None = None) -> Command:
    """Queue a transition for every enabled server (``server`` None) or for one.

    ``confirm_drift``: the operator confirms a Start although configuration files
    changed since Configure (the engine refuses such a Start otherwise, naming them).
    ``options``: what a system-wide Start gives its run (title, class, comment,
    limits, auto restart), checked by :func:`.runmeta.start_options` (a
    ``MetadataError``, 400, naming each wrong field) and kept on the command.

    Raises
    ------
    ControlError
        For an unknown target or a target Off, or ``confirm_drift`` on anything but
        a system-wide Start.
    Conflict
        When another command for the same servers is waiting or running.
    """
    number = parse_target(target)
    if number == ECCServer.OFF:
        raise ControlError("Off is not a target: it is a board without power")
    if confirm_drift and (number != ECCServer.RUNNING or server is not None):
        raise ControlError("confirming configuration drift applies to a system-wide Start "
                           "only")
    if options is not None:
        from .runmeta import start_options  # it imports this module

        if number != ECCServer.RUNNING or server is not None:
            raise ControlError("run details (title, class, comment, limits) go with a "
                               "system-wide Start only")
        options = start_options(options)
    kind = Command.Kind.RESET if number == ECCServer.RESET else Command.Kind.TRANSITION
    return _queue(user, kind, None if kind == Command.Kind.RESET else number, server,
                  confirm_drift=confirm_drift, options=options)


def request_config_refresh(user, server: ECCServer) -> Command:
    """Queue fetching the configuration sets a server offers."""
    return _queue(user, Command.Kind.REFRESH_CONFIGS, None, server)


def request_log_tail(user, *, server: ECCServer | None = None,
                     router: DataRouter | None = None) -> Command:
    """Queue reading the end of an ECC server's or data router's log.

    Raises
    ------
    ControlError
        Unless exactly one of ``server`` and ``router`` is given, with a log path.
    EngineNotRunning
        When the engine is not running (it alone reads logs).
    TooManyRequests
        When the same user asked for ``LOG_READS_PER_SECOND`` log reads in the last
        second already.
    """
    if (server is None) == (router is None):
        raise ControlError("name either an ECC server or a data router")
    owner = server or router
    if not owner.log_path:
        raise ControlError(f"no log file is set for {owner}: set its log path in the admin")
    require_engine()
    user = user if user and user.is_authenticated else None
    limit = settings.LOG_READS_PER_SECOND
    with transaction.atomic():  # SQLite's IMMEDIATE transactions serialize the count
        recent = Command.objects.filter(kind=Command.Kind.TAIL_LOG, user=user,
                                        created__gt=timezone.now() - timedelta(seconds=1))
        if recent.count() >= limit:
            who = user.get_username() if user else "the system"
            raise TooManyRequests(f"too many log reads: {who} may ask for {limit} a second; "
                                  "wait a moment and ask again")
        return Command.objects.create(kind=Command.Kind.TAIL_LOG, ecc_server=server,
                                      data_router=router, user=user)


def clean_reason(reason, *, required: bool, what: str, noun: str = "reason") -> str:
    """An operator's reason, stripped; raises ControlError saying what is wrong with it.

    ``what`` names the action in the messages ("excluding CoBo[1]"), ``noun`` what the
    text is called in them ("reason", "note"). Any unicode is
    fine; control characters and characters that reorder or hide the text around
    them (bidirectional overrides) are refused, since the reason is shown to others
    and kept in the run's record.
    """
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise ControlError(f"the {noun} for {what} must be text")
    reason = reason.strip()
    if required and not reason:
        raise ControlError(f"say why: a reason is required for {what}")
    if len(reason) > MAX_REASON:
        raise ControlError(f"the {noun} for {what} is {len(reason):,} characters long: "
                           f"at most {MAX_REASON} are kept")
    for position, char in enumerate(reason, 1):
        if unicodedata.category(char) in ("Cc", "Cs") or char in _INVISIBLE:
            name = unicodedata.name(char, "a control character")
            raise ControlError(f"the {noun} for {what} contains U+{ord(char):04X} ({name}) "
                               f"at character {position}: write it as plain text on one "
                               "line")
    return reason


def _owner(server: ECCServer | None, router: DataRouter | None):
    if (server is None) == (router is None):
        raise ControlError("name either an ECC server or a data router")
    return server if server is not None else router


def _user(user):
    return user if user and user.is_authenticated else None


def request_exclude(user, *, server: ECCServer | None = None,
                    router: DataRouter | None = None, reason: str) -> Command:
    """Queue taking an ECC server or a data router out of the system, with a reason.

    The engine sets it excluded and records it on the open run's coverage. Accepted
    while a transition runs or waits: it is a quick command (:data:`QUICK_KINDS`).

    Raises
    ------
    ControlError
        Without a reason, or a reason too long or with control characters.
    Conflict
        When it is excluded already, or an exclude or include of it is waiting.
    EngineNotRunning
        When the engine is not running.
    """
    return _queue_exclusion(user, Command.Kind.EXCLUDE, server, router, reason)


def request_include(user, *, server: ECCServer | None = None,
                    router: DataRouter | None = None, reason: str = "") -> Command:
    """Queue putting excluded hardware back into the system (the reason is optional).

    Raises
    ------
    ControlError
        For a reason too long or with control characters.
    Conflict
        When it is not excluded, or an exclude or include of it is waiting.
    """
    return _queue_exclusion(user, Command.Kind.INCLUDE, server, router, reason)


def _queue_exclusion(user, kind: str, server: ECCServer | None, router: DataRouter | None,
                     reason: str) -> Command:
    owner = _owner(server, router)
    excluding = kind == Command.Kind.EXCLUDE
    reason = clean_reason(reason, required=excluding,
                          what=f"{'excluding' if excluding else 'including'} {owner.name}")
    require_engine()
    with transaction.atomic():
        list(Experiment.objects.select_for_update().filter(is_active=True))
        owner = type(owner).objects.get(pk=owner.pk)  # as it is now, not as the caller read it
        waiting = (Command.objects.filter(status__in=Command.ACTIVE,
                                          kind__in=[Command.Kind.EXCLUDE, Command.Kind.INCLUDE])
                   .filter(Q(ecc_server=owner) if server is not None else Q(data_router=owner))
                   .select_related("user", "ecc_server", "data_router").first())
        if waiting is not None:
            who = f" by {waiting.user}" if waiting.user else ""
            raise Conflict(f"command {waiting.pk}, {waiting.describe()}{who}, is "
                           f"{waiting.status}: wait for it")
        if excluding and owner.excluded:
            since = (f" since {timezone.localtime(owner.excluded_at):%Y-%m-%d %H:%M:%S}"
                     if owner.excluded_at else "")
            why = f": {owner.excluded_reason}" if owner.excluded_reason else ""
            raise Conflict(f"{owner.name} is already excluded{since}{why}")
        if not excluding and not owner.excluded:
            raise Conflict(f"{owner.name} is not excluded")
        return Command.objects.create(kind=kind, ecc_server=server and owner,
                                      data_router=router and owner, reason=reason,
                                      user=_user(user))


def request_abort(user, server: ECCServer, reason: str = "") -> Command:
    """Queue abandoning the transition the engine runs on ``server``.

    The engine stops waiting for it, marks the server hung and excluded, and lets the
    others go on (the server itself goes on with it: GET never gives up). Accepted
    while the transition runs, which is the point.

    Raises
    ------
    ControlError
        For a reason too long or with control characters.
    Conflict
        When the engine runs no transition on that server, or an Abort of it waits.
    EngineNotRunning
        When the engine is not running.
    """
    reason = clean_reason(reason, required=False, what=f"aborting {server.name}'s transition")
    require_engine()
    with transaction.atomic():
        list(Experiment.objects.select_for_update().filter(is_active=True))
        server = ECCServer.objects.get(pk=server.pk)
        timing = transition_timing(server)
        if timing.elapsed is None:
            raise Conflict(f"{server.name} has no transition running: nothing to abort")
        waiting = Command.objects.filter(status__in=Command.ACTIVE, kind=Command.Kind.ABORT,
                                         ecc_server=server).first()
        if waiting is not None:
            raise Conflict(f"command {waiting.pk}, {waiting.describe()}, is {waiting.status}: "
                           "wait for it")
        return Command.objects.create(kind=Command.Kind.ABORT, ecc_server=server,
                                      label=f"Abort {timing.operation or 'the transition'}",
                                      reason=reason, user=_user(user))


# Data written while no run was open -------------------------------------------------------

#: Runs offered to file unattributed data into, newest first.
UNATTRIBUTED_RUN_CHOICES = 200
#: How long a settled record stays on the status page, saying where its files went.
UNATTRIBUTED_SETTLED_SHOWN = timedelta(seconds=60)
#: The largest run number the database holds (a PositiveIntegerField).
_MAX_RUN_NUMBER = 2**31 - 1


def unattributed_totals(record: UnattributedData) -> tuple[int, int]:
    """How many files a record lists and their bytes (entries of another shape ignored)."""
    files = [f for f in record.files if isinstance(f, dict)] \
        if isinstance(record.files, list) else []
    sizes = [f.get("size") for f in files]
    return len(files), sum(n for n in sizes if isinstance(n, int) and not isinstance(n, bool)
                           and n > 0)


def _run_number(value) -> int | None:
    """A run number as an API body or a form gives it (int or digits); None if not one."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() \
            and len(value.strip()) <= 18:
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def decide_unattributed(user, record: UnattributedData, decision: str, run_number=None,
                        note: str = "") -> UnattributedData:
    """Record the operator's choice for files written while no run was open.

    ``decision``: ``"run"`` files them into run ``run_number`` of the record's
    experiment (a run that is neither open nor still being filed), ``"aside"`` sets
    them aside in ``<experiment>/unattributed/``. ``note``: optional, checked as a
    reason is (:func:`clean_reason`). The engine moves the files and sets
    ``settled_at``; an event records who chose what.

    Raises
    ------
    ControlError
        For another decision, a missing or unknown run, a run with ``"aside"``, or a
        note too long or with control characters or bidirectional overrides.
    Conflict
        When the record was decided already, a run is open (its files are on the same
        routers), or the chosen run is open or not filed yet.
    EngineNotRunning
        When the engine, which moves the files, is not running.
    """
    if decision not in (UnattributedData.Decision.RUN, UnattributedData.Decision.ASIDE):
        raise ControlError(f"unknown decision {str(decision)[:40]!r}: expected 'run' (file "
                           "them into a run) or 'aside' (set them aside)")
    where = f"the files of {record.router.name} written while no run was open"
    note = clean_reason(note, required=False, what=where, noun="note")
    number = None
    if decision == UnattributedData.Decision.RUN:
        if run_number is None or run_number == "":
            raise ControlError(f"choose the run to file {where} into")
        number = _run_number(run_number)
        if number is None or number > _MAX_RUN_NUMBER:
            raise ControlError(f"{str(run_number)[:40]!r} is not a run number")
    elif run_number is not None and run_number != "":
        raise ControlError("a run is chosen only to file the files into it, not to set them "
                           "aside")
    require_engine()
    with transaction.atomic():
        # of=self: PostgreSQL locks no nullable side of an outer join (run, decided_by).
        record = (UnattributedData.objects.select_for_update(of=("self",))
                  .select_related("experiment", "router", "decided_by", "run")
                  .get(pk=record.pk))
        if record.decision != UnattributedData.Decision.PENDING or record.settled_at:
            who = f" by {record.decided_by}" if record.decided_by else ""
            when = (f" at {timezone.localtime(record.decided_at):%Y-%m-%d %H:%M:%S}"
                    if record.decided_at else "")
            what = (f"to file them into run {record.run.run_number}" if record.run
                    else "to set them aside")
            raise Conflict(f"{where} were decided already{who}{when}: {what}")
        open_run = RunMetadata.objects.filter(status__in=RunMetadata.OPEN).first()
        if open_run is not None:
            status = open_run.get_status_display().lower()
            raise Conflict(f"run {open_run.run_number} is {status}: its files are on the "
                           "routers too; decide once it is stopped and filed")
        run = None
        if number is not None:
            run = record.experiment.runs.filter(run_number=number).first()
            if run is None:
                raise ControlError(f"experiment {record.experiment.name} has no run {number}")
            if run.is_open:
                raise Conflict(f"run {number} is {run.get_status_display().lower()}: choose "
                               "a run that is over")
            if not run.filed:
                raise Conflict(f"run {number} is not filed yet: wait for its filing, or "
                               "choose another run")
        user = _user(user)
        count, size = unattributed_totals(record)
        UnattributedData.objects.filter(pk=record.pk).update(
            decision=decision, run=run, note=note, decided_by=user,
            decided_at=timezone.now(), error="")
        who = user.get_username() if user else "someone"
        target = (f"file them into run {number}" if run is not None else
                  f"set them aside in {record.experiment.name}/unattributed/")
        Event.objects.create(level=Event.Level.INFO, source=record.router.name, run=run,
                             message=f"{who} chose to {target}: {count} file(s), {size:,} "
                             f"bytes written on {record.router.name} while no run was open"
                             + (f" ({note})" if note else ""))
    record.refresh_from_db()
    return record


def unattributed_shown(now: datetime | None = None) -> list[UnattributedData]:
    """What the status page lists: the records waiting for a choice or for their move,
    and those settled within ``UNATTRIBUTED_SETTLED_SHOWN``, oldest first.

    Each gets ``file_count``, ``bytes`` and ``runs`` (the run numbers its files may be
    filed into: over and filed, newest first, at most ``UNATTRIBUTED_RUN_CHOICES``).
    """
    now = now or timezone.now()
    records = list(UnattributedData.objects.select_related("router", "experiment", "run",
                                                           "decided_by")
                   .filter(Q(settled_at=None) | Q(settled_at__gte=now
                                                  - UNATTRIBUTED_SETTLED_SHOWN))
                   .order_by("found", "pk")[:100])
    runs: dict[int, list[int]] = {}
    for record in records:
        record.file_count, record.bytes = unattributed_totals(record)
        if record.decision == UnattributedData.Decision.PENDING \
                and record.experiment_id not in runs:
            runs[record.experiment_id] = list(
                record.experiment.runs.filter(filed=True).exclude(status__in=RunMetadata.OPEN)
                .order_by("-run_number").values_list("run_number", flat=True)
                [:UNATTRIBUTED_RUN_CHOICES])
        record.runs = runs.get(record.experiment_id, [])
    return records


def _queue(user, kind: str, target: int | None, server: ECCServer | None, *,
           confirm_drift: bool = False, options: dict | None = None) -> Command:
    require_engine()
    if kind == Command.Kind.REFRESH_CONFIGS:  # a read: it neither waits nor blocks
        return Command.objects.create(kind=kind, ecc_server=server,
                                      user=user if user and user.is_authenticated else None)
    with transaction.atomic():
        # Serializes concurrent requests on PostgreSQL; SQLite's IMMEDIATE
        # transactions already do.
        list(Experiment.objects.select_for_update().filter(is_active=True))
        label = _run_label(target) if server is None and kind == Command.Kind.TRANSITION else ""
        active = Command.objects.filter(status__in=Command.ACTIVE).exclude(kind__in=QUICK_KINDS)
        if server is not None:
            active = active.filter(Q(ecc_server=server) | Q(ecc_server=None))
        if label == STOP_LABEL:
            # Stop is always possible: it is queued whatever transition runs or waits
            # (the engine preempts it), unless a Stop is already on its way.
            active = active.filter(_STOP_COMMANDS)
        blocking = active.select_related("user", "ecc_server").first()
        if blocking is not None:
            who = f" by {blocking.user}" if blocking.user else ""
            raise Conflict(f"busy: command {blocking.pk}, {blocking.describe()}{who}, "
                           f"is {blocking.status}")
        if target == ECCServer.RUNNING and server is None:
            # Checked in the same transaction as the insert: two Starts get one run.
            running = RunMetadata.objects.filter(
                status__in=[RunMetadata.Status.STARTING, RunMetadata.Status.RUNNING]).first()
            if running is not None:
                raise Conflict(f"run {running.run_number} is already {running.status}")
            if not RunMetadata.objects.filter(status=RunMetadata.Status.PAUSED).exists():
                check_configs_selected()  # a Start (a Resume goes on with the run's)
            elif options:
                raise ControlError("the run is paused: Resume goes on with it; edit its "
                                   "details on its page instead")
        if confirm_drift:
            label = f"{label or 'Start'} despite configuration drift"
        return Command.objects.create(kind=kind, target=target, ecc_server=server, label=label,
                                      confirm_drift=confirm_drift, options=options or {},
                                      user=user if user and user.is_authenticated else None)


#: Every system-wide command that stops the open run ("Stop the run", "Stop the run and
#: go to Idle").
_STOP_COMMANDS = Q(kind=Command.Kind.TRANSITION, ecc_server=None, label__startswith=STOP_LABEL)


def active_stop() -> Command | None:
    """The system-wide Stop waiting or running, if any."""
    return Command.objects.filter(_STOP_COMMANDS, status__in=Command.ACTIVE).first()


def _run_label(target: int | None) -> str:
    """What a system-wide target means for the run, as people on shift say it."""
    run = RunMetadata.objects.filter(status__in=RunMetadata.OPEN).first()
    if target == ECCServer.RUNNING:
        return "Resume the run" if run and run.status == RunMetadata.Status.PAUSED \
            else "Start a run"
    if target == ECCServer.PAUSED:
        return "Pause the run"
    if run is not None and target is not None and target < ECCServer.RUNNING:
        return STOP_LABEL if target == ECCServer.READY else \
            f"{STOP_LABEL} and go to {ECCServer.STATE_DICT[target]}"
    return ""


def select_config(server: ECCServer, text: str) -> ConfigId:
    """Select a configuration set the server offers, by its ``d/p/c`` name.

    Raises
    ------
    ControlError
        When the text is not a set the server offers (as last fetched).
    Conflict
        Unless the server is Idle: a set is read by Describe onwards; and while a run
        is open: a selection never changes under a run.
    """
    try:
        value = get.ConfigId.parse(text)
    except get.XmlError as exc:
        raise ControlError(str(exc)) from None
    with transaction.atomic():
        server = ECCServer.objects.select_for_update().get(pk=server.pk)
        config = server.configs.filter(describe=value.describe, prepare=value.prepare,
                                       configure=value.configure).first()
        if config is None:
            raise ControlError(f"{server.name} does not offer the configuration {value}")
        if refusal := selection_locked():
            raise Conflict(refusal)
        if server.state != ECCServer.IDLE or server.is_transitioning:
            raise Conflict(f"{server.name} is {server.state_name}: choose a configuration "
                           "while it is Idle")
        server.selected_config = config
        server.save(update_fields=["selected_config"])
    return config


def selection_locked() -> str:
    """Why no configuration selection may change now (a run is open), or "".

    The status page's chooser, :func:`select_config`, the admin and the engine's
    refresh of the offered sets (``ECCServer.store_configs``) all hold to it.
    """
    run = RunMetadata.objects.filter(status__in=RunMetadata.OPEN).order_by("-created").first()
    if run is None:
        return ""
    return (f"run {run.run_number} is {run.get_status_display().lower()}: a configuration "
            "selection cannot change under a run")


@dataclass
class Overview:
    """What the status page and ``/api/status`` show."""

    servers: list[ECCServer]
    routers: list[DataRouter]
    run: RunMetadata | None
    experiment: Experiment | None
    engine_alive: bool
    #: Each server's transition timing, by primary key.
    timings: dict[int, TransitionTiming] = field(default_factory=dict)
    #: What the heartbeat says (``engine_alive`` is its ``alive``).
    engine: EngineLiveness = field(default_factory=lambda: EngineLiveness(True))
    #: Why every control is disabled now (the engine is not running), or "".
    controls_disabled_reason: str = ""
    #: Servers that would take part in a Start without a configuration selected, each
    #: with the event saying its selection was dropped, if one did.
    unconfigured: list[tuple[ECCServer, Event | None]] = field(default_factory=list)
    #: Files written while no run was open (see :func:`unattributed_shown`).
    unattributed: list[UnattributedData] = field(default_factory=list)

    @property
    def waiting_unattributed(self) -> list[UnattributedData]:
        """The records still waiting for the operator's choice: they block Start."""
        return [u for u in self.unattributed if u.decision == UnattributedData.Decision.PENDING]

    @property
    def overall_state(self) -> int | None:
        """The state every enabled, not excluded server is in, or None when they differ."""
        states = {s.state for s in self.participating}
        return states.pop() if len(states) == 1 else None

    @property
    def overall_state_name(self) -> str:
        """The common state's name, "Mixed", or "No servers"."""
        if not self.participating:
            return "No servers"
        state = self.overall_state
        return "Mixed" if state is None else ECCServer.STATE_DICT[state]

    @property
    def participating(self) -> list[ECCServer]:
        """The servers system-wide commands move: enabled and not excluded."""
        return [s for s in self.servers if s.enabled and not s.excluded]

    @property
    def any_transitioning(self) -> bool:
        """The engine runs a transition on some enabled, online, not excluded server.

        What blocks the system controls: a server offline, disabled, excluded, or
        reporting a transition the engine does not run (hung, or started by someone
        else) does not.
        """
        return any(s.is_online and self.timing(s).elapsed is not None
                   for s in self.participating)

    def timing(self, server: ECCServer) -> TransitionTiming:
        """The timing of the transition the engine runs on ``server``."""
        found = self.timings.get(server.pk)
        return found if found is not None else transition_timing(server)


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


def overview() -> Overview:
    """Read everything the status page shows, in a few queries."""
    experiment = Experiment.active()
    run = None
    if experiment is not None:
        run = (experiment.runs.filter(status__in=RunMetadata.OPEN).first()
               or experiment.runs.order_by("-run_number").first())
    servers = list(ECCServer.objects.select_related("selected_config").order_by("name"))
    now = timezone.now()
    timings = {s.pk: transition_timing(s, now) for s in servers}
    for server in servers:  # for the templates
        server.timing = timings[server.pk]
    engine = expire_if_engine_down(now)
    return Overview(servers, list(DataRouter.objects.order_by("name")), run, experiment,
                    engine.alive, timings, engine, engine.message, _unconfigured(servers),
                    unattributed_shown(now))


#: What the event that says a server's selected configuration was dropped contains
#: (``ECCServer.store_configs`` writes it).
SELECTION_DROPPED = "selected configuration was dropped"


def _unconfigured(servers: list[ECCServer]) -> list[tuple[ECCServer, Event | None]]:
    missing = [s for s in servers if s.enabled and not s.excluded and s.selected_config is None]
    if not missing:
        return []
    names = [s.name for s in missing]
    dropped: dict[str, Event] = {}
    for event in Event.objects.filter(source__in=names, message__contains=SELECTION_DROPPED):
        dropped.setdefault(event.source, event)  # newest first
    return [(s, dropped.get(s.name)) for s in missing]
