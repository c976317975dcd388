"""Pages of the DAQ: the status page, its live fragment, the control actions, the
runs and the logs.

Views read the database and queue commands through :mod:`.services`; only the
engine talks to devices. Every action answers with a small toast fragment for
htmx, with the HTTP status that says how it went (202 queued, 400, 403, 404, 409);
a log request answers with the part of the log page it replaces instead.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib.auth.mixins import AccessMixin
from django.db.models import QuerySet, prefetch_related_objects
from django.http import HttpResponse
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views import View
from django.views.generic import TemplateView
from django_htmx.http import HttpResponseClientRedirect

from . import forms, overview, roles, services, unattributed
from .models import (
    Command,
    DataRouter,
    ECCServer,
    Event,
    RunConfig,
    RunMetadata,
    UnattributedData,
)

#: How many recent commands and events the page lists.
RECENT = 8
#: How many unacknowledged alarms the banner lists (it counts them all).
ALARMS_SHOWN = 5
#: Runs per page of the run list.
RUNS_PER_PAGE = 25
#: How often the log page asks whether its log has been read, in milliseconds.
LOG_POLL_MS = 500
#: Configuration files longer than this (characters) are not shown inline on the run
#: page, only offered for download.
INLINE_CONFIG_CHARS = 200_000
#: Runs offered as A and B on the configuration diff page.
DIFF_RUN_CHOICES = 500
#: Diff lines shown per file at most.
DIFF_MAX_LINES = 5000


_BLOCKING_KINDS = (Command.Kind.TRANSITION, Command.Kind.RESET)
# What Command.describe() reads.
_COMMAND_RELATIONS = ["user", "ecc_server", "data_router"]


class NotFound(services.ControlError):
    """The object named in the URL does not exist."""

    status = 404


def find(queryset: QuerySet, pk: str):
    """The object of ``queryset`` with the id ``pk`` as it came in the URL.

    Raises :class:`NotFound` saying what was missing. Checked here rather than by an
    <int:> converter, to answer a message that says what was wrong; 18 digits keeps
    the number inside a 64-bit database integer.
    """
    found = None
    if pk.isascii() and pk.isdigit() and len(pk) <= 18:
        found = queryset.filter(pk=int(pk)).first()
    if found is None:
        name = queryset.model._meta.verbose_name
        raise NotFound(f"There is no {name} with id {pk[:40]!r}.")
    return found


def not_found(request, message: str):
    """A page saying what was not found, with status 404."""
    return render(request, "daq/not_found.html", {"message": message}, status=404)


def toast(request, message: str, status: int = 200):
    """A toast fragment with ``message``, coloured by ``status``."""
    level = "success" if status < 300 else "warning" if status in (409, 429) else "danger"
    response = render(request, "daq/inc/toast.html", {"message": message, "level": level},
                      status=status)
    # Tells the page's script this error answer is meant to be shown, unlike an
    # error page from elsewhere (e.g. a CSRF failure).
    response["X-Toast"] = "1"
    return response


class DaqAccessMixin(AccessMixin):
    """Login required (the viewer role), and ``required_role`` if set (see
    daq/roles.py); ``permission_required = "daq.control_daq"`` means the operator
    role. Refusals are a toast htmx can show, or a page for a plain GET."""

    permission_required: str | None = None
    required_role: str | None = None

    def needed_role(self) -> str:
        """The role this view needs: viewer, operator or admin."""
        if self.required_role:
            return self.required_role
        if self.permission_required == roles.CONTROL_PERMISSION:
            return roles.OPERATOR
        return roles.VIEWER

    def dispatch(self, request, *args, **kwargs):
        if not roles.is_viewer(request.user):
            return self.handle_no_permission()
        role = self.needed_role()
        if not roles.has_role(request.user, role):
            if request.method == "GET" and not request.htmx:
                return roles.forbidden(request, role)
            return toast(request, roles.refusal(request.user, role), 403)
        if (self.permission_required and self.permission_required != roles.CONTROL_PERMISSION
                and not request.user.has_perm(self.permission_required)):
            return toast(request, f"{request.user} may not do this.", 403)
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
    view = overview.read()
    prefetch_related_objects(view.servers, "configs")
    # Log reads are not control actions: they would crowd out what people asked of
    # the hardware, and a failed one is no reason for the "last command failed" badge.
    commands = list(Command.objects.select_related(*_COMMAND_RELATIONS)
                    .exclude(kind=Command.Kind.TAIL_LOG)[:RECENT])
    alarms = Event.objects.filter(level=Event.Level.ALARM, acknowledged=False)
    alarm_list = list(alarms[:ALARMS_SHOWN])
    can_control = roles.is_operator(user)
    # A transition waiting or running blocks others (services answer 409); reads
    # such as a config refresh do not, so they do not grey out the controls either.
    # Only a transition the engine runs on an enabled, online, not excluded server
    # counts: a hung, crashed, disabled or excluded one never holds the controls.
    busy = view.any_transitioning or any(
        c.status in Command.ACTIVE and c.kind in _BLOCKING_KINDS for c in commands)
    states = {s.state for s in view.participating}
    # Stop is always possible while a run is open, busy or not (the services queue it
    # and the engine preempts what runs), unless a Stop is already on its way.
    stop_ok = bool(view.run and view.run.is_open) and can_control and (
        not busy or services.active_stop() is None)
    actions = [(action, action.allows(states) and (
        not busy or (action.key == "stop" and stop_ok)))
               for action in forms.SYSTEM_ACTIONS] if can_control else []
    if not view.engine_alive:  # nothing can be done: the controls say why (the reason)
        actions = [(action, False) for action, _ in actions]
    last_failed = commands[0] if commands and commands[0].status == "failed" else None
    # After a Start refused for configuration drift, the operator may start anyway.
    start_anyway = (last_failed is not None and last_failed.refused_for_drift
                    and dict((a.key, ok) for a, ok in actions).get("start", False))
    return {
        "view": view,
        "commands": commands,
        "events": list(Event.objects.all()[:RECENT]),
        "alarms": alarm_list,
        "alarm_count": len(alarm_list) if len(alarm_list) < ALARMS_SHOWN else alarms.count(),
        "last_failed": last_failed,
        "start_anyway": start_anyway,
        "can_control": can_control,
        "busy": busy,
        "actions": actions,
        "controls_disabled_reason": view.controls_disabled_reason,
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
            result = self.perform(self.cleaned_data())
        except services.ControlError as exc:
            return self.refused(exc)
        return self.answer(result)

    def answer(self, result):
        """The response when :meth:`perform` went through: a toast of its message."""
        return toast(self.request, result, self.success_status)

    def refused(self, error: services.ControlError):
        """The response when the action was refused: a toast of why."""
        return toast(self.request, str(error), error.status)

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

    def perform(self, data: dict):
        """Do the action; return what to tell the user (what :meth:`answer` shows)."""
        raise NotImplementedError


class ObjectActionView(ActionView):
    """An action on one object of ``model``, named by the ``pk`` in the URL."""

    model = None

    def prepare(self) -> None:
        self.object = find(self.model.objects.all(), self.kwargs["pk"])


def _queued(command: Command) -> str:
    return f"Queued: {command.describe()}"


class SystemTransitionView(ActionView):
    """A system control: every enabled server to a state, or a run started or stopped."""

    form_class = forms.SystemTransitionForm

    def perform(self, data: dict) -> str:
        action = forms.SYSTEM_ACTION_BY_KEY[data["action"]]
        services.require_engine()  # the first reason: nothing moves without the engine
        action.check(ECCServer.objects.filter(enabled=True, excluded=False)
                     .values_list("state", flat=True))
        if data.get("confirm_drift") and action.key != "start":
            raise services.ControlError("only Start can be confirmed despite configuration "
                                        "drift")
        return _queued(services.request_transition(self.request.user, action.target,
                                                   confirm_drift=data.get("confirm_drift",
                                                                          False)))


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


class ReasonActionView(ObjectActionView):
    """An action whose form is only the operator's reason (checked by the services)."""

    def cleaned_data(self) -> dict:
        reason = self.request.POST.get("reason", "")
        if "\x00" in reason:
            raise services.ControlError("the reason contains a NUL character: write it as "
                                        "plain text")
        return {"reason": reason}


