"""Pages of the DAQ: the status page, its live fragment, and the control actions.

Views read the database and queue commands through :mod:`.services`; only the
engine talks to devices. Every action answers with a small toast fragment for
htmx, with the HTTP status that says how it went (202 queued, 400, 403, 404, 409).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.mixins import AccessMixin
from django.db.models import prefetch_related_objects
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView
from django_htmx.http import HttpResponseClientRedirect

from . import forms, services
from .models import Command, ECCServer, Event

#: How many recent commands and events the page lists.
RECENT = 8
#: How many unacknowledged alarms the banner lists (it counts them all).
ALARMS_SHOWN = 5


_BLOCKING_KINDS = (Command.Kind.TRANSITION, Command.Kind.RESET)
# What Command.describe() reads; data_router comes with the routers' log commands.
_COMMAND_RELATIONS = [name for name in ("user", "ecc_server", "data_router")
                      if name in {field.name for field in Command._meta.get_fields()}]


class NotFound(services.ControlError):
    """The object named in the URL does not exist."""

    status = 404


def toast(request, message: str, status: int = 200):
    """A toast fragment with ``message``, coloured by ``status``."""
    level = "success" if status < 300 else "warning" if status == 409 else "danger"
    response = render(request, "daq/inc/toast.html", {"message": message, "level": level},
                      status=status)
    # Tells the page's script this error answer is meant to be shown, unlike an
    # error page from elsewhere (e.g. a CSRF failure).
    response["X-Toast"] = "1"
    return response


class DaqAccessMixin(AccessMixin):
    """Login required, ``permission_required`` if set; refusals that htmx can show."""

    permission_required: str | None = None

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if self.permission_required and not request.user.has_perm(self.permission_required):
            return toast(request, f"{request.user} may watch but not control the DAQ.", 403)
        return super().dispatch(request, *args, **kwargs)

    def handle_no_permission(self):
        if self.request.htmx:
            # A redirect would be followed inside the poll and render nothing, leaving a
            # page that looks live but is frozen: make the browser itself go to login.
            query = urlencode({"next": reverse("daq:status")})
            return HttpResponseClientRedirect(f"{resolve_url(self.get_login_url())}?{query}")
        return super().handle_no_permission()


def live_context(user) -> dict:
    """Everything the live regions show, read in a handful of queries."""
    view = services.overview()
    prefetch_related_objects(view.servers, "configs")
    commands = list(Command.objects.select_related(*_COMMAND_RELATIONS)[:RECENT])
    alarms = Event.objects.filter(level=Event.Level.ALARM, acknowledged=False)
    alarm_list = list(alarms[:ALARMS_SHOWN])
    can_control = user.has_perm("daq.control_daq")
    # A transition waiting or running blocks others (services answer 409); reads
    # such as a config refresh do not, so they do not grey out the controls either.
    busy = view.any_transitioning or any(
        c.status in Command.ACTIVE and c.kind in _BLOCKING_KINDS for c in commands)
    states = {s.state for s in view.servers if s.enabled}
    actions = [(action, action.allows(states) and not busy)
               for action in forms.SYSTEM_ACTIONS] if can_control else []
    return {
        "view": view,
        "commands": commands,
        "events": list(Event.objects.all()[:RECENT]),
        "alarms": alarm_list,
        "alarm_count": len(alarm_list) if len(alarm_list) < ALARMS_SHOWN else alarms.count(),
        "last_failed": commands[0] if commands and commands[0].status == "failed" else None,
        "can_control": can_control,
        "busy": busy,
        "actions": actions,
    }


class StatusView(DaqAccessMixin, TemplateView):
    """The status page: run, servers, routers, commands, events, system controls."""

    template_name = "daq/status.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        # The page's script ticks durations from the server's clock, not the screen's.
        context.update(live_context(self.request.user),
                       server_now_ms=int(timezone.now().timestamp() * 1000))
        return context


class StatusFragmentView(StatusView):
    """The live regions of the status page as out-of-band swaps, polled every second."""

    template_name = "daq/status_fragment.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(oob=True, **kwargs)


class ActionView(DaqAccessMixin, View):
    """Base of the control actions: POST, operators only, a toast as the answer.

    A leaf sets ``form_class`` (optional) and ``success_status`` and writes
    ``perform(data)``, which returns the message to show or raises ControlError.
    """

    permission_required = "daq.control_daq"
    http_method_names = ["post"]
    form_class: type | None = None
    success_status = 202

    def post(self, request, *args, **kwargs):
        try:
            self.prepare()
            message = self.perform(self.cleaned_data())
        except services.ControlError as exc:
            return toast(request, str(exc), exc.status)
        return toast(request, message, self.success_status)

    def prepare(self) -> None:
        """Look up what the action is about (raises NotFound)."""

    def cleaned_data(self) -> dict:
        """The posted form's values; raises ControlError (400) naming what is wrong."""
        if self.form_class is None:
            return {}
        form = self.form_class(self.request.POST)
        if not form.is_valid():
            problems = "; ".join(f"{field}: {' '.join(errors)}"
                                 for field, errors in form.errors.items())
            raise services.ControlError(f"Refused: {problems}")
        return form.cleaned_data

    def perform(self, data: dict) -> str:
        """Do the action; return what to tell the user."""
        raise NotImplementedError


