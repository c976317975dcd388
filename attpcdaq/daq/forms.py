"""Forms of the control actions, and the buttons they come from, kept as data."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from django import forms

from .models import ECCServer
from .services import Conflict

IDLE, DESCRIBED, PREPARED, READY = (ECCServer.IDLE, ECCServer.DESCRIBED, ECCServer.PREPARED,
                                    ECCServer.READY)
RUNNING, PAUSED = ECCServer.RUNNING, ECCServer.PAUSED


@dataclass(frozen=True)
class SystemAction:
    """A system control button: what it asks the engine, and when it makes sense.

    ``when`` gets the set of states of the enabled servers. The check guards
    against a click on a button that was stale: "Describe all" on boards that
    went Ready meanwhile must not walk them back.
    """

    key: str
    label: str
    target: str
    colour: str
    when: Callable[[set[int]], bool]
    confirm: str = ""

    def allows(self, states: Collection[int]) -> bool:
        """True when the button makes sense for servers in ``states``."""
        return bool(states) and self.when(set(states))

    def check(self, states: Collection[int]) -> None:
        """Raise :class:`Conflict` unless :meth:`allows`."""
        if not self.allows(states):
            now = ", ".join(sorted(ECCServer.STATE_DICT.get(s, str(s)) for s in set(states)))
            raise Conflict(f"{self.label} does not apply now: the servers are {now or 'none'}")


def _walkable(states: set[int]) -> bool:
    return states <= {IDLE, DESCRIBED, PREPARED, READY} and states != {READY}


#: The system controls, in the order shown. Start and Resume both target Running:
#: the engine resumes servers that are all Paused and starts a run otherwise.
SYSTEM_ACTIONS: tuple[SystemAction, ...] = (
    SystemAction("describe", "Describe all", "described", "outline-primary",
                 lambda s: s == {IDLE}),
    SystemAction("prepare", "Prepare all", "prepared", "outline-primary",
                 lambda s: s == {DESCRIBED}),
    SystemAction("configure", "Configure all", "ready", "outline-primary",
                 lambda s: s == {PREPARED}),
    SystemAction("go_ready", "Go to Ready", "ready", "success", _walkable),
    SystemAction("start", "Start", "running", "primary", lambda s: s == {READY}),
    SystemAction("pause", "Pause", "paused", "warning", lambda s: s == {RUNNING}),
    SystemAction("resume", "Resume", "running", "primary", lambda s: s == {PAUSED}),
    SystemAction("stop", "Stop", "ready", "danger", lambda s: bool(s & {RUNNING, PAUSED}),
                 confirm="Stop the run?"),
    SystemAction("reset", "Reset all", "reset", "outline-danger",
                 lambda s: bool(s - {IDLE, ECCServer.OFF}),
                 confirm="Take every server one step back?"),
)
SYSTEM_ACTION_BY_KEY = {action.key: action for action in SYSTEM_ACTIONS}

#: A server's forward button: from its state, the next target and the operation's name.
FORWARD_STEPS = {IDLE: ("described", "Describe"), DESCRIBED: ("prepared", "Prepare"),
                 PREPARED: ("ready", "Configure")}
#: States a server's back button ("reset": one step back) is offered from. Running and
#: Paused are left to Stop, which files the run.
BACK_FROM = frozenset({DESCRIBED, PREPARED, READY})


def check_server_step(server: ECCServer, target: str) -> None:
    """Raise :class:`Conflict` unless ``target`` is the server's forward or back button."""
    forward = FORWARD_STEPS.get(server.state)
    if target == "reset" and server.state in BACK_FROM:
        return
    if forward is not None and target == forward[0]:
        return
    raise Conflict(f"{server.name} is {server.state_name}: {target} is not its next or "
                   "previous step")


class SystemTransitionForm(forms.Form):
    """Which system control was pressed."""

    action = forms.ChoiceField(choices=[(a.key, a.label) for a in SYSTEM_ACTIONS])
    #: "Start anyway": a Start although configuration files changed since Configure.
    confirm_drift = forms.BooleanField(required=False)


class ECCServerTransitionForm(forms.Form):
    """One server's forward or back button."""

    target = forms.ChoiceField(choices=[(target, label) for target, label in
                                        FORWARD_STEPS.values()] + [("reset", "Back")])


class ECCServerConfigForm(forms.Form):
    """The configuration set chosen for a server, as ``describe/prepare/configure``."""

    config = forms.CharField(max_length=400)