class ExcludeView(ReasonActionView):
    """Take an ECC server or data router (``model``) out of the system, with a reason."""

    def perform(self, data: dict) -> str:
        owner = {"server" if self.model is ECCServer else "router": self.object}
        services.request_exclude(self.request.user, reason=data["reason"], **owner)
        return f"Queued: exclude {self.object.name} ({data['reason'].strip()[:100]})"


class IncludeView(ReasonActionView):
    """Put excluded hardware (``model``) back into the system."""

    def perform(self, data: dict) -> str:
        owner = {"server" if self.model is ECCServer else "router": self.object}
        services.request_include(self.request.user, reason=data["reason"], **owner)
        return f"Queued: include {self.object.name}"


class AbortView(ReasonActionView):
    """Abandon the transition the engine runs on a server ("Abort CoBo[1]'s Start")."""

    model = ECCServer

    def perform(self, data: dict) -> str:
        command = services.request_abort(self.request.user, self.object, data["reason"])
        return f"Queued: {command.label} on {self.object.name}"


class UnattributedDecideView(ObjectActionView):
    """File the files a router wrote while no run was open into a run, or set them aside
    (``decision`` "run" with ``run``, or "aside"; ``note`` optional)."""

    model = UnattributedData

    def prepare(self) -> None:
        self.object = find(UnattributedData.objects.select_related("router", "experiment"),
                           self.kwargs["pk"])

    def cleaned_data(self) -> dict:
        data = {key: self.request.POST.get(key, "") for key in ("decision", "run", "note")}
        if any("\x00" in value for value in data.values()):
            raise services.ControlError("the form contains a NUL character: write the note "
                                        "as plain text")
        return data

    def perform(self, data: dict) -> str:
        record = unattributed.decide_unattributed(self.request.user, self.object,
                                              data["decision"], data["run"] or None,
                                              data["note"])
        where = f"into run {record.run.run_number}" if record.run else "aside"
        return (f"{self.object.router.name}'s files go {where}: the engine moves them "
                "now.")