class ObjectActionView(ActionView):
    """An action on one object of ``model``, named by the ``pk`` in the URL."""

    model = None

    def prepare(self) -> None:
        pk = self.kwargs["pk"]
        # Checked here, not by an <int:> converter, to answer a toast that says what
        # was wrong; 18 digits keeps the number inside a 64-bit database integer.
        found = None
        if pk.isascii() and pk.isdigit() and len(pk) <= 18:
            found = self.model.objects.filter(pk=int(pk)).first()
        if found is None:
            name = self.model._meta.verbose_name
            raise NotFound(f"There is no {name} with id {pk[:40]!r}.")
        self.object = found


def _queued(command: Command) -> str:
    return f"Queued: {command.describe()}"


class SystemTransitionView(ActionView):
    """A system control: every enabled server to a state, or a run started or stopped."""

    form_class = forms.SystemTransitionForm

    def perform(self, data: dict) -> str:
        action = forms.SYSTEM_ACTION_BY_KEY[data["action"]]
        action.check(ECCServer.objects.filter(enabled=True).values_list("state", flat=True))
        return _queued(services.request_transition(self.request.user, action.target))


class ECCServerTransitionView(ObjectActionView):
    """One server's forward (next state) or back (one step) button."""

    model = ECCServer
    form_class = forms.ECCServerTransitionForm

    def perform(self, data: dict) -> str:
        forms.check_server_step(self.object, data["target"])
        return _queued(services.request_transition(self.request.user, data["target"],
                                                   self.object))


class ECCServerSelectConfigView(ObjectActionView):
    """Choose the configuration set a server uses (while it is Idle)."""

    model = ECCServer
    form_class = forms.ECCServerConfigForm
    success_status = 200

    def perform(self, data: dict) -> str:
        config = services.select_config(self.object, data["config"])
        return f"{self.object.name} will use {config}."


class ECCServerRefreshConfigsView(ObjectActionView):
    """Ask the engine to fetch the configuration sets a server offers."""

    model = ECCServer

    def perform(self, data: dict) -> str:
        return _queued(services.request_config_refresh(self.request.user, self.object))


class EventAcknowledgeView(ObjectActionView):
    """Mark an alarm as seen, which takes it off the banner."""

    model = Event
    success_status = 200

    def perform(self, data: dict) -> str:
        Event.objects.filter(pk=self.object.pk).update(acknowledged=True)
        return f"Acknowledged: {self.object.source}: {self.object.message[:80]}"
