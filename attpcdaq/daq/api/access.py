"""Experiments and API tokens over the API (issue 10, items 4 and 5).

``GET /api/experiments`` (everyone), ``POST /api/experiments``, ``PATCH
/api/experiments/ID`` and ``POST /api/experiments/ID/activate`` (admins);
``GET/POST /api/tokens`` and ``DELETE /api/tokens/ID`` (one's own tokens; admins
anyone's). Bodies are read here rather than by schemas, so that a wrong field is a 400
that names it (a schema would answer 422).
"""

from __future__ import annotations

import json
from datetime import datetime

from ninja import Router, Schema, Status
from ninja.errors import HttpError

from attpcdaq.daq import experiments, roles, tokens
from attpcdaq.daq.models import Experiment

from .schemas import Error

router = Router()


def require_role(request, role: str) -> None:
    """403 with the reason unless the request's user has ``role``."""
    if not roles.has_role(request.auth, role):
        raise HttpError(403, roles.refusal(request.auth, role))


def _body(request, allowed: set[str]) -> dict:
    try:
        fields = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "the body must be a JSON object") from None
    if not isinstance(fields, dict):
        raise HttpError(400, "the body must be a JSON object")
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0][:40]!r}: give "
                        f"{', '.join(sorted(allowed))}")
    return fields


def _body_schema(schema: type[Schema]) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schema.model_json_schema()}}}}


class ExperimentOut(Schema):
    """An experiment: its runs are numbered and filed under its name."""

    id: int
    name: str
    active: bool
    created: datetime
    runs: int


class ExperimentsOut(Schema):
    """Every experiment, newest first, and whether the active one may change now."""

    active: str | None
    switch_refused: str
    experiments: list[ExperimentOut]


class ExperimentIn(Schema):
    """A name (a folder name: no '/', '..', control or reordering characters, at most
    100 characters) and, when creating, whether to make it active at once."""

    name: str
    activate: bool = False


class ExperimentPatchIn(Schema):
    """The new name."""

    name: str


def _experiment_out(experiment: Experiment) -> dict:
    return {"id": experiment.pk, "name": experiment.name, "active": experiment.is_active,
            "created": experiment.created, "runs": experiment.runs.count()}


def _experiment(experiment_id: int) -> Experiment:
    found = None
    if 0 < experiment_id <= 2**63 - 1:
        found = Experiment.objects.filter(pk=experiment_id).first()
    if found is None:
        raise HttpError(404, f"there is no experiment with id {experiment_id}")
    return found


@router.get("/experiments", response=ExperimentsOut, tags=["experiments"])
def experiment_list(request):
    """Every experiment (newest first), the active one, and why it may not change now
    (``switch_refused``, empty when it may)."""
    active = Experiment.active()
    return {"active": active.name if active else None,
            "switch_refused": experiments.switch_refusal(),
            "experiments": [_experiment_out(e) for e in Experiment.objects.all()]}


@router.post("/experiments", response={201: ExperimentOut, 400: Error, 403: Error,
                                       409: Error}, tags=["experiments"],
             openapi_extra=_body_schema(ExperimentIn))
def experiment_create(request):
    """Create an experiment (admins). 400 says what is wrong with the name, 409 when it
    is taken or when ``activate`` is refused (then nothing is created)."""
    require_role(request, roles.ADMIN)
    fields = _body(request, {"name", "activate"})
    if "name" not in fields:
        raise HttpError(400, "give the experiment a name")
    activate = fields.get("activate", False)
    if not isinstance(activate, bool):
        raise HttpError(400, "activate must be true or false")
    return Status(201, _experiment_out(experiments.create(fields["name"], activate=activate)))


@router.patch("/experiments/{experiment_id}",
              response={200: ExperimentOut, 400: Error, 403: Error, 404: Error, 409: Error},
              tags=["experiments"], openapi_extra=_body_schema(ExperimentPatchIn))
def experiment_rename(request, experiment_id: int):
    """Rename an experiment (admins); refused (409) while one of its runs is open."""
    require_role(request, roles.ADMIN)
    fields = _body(request, {"name"})
    experiment = _experiment(experiment_id)
    if "name" not in fields:
        raise HttpError(400, "give the new name")
    return _experiment_out(experiments.rename(experiment, fields["name"]))


@router.post("/experiments/{experiment_id}/activate",
             response={200: ExperimentOut, 403: Error, 404: Error, 409: Error},
             tags=["experiments"])
def experiment_activate(request, experiment_id: int):
    """Make an experiment the active one (admins). 409 unless every enabled ECC server
    is Idle, no transition waits or runs and no run is open."""
    require_role(request, roles.ADMIN)
    return _experiment_out(experiments.switch_to(_experiment(experiment_id)))


class TokenOut(Schema):
    """An API token, as listed: never the token itself."""

    id: int
    name: str
    user: str
    created: datetime
    last_used: datetime | None
    revoked: datetime | None
    active: bool


class TokenCreated(TokenOut):
    """A new token: ``token`` is shown this once and never again."""

    token: str


class TokenIn(Schema):
    """What the token is for; ``user``: whose it is (admins only; default: yours)."""

    name: str
    user: str | None = None


@router.get("/tokens", response={200: list[TokenOut], 403: Error}, tags=["tokens"])
def token_list(request, all: bool = False):
    """Your API tokens, newest first (revoked ones too); ``all=true``: every user's
    (admins)."""
    if all:
        require_role(request, roles.ADMIN)
    return [tokens.record(t) for t in tokens.visible(request.auth, everyone=all)]


@router.post("/tokens", response={201: TokenCreated, 400: Error, 403: Error, 404: Error},
             tags=["tokens"], openapi_extra=_body_schema(TokenIn))
def token_create(request):
    """Make a new API token named ``name``, for you or (admins) for ``user``; the answer
    holds the token, shown this once."""
    fields = _body(request, {"name", "user"})
    row, token = tokens.create(request.auth, fields.get("name"), fields.get("user"))
    return Status(201, {**tokens.record(row), "token": token})


@router.delete("/tokens/{token_id}", response={200: TokenOut, 404: Error}, tags=["tokens"])
def token_revoke(request, token_id: int):
    """Revoke one of your tokens (admins: anyone's); it authenticates nobody from now.
    Revoking a revoked token changes nothing."""
    return tokens.record(tokens.revoke(request.auth, token_id))
