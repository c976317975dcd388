"""Endpoints of the JSON API (django-ninja; schema at ``/api/openapi.json``)."""

from __future__ import annotations

import json
from typing import Annotated

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import NinjaAPI, Query, Status
from ninja.errors import HttpError
from ninja.security import HttpBearer, SessionAuth

from attpcdaq.daq import exports, overview, roles, runmeta, services, unattributed
from attpcdaq.daq.models import (
    ApiToken,
    Command,
    DataRouter,
    ECCServer,
    Event,
    Experiment,
    RunClass,
    RunMetadata,
    UnattributedData,
)
from attpcdaq.daq.timing import TransitionTiming

from .schemas import (
    CommandAccepted,
    CommandOut,
    ConfigIn,
    ConfigOut,
    ConfigsOut,
    DecideIn,
    Error,
    ReasonIn,
    RunDetailOut,
    RunListOut,
    RunPatchIn,
    StatusOut,
    TransitionIn,
    UnattributedOut,
)


class BearerToken(HttpBearer):
    """``Authorization: Bearer TOKEN`` with a token from ``/tokens/``, ``POST
    /api/tokens`` or ``attpcdaq token USER``.

    A request that sends an Authorization header is judged by it alone: a bad,
    revoked or malformed one answers 401 with a message on every method, rather than
    falling through to the session (and, for a POST, a CSRF 403).
    """

    def __call__(self, request):
        value = request.headers.get(self.header)
        if value is None:
            return None
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != self.openapi_scheme or not token.strip():
            raise HttpError(401, "the Authorization header must be 'Bearer TOKEN' with an "
                            "API token (make one on /tokens/)")
        return self.authenticate(request, token.strip())

    def authenticate(self, request, token):
        user = ApiToken.user_for(token)
        if user is None:
            raise HttpError(401, "the API token is not valid: it is unknown, revoked, or its "
                            "user is inactive")
        request.user = user
        return user


class LoggedInSession(SessionAuth):
    """The browser's session; CSRF is checked only for a logged-in session, so that a
    request with neither session nor token answers 401, not a CSRF 403."""

    def __call__(self, request):
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)


api = NinjaAPI(title="attpcdaq", version="1", urls_namespace="api",
               description="Status and control of the AT-TPC's GET electronics.",
               auth=[BearerToken(), LoggedInSession()])


def _require_control(request) -> None:
    if not roles.is_operator(request.auth):
        raise HttpError(403, roles.refusal(request.auth, roles.OPERATOR))


def _queued(command: Command):
    return Status(202, {"command": command.pk})


def _server_out(server: ECCServer, timing: TransitionTiming) -> dict:
    return {"id": server.pk, "name": server.name, "url": server.url, "enabled": server.enabled,
            "state": server.state, "state_name": server.state_name,
            "transitioning": server.is_transitioning, "transition_name": server.transition_name,
            "online": server.is_online,
            "selected_config": str(server.selected_config) if server.selected_config else None,
            "last_error": server.last_error, "excluded": server.excluded,
            "excluded_reason": server.excluded_reason,
            "transition_elapsed": None if timing.elapsed is None else round(timing.elapsed, 1),
            "usual_transition_seconds": timing.usual, "slow": timing.slow}


@api.exception_handler(services.ControlError)
def control_error(request, exc: services.ControlError):
    """Answer a refused request with its status and reason (and, for 429 and 503, when
    to ask again)."""
    response = api.create_response(request, {"detail": str(exc)}, status=exc.status)
    if retry := getattr(exc, "retry_after", None):
        response["Retry-After"] = str(retry)
    return response


@api.exception_handler(runmeta.MetadataError)
def metadata_error(request, exc: runmeta.MetadataError):
    """Answer refused run details with 400, every wrong field named: ``detail`` says it
    in one sentence, ``errors`` maps each field to its message."""
    return api.create_response(request, {"detail": str(exc), "errors": exc.errors},
                               status=400)


