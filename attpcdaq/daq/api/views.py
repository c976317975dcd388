"""Endpoints of the JSON API (django-ninja; schema at ``/api/openapi.json``)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from ninja import NinjaAPI, Status
from ninja.errors import HttpError
from ninja.security import HttpBearer, django_auth

from attpcdaq.daq import services
from attpcdaq.daq.models import ApiToken, Command, ECCServer, RunMetadata

from .schemas import (
    CommandAccepted,
    CommandOut,
    ConfigIn,
    ConfigOut,
    ConfigsOut,
    Error,
    RunDetailOut,
    StatusOut,
    TransitionIn,
)


class BearerToken(HttpBearer):
    """``Authorization: Bearer TOKEN`` with a token from ``attpcdaq token USER``."""

    def authenticate(self, request, token):
        user = ApiToken.user_for(token)
        if user is not None:
            request.user = user
        return user


api = NinjaAPI(title="attpcdaq", version="1", urls_namespace="api",
               description="Status and control of the AT-TPC's GET electronics.",
               auth=[BearerToken(), django_auth])


def _require_control(request) -> None:
    if not request.auth.has_perm("daq.control_daq"):
        raise HttpError(403, f"{request.auth} may watch but not control the DAQ")


def _queued(command: Command):
    return Status(202, {"command": command.pk})


def _server_out(server: ECCServer) -> dict:
    return {"id": server.pk, "name": server.name, "url": server.url, "enabled": server.enabled,
            "state": server.state, "state_name": server.state_name,
            "transitioning": server.is_transitioning, "transition_name": server.transition_name,
            "online": server.is_online,
            "selected_config": str(server.selected_config) if server.selected_config else None,
            "last_error": server.last_error}


@api.exception_handler(services.ControlError)
def control_error(request, exc: services.ControlError):
    """Answer a refused request with its status and reason."""
    return api.create_response(request, {"detail": str(exc)}, status=exc.status)


@api.get("/status", response=StatusOut, tags=["status"])
def status(request):
    """The overall state, the run, every ECC server and data router."""
    view = services.overview()
    run = None
    if view.run is not None:
        run = {"number": view.run.run_number, "running": view.run.is_open,
               "status": view.run.status, "started": view.run.start_datetime,
               "stopped": view.run.stop_datetime, "title": view.run.title,
               "filed": view.run.filed}
    return {"overall_state": view.overall_state, "overall_state_name": view.overall_state_name,
            "experiment": view.experiment.name if view.experiment else None,
            "engine_alive": view.engine_alive, "run": run,
            "ecc_servers": [_server_out(s) for s in view.servers],
            "data_routers": [{"id": r.pk, "name": r.name, "online": r.is_online,
                              "clean": r.is_clean, "data_rate": r.data_rate}
                             for r in view.routers]}


@api.get("/runs/{run_id}", response={200: RunDetailOut, 404: Error}, tags=["status"])
def run_detail(request, run_id: int):
    """A run, with the configuration files (names and SHA-256) each server had loaded."""
    run = get_object_or_404(RunMetadata.objects.select_related("experiment"), pk=run_id)
    configs = run.configs if isinstance(run.configs, dict) else {}
    return {"id": run.pk, "experiment": run.experiment.name, "number": run.run_number,
            "status": run.status, "title": run.title, "started": run.start_datetime,
            "stopped": run.stop_datetime, "filed": run.filed,
            "configs": {str(k): str(v) for k, v in configs.items()},
            "loaded_configs": [
                {"server": rc.server_name, "config": rc.config,
                 "configured_at": rc.configured_at, "problem": rc.problem,
                 "files": [{"filename": f["filename"], "sha256": f["sha256"],
                            "chars": len(f["text"])} for f in rc.file_list]}
                for rc in run.loaded_configs.all()]}


@api.post("/transition", response={202: CommandAccepted, 400: Error, 409: Error},
          tags=["control"])
def transition(request, body: TransitionIn):
    """Take every enabled server to a state ("running" starts or resumes a run;
    "ready" from Running stops it; "reset" goes one step back). A Start refused for
    configuration drift goes through when sent again with ``"confirm_drift": true``."""
    _require_control(request)
    return _queued(services.request_transition(request.auth, body.target,
                                               confirm_drift=body.confirm_drift))


@api.post("/ecc-servers/{server_id}/transition",
          response={202: CommandAccepted, 400: Error, 404: Error, 409: Error}, tags=["control"])
def server_transition(request, server_id: int, body: TransitionIn):
    """Take one server to a state, for troubleshooting."""
    _require_control(request)
    server = get_object_or_404(ECCServer, pk=server_id)
    return _queued(services.request_transition(request.auth, body.target, server,
                                               confirm_drift=body.confirm_drift))


@api.get("/commands/{command_id}", response={200: CommandOut, 404: Error}, tags=["control"])
def command(request, command_id: int):
    """A command's status and, when it failed, why."""
    cmd = get_object_or_404(Command.objects.select_related("user", "ecc_server"), pk=command_id)
    return {"id": cmd.pk, "description": cmd.describe(), "status": cmd.status,
            "error": cmd.error, "user": cmd.user.get_username() if cmd.user else None,
            "created": cmd.created, "finished": cmd.finished, "run": cmd.run_id}


@api.get("/ecc-servers/{server_id}/configs", response={200: ConfigsOut, 404: Error},
         tags=["configuration"])
def configs(request, server_id: int):
    """The configuration sets the server offers, as the engine last fetched them."""
    server = get_object_or_404(ECCServer, pk=server_id)
    return {"configs": [str(c) for c in server.configs.all()],
            "selected": str(server.selected_config) if server.selected_config else None}


@api.post("/ecc-servers/{server_id}/configs/refresh",
          response={202: CommandAccepted, 404: Error, 409: Error}, tags=["configuration"])
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
