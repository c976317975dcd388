"""What users may ask of the DAQ, checked and turned into command rows.

Views and the API call these; none of them talks to a device. Each raises a
:class:`ControlError` whose ``status`` is the HTTP status to answer with.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q

from attpcdaq import get

from .models import (
    Command,
    ConfigId,
    DataRouter,
    ECCServer,
    EngineHeartbeat,
    Experiment,
    RunMetadata,
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


class ControlError(Exception):
    """A request that cannot be accepted; nothing was changed."""

    status = 400


class Conflict(ControlError):
    """A request that conflicts with the state of things (HTTP 409)."""

    status = 409


def parse_target(target: str | int) -> int:
    """The state number of a target name or number; raises ControlError when unknown."""
    if isinstance(target, str) and target.lower() in TARGETS:
        return TARGETS[target.lower()]
    if isinstance(target, int) and (target in ECCServer.STATE_DICT or target == ECCServer.RESET):
        return target
    raise ControlError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")


def request_transition(user, target: str | int, server: ECCServer | None = None, *,
                       confirm_drift: bool = False) -> Command:
    """Queue a transition for every enabled server (``server`` None) or for one.

    ``confirm_drift``: the operator confirms a Start although configuration files
    changed since Configure (the engine refuses such a Start otherwise, naming them).

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
    kind = Command.Kind.RESET if number == ECCServer.RESET else Command.Kind.TRANSITION
    return _queue(user, kind, None if kind == Command.Kind.RESET else number, server,
                  confirm_drift=confirm_drift)


def request_config_refresh(user, server: ECCServer) -> Command:
    """Queue fetching the configuration sets a server offers."""
    return _queue(user, Command.Kind.REFRESH_CONFIGS, None, server)


def request_log_tail(user, *, server: ECCServer | None = None,
                     router: DataRouter | None = None) -> Command:
    """Queue reading the end of an ECC server's or data router's log."""
    if (server is None) == (router is None):
        raise ControlError("name either an ECC server or a data router")
    owner = server or router
    if not owner.log_path:
        raise ControlError(f"no log file is set for {owner}: set its log path in the admin")
    return Command.objects.create(kind=Command.Kind.TAIL_LOG, ecc_server=server,
                                  data_router=router,
                                  user=user if user and user.is_authenticated else None)


def _queue(user, kind: str, target: int | None, server: ECCServer | None, *,
           confirm_drift: bool = False) -> Command:
    if kind == Command.Kind.REFRESH_CONFIGS:  # a read: it neither waits nor blocks
        return Command.objects.create(kind=kind, ecc_server=server,
                                      user=user if user and user.is_authenticated else None)
    with transaction.atomic():
        # Serializes concurrent requests on PostgreSQL; SQLite's IMMEDIATE
        # transactions already do.
        list(Experiment.objects.select_for_update().filter(is_active=True))
        active = Command.objects.filter(status__in=Command.ACTIVE)
        if server is not None:
            active = active.filter(Q(ecc_server=server) | Q(ecc_server=None))
        active = active.exclude(kind__in=[Command.Kind.REFRESH_CONFIGS, Command.Kind.TAIL_LOG])
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
        label = _run_label(target) if server is None and kind == Command.Kind.TRANSITION else ""
        if confirm_drift:
            label = f"{label or 'Start'} despite configuration drift"
        return Command.objects.create(kind=kind, target=target, ecc_server=server, label=label,
                                      confirm_drift=confirm_drift,
                                      user=user if user and user.is_authenticated else None)


def _run_label(target: int | None) -> str:
    """What a system-wide target means for the run, as people on shift say it."""
    run = RunMetadata.objects.filter(status__in=RunMetadata.OPEN).first()
    if target == ECCServer.RUNNING:
        return "Resume the run" if run and run.status == RunMetadata.Status.PAUSED \
            else "Start a run"
    if target == ECCServer.PAUSED:
        return "Pause the run"
    if run is not None and target is not None and target < ECCServer.RUNNING:
        return "Stop the run" if target == ECCServer.READY else \
            f"Stop the run and go to {ECCServer.STATE_DICT[target]}"
    return ""


def select_config(server: ECCServer, text: str) -> ConfigId:
    """Select a configuration set the server offers, by its ``d/p/c`` name.

    Raises
    ------
    ControlError
        When the text is not a set the server offers (as last fetched).
    Conflict
        Unless the server is Idle: a set is read by Describe onwards.
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
        if server.state != ECCServer.IDLE or server.is_transitioning:
            raise Conflict(f"{server.name} is {server.state_name}: choose a configuration "
                           "while it is Idle")
        server.selected_config = config
        server.save(update_fields=["selected_config"])
    return config


@dataclass
class Overview:
    """What the status page and ``/api/status`` show."""

    servers: list[ECCServer]
    routers: list[DataRouter]
    run: RunMetadata | None
    experiment: Experiment | None
    engine_alive: bool

    @property
    def overall_state(self) -> int | None:
        """The state every enabled server is in, or None when they differ."""
        states = {s.state for s in self.servers if s.enabled}
        return states.pop() if len(states) == 1 else None

    @property
    def overall_state_name(self) -> str:
        """The common state's name, "Mixed", or "No servers"."""
        if not any(s.enabled for s in self.servers):
            return "No servers"
        state = self.overall_state
        return "Mixed" if state is None else ECCServer.STATE_DICT[state]

    @property
    def any_transitioning(self) -> bool:
        """Some server is in a transition."""
        return any(s.is_transitioning for s in self.servers)


def overview() -> Overview:
    """Read everything the status page shows, in a few queries."""
    experiment = Experiment.active()
    run = None
    if experiment is not None:
        run = (experiment.runs.filter(status__in=RunMetadata.OPEN).first()
               or experiment.runs.order_by("-run_number").first())
    servers = list(ECCServer.objects.select_related("selected_config").order_by("name"))
    return Overview(servers, list(DataRouter.objects.order_by("name")), run, experiment,
                    EngineHeartbeat.is_alive())