@api.exception_handler(RequestDataTooBig)
def too_big(request, exc: RequestDataTooBig):
    """Answer a body over DATA_UPLOAD_MAX_MEMORY_SIZE saying so (413), not a bare 400."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return api.create_response(request, {"detail": f"the request body is larger than the "
                                         f"{limit:,} bytes accepted"}, status=413)


@api.get("/status", response=StatusOut, tags=["status"])
def status(request):
    """The overall state, the run, every ECC server and data router."""
    view = overview.read()
    run = None
    if view.run is not None:
        run = {"number": view.run.run_number, "running": view.run.is_open,
               "status": view.run.status, "started": view.run.start_datetime,
               "stopped": view.run.stop_datetime, "title": view.run.title,
               "filed": view.run.filed}
    return {"overall_state": view.overall_state, "overall_state_name": view.overall_state_name,
            "experiment": view.experiment.name if view.experiment else None,
            "engine_alive": view.engine_alive, "run": run,
            "engine_last_beat": view.engine.last_beat, "engine_message": view.engine.message,
            "unconfigured_servers": [server.name for server, _ in view.unconfigured],
            "ecc_servers": [_server_out(s, view.timing(s)) for s in view.servers],
            "data_routers": [{"id": r.pk, "name": r.name, "online": r.is_online,
                              "clean": r.is_clean, "data_rate": r.data_rate,
                              "excluded": r.excluded, "excluded_reason": r.excluded_reason}
                             for r in view.routers],
            **_alarms_out(),
            "unattributed": [_unattributed_out(u) for u in view.unattributed
                             if u.settled_at is None]}


#: The most alarms ``/api/status`` lists (newest first; ``alarm_count`` counts them all).
ALARMS_LISTED = 100


def _alarms_out() -> dict:
    alarms = Event.objects.filter(level=Event.Level.ALARM, acknowledged=False)
    listed = list(alarms.order_by("-time", "-pk")[:ALARMS_LISTED])
    count = len(listed) if len(listed) < ALARMS_LISTED else alarms.count()
    return {"alarms": [{"id": e.pk, "time": e.time, "source": e.source, "message": e.message}
                       for e in listed], "alarm_count": count}


def _unattributed_out(record: UnattributedData) -> dict:
    count, size = unattributed.unattributed_totals(record)
    return {"id": record.pk, "router": record.router.name,
            "experiment": record.experiment.name, "files": count, "bytes": size,
            "found": record.found, "decision": record.decision,
            "run": record.run.run_number if record.run else None, "note": record.note,
            "decided_by": record.decided_by.get_username() if record.decided_by else None,
            "decided_at": record.decided_at, "settled_at": record.settled_at,
            "error": record.error}


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _int(value, default: int | None = 0) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _time(value) -> str | None:
    return None if value is None else str(value)


def _spans(spans, *fields: str) -> list[dict]:
    return [{"from": _time(s.get("from")), "to": _time(s.get("to")),
             **{f: str(s.get(f, "")) for f in fields}}
            for s in spans or [] if isinstance(s, dict)]


def _coverage_out(coverage) -> dict:
    """The run keeper's coverage, anything of another shape left out."""
    out: dict[str, dict] = {"boards": {}, "routers": {}}
    for kind in out:
        for name, entry in _mapping(_mapping(coverage).get(kind)).items():
            entry = _mapping(entry)
            row = {"took_part": bool(entry.get("took_part")), "from": _time(entry.get("from")),
                   "to": _time(entry.get("to")),
                   "excluded": _spans(entry.get("excluded"), "reason")}
            if kind == "routers":
                row["outages"] = _spans(entry.get("outages"))
            out[kind][str(name)] = row
    return out


def _count_out(count) -> dict | None:
    count = _mapping(count)
    values = {k: _int(count.get(k), None) for k in ("cobo", "asad", "frames", "first_event",
                                                     "last_event")}
    return None if None in values.values() else values


