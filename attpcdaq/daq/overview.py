"""What the status page and ``/api/status`` show, read in a few queries."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from .models import DataRouter, ECCServer, Event, Experiment, RunMetadata, UnattributedData
from .services import SELECTION_DROPPED, EngineLiveness, expire_if_engine_down
from .timing import TransitionTiming, transition_timing
from .unattributed import unattributed_shown


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


def read() -> Overview:
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


def _unconfigured(servers: list[ECCServer]) -> list[tuple[ECCServer, Event | None]]:
    missing = [s for s in servers if s.enabled and not s.excluded and s.selected_config is None]
    if not missing:
        return []
    names = [s.name for s in missing]
    dropped: dict[str, Event] = {}
    for event in Event.objects.filter(source__in=names, message__contains=SELECTION_DROPPED):
        dropped.setdefault(event.source, event)  # newest first
    return [(s, dropped.get(s.name)) for s in missing]
