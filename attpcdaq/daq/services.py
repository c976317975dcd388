"""What users may ask of the DAQ, checked and turned into command rows.

Views and the API call these; none of them talks to a device. Each raises a
:class:`ControlError` whose ``status`` is the HTTP status to answer with.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
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
)
from .timing import transition_timing

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
#: Commands that run beside transitions (the engine's quick loop): they neither wait
#: for a transition nor make one wait. Abort and Exclude exist for the moment a
#: transition hangs.
QUICK_KINDS = (Command.Kind.REFRESH_CONFIGS, Command.Kind.TAIL_LOG, Command.Kind.ABORT,
               Command.Kind.EXCLUDE, Command.Kind.INCLUDE)
#: The label of a system-wide Stop while a run is open (see _run_label).
STOP_LABEL = "Stop the run"
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


def acting_user(user):
    """The user a request is made by, or None for an anonymous one (a command row's)."""
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
                                      user=acting_user(user))


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
                                      reason=reason, user=acting_user(user))


# Data written while no run was open -------------------------------------------------------

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


#: What the event that says a server's selected configuration was dropped contains
#: (``ECCServer.store_configs`` writes it).
SELECTION_DROPPED = "selected configuration was dropped"