def _manifest_out(manifest) -> dict:
    """The manifest of engine/filing.py, read as the pages read it (runs filed before
    frames were counted have no counts)."""
    manifest = _mapping(manifest)
    files, routers = [], {}
    for name, entry in sorted(_mapping(manifest.get("routers")).items()):
        entry = _mapping(entry)
        listed = [f for f in entry.get("files") or [] if isinstance(f, dict)]
        for f in listed:
            counts = [c for c in map(_count_out, f.get("counts") or []) if c is not None]
            files.append({"router": str(f.get("router", name)), "name": str(f.get("name", "")),
                          "bytes": _int(f.get("bytes"), None) or _int(f.get("size")),
                          "frames": _int(f.get("frames"), None), "counts": counts,
                          "error": str(f.get("error", ""))})
        routers[str(name)] = {"directory": str(entry.get("directory", "")),
                              "files": len(listed), "bytes": _int(entry.get("bytes"))}
    events = {}
    for cobo, entry in _mapping(manifest.get("events")).items():
        entry = _mapping(entry)
        asads = {str(a): {k: _int(_mapping(c).get(k)) for k in ("frames", "first_event",
                                                                 "last_event")}
                 for a, c in _mapping(entry.get("asads")).items()}
        events[str(cobo)] = {"events": _int(entry.get("events")),
                             "first_event": _int(entry.get("first_event")),
                             "last_event": _int(entry.get("last_event")), "asads": asads}
    configs = {str(server): {"directory": str(_mapping(e).get("directory", "")),
                             "files": [str(f) for f in _mapping(e).get("files") or []]}
               for server, e in _mapping(manifest.get("configs")).items()}
    return {"files": files, "routers": routers, "events": events, "configs": configs}


#: Runs per page of ``GET /api/runs``: by default, and at most.
RUNS_LIMIT = 100
RUNS_LIMIT_MAX = 1000


def _experiment(name: str | None) -> Experiment:
    if name:
        experiment = Experiment.objects.filter(name=name).first()
        if experiment is None:
            raise HttpError(404, f"there is no experiment named {name[:100]!r}")
        return experiment
    experiment = Experiment.active()
    if experiment is None:
        raise HttpError(404, "there is no active experiment")
    return experiment


def _whole(value: str | None, field: str, *, minimum: int, maximum: int) -> int | None:
    """A query parameter that must be a whole number; 400 naming it otherwise."""
    if value is None or value == "":
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 18) or not (
            minimum <= int(text) <= maximum):
        raise runmeta.MetadataError({field: f"must be a whole number from {minimum} to "
                                     f"{maximum:,}, not {value[:40]!r}"})
    return int(text)


@api.get("/runs", response={200: RunListOut, 400: Error, 404: Error}, tags=["runs"],
         by_alias=True)
def run_list(request, experiment: str | None = None, page: str | None = None,
             limit: str | None = None,
             run_class: Annotated[list[str], Query(alias="class")] = (),
             from_: Annotated[str | None, Query(alias="from")] = None, to: str | None = None):
    """The run sheet of the active experiment (or ``experiment``), by run number: each
    run's class, title, comment, times, duration and live time, events and bytes
    filed, problems and measurements. ``class`` (repeatable) keeps runs of those
    classes, ``from`` and ``to`` a range of run numbers (both included); ``page``
    (from 1) and ``limit`` (at most 1000, 100 by default) page it, and ``next`` is the
    query of the next page. A malformed parameter answers 400 naming it."""
    found = _experiment(experiment)
    size = _whole(limit, "limit", minimum=1, maximum=RUNS_LIMIT_MAX) or RUNS_LIMIT
    number = _whole(page, "page", minimum=1, maximum=10**9) or 1
    low = _whole(from_, "from", minimum=0, maximum=2**31 - 1)
    high = _whole(to, "to", minimum=0, maximum=2**31 - 1)
    runs = exports.sheet_runs(found)
    if run_class:
        names = {n.casefold(): n for n in RunClass.objects.values_list("name", flat=True)}
        unknown = [c for c in run_class if c.casefold() not in names]
        if unknown:
            raise runmeta.MetadataError({"class": f"there is no run class "
                                         f"{unknown[0][:40]!r}: choose among "
                                         f"{', '.join(names.values())}"})
        runs = runs.filter(run_class__name__in=[names[c.casefold()] for c in run_class])
    if low is not None:
        runs = runs.filter(run_number__gte=low)
    if high is not None:
        runs = runs.filter(run_number__lte=high)
    count = runs.count()
    pages = max(1, -(-count // size))
    listed = runs[(number - 1) * size:number * size]
    following = None
    if number < pages:
        query = request.GET.copy()
        query["page"] = str(number + 1)
        following = query.urlencode()
    now = timezone.now()
    return {"experiment": found.name, "count": count, "page": number, "pages": pages,
            "limit": size, "next": following,
            "runs": [exports.run_record(run, now) for run in listed]}


def _run_of_active(number: int) -> RunMetadata:
    experiment = Experiment.active()
    if experiment is None:
        raise HttpError(404, "there is no active experiment")
    if not 0 <= number <= 2**31 - 1:
        raise HttpError(404, f"{experiment.name} has no run {number}")
    run = RunMetadata.objects.select_related("experiment", "run_class", "started_by",
                                             "stopped_by").filter(
        experiment=experiment, run_number=number).first()
    if run is None:
        raise HttpError(404, f"{experiment.name} has no run {number}")
    return run


@api.patch("/runs/{number}", response={200: RunDetailOut, 400: Error, 403: Error,
                                       404: Error}, tags=["runs"], by_alias=True,
           openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
               "schema": RunPatchIn.model_json_schema()}}}})
