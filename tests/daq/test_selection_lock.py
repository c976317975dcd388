"""Start needs a configuration on every server that takes part, and a selection never
changes under a run: not from the status page, the API, the admin, nor by the engine's
refresh of the sets a server offers (ECCServer.store_configs)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from attpcdaq import get
from attpcdaq.daq import services
from attpcdaq.daq.models import (
    ApiToken,
    Command,
    ConfigId,
    ECCServer,
    Event,
    Experiment,
    RunMetadata,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
JSON = "application/json"


@pytest.fixture
def model(engine_beating):
    """CoBo[0..2], Ready, each offering two sets; CoBo[0] has one selected."""
    experiment = Experiment.objects.create(name="e20009", is_active=True)
    servers = []
    for n in range(3):
        server = ECCServer.objects.create(name=f"CoBo[{n}]", ip_address="127.0.0.1",
                                          port=9000 + n, is_online=True, state=ECCServer.READY)
        for describe in (f"cobo{n}", "pulser"):
            ConfigId.objects.create(ecc_server=server, describe=describe, prepare="exp",
                                    configure="exp")
        servers.append(server)
    select(servers[0], "cobo0/exp/exp")
    return experiment, servers


def select(server: ECCServer, text: str) -> None:
    d, p, c = text.split("/")
    server.selected_config = server.configs.get(describe=d, prepare=p, configure=c)
    server.save()


@pytest.fixture
def operator(client):
    user = User.objects.create_user("alice", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    client.force_login(user)
    return user


def bearer(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.issue(user)}"}


def start(client, user):
    return client.post("/api/transition", {"target": "running"}, content_type=JSON,
                       **bearer(user))


# Start without a configuration -------------------------------------------------------------

def test_start_is_refused_naming_each_server_without_a_configuration(client, model, operator):
    experiment, servers = model
    response = start(client, operator)
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "cannot start: CoBo[1], CoBo[2] have no configuration selected; choose one on the "
        "status page (or disable or exclude the server)")
    toast = client.post(reverse("daq:system_transition"), {"action": "start"}, **HTMX)
    assert toast.status_code == 409 and "CoBo[1], CoBo[2] have no configuration" in toast.text
    assert Command.objects.count() == 0

    # A disabled or excluded server takes no part, and is not named.
    ECCServer.objects.filter(pk=servers[2].pk).update(enabled=False)
    assert start(client, operator).json()["detail"].startswith(
        "cannot start: CoBo[1] has no configuration selected")
    ECCServer.objects.filter(pk=servers[1].pk).update(excluded=True)
    assert start(client, operator).status_code == 202
    assert Command.objects.get().label == "Start a run"


def test_the_engine_asks_about_the_servers_it_starts(model):
    experiment, servers = model
    assert services.start_config_refusal([servers[0].pk]) == ""
    ECCServer.objects.filter(pk=servers[2].pk).update(enabled=False)
    assert "CoBo[2] has no configuration" in services.start_config_refusal([servers[2].pk])
    with pytest.raises(services.Conflict, match=r"CoBo\[1\], CoBo\[2\] have no"):
        services.check_configs_selected([s.pk for s in servers])


def test_a_resume_is_not_a_start(client, model, operator):
    experiment, servers = model
    RunMetadata.objects.create(experiment=experiment, run_number=3, status="paused")
    ECCServer.objects.update(state=ECCServer.PAUSED)
    response = start(client, operator)
    assert response.status_code == 202
    assert Command.objects.get().label == "Resume the run"


def test_the_status_page_and_api_name_the_servers_without_a_configuration(client, model,
                                                                          operator):
    page = client.get(reverse("daq:status_fragment"), **HTMX).text
    assert 'id="config-banner"' in page
    assert "Start is refused: no configuration selected for\n        CoBo[1], CoBo[2]." in page
    assert client.get("/api/status").json()["unconfigured_servers"] == ["CoBo[1]", "CoBo[2]"]
    for server in ECCServer.objects.exclude(name="CoBo[0]"):
        select(server, "pulser/exp/exp")
    assert 'id="config-banner"' not in client.get(reverse("daq:status_fragment"), **HTMX).text
    assert client.get("/api/status").json()["unconfigured_servers"] == []


# No change under a run ----------------------------------------------------------------------

@pytest.mark.parametrize("status", sorted(RunMetadata.OPEN))
def test_a_selection_cannot_change_under_a_run(client, model, operator, status):
    experiment, servers = model
    # An Idle, disabled server could otherwise be given a set: not while a run is open.
    ECCServer.objects.filter(pk=servers[1].pk).update(state=ECCServer.IDLE, enabled=False)
    run = RunMetadata.objects.create(experiment=experiment, run_number=3, status=status)
    url = f"/api/ecc-servers/{servers[1].pk}/config"
    response = client.post(url, {"config": "pulser/exp/exp"}, content_type=JSON,
                           **bearer(operator))
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"run 3 is {run.get_status_display().lower()}: a configuration selection cannot "
        "change under a run")
    toast = client.post(reverse("daq:eccserver_select_config", args=[servers[1].pk]),
                        {"config": "pulser/exp/exp"}, **HTMX)
    assert toast.status_code == 409
    assert ECCServer.objects.get(pk=servers[1].pk).selected_config is None
    # The chooser says why it is disabled.
    page = client.get(reverse("daq:status_fragment"), **HTMX).text
    assert page.count('disabled title="Run 3 is open: the configuration cannot change under '
                      'a run"') == 3

    RunMetadata.objects.filter(pk=run.pk).update(status="stopped")
    response = client.post(url, {"config": "pulser/exp/exp"}, content_type=JSON,
                           **bearer(operator))
    assert response.status_code == 200 and response.json()["selected"] == "pulser/exp/exp"


def offered(*names: str) -> list[get.ConfigId]:
    return [get.ConfigId.parse(name) for name in names]


def test_a_refresh_keeps_the_selected_set_under_a_run_and_drops_it_after(client, model,
                                                                         operator):
    experiment, servers = model
    server = servers[0]
    chosen = server.selected_config
    fetched = chosen.last_fetched
    run = RunMetadata.objects.create(experiment=experiment, run_number=3, status="running")

    # The server no longer offers the set it runs with: kept, and said once.
    for _ in range(2):
        rows = ECCServer.objects.get(pk=server.pk).store_configs(offered("pulser/exp/exp",
                                                                         "new/exp/exp"))
        assert sorted(map(str, rows)) == ["cobo0/exp/exp", "new/exp/exp", "pulser/exp/exp"]
    server.refresh_from_db()
    assert server.selected_config == chosen
    kept = ConfigId.objects.get(pk=chosen.pk)
    assert kept.last_fetched == fetched  # when the server last listed it
    assert ConfigId.objects.get(ecc_server=server, describe="pulser").last_fetched > fetched
    warnings = list(Event.objects.filter(source="CoBo[0]"))
    assert len(warnings) == 1 and warnings[0].level == "warning"
    assert warnings[0].message == (
        "no longer offers its selected configuration cobo0/exp/exp: kept, as run 3 is "
        "running: a configuration selection cannot change under a run")

    # After the run, the next refresh drops it, and the page says so.
    RunMetadata.objects.filter(pk=run.pk).update(status="stopped")
    refreshed = ECCServer.objects.get(pk=server.pk)
    rows = refreshed.store_configs(offered("pulser/exp/exp", "new/exp/exp"))
    assert sorted(map(str, rows)) == ["new/exp/exp", "pulser/exp/exp"]
    assert refreshed.selected_config is None
    assert ECCServer.objects.get(pk=server.pk).selected_config is None
    dropped = Event.objects.filter(source="CoBo[0]").first()
    assert dropped.message == ("selected configuration was dropped: CoBo[0] no longer offers "
                               "cobo0/exp/exp; choose another (Start is refused without one)")
    page = client.get(reverse("daq:status_fragment"), **HTMX).text
    assert "no configuration selected for\n        CoBo[0], CoBo[1], CoBo[2]." in page
    assert f'data-dropped="{server.pk}"' in page and "CoBo[0] no longer offers" in page
    assert "CoBo[0]" in start(client, operator).json()["detail"]


def test_a_refresh_of_a_server_whose_selection_is_still_offered_changes_nothing(model):
    experiment, servers = model
    RunMetadata.objects.create(experiment=experiment, run_number=3, status="running")
    server = ECCServer.objects.get(pk=servers[0].pk)
    rows = server.store_configs(offered("cobo0/exp/exp"))
    assert [str(r) for r in rows] == ["cobo0/exp/exp"]  # the unselected set went
    assert ECCServer.objects.get(pk=server.pk).selected_config.describe == "cobo0"
    assert not Event.objects.exists()


def test_the_admin_cannot_change_a_selection_under_a_run(admin_client, model):
    experiment, servers = model
    change = reverse("admin:daq_eccserver_change", args=[servers[0].pk])
    selected = servers[0].selected_config
    other = ConfigId.objects.get(ecc_server=servers[0], describe="pulser")
    assert 'name="selected_config"' in admin_client.get(change).text
    run = RunMetadata.objects.create(experiment=experiment, run_number=3, status="running")

    page = admin_client.get(change).text
    assert 'name="selected_config"' not in page and "cobo0/exp/exp" in page
    delete = "admin:daq_configid_delete"
    assert admin_client.get(reverse(delete, args=[selected.pk])).status_code == 403
    assert admin_client.post(reverse(delete, args=[selected.pk]),
                             {"post": "yes"}).status_code == 403
    assert ConfigId.objects.filter(pk=selected.pk).exists()
    assert admin_client.get(reverse(delete, args=[other.pk])).status_code == 200

    RunMetadata.objects.filter(pk=run.pk).update(status="stopped")
    assert 'name="selected_config"' in admin_client.get(change).text
    assert admin_client.get(reverse(delete, args=[selected.pk])).status_code == 200
