"""The JSON API: every endpoint, token and session authentication, refusals."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from attpcdaq.daq.models import ApiToken, Command, ConfigId, ECCServer, Experiment, RunMetadata

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(engine_beating):
    experiment = Experiment.objects.create(name="e20009", is_active=True)
    servers = []
    for n in range(2):
        server = ECCServer.objects.create(name=f"CoBo[{n}]", ip_address="127.0.0.1",
                                          port=9000 + n, is_online=True)
        for describe in (f"cobo{n}", "pulser"):
            ConfigId.objects.create(ecc_server=server, describe=describe, prepare="exp",
                                    configure="exp")
        servers.append(server)
    return experiment, servers


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


def test_status_needs_authentication(client, model):
    assert client.get("/api/status").status_code == 401
    assert client.get("/api/status", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_status_with_a_token(client, model, viewer):
    experiment, servers = model
    ECCServer.objects.filter(pk=servers[1].pk).update(state=ECCServer.READY,
                                                      last_error="CoBo 1 said no")
    RunMetadata.objects.create(experiment=experiment, run_number=7, status="running",
                               title="beam on target")
    body = client.get("/api/status", **bearer(viewer)).json()
    assert body["overall_state"] is None and body["overall_state_name"] == "Mixed"
    assert body["run"]["number"] == 7 and body["run"]["running"] is True
    assert body["run"]["title"] == "beam on target"
    assert [(s["name"], s["state_name"], s["url"]) for s in body["ecc_servers"]] == [
        ("CoBo[0]", "Idle", "http://127.0.0.1:9000/"), ("CoBo[1]", "Ready",
                                                       "http://127.0.0.1:9001/")]
    assert body["ecc_servers"][1]["last_error"] == "CoBo 1 said no"
    assert body["data_routers"] == []


def test_status_with_a_session(client, model, viewer):
    client.force_login(viewer)
    body = client.get("/api/status").json()
    assert body["overall_state"] == ECCServer.IDLE and body["overall_state_name"] == "Idle"


def test_transition_queues_a_command(client, model, operator):
    response = client.post("/api/transition", {"target": "ready"},
                           content_type="application/json", **bearer(operator))
    assert response.status_code == 202
    command = Command.objects.get(pk=response.json()["command"])
    assert (command.kind, command.target, command.ecc_server, command.user) == (
        "transition", ECCServer.READY, None, operator)
    # Its status, through the API.
    body = client.get(f"/api/commands/{command.pk}", **bearer(operator)).json()
    assert (body["status"], body["error"], body["user"]) == ("pending", "", "alice")
    Command.objects.filter(pk=command.pk).update(status="failed", error="CoBo[1]: refused")
    body = client.get(f"/api/commands/{command.pk}", **bearer(operator)).json()
    assert (body["status"], body["error"]) == ("failed", "CoBo[1]: refused")


def test_a_second_system_command_conflicts(client, model, operator):
    headers = bearer(operator)
    assert client.post("/api/transition", {"target": "described"},
                       content_type="application/json", **headers).status_code == 202
    response = client.post("/api/transition", {"target": "reset"},
                           content_type="application/json", **headers)
    assert response.status_code == 409
    assert "busy" in response.json()["detail"] and "alice" in response.json()["detail"]
    assert Command.objects.count() == 1


def test_reset_and_per_server_transition(client, model, operator):
    experiment, servers = model
    response = client.post(f"/api/ecc-servers/{servers[1].pk}/transition", {"target": "reset"},
                           content_type="application/json", **bearer(operator))
    assert response.status_code == 202
    command = Command.objects.get()
    assert (command.kind, command.ecc_server) == ("reset", servers[1])


@pytest.mark.parametrize("body", [{"target": "off"}, {"target": "running; rm -rf /"}, {},
                                  {"target": 4}])
def test_bad_targets_are_refused_and_change_nothing(client, model, operator, body):
    response = client.post("/api/transition", body, content_type="application/json",
                           **bearer(operator))
    assert response.status_code in (400, 422)
    assert Command.objects.count() == 0


def test_viewer_may_watch_but_not_control(client, model, viewer):
    experiment, servers = model
    headers = bearer(viewer)
    assert client.get("/api/status", **headers).status_code == 200
    for url, body in [("/api/transition", {"target": "ready"}),
                      (f"/api/ecc-servers/{servers[0].pk}/transition", {"target": "ready"}),
                      (f"/api/ecc-servers/{servers[0].pk}/config", {"config": "cobo0/exp/exp"}),
                      (f"/api/ecc-servers/{servers[0].pk}/configs/refresh", None)]:
        response = client.post(url, body, content_type="application/json", **headers)
        assert response.status_code == 403, url
    assert Command.objects.count() == 0


def test_unknown_server_and_command_are_404(client, model, operator):
    headers = bearer(operator)
    assert client.get("/api/commands/999", **headers).status_code == 404
    assert client.post("/api/ecc-servers/999/transition", {"target": "ready"},
                       content_type="application/json", **headers).status_code == 404


def test_configs_list_and_select(client, model, operator):
    experiment, servers = model
    headers = bearer(operator)
    body = client.get(f"/api/ecc-servers/{servers[0].pk}/configs", **headers).json()
    assert body == {"configs": ["cobo0/exp/exp", "pulser/exp/exp"], "selected": None}
    response = client.post(f"/api/ecc-servers/{servers[0].pk}/config",
                           {"config": "pulser/exp/exp"}, content_type="application/json",
                           **headers)
    assert response.status_code == 200 and response.json() == {"selected": "pulser/exp/exp"}
    servers[0].refresh_from_db()
    assert str(servers[0].selected_config) == "pulser/exp/exp"


@pytest.mark.parametrize("config", ["cobo1/exp/exp", "../../etc/passwd", "a'b\"/c/d", "only/two"])
def test_selecting_a_set_the_server_does_not_offer_is_400(client, model, operator, config):
    experiment, servers = model
    response = client.post(f"/api/ecc-servers/{servers[0].pk}/config", {"config": config},
                           content_type="application/json", **bearer(operator))
    assert response.status_code == 400
    assert response.json()["detail"]
    servers[0].refresh_from_db()
    assert servers[0].selected_config is None


def test_selecting_is_409_unless_idle(client, model, operator):
    experiment, servers = model
    ECCServer.objects.filter(pk=servers[0].pk).update(state=ECCServer.READY)
    response = client.post(f"/api/ecc-servers/{servers[0].pk}/config",
                           {"config": "cobo0/exp/exp"}, content_type="application/json",
                           **bearer(operator))
    assert response.status_code == 409
    assert "Ready" in response.json()["detail"]


def test_refresh_configs_queues_a_command(client, model, operator):
    experiment, servers = model
    response = client.post(f"/api/ecc-servers/{servers[0].pk}/configs/refresh",
                           content_type="application/json", **bearer(operator))
    assert response.status_code == 202
    assert Command.objects.get().kind == "refresh_configs"


def test_openapi_schema_documents_the_endpoints(client):
    schema = client.get("/api/openapi.json").json()
    assert {"/api/status", "/api/transition", "/api/commands/{command_id}",
            "/api/ecc-servers/{server_id}/configs",
            "/api/ecc-servers/{server_id}/config"} <= set(schema["paths"])
    assert "BearerToken" in schema["components"]["securitySchemes"]


def test_session_posts_need_csrf(model, operator):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post("/api/transition", {"target": "ready"},
                           content_type="application/json")
    assert response.status_code in (401, 403)
    assert Command.objects.count() == 0


@pytest.mark.parametrize(("run_status", "target", "words"), [
    (None, "running", "Start a run (all servers)"),
    ("paused", "running", "Resume the run (all servers)"),
    ("running", "paused", "Pause the run (all servers)"),
    ("running", "ready", "Stop the run (all servers)"),
    ("paused", "idle", "Stop the run and go to Idle (all servers)"),
    (None, "ready", "Go to Ready (all servers)"),
])
def test_commands_say_what_they_mean_for_the_run(client, model, operator, run_status, target,
                                                 words):
    experiment, servers = model
    for server in servers:  # a Start needs a configuration selected on every server
        ECCServer.objects.filter(pk=server.pk).update(selected_config=server.configs.first())
    if run_status:
        RunMetadata.objects.create(experiment=experiment, run_number=3, status=run_status)
    response = client.post("/api/transition", {"target": target},
                           content_type="application/json", **bearer(operator))
    assert response.status_code == 202, response.json()
    body = client.get(f"/api/commands/{response.json()['command']}", **bearer(operator)).json()
    assert body["description"] == words
