"""Exclude, include and abort (services, API, status page), transition timing, and the
busy check that no sick board can use to lock the controls: Stop always possible.

Through Django's test client against the real database; the engine side of these
commands is tested in tests/engine.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from attpcdaq.daq import overview, services
from attpcdaq.daq.models import (
    ApiToken,
    Command,
    ConfigId,
    DataRouter,
    ECCServer,
    EngineHeartbeat,
    Experiment,
    RunMetadata,
)
from attpcdaq.daq.timing import transition_timing
from attpcdaq.get import TransitionCode

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
JSON = "application/json"
FRIENDLY = "AsAd 2 trips: O'Brien says \"no\" <b>☢</b> 日本語 עברית ok"


@pytest.fixture
def model(settings):
    # No engine runs here: its one beat counts as fresh for the length of a test.
    settings.ENGINE_STALE_AFTER = 600
    now = timezone.now()
    EngineHeartbeat.objects.create(pk=1, beat=now, started=now, pid=1, hostname="here")
    experiment = Experiment.objects.create(name="e20009", is_active=True)
    servers = []
    for n in range(3):
        server = ECCServer.objects.create(name=f"CoBo[{n}]", ip_address="127.0.0.1",
                                          port=9000 + n, is_online=True)
        server.selected_config = ConfigId.objects.create(ecc_server=server, describe=f"cobo{n}",
                                                         prepare="exp", configure="exp")
        server.save()
        servers.append(server)
    router = DataRouter.objects.create(name="router0", ip_address="127.0.0.1", port=46005,
                                       is_online=True)
    return experiment, servers, router


@pytest.fixture
def operator():
    user = User.objects.create_user("alice", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    return user


@pytest.fixture
def viewer():
    return User.objects.create_user("bob", password="pw")


def bearer(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.issue(user)}"}


def hang(server: ECCServer, code=TransitionCode.STARTING, seconds=15.0, times=None, **more):
    """Mark ``server`` as running, by the engine, a transition begun ``seconds`` ago."""
    fields = {"is_transitioning": True, "transition": code.value,
              "transition_started": timezone.now() - timedelta(seconds=seconds),
              "transition_times": times if times is not None else {"Start": [1.0, 2.0, 3.0]},
              **more}
    ECCServer.objects.filter(pk=server.pk).update(**fields)
    server.refresh_from_db()
    return server


def open_start(experiment, user=None) -> Command:
    """A run starting and its Start command running (the engine waits for a board)."""
    RunMetadata.objects.create(experiment=experiment, run_number=4, status="starting")
    return Command.objects.create(kind="transition", target=ECCServer.RUNNING, user=user,
                                  label="Start a run", status="running")


# Exclude and include: services and API ---------------------------------------------------

def test_exclude_and_include_a_server_through_the_api(client, model, operator):
    experiment, servers, router = model
    response = client.post(f"/api/ecc-servers/{servers[1].pk}/exclude", {"reason": FRIENDLY},
                           content_type=JSON, **bearer(operator))
    assert response.status_code == 202, response.json()
    command = Command.objects.get(pk=response.json()["command"])
    assert (command.kind, command.ecc_server, command.data_router, command.user) == (
        "exclude", servers[1], None, operator)
    assert command.reason == FRIENDLY  # quotes, markup and any script kept as typed
    # A second exclude while the first waits: refused, naming it.
    again = client.post(f"/api/ecc-servers/{servers[1].pk}/exclude", {"reason": "again"},
                        content_type=JSON, **bearer(operator))
    assert again.status_code == 409 and f"command {command.pk}" in again.json()["detail"]
    # The engine did it; now it can only be included, with or without a reason.
    Command.objects.filter(pk=command.pk).update(status="done")
    ECCServer.objects.filter(pk=servers[1].pk).update(excluded=True, excluded_reason=FRIENDLY,
                                                      excluded_at=timezone.now())
    refused = client.post(f"/api/ecc-servers/{servers[1].pk}/exclude", {"reason": "x"},
                          content_type=JSON, **bearer(operator))
    assert refused.status_code == 409
    assert "already excluded" in refused.json()["detail"] and "O'Brien" in refused.json()[
        "detail"]
    response = client.post(f"/api/ecc-servers/{servers[1].pk}/include", {},
                           content_type=JSON, **bearer(operator))
    assert response.status_code == 202
    assert Command.objects.get(pk=response.json()["command"]).kind == "include"


def test_including_what_is_not_excluded_is_409(client, model, operator):
    experiment, servers, router = model
    for url in (f"/api/ecc-servers/{servers[0].pk}/include",
                f"/api/data-routers/{router.pk}/include"):
        response = client.post(url, {"reason": "back"}, content_type=JSON, **bearer(operator))
        assert response.status_code == 409 and "is not excluded" in response.json()["detail"]
    assert Command.objects.count() == 0


def test_exclude_and_include_a_router_through_the_api(client, model, operator):
    experiment, servers, router = model
    response = client.post(f"/api/data-routers/{router.pk}/exclude",
                           {"reason": "disk full on mac-mini-3"}, content_type=JSON,
                           **bearer(operator))
    assert response.status_code == 202
    command = Command.objects.get()
    assert (command.kind, command.data_router, command.ecc_server, command.reason) == (
        "exclude", router, None, "disk full on mac-mini-3")
    assert command.describe() == "Take out of the system (router0)"


@pytest.mark.parametrize(("reason", "words"), [
    ("", "a reason is required"),
    ("   \t  ", "a reason is required"),
    ("x" * 501, "501 characters long: at most 500"),
    ("x" * 100_000, "100,000 characters long"),
    ("bell\x07", "U+0007"),
    ("two\nlines", "U+000A"),
    ("escape \x1b[31m red", "U+001B"),
    ("safe\u202etxt.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("isolate \u2066x\u2069", "U+2066"),
    ("nul \x00 byte", "U+0000"),
])
def test_hostile_reasons_are_400_with_a_clear_message(client, model, operator, reason, words):
    experiment, servers, router = model
    for url in (f"/api/ecc-servers/{servers[0].pk}/exclude",
                f"/api/data-routers/{router.pk}/exclude"):
        response = client.post(url, {"reason": reason}, content_type=JSON, **bearer(operator))
        assert response.status_code == 400, (url, response.content)
        assert words in response.json()["detail"]
    assert Command.objects.count() == 0


def test_a_body_of_megabytes_or_a_reason_not_text_is_refused_saying_so(client, model,
                                                                      operator):
    experiment, servers, router = model
    url = f"/api/ecc-servers/{servers[0].pk}/exclude"
    response = client.post(url, {"reason": "x" * 3_000_000}, content_type=JSON,
                           **bearer(operator))
    assert response.status_code == 413 and "larger than" in response.json()["detail"]
    for reason in (5, None, ["a"], {"x": 1}):
        response = client.post(url, {"reason": reason}, content_type=JSON, **bearer(operator))
        assert response.status_code == 422, reason
    assert Command.objects.count() == 0


def test_a_long_reason_up_to_the_limit_is_kept_whole(model, operator):
    experiment, servers, router = model
    reason = "é" * services.MAX_REASON
    command = services.request_exclude(operator, server=servers[0], reason=f"  {reason}  ")
    assert command.reason == reason  # stripped, not cut


def test_name_exactly_one_thing_to_exclude(model, operator):
    experiment, servers, router = model
    with pytest.raises(services.ControlError, match="either an ECC server or a data router"):
        services.request_exclude(operator, reason="x")
    with pytest.raises(services.ControlError, match="either"):
        services.request_exclude(operator, server=servers[0], router=router, reason="x")


def test_exclude_include_and_abort_are_accepted_while_a_transition_runs(client, model,
                                                                       operator):
    experiment, servers, router = model
    open_start(experiment, operator)
    hang(servers[1])
    headers = bearer(operator)
    # A transition is refused now (it would wait behind the running Start) ...
    assert client.post("/api/transition", {"target": "paused"}, content_type=JSON,
                       **headers).status_code == 409
    # ... but these are quick commands, run beside it.
    for url in (f"/api/ecc-servers/{servers[2].pk}/exclude",
                f"/api/data-routers/{router.pk}/exclude",
                f"/api/ecc-servers/{servers[1].pk}/abort"):
        response = client.post(url, {"reason": "hung board"}, content_type=JSON, **headers)
        assert response.status_code == 202, (url, response.json())
    assert set(Command.objects.filter(status="pending").values_list("kind", flat=True)) == {
        "exclude", "abort"}
    # And they do not block what comes next either: a pending Exclude is no transition.
    Command.objects.filter(kind="transition").update(status="done")
    RunMetadata.objects.update(status="running")
    assert client.post("/api/transition", {"target": "paused"}, content_type=JSON,
                       **headers).status_code == 202
    others = tuple(k for k in Command.Kind if k not in (Command.Kind.TRANSITION,
                                                        Command.Kind.RESET))
    assert others == services.QUICK_KINDS


def test_the_engine_runs_the_same_kinds_beside_transitions():
    from attpcdaq.engine.database import QUICK

    assert set(QUICK) == set(services.QUICK_KINDS)


def test_requests_are_refused_while_the_engine_is_not_running(client, model, operator):
    experiment, servers, router = model
    hang(servers[0])
    EngineHeartbeat.objects.update(beat=timezone.now() - timedelta(hours=1))
    for url in (f"/api/ecc-servers/{servers[1].pk}/exclude",
                f"/api/data-routers/{router.pk}/exclude",
                f"/api/ecc-servers/{servers[0].pk}/abort"):
        response = client.post(url, {"reason": "x"}, content_type=JSON, **bearer(operator))
        assert response.status_code == 503, url
        assert "engine is not running" in response.json()["detail"]
    assert Command.objects.count() == 0


def test_viewers_may_not_exclude_include_or_abort(client, model, viewer):
    experiment, servers, router = model
    hang(servers[0])
    headers = bearer(viewer)
    for url in (f"/api/ecc-servers/{servers[0].pk}/abort",
                f"/api/ecc-servers/{servers[0].pk}/exclude",
                f"/api/ecc-servers/{servers[0].pk}/include",
                f"/api/data-routers/{router.pk}/exclude",
                f"/api/data-routers/{router.pk}/include"):
        response = client.post(url, {"reason": "x"}, content_type=JSON, **headers)
        assert response.status_code == 403, url
    assert Command.objects.count() == 0


@pytest.mark.parametrize("what", ["ecc-servers/999/exclude", "ecc-servers/999/include",
                                  "ecc-servers/999/abort", "data-routers/999/exclude",
                                  "data-routers/999/include"])
def test_unknown_hardware_is_404(client, model, operator, what):
    response = client.post(f"/api/{what}", {"reason": "x"}, content_type=JSON,
                           **bearer(operator))
    assert response.status_code == 404
    assert Command.objects.count() == 0


# Abort -------------------------------------------------------------------------------------

def test_abort_only_while_the_engine_runs_a_transition_on_the_server(client, model, operator):
    experiment, servers, router = model
    url = f"/api/ecc-servers/{servers[1].pk}/abort"
    headers = bearer(operator)
    response = client.post(url, {}, content_type=JSON, **headers)
    assert response.status_code == 409 and "no transition running" in response.json()["detail"]
    # A transition the server reports but the engine does not run (someone else's, or
    # one given up on) is not the engine's to abandon.
    ECCServer.objects.filter(pk=servers[1].pk).update(is_transitioning=True, transition=4)
    assert client.post(url, {}, content_type=JSON, **headers).status_code == 409
    hang(servers[1])
    response = client.post(url, {"reason": "«stuck» for 40 s"}, content_type=JSON, **headers)
    assert response.status_code == 202
    command = Command.objects.get(pk=response.json()["command"])
    assert (command.kind, command.ecc_server, command.reason, command.user) == (
        "abort", servers[1], "«stuck» for 40 s", operator)
    assert command.describe() == "Abort Start (CoBo[1])"
    again = client.post(url, {}, content_type=JSON, **headers)
    assert again.status_code == 409 and f"command {command.pk}" in again.json()["detail"]


def test_abort_with_a_hostile_reason_is_400(client, model, operator):
    experiment, servers, router = model
    hang(servers[0])
    response = client.post(f"/api/ecc-servers/{servers[0].pk}/abort",
                           {"reason": "\u202egnp.exe"}, content_type=JSON, **bearer(operator))
    assert response.status_code == 400 and "U+202E" in response.json()["detail"]
    assert Command.objects.count() == 0


# Stop is always possible -----------------------------------------------------------------

def test_stop_is_accepted_while_a_start_hangs_and_only_once(client, model, operator):
    experiment, servers, router = model
    start = open_start(experiment, operator)
    hang(servers[1])
    headers = bearer(operator)
    response = client.post("/api/transition", {"target": "ready"}, content_type=JSON,
                           **headers)
    assert response.status_code == 202, response.json()
    stop = Command.objects.get(pk=response.json()["command"])
    assert (stop.label, stop.target, stop.status) == ("Stop the run", ECCServer.READY,
                                                     "pending")
    assert Command.objects.get(pk=start.pk).status == "running"  # the engine preempts it
    # A second Stop waits for nothing: one is on its way.
    again = client.post("/api/transition", {"target": "ready"}, content_type=JSON, **headers)
    assert again.status_code == 409 and f"command {stop.pk}" in again.json()["detail"]
    # Other commands still wait their turn.
    for target in ("idle", "paused", "running", "reset"):
        assert client.post("/api/transition", {"target": target}, content_type=JSON,
                           **headers).status_code == 409, target
    assert services.active_stop() == stop


def test_stop_is_accepted_while_a_per_server_transition_runs(model, operator):
    experiment, servers, router = model
    RunMetadata.objects.create(experiment=experiment, run_number=4, status="running")
    Command.objects.create(kind="transition", target=ECCServer.READY, ecc_server=servers[0],
                           status="running")
    assert services.request_transition(operator, "ready").label == "Stop the run"


def test_without_an_open_run_go_to_ready_still_waits(model, operator):
    experiment, servers, router = model
    Command.objects.create(kind="transition", target=ECCServer.DESCRIBED, status="running")
    with pytest.raises(services.Conflict, match="busy"):
        services.request_transition(operator, "ready")


# Timing and the busy check ---------------------------------------------------------------

@pytest.mark.parametrize(("elapsed", "times", "usual", "slow"), [
    (15, [1.0, 2.0, 30.0], 2.0, True),     # 3 x 2 s = 6 s, and past 10 s
    (9.5, [1.0, 2.0, 3.0], 2.0, False),    # past 3 x usual, but not 10 s yet
    (40, [20.0, 20.0], 20.0, False),       # Configure-like: 40 s is 2 x usual
    (61, [20.0, 20.0], 20.0, True),
    (29, [], None, False),                 # no history: 30 s
    (31, [], None, True),
    (31, "not a list", None, True),        # whatever is stored, the page does not break
    (31, [True, "x", -1, None], None, True),
])
def test_slow_is_three_times_usual_and_at_least_ten_seconds(model, elapsed, times, usual,
                                                            slow):
    experiment, servers, router = model
    server = hang(servers[0], seconds=elapsed, times={"Start": times, "Stop": [99.0]})
    timing = transition_timing(server)
    assert timing.operation == "Start"
    assert timing.usual == usual and timing.slow is slow
    assert elapsed <= timing.elapsed < elapsed + 5


def test_any_transitioning_counts_only_the_engines_transitions_on_live_servers(model):
    experiment, servers, router = model

    def busy():
        return overview.read().any_transitioning

    assert not busy()
    ECCServer.objects.update(is_transitioning=True, transition=4)  # polled: not the engine's
    assert not busy()
    hang(servers[0], is_online=False)
    hang(servers[1], enabled=False)
    hang(servers[2], excluded=True)
    assert not busy()
    ECCServer.objects.filter(pk=servers[2].pk).update(excluded=False)
    assert busy()


def test_status_reports_exclusion_and_timing(client, model, viewer):
    experiment, servers, router = model
    hang(servers[1], seconds=15)
    hang(servers[2], seconds=3, code=TransitionCode.CONFIGURING, times={"Configure": [2.5]})
    ECCServer.objects.filter(pk=servers[0].pk).update(excluded=True, excluded_reason=FRIENDLY)
    DataRouter.objects.update(excluded=True, excluded_reason="disk full")
    body = client.get("/api/status", **bearer(viewer)).json()
    first, second, third = body["ecc_servers"]
    assert (first["excluded"], first["excluded_reason"]) == (True, FRIENDLY)
    assert (first["transition_elapsed"], first["usual_transition_seconds"], first["slow"]) == (
        None, None, False)
    assert second["excluded"] is False and second["excluded_reason"] == ""
    assert 15 <= second["transition_elapsed"] < 20
    assert (second["usual_transition_seconds"], second["slow"]) == (2.0, True)
    assert 3 <= third["transition_elapsed"] < 8
    assert (third["usual_transition_seconds"], third["slow"]) == (2.5, False)
    assert body["data_routers"][0]["excluded"] is True
    assert body["data_routers"][0]["excluded_reason"] == "disk full"
    # The excluded server does not count in the overall state.
    ECCServer.objects.filter(pk=servers[0].pk).update(state=ECCServer.READY)
    assert client.get("/api/status", **bearer(viewer)).json()["overall_state_name"] == "Idle"


def test_openapi_documents_exclude_include_abort(client):
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/ecc-servers/{server_id}/abort", "/api/ecc-servers/{server_id}/exclude",
                 "/api/ecc-servers/{server_id}/include", "/api/data-routers/{router_id}/exclude",
                 "/api/data-routers/{router_id}/include"):
        assert {"202", "400", "409"} <= set(paths[path]["post"]["responses"]), path
        assert paths[path]["post"]["requestBody"]
    components = schema["components"]["schemas"]
    assert {"excluded", "excluded_reason", "transition_elapsed", "usual_transition_seconds",
            "slow"} <= set(components["EccServerOut"]["properties"])
    assert {"excluded", "excluded_reason"} <= set(components["DataRouterOut"]["properties"])
    assert "reason" in components["ReasonIn"]["properties"]


# The status page -------------------------------------------------------------------------

def page_of(client, user, fragment=False) -> str:
    client.force_login(user)
    url = reverse("daq:status_fragment") if fragment else "/"
    return client.get(url, **(HTMX if fragment else {})).content.decode()


def row_of(page: str, prefix: str, pk: int) -> str:
    return page.split(f'id="{prefix}-{pk}"')[1].split("</tr>")[0]


def enabled_actions(page: str) -> set[str]:
    tags = re.findall(r'<button[^>]*data-action="\w+"[^>]*>', page)
    return {re.search(r'data-action="(\w+)"', tag).group(1) for tag in tags
            if not re.search(r"\sdisabled(?=[\s>])", tag)}


def test_a_slow_transition_shows_elapsed_usual_and_abort(client, model, operator):
    experiment, servers, router = model
    hang(servers[1], seconds=14)
    hang(servers[2], seconds=4, times={"Start": [2.0]})
    page = page_of(client, operator)
    slow, normal = row_of(page, "eccserver", servers[1].pk), row_of(page, "eccserver",
                                                                      servers[2].pk)
    assert re.search(r"Starting… <span[^>]*data-elapsed-since=\"\d+\">1[45] s</span>"
                     r" \(usually 2 s\)", slow)
    assert "slow: maybe hung" in slow and ">Abort CoBo[1]'s Start</button>" in slow
    assert re.search(r"\(usually 2 s\)", normal) and "slow: maybe hung" not in normal
    assert "Abort" not in normal
    # The fragment leaves the seconds to the page's script: the row changes only when
    # the transition does, so a button in it is not replaced under a click.
    fragment = row_of(page_of(client, operator, fragment=True), "eccserver", servers[1].pk)
    assert re.search(r'data-elapsed-since="\d+"></span> \(usually 2 s\)', fragment)
    # Abort from the page.
    response = client.post(reverse("daq:eccserver_abort", args=[servers[1].pk]),
                           {"reason": "hung since 21:04"}, **HTMX)
    assert response.status_code == 202 and "Queued: Abort Start on CoBo[1]" in (
        response.content.decode())
    assert Command.objects.get().reason == "hung since 21:04"


def test_viewers_see_slowness_and_exclusion_but_no_buttons(client, model, viewer):
    experiment, servers, router = model
    hang(servers[1], seconds=30)
    ECCServer.objects.filter(pk=servers[0].pk).update(excluded=True, excluded_reason=FRIENDLY)
    page = page_of(client, viewer)
    assert "slow: maybe hung" in page
    assert "data-reason-dialog" not in page and "reason-dialog" not in page
    assert "O&#x27;Brien says &quot;no&quot; &lt;b&gt;☢&lt;/b&gt;" in row_of(
        page, "eccserver", servers[0].pk)
    for name, pk in [("eccserver_exclude", servers[2].pk), ("eccserver_abort", servers[1].pk),
                     ("datarouter_exclude", router.pk)]:
        response = client.post(reverse(f"daq:{name}", args=[pk]), {"reason": "x"}, **HTMX)
        assert response.status_code == 403
    assert Command.objects.count() == 0


def test_exclude_and_include_from_the_page(client, model, operator):
    experiment, servers, router = model
    page = page_of(client, operator)
    assert 'id="reason-dialog"' in page and "daq/reason.js" in page
    assert f'data-url="/ecc-servers/{servers[0].pk}/exclude/"' in row_of(
        page, "eccserver", servers[0].pk)
    assert f'data-url="/data-routers/{router.pk}/exclude/"' in row_of(
        page, "datarouter", router.pk)
    response = client.post(reverse("daq:eccserver_exclude", args=[servers[0].pk]),
                           {"reason": FRIENDLY}, **HTMX)
    assert response.status_code == 202, response.content
    assert "Queued: exclude CoBo[0]" in response.content.decode()
    assert "<b>" not in response.content.decode()  # escaped in the toast
    command = Command.objects.get()
    assert (command.kind, command.ecc_server, command.reason) == ("exclude", servers[0],
                                                                 FRIENDLY)
    # As the engine does it: the row is greyed, says why and since when, offers Include.
    command.status = "done"
    command.save()
    ECCServer.objects.filter(pk=servers[0].pk).update(excluded=True, excluded_reason=FRIENDLY,
                                                      excluded_at=timezone.now())
    DataRouter.objects.update(excluded=True, excluded_reason="its disk is full")
    page = page_of(client, operator)
    row = row_of(page, "eccserver", servers[0].pk)
    assert 'class=" excluded" data-excluded' in page.split(
        f'id="eccserver-{servers[0].pk}"')[1].split(">")[0] + ">"
    assert 'data-role="excluded"' in row and "since " in row
    assert "O&#x27;Brien" in row and 'data-role="include"' in row
    assert 'data-role="exclude"' not in row
    router_row = row_of(page, "datarouter", router.pk)
    assert "its disk is full" in router_row and 'data-role="include"' in router_row
    response = client.post(reverse("daq:datarouter_include", args=[router.pk]), {}, **HTMX)
    assert response.status_code == 202
    assert Command.objects.filter(kind="include", data_router=router).exists()


@pytest.mark.parametrize(("reason", "words"), [
    ("", "a reason is required"), ("x" * 600, "at most 500"),
    ("a\u202eb", "RIGHT-TO-LEFT OVERRIDE"), ("nul\x00", "NUL")])
def test_hostile_reasons_on_the_page_are_refused_saying_why(client, model, operator, reason,
                                                            words):
    experiment, servers, router = model
    client.force_login(operator)
    response = client.post(reverse("daq:eccserver_exclude", args=[servers[0].pk]),
                           {"reason": reason}, **HTMX)
    assert response.status_code == 400 and response["X-Toast"] == "1"
    assert words in response.content.decode()
    assert Command.objects.count() == 0


@pytest.mark.parametrize("pk", ["abc", "99999", "1 OR 1=1"])
def test_bad_ids_are_404_on_the_page(client, model, operator, pk):
    client.force_login(operator)
    for name in ("eccserver_exclude", "eccserver_include", "eccserver_abort",
                 "datarouter_exclude", "datarouter_include"):
        response = client.post(reverse(f"daq:{name}", args=[pk]), {"reason": "x"}, **HTMX)
        assert response.status_code == 404, name
    assert Command.objects.count() == 0


def test_stop_stays_enabled_while_a_start_hangs(client, model, operator):
    experiment, servers, router = model
    open_start(experiment, operator)
    ECCServer.objects.update(state=ECCServer.RUNNING)
    hang(servers[1], seconds=40, state=ECCServer.READY)
    page = page_of(client, operator, fragment=True)
    assert enabled_actions(page) == {"stop"}  # busy: everything else waits
    response = client.post(reverse("daq:system_transition"), {"action": "stop"}, **HTMX)
    assert response.status_code == 202, response.content
    assert Command.objects.filter(label="Stop the run", status="pending").exists()
    assert enabled_actions(page_of(client, operator, fragment=True)) == set()  # one Stop


@pytest.mark.parametrize("sick", [{"is_online": False}, {"enabled": False},
                                  {"excluded": True}, {"transition_started": None}])
def test_a_sick_server_does_not_hold_the_controls(client, model, operator, sick):
    experiment, servers, router = model
    ECCServer.objects.update(state=ECCServer.READY)
    hang(servers[1], seconds=300, **sick)  # hung, crashed, disabled or excluded
    assert enabled_actions(page_of(client, operator, fragment=True)) == {"start", "reset"}


def test_excluded_servers_do_not_count_in_the_system_controls(client, model, operator):
    experiment, servers, router = model
    ECCServer.objects.update(state=ECCServer.READY)
    ECCServer.objects.filter(pk=servers[0].pk).update(state=ECCServer.IDLE, excluded=True)
    page = page_of(client, operator, fragment=True)
    assert enabled_actions(page) == {"start", "reset"}
    assert 'id="overall-state">Ready<' in page
    response = client.post(reverse("daq:system_transition"), {"action": "start"}, **HTMX)
    assert response.status_code == 202, response.content