class EventAcknowledgeView(ObjectActionView):
    """Mark an alarm as seen, which takes it off the banner."""

    model = Event
    success_status = 200

    def perform(self, data: dict) -> str:
        Event.acknowledge(Event.objects.filter(pk=self.object.pk), self.request.user)
        return f"Acknowledged: {self.object.source}: {self.object.message[:80]}"


# Pages about one object -----------------------------------------------------------------

class ObjectPageView(DaqAccessMixin, TemplateView):
    """A page about one object of ``model``, named by the ``pk`` in the URL.

    An id that names nothing answers a 404 page that says so.
    """

    model = None

    def get_queryset(self) -> QuerySet:
        return self.model.objects.all()

    def get(self, request, *args, **kwargs):
        try:
            self.object = find(self.get_queryset(), kwargs["pk"])
        except NotFound as exc:
            return not_found(request, str(exc))
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(object=self.object, **kwargs)


# Runs -------------------------------------------------------------------------------------

@dataclass
class RouterFiles:
    """What one data router's run folder received."""

    router: str
    directory: str
    files: list[tuple[str, int | None]]
    bytes: int


@dataclass
class ConfigRow:
    """One server's configuration for a run, and where its files were backed up."""

    server: str
    config: str
    directory: str = ""
    files: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    """A run's manifest as the pages show it, whatever shape the stored JSON has."""

    routers: list[RouterFiles]
    backups: dict[str, ConfigRow]

    @property
    def file_count(self) -> int:
        return sum(len(r.files) for r in self.routers)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.routers)


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _size(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_manifest(manifest) -> Manifest:
    """The routers' files and the configuration backups of a run's ``manifest``.

    The engine writes it (see ``engine/filing.py``); a page must not break on an
    entry of another shape, so anything unexpected reads as missing.
    """
    manifest = _mapping(manifest)
    routers = []
    for name, entry in sorted(_mapping(manifest.get("routers")).items()):
        entry = _mapping(entry)
        files = [(str(f.get("name", "")), _size(f.get("size")))
                 for f in entry.get("files") or [] if isinstance(f, dict)]
        total = _size(entry.get("bytes"))
        routers.append(RouterFiles(str(name), str(entry.get("directory", "")), files,
                                   sum(s or 0 for _, s in files) if total is None else total))
    backups = {}
    for server, entry in _mapping(manifest.get("configs")).items():
        entry = _mapping(entry)
        files = entry.get("files")
        backups[str(server)] = ConfigRow(str(server), "", str(entry.get("directory", "")),
                                         [str(f) for f in files] if isinstance(files, list)
                                         else [])
    return Manifest(routers, backups)


def config_rows(run: RunMetadata, manifest: Manifest) -> list[ConfigRow]:
    """Per server: the configuration recorded at Start and its backup, if any."""
    configs = {str(name): str(config) for name, config in _mapping(run.configs).items()}
    rows = []
    for name in sorted(configs.keys() | manifest.backups.keys()):
        backup = manifest.backups.get(name) or ConfigRow(name, "")
        rows.append(ConfigRow(name, configs.get(name, ""), backup.directory, backup.files))
    return rows


# The run list (the run sheet) is in sheet_views.py.


class RunDetailView(ObjectPageView):
    """One run: its fields, configuration, filed files, events and commands."""

    model = RunMetadata
    template_name = "daq/run_detail.html"

    def get_queryset(self) -> QuerySet:
        return RunMetadata.objects.select_related("experiment")

    def get_context_data(self, **kwargs):
        run = self.object
        manifest = read_manifest(run.manifest)
        return super().get_context_data(
            run=run, manifest=manifest, config_rows=config_rows(run, manifest),
            loaded=loaded_rows(run), inline_chars=INLINE_CONFIG_CHARS,
            events=list(run.events.all()),
            commands=list(run.commands.select_related(*_COMMAND_RELATIONS)), **kwargs)


@dataclass
class LoadedRow:
    """One server's configuration as loaded at a run's Start, and the run to compare with."""

    config: RunConfig
    previous: RunConfig | None

    @property
    def diff_query(self) -> str:
        """The query string of the diff page against the previous run (or alone)."""
        query = {"server": self.config.server_name, "b": self.config.run_id}
        if self.previous is not None:
            query["a"] = self.previous.run_id
        return urlencode(query)


def loaded_rows(run: RunMetadata) -> list[LoadedRow]:
    """The run's loaded configurations, each with the same server's one of the run before."""
    rows = []
    for config in run.loaded_configs.all():
        previous = (RunConfig.objects.filter(server_name=config.server_name,
                                             run__created__lt=run.created)
                    .order_by("-run__created", "-run_id").only("run_id").first())
        rows.append(LoadedRow(config, previous))
    return rows


class RunConfigFileView(DaqAccessMixin, View):
    """One file a server loaded at a run's Start, as plain text (to download or read)."""

    http_method_names = ["get"]

    def get(self, request, pk: str, index: str):
        try:
            config = find(RunConfig.objects.all(), pk)
        except NotFound as exc:
            return not_found(request, str(exc))
        files = config.file_list
        if not (index.isascii() and index.isdigit() and int(index) < len(files)):
            return not_found(request, f"{config.server_name}'s configuration at this run has "
                             f"no file number {index[:20]!r}.")
        entry = files[int(index)]
        response = HttpResponse(entry["text"], content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = content_disposition_header(
            request.GET.get("download") == "1", entry["filename"])
        response["X-Content-Type-Options"] = "nosniff"
        return response


# Configuration diff -----------------------------------------------------------------------

@dataclass
class FileDiff:
    """One file of two runs' configurations: added, removed, changed or the same."""

    filename: str
    status: str
    lines: list[tuple[str, str]] = field(default_factory=list)  # (kind, text)
    truncated: bool = False


def _diff_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "head"
    return {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")


def diff_configs(a: RunConfig, b: RunConfig) -> list[FileDiff]:
    """Each file of ``a`` and ``b`` by name: what was added, removed or changed from A to B."""
    old = {f["filename"]: f for f in a.file_list}
    new = {f["filename"]: f for f in b.file_list}
    diffs = []
    for name in sorted(old.keys() | new.keys()):
        if name not in old:
            diffs.append(FileDiff(name, "added"))
        elif name not in new:
            diffs.append(FileDiff(name, "removed"))
        elif old[name]["text"] == new[name]["text"]:
            diffs.append(FileDiff(name, "same"))
        else:
            lines = difflib.unified_diff(
                old[name]["text"].splitlines(), new[name]["text"].splitlines(),
                f"run {a.run.run_number}/{name}", f"run {b.run.run_number}/{name}", lineterm="")
            shown = []
            for line in lines:
                if len(shown) == DIFF_MAX_LINES:
                    break
                shown.append((_diff_kind(line), line))
            diffs.append(FileDiff(name, "changed", shown,
                                  truncated=len(shown) == DIFF_MAX_LINES))
    return diffs


class ConfigDiffView(DaqAccessMixin, TemplateView):
    """One server's loaded configuration in two runs (A and B): file by file, unified diff."""

    template_name = "daq/config_diff.html"

    def get(self, request, *args, **kwargs):
        self.problem = ""
        servers = sorted(set(RunConfig.objects.values_list("server_name", flat=True)))
        server = request.GET.get("server", "") or (servers[0] if servers else "")
        if server and server not in servers:
            self.problem = f"No run recorded a configuration loaded by {server[:100]!r}."
        choices = list(RunConfig.objects.filter(server_name=server)
                       .select_related("run__experiment")
                       .order_by("-run__created", "-run_id")[:DIFF_RUN_CHOICES])
        by_run = {str(c.run_id): c for c in choices}
        a, b = (self._pick(request.GET.get(key, ""), by_run, server) for key in "ab")
        if b is None and not request.GET.get("b") and choices:
            b = choices[0]
        if a is None and not request.GET.get("a") and b is not None:
            a = next((c for c in choices if c.run.created < b.run.created), None)
        self.extra = {"servers": servers, "server": server, "choices": choices, "a": a,
                      "b": b, "diffs": diff_configs(a, b) if a and b else None}
        response = super().get(request, *args, **kwargs)
        if self.problem:
            response.status_code = 404
        return response

    def _pick(self, pk: str, by_run: dict, server: str) -> RunConfig | None:
        if not pk:
            return None
        found = by_run.get(pk)
        if found is None and not self.problem:
            found = (RunConfig.objects.select_related("run__experiment")
                     .filter(server_name=server, run_id=pk).first()
                     if pk.isascii() and pk.isdigit() and len(pk) <= 18 else None)
            if found is None:
                self.problem = (f"There is no run with id {pk[:40]!r} holding a configuration "
                                f"loaded by {server[:100]!r}.")
        return found

    def get_context_data(self, **kwargs):
        return super().get_context_data(problem=self.problem, **self.extra, **kwargs)


# Logs -------------------------------------------------------------------------------------

def log_answer(request, *, command: Command | None = None, refusal: str = "",
               status: int = 200):
    """The log page's output: a log request as it stands, or why there is none.

    While the engine has not answered, the fragment polls itself. Answers with an
    error status are marked (``X-Log-Answer``) for daq/log.js to show them in place.
    """
    polling = command is not None and command.status in Command.ACTIVE
    response = render(request, "daq/inc/log_output.html", {
        "command": command, "refusal": refusal, "polling": polling, "poll_ms": LOG_POLL_MS,
        "engine_alive": services.engine_liveness().alive if polling else True,
    }, status=status)
    response["X-Log-Answer"] = "1"
    return response


class LogPageView(ObjectPageView):
    """The end of an ECC server's or data router's log, which the page asks for."""

    template_name = "daq/log.html"

    def get_context_data(self, **kwargs):
        meta = self.model._meta
        return super().get_context_data(
            kind=meta.verbose_name,
            request_url=reverse(f"daq:{meta.model_name}_log_request", args=[self.object.pk]),
            **kwargs)


class LogRequestView(ObjectActionView):
    """Ask the engine for the end of a log; answers the log page's output, which polls.

    Reading a log changes nothing, so anyone logged in may, viewers included.
    """

    permission_required = None
    _OWNER = {ECCServer: "server", DataRouter: "router"}

    def perform(self, data: dict) -> Command:
        return services.request_log_tail(self.request.user,
                                         **{self._OWNER[self.model]: self.object})

    def answer(self, result: Command):
        return log_answer(self.request, command=result, status=self.success_status)

    def refused(self, error: services.ControlError):
        return log_answer(self.request, refusal=str(error), status=error.status)


class CommandResultView(DaqAccessMixin, View):
    """Where a command stands and what it produced, as the log page polls it."""

    http_method_names = ["get"]

    def get(self, request, pk: str):
        services.expire_if_engine_down()  # a read nobody will take up says so
        try:
            command = find(Command.objects.select_related(*_COMMAND_RELATIONS), pk)
        except NotFound as exc:
            return log_answer(request, refusal=str(exc), status=exc.status)
        return log_answer(request, command=command)
