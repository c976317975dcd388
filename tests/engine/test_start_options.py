"""A Start with run details through services yields a run with those details, against
the emulators."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from attpcdaq.daq import runmeta, services
from attpcdaq.daq.models import Command, RunMetadata

from .conftest import wait_for
from .test_engine import run_command

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_start_with_options_gives_its_run_those_details(system):
    await system(2)
    assert (await run_command("ready")).status == "done"
    user = await sync_to_async(User.objects.create_user)("op")
    options = {"title": "⁴⁸Ca → ⁹Be, “production”", "run_class": "production",
               "comment": "target 2\nthick", "limit_seconds": "3600",
               "limit_events": 1e9, "limit_bytes": None, "auto_restart": True}
    command = await sync_to_async(services.request_transition)(user, "running",
                                                               options=options)
    done = await wait_for(lambda: Command.objects.filter(
        pk=command.pk, status__in=["done", "failed"]).first(), 20, "the Start")
    assert (done.status, done.error) == ("done", "")
    run = await sync_to_async(lambda: RunMetadata.objects.select_related(
        "run_class", "started_by").get(status="running"))()
    assert (run.title, run.run_class.name, run.comment, run.limit_seconds, run.limit_events,
            run.limit_bytes, run.auto_restart, run.started_by) == (
        "⁴⁸Ca → ⁹Be, “production”", "Production", "target 2\nthick", 3600.0, 10**9, None,
        True, user)
    # The next Start's dialog offers them again (but not the limits).
    prefill = await sync_to_async(lambda: runmeta.prefill(run.experiment))()
    assert (prefill["title"], prefill["run_class"], prefill["limit_seconds"]) == (
        run.title, "Production", None)
    stop = await run_command("ready")
    assert stop.status == "done"
    stopped = await sync_to_async(RunMetadata.objects.select_related("stopped_by").get)(
        pk=run.pk)
    assert stopped.status == "stopped" and stopped.stop_datetime is not None
