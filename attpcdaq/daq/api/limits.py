"""``PATCH /api/runs/NUMBER/limits``: change or remove a timed run's limits while it runs."""

from __future__ import annotations

import json

from ninja import Router, Schema
from ninja.errors import HttpError

from attpcdaq.daq import limits, roles
from attpcdaq.daq.models import Experiment, RunMetadata

from .schemas import Error

router = Router(tags=["runs"])


class LimitsIn(Schema):
    """The limits to change; a field left out stays as it is, null removes a limit."""

    limit_seconds: float | None = None
    limit_bytes: int | None = None
    limit_events: int | None = None
    auto_restart: bool | None = None


class LimitsOut(Schema):
    """A run's limits after the change, what changed, and what is left of them."""

    run: int
    limit_seconds: float | None
    limit_bytes: int | None
    limit_events: int | None
    auto_restart: bool
    changed: list[str]
    seconds_left: float | None
    bytes_left: int | None
    events_left: int | None
    events_unknown: str


def limits_out(run: RunMetadata, changed: list[str]) -> dict:
    """The answer of the endpoint for ``run``."""
    left = limits.left(run) or limits.Left()
    return {"run": run.run_number, "limit_seconds": run.limit_seconds,
            "limit_bytes": run.limit_bytes, "limit_events": run.limit_events,
            "auto_restart": run.auto_restart, "changed": changed,
            "seconds_left": None if left.seconds is None else round(left.seconds, 1),
            "bytes_left": left.bytes, "events_left": left.events,
            "events_unknown": left.events_unknown}


@router.patch("/runs/{number}/limits",
              response={200: LimitsOut, 400: Error, 403: Error, 404: Error, 409: Error,
                        503: Error},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": LimitsIn.model_json_schema()}}}})
def run_limits(request, number: int):
    """Change or remove the limits of run ``number`` of the active experiment while it
    is open: ``limit_seconds`` (live time), ``limit_bytes``, ``limit_events`` (per CoBo),
    ``auto_restart``. A field left out stays; null removes a limit. 400 names a wrong
    field, 409 when the run is over. Operators only; each change is kept with the run."""
    if not roles.is_operator(request.auth):
        raise HttpError(403, roles.refusal(request.auth, roles.OPERATOR))
    try:
        fields = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "the body must be a JSON object of limits") from None
    if not isinstance(fields, dict) or not fields:
        raise HttpError(400, "name a limit to change: limit_seconds, limit_bytes, "
                        "limit_events or auto_restart")
    experiment = Experiment.active()
    run = None
    if experiment is not None and 0 <= number <= 2**31 - 1:
        run = RunMetadata.objects.filter(experiment=experiment, run_number=number).first()
    if run is None:
        raise HttpError(404, f"{experiment.name if experiment else 'no active experiment'} "
                        f"has no run {number}")
    changed = limits.set_limits(request.auth, run, fields)
    return limits_out(RunMetadata.objects.get(pk=run.pk), changed)