def run_patch(request, number: int):
    """Change run ``number`` of the active experiment: ``title``, ``class``,
    ``comment``, ``measurements`` (observable name to value; null clears one). Checked
    as the run page checks them: 400 names each wrong field (``errors``) and nothing is
    saved; each change is kept (``edits``: who, when, old and new). Operators only."""
    _require_control(request)
    # Read here rather than by a schema: an unknown or mistyped field is a 400 that
    # names it (a schema would drop it or answer 422).
    try:
        fields = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise runmeta.MetadataError({"body": "must be a JSON object"}) from None
    if not isinstance(fields, dict):
        raise runmeta.MetadataError({"body": "must be a JSON object of fields to change"})
    if "class" in fields:
        if "run_class" in fields:
            raise runmeta.MetadataError({"class": "give class or run_class, not both"})
        fields["run_class"] = fields.pop("class")
    if not fields:
        raise runmeta.MetadataError({"body": "name a field to change: title, class, "
                                     "comment or measurements"})
    run = _run_of_active(number)
    runmeta.update_run(request.auth, run, fields)
    return run_detail(request, number)


@api.get("/runs/{number}", response={200: RunDetailOut, 404: Error}, tags=["status"],
         by_alias=True)
def run_detail(request, number: int):
    """Run ``number`` of the active experiment: its state, whether its data is complete
    (``incomplete``, ``problems``), which boards and routers took part (``coverage``),
    every file filed with its frames per CoBo and AsAd (``manifest``), and the
    configuration files (names and SHA-256) each server had loaded."""
    experiment = Experiment.active()
    if experiment is None:
        raise HttpError(404, "there is no active experiment")
    run = get_object_or_404(RunMetadata.objects.select_related("experiment"),
                            experiment=experiment, run_number=number)
    configs = run.configs if isinstance(run.configs, dict) else {}
    problems = run.problems if isinstance(run.problems, list) else []
    return {"id": run.pk, "experiment": run.experiment.name, "number": run.run_number,
            "status": run.status, "title": run.title, "started": run.start_datetime,
            "stopped": run.stop_datetime, "filed": run.filed,
            "filing_error": run.filing_error, "incomplete": run.incomplete,
            "problems": [str(p) for p in problems], "coverage": _coverage_out(run.coverage),
            "manifest": _manifest_out(run.manifest),
            "configs": {str(k): str(v) for k, v in configs.items()},
            **_sheet_fields(run),
            "loaded_configs": [
                {"server": rc.server_name, "config": rc.config,
                 "configured_at": rc.configured_at, "problem": rc.problem,
                 "files": [{"filename": f["filename"], "sha256": f["sha256"],
                            "chars": len(f["text"])} for f in rc.file_list]}
                for rc in run.loaded_configs.all()]}


def _sheet_fields(run: RunMetadata) -> dict:
    """What the run sheet says of a run, beside the filing: class, comment, times,
    who started and stopped it, limits, measurements and edits."""
    record = exports.run_record(run)
    return {"class": record["class"], "comment": run.comment,
            "duration_seconds": record["duration_seconds"],
            "live_time_seconds": record["live_time_seconds"], "events": record["events"],
            "bytes": record["bytes"],
            "started_by": run.started_by.get_username() if run.started_by else None,
            "stopped_by": run.stopped_by.get_username() if run.stopped_by else None,
            "limit_seconds": run.limit_seconds, "limit_events": run.limit_events,
            "limit_bytes": run.limit_bytes, "auto_restart": run.auto_restart,
            "measurements": record["measurements"],
            "edits": [{"field": e.field, "old": e.old, "new": e.new, "time": e.time,
                       "user": e.user.get_username() if e.user else None}
                      for e in run.edits.select_related("user")]}


