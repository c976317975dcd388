"""Commands do not outlive their moment: the page and the API see within 3 s that the
engine stopped, refuse commands at once (503), and a command nobody takes up fails
"the engine is not running" instead of running later. Log reads are rate-limited.

A real engine (no ECC servers: only its heartbeat and its command claims matter
here) on the real database; the web side through Django's test client.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from attpcdaq.daq import services
from attpcdaq.daq.models import (
    ApiToken,
    Command,
    ConfigId,
    DataRouter,
    ECCServer,
    Event,
    Experiment,
)
from attpcdaq.engine.supervisor import Engine, EngineSettings

from .conftest import beat

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def model(transactional_db):
    Experiment.objects.create(name="e20009", is_active=True)
    server = ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1", port=9,
                                      state=ECCServer.READY, log_path="/var/log/ecc.log")
    server.selected_config = ConfigId.objects.create(ecc_server=server, describe="cobo0",
                                                     prepare="exp", configure="exp")
    server.save()
    DataRouter.objects.create(name="router0", ip_address="127.0.0.1", port=9,
                              log_path="/var/log/router.log")
    return server


@pytest.fixture
def operator(transactional_db):
    user = User.objects.create_user("alice", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    return user


def bearer(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.issue(user)}"}


@pytest.fixture
async def engine(transactional_db):
    """A real engine with its own loops, stopped (if still running) at the end."""
    engines = []

    async def start() -> Engine:
        started = Engine(EngineSettings())  # the heartbeat interval of the settings
        await started.start()
        engines.append(started)
        return started

    yield start
    for started in engines:
        await started.stop()


async def until(predicate, timeout: float, what: str):
    """Poll ``predicate`` (run in a thread, it may query) until true; its value."""
    check = sync_to_async(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await check():
            return value
        await asyncio.sleep(0.05)
    pytest.fail(f"not within {timeout} s: {what}")


def test_defaults_detect_an_outage_within_3_s(settings):
    # The page polls once a second: the heartbeat must go stale within 2 s of the last
    # beat, and tolerate a late beat or two.
    assert settings.ENGINE_STALE_AFTER + 1 <= 3
    assert settings.ENGINE_STALE_AFTER >= 3 * settings.ENGINE_HEARTBEAT_INTERVAL
    assert settings.COMMAND_EXPIRY >= settings.ENGINE_STALE_AFTER
    assert EngineSettings().heartbeat_interval == settings.ENGINE_HEARTBEAT_INTERVAL


async def test_the_page_and_the_api_say_within_3_s_that_the_engine_stopped(
        engine, model, operator, client):
    await sync_to_async(client.force_login)(operator)
    running = await engine()
    status = await sync_to_async(client.get)("/api/status")
    assert status.json()["engine_alive"] is True and status.json()["engine_message"] == ""
    page = (await sync_to_async(client.get)(reverse("daq:status_fragment"), **HTMX)).text
    assert 'id="engine-banner"' not in page and 'id="controls-disabled-reason"' not in page
    assert 'data-action="go_ready"' in page

    await running.stop()  # like a crash: no last word, the beats just stop
    stopped = time.monotonic()
    body = await until(lambda: (b := client.get("/api/status").json())["engine_alive"] is False
                       and b, 5, "the API says the engine is not running")
    api_took = time.monotonic() - stopped
    page = await until(lambda: 'id="engine-banner"' in (
        p := client.get(reverse("daq:status_fragment"), **HTMX).text) and p, 5,
        "the page says the engine is not running")
    page_took = time.monotonic() - stopped
    assert api_took <= 3 and page_took <= 3, (api_took, page_took)
    assert body["engine_message"].startswith("the engine is not running: its last heartbeat")
    assert body["engine_last_beat"] is not None

    # Every system control is disabled, and says why.
    assert "The engine is not running." in page
    assert "Controls are disabled: the engine is not running" in page
    controls = page.split('id="system-controls"', 1)[1].split("</section>", 1)[0]
    assert controls.count("disabled title=\"The engine is not running") == controls.count(
        "data-action=")


async def test_commands_are_refused_at_once_while_the_engine_is_not_running(
        model, operator, client):
    # Never ran: nothing is queued, the answer says why (503, Retry-After).
    await sync_to_async(client.force_login)(operator)
    response = await sync_to_async(client.post)("/api/transition", {"target": "idle"},
                                                content_type="application/json")
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.json()["detail"].startswith(
        "the engine is not running: it has never run on this database")

    # Stopped long ago: the same, naming its last beat, on the page and the API.
    await sync_to_async(beat)(beat=timezone.now() - timedelta(hours=8), hostname="daq-1")
    toast = await sync_to_async(client.post)(reverse("daq:system_transition"),
                                             {"action": "start"}, **HTMX)
    assert toast.status_code == 503 and "its last heartbeat on daq-1 was at" in toast.text
    for url in (f"/api/ecc-servers/{model.pk}/configs/refresh",
                f"/api/ecc-servers/{model.pk}/transition", f"/api/ecc-servers/{model.pk}/log"):
        response = await sync_to_async(client.post)(url, {"target": "idle"},
                                                    content_type="application/json")
        assert response.status_code == 503, url
    log_page = await sync_to_async(client.post)(
        reverse("daq:eccserver_log_request", args=[model.pk]), **HTMX)
    assert log_page.status_code == 503 and "engine is not running" in log_page.text
    assert await sync_to_async(Command.objects.count)() == 0


async def test_a_command_nobody_takes_up_fails_and_says_so(engine, model, operator, client,
                                                           settings):
    settings.COMMAND_EXPIRY = 2.0
    await sync_to_async(client.force_login)(operator)
    running = await engine()
    await running.stop()
    # Asked in the moment the heartbeat still looks fresh: accepted...
    response = await sync_to_async(client.post)("/api/transition", {"target": "idle"},
                                                content_type="application/json")
    assert response.status_code == 202
    pk = response.json()["command"]
    asked = time.monotonic()
    # ...and then failed, saying so, once nobody took it up for COMMAND_EXPIRY (the API
    # and the page do it while the engine is down).
    body = await until(lambda: (b := client.get(f"/api/commands/{pk}").json())["status"]
                       == "failed" and b, 10, "the command fails")
    assert time.monotonic() - asked >= settings.COMMAND_EXPIRY - 0.5
    assert body["error"].startswith("the engine is not running: nobody took this command up")
    page = (await sync_to_async(client.get)(reverse("daq:status_fragment"), **HTMX)).text
    assert "the engine is not running: nobody took this command up" in page
    events = await sync_to_async(list)(Event.objects.filter(message__contains="was not run"))
    assert len(events) == 1 and events[0].level == "warning"


async def test_an_engine_that_comes_back_refuses_what_was_asked_while_it_was_down(
        engine, model, operator):
    # A command accepted just before the engine died, and left pending all night: no
    # page was open to expire it. The engine that starts in the morning refuses it when
    # it claims it; what it is asked now, it runs.
    await sync_to_async(beat)()
    night = await sync_to_async(services.request_config_refresh)(operator, model)
    await sync_to_async(Command.objects.filter(pk=night.pk).update)(
        created=timezone.now() - timedelta(hours=8))
    await engine()
    refused = await until(lambda: Command.objects.filter(pk=night.pk, status="failed").first(),
                          10, "the night's command is refused")
    assert refused.error.startswith("the engine is not running") and refused.started is None
    now = await sync_to_async(services.request_config_refresh)(operator, model)
    done = await until(lambda: Command.objects.filter(pk=now.pk).exclude(
        status__in=Command.ACTIVE).first(), 10, "the morning's command is run")
    assert done.started is not None  # taken up (it fails: no server listens on port 9)
    assert not done.error.startswith("the engine is not running")


async def test_a_command_waiting_its_turn_while_the_engine_runs_is_not_expired(
        engine, model, operator, settings):
    # Asked while the engine beats, it waits as long as it must: only what was asked
    # while no engine ran expires.
    settings.COMMAND_EXPIRY = 0.5
    running = await engine()
    since = running.db.alive_since
    assert since is not None
    command = await sync_to_async(services.request_config_refresh)(operator, model)
    assert command.created >= since
    done = await until(lambda: Command.objects.filter(pk=command.pk).exclude(
        status__in=Command.ACTIVE).first(), 10, "the command is run")
    assert done.started is not None and not done.error.startswith("the engine is not running")


def test_log_reads_are_limited_per_user(model, operator, client, settings, engine_beating):
    settings.LOG_READS_PER_SECOND = 2
    other = User.objects.create_user("bob", password="pw")
    router = DataRouter.objects.get()
    urls = [f"/api/ecc-servers/{model.pk}/log", f"/api/data-routers/{router.pk}/log"]
    token = bearer(operator)
    started = time.monotonic()
    answers = [client.post(urls[n % 2], **token) for n in range(3)]
    assert time.monotonic() - started < 1, "the machine is too slow for this test"
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2]["Retry-After"] == "1"
    assert answers[2].json()["detail"] == ("too many log reads: alice may ask for 2 a second; "
                                           "wait a moment and ask again")
    # Another user is not held back; the page says the same as the API.
    assert client.post(urls[0], **bearer(other)).status_code == 202
    client.force_login(operator)
    page = client.post(reverse("daq:datarouter_log_request", args=[router.pk]), **HTMX)
    assert page.status_code == 429 and "too many log reads: alice may ask for 2" in page.text
    assert Command.objects.filter(user=operator).count() == 2
    # A second later, the next one goes through.
    deadline = time.monotonic() + 5
    while (answer := client.post(urls[0], **token)).status_code == 429:
        assert time.monotonic() < deadline, "still refused after 5 s"
        time.sleep(0.05)
    assert answer.status_code == 202