@api.post("/transition", response={202: CommandAccepted, 400: Error, 409: Error,
                                   503: Error},
          tags=["control"])
def transition(request, body: TransitionIn):
    """Take every enabled server to a state ("running" starts or resumes a run;
    "ready" from Running stops it; "reset" goes one step back). A Start refused for
    configuration drift goes through when sent again with ``"confirm_drift": true``."""
    _require_control(request)
    return _queued(services.request_transition(request.auth, body.target,
                                               confirm_drift=body.confirm_drift,
                                               options=body.start_options()))


@api.post("/ecc-servers/{server_id}/transition",
          response={202: CommandAccepted, 400: Error, 404: Error, 409: Error, 503: Error},
          tags=["control"])
def server_transition(request, server_id: int, body: TransitionIn):
    """Take one server to a state, for troubleshooting."""
    _require_control(request)
    server = get_object_or_404(ECCServer, pk=server_id)
    return _queued(services.request_transition(request.auth, body.target, server,
                                               confirm_drift=body.confirm_drift,
                                               options=body.start_options()))


@api.get("/commands/{command_id}", response={200: CommandOut, 404: Error}, tags=["control"])
def command(request, command_id: int):
    """A command's status and, when it failed, why."""
    services.expire_if_engine_down()  # a command nobody will take up says so
    cmd = get_object_or_404(Command.objects.select_related("user", "ecc_server"), pk=command_id)
    return {"id": cmd.pk, "description": cmd.describe(), "status": cmd.status,
            "error": cmd.error, "user": cmd.user.get_username() if cmd.user else None,
            "created": cmd.created, "finished": cmd.finished, "run": cmd.run_id,
            "result": cmd.result}


@api.post("/ecc-servers/{server_id}/log",
          response={202: CommandAccepted, 400: Error, 404: Error, 429: Error, 503: Error},
          tags=["logs"])
def server_log(request, server_id: int):
    """Ask the engine for the last lines of the server's log: they come as the command's
    ``result``. Anyone may (it changes nothing), a few times a second at most (429)."""
    server = get_object_or_404(ECCServer, pk=server_id)
    return _queued(services.request_log_tail(request.auth, server=server))


@api.post("/data-routers/{router_id}/log",
          response={202: CommandAccepted, 400: Error, 404: Error, 429: Error, 503: Error},
          tags=["logs"])
def router_log(request, router_id: int):
    """Ask the engine for the last lines of the data router's log (see the servers')."""
    router = get_object_or_404(DataRouter, pk=router_id)
    return _queued(services.request_log_tail(request.auth, router=router))


@api.get("/ecc-servers/{server_id}/configs", response={200: ConfigsOut, 404: Error},
         tags=["configuration"])
def configs(request, server_id: int):
    """The configuration sets the server offers, as the engine last fetched them."""
    server = get_object_or_404(ECCServer, pk=server_id)
    return {"configs": [str(c) for c in server.configs.all()],
            "selected": str(server.selected_config) if server.selected_config else None}


@api.post("/ecc-servers/{server_id}/configs/refresh",
          response={202: CommandAccepted, 404: Error, 409: Error, 503: Error},
          tags=["configuration"])
def refresh_configs(request, server_id: int):
    """Ask the engine to fetch the server's configuration sets again."""
    _require_control(request)
    server = get_object_or_404(ECCServer, pk=server_id)
    return _queued(services.request_config_refresh(request.auth, server))


@api.post("/ecc-servers/{server_id}/config",
          response={200: ConfigOut, 400: Error, 404: Error, 409: Error}, tags=["configuration"])
def select_config(request, server_id: int, body: ConfigIn):
    """Select the configuration set a server uses (only while it is Idle)."""
    _require_control(request)
    server = get_object_or_404(ECCServer, pk=server_id)
    return {"selected": str(services.select_config(server, body.config))}


_QUEUED = {202: CommandAccepted, 400: Error, 403: Error, 404: Error, 409: Error, 503: Error}


@api.post("/ecc-servers/{server_id}/abort", response=_QUEUED, tags=["control"])
def abort(request, server_id: int, body: ReasonIn):
    """Abandon the transition the engine runs on a server ("Abort CoBo[1]'s Start"): the
    engine stops waiting for it, marks the server hung and excluded, and the other
    servers go on. 409 when the engine runs no transition on it."""
    _require_control(request)
    server = get_object_or_404(ECCServer, pk=server_id)
    return _queued(services.request_abort(request.auth, server, body.reason))


@api.post("/ecc-servers/{server_id}/exclude", response=_QUEUED, tags=["control"])
def exclude_server(request, server_id: int, body: ReasonIn):
    """Take an ECC server out of the system, with a reason (required): walks, Start, Stop
    and the Start checks skip it, and the open run records it. Accepted while a
    transition runs."""
    _require_control(request)
    server = get_object_or_404(ECCServer, pk=server_id)
    return _queued(services.request_exclude(request.auth, server=server, reason=body.reason))


@api.post("/ecc-servers/{server_id}/include", response=_QUEUED, tags=["control"])
def include_server(request, server_id: int, body: ReasonIn):
    """Put an excluded ECC server back into the system (the reason is optional)."""
    _require_control(request)
    server = get_object_or_404(ECCServer, pk=server_id)
    return _queued(services.request_include(request.auth, server=server, reason=body.reason))


@api.post("/data-routers/{router_id}/exclude", response=_QUEUED, tags=["control"])
def exclude_router(request, router_id: int, body: ReasonIn):
    """Take a data router out of the system, with a reason (required): Start no longer
    waits for it, and the open run records it."""
    _require_control(request)
    router = get_object_or_404(DataRouter, pk=router_id)
    return _queued(services.request_exclude(request.auth, router=router, reason=body.reason))


@api.post("/data-routers/{router_id}/include", response=_QUEUED, tags=["control"])
def include_router(request, router_id: int, body: ReasonIn):
    """Put an excluded data router back into the system (the reason is optional)."""
    _require_control(request)
    router = get_object_or_404(DataRouter, pk=router_id)
    return _queued(services.request_include(request.auth, router=router, reason=body.reason))


#: The largest primary key a database holds (a 64-bit integer).
_MAX_ID = 2**63 - 1


@api.post("/unattributed/{record_id}/decide",
          response={202: UnattributedOut, 400: Error, 403: Error, 404: Error, 409: Error,
                    503: Error}, tags=["control"])
def decide_unattributed(request, record_id: int, body: DecideIn):
    """Choose where files written while no run was open go (they are listed in
    ``/api/status`` as ``unattributed``): into a run that is over and filed, or aside.
    The engine moves them (``settled_at``); Start goes again once every record is
    decided. 409 when it was decided already or a run is open."""
    _require_control(request)
    if not 0 < record_id <= _MAX_ID:
        raise HttpError(404, f"there are no unattributed data with id {record_id}")
    record = get_object_or_404(UnattributedData.objects.select_related("router"),
                               pk=record_id)
    record = unattributed.decide_unattributed(request.auth, record, body.decision, body.run,
                                          body.note)
    return Status(202, _unattributed_out(UnattributedData.objects.select_related(
        "router", "experiment", "run", "decided_by").get(pk=record.pk)))


# PATCH /runs/{number}/limits: a timed run's limits (api/limits.py).
from .limits import router as _limits_router  # noqa: E402

api.add_router("", _limits_router)

# Experiments and API tokens (api/access.py).
from .access import router as _access_router  # noqa: E402

api.add_router("", _access_router)


# Answers every operation may give, written into the schema once for all of them.
_operation_schema = api.get_openapi_schema
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_VALIDATION_ERROR = {"type": "object", "required": ["detail"], "properties": {"detail": {
    "type": "array", "items": {"type": "object"},
    "description": "What is wrong, one item per place (loc, msg, type)."}}}


def _schema_with_common_answers(**kwargs):
    """The schema, with 401 (a missing, bad or revoked token, or no session) on every
    operation and 422 (a path parameter or body of the wrong type, as django-ninja
    answers it) on every operation that takes one."""
    schema = _operation_schema(**kwargs)
    schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
        "Error", Error.model_json_schema())
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            if operation.get("security"):
                answers.setdefault(401, {"description": "Unauthorized: a missing, bad or "
                                         "revoked token, or no session", "content": {
                                             "application/json": {"schema": _ERROR_REF}}})
            if operation.get("parameters") or operation.get("requestBody"):
                answers.setdefault(422, {"description": "A parameter or body of the wrong "
                                         "type", "content": {"application/json": {
                                             "schema": _VALIDATION_ERROR}}})
    return schema


api.get_openapi_schema = _schema_with_common_answers
