"""The status page, its live fragment and its actions, through Django's test client."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from attpcdaq.daq.models import (
    Command,
    ConfigId,
    DataRouter,
    ECCServer,
    EngineHeartbeat,
    Event,
    Experiment,
    RunMetadata,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def servers(engine_beating):
    Experiment.objects.create(name="e20009", is_active=True)
    found = []
    for n in range(2):
        server = ECCServer.objects.create(name=f"CoBo[{n}]", ip_address="127.0.0.1",
                                          port=9000 + n, is_online=True)
        for describe in (f"cobo{n}", "pulser"):
            ConfigId.objects.create(ecc_server=server, describe=describe, prepare="exp",
                                    configure="exp")
        found.append(server)
    return found


@pytest.fixture
def operator(client):
    user = User.objects.create_user("alice", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    client.force_login(user)
    return user


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("bob", password="pw")
    client.force_login(user)
    return user


def alive():
    now = timezone.now()
    EngineHeartbeat.objects.update_or_create(pk=1, defaults={
        "beat": now, "started": now, "pid": 1, "hostname": "here"})


def post(client, name, data=None, **kwargs):
    return client.post(reverse(f"daq:{name}", kwargs=kwargs or None), data or {}, **HTMX)


def text(response) -> str:
    return response.content.decode()


# Access -------------------------------------------------------------------------------

def test_login_required(client, servers):
    for name in ("status", "status_fragment"):
        response = client.get(reverse(f"daq:{name}"))
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_an_htmx_poll_without_a_session_sends_the_browser_to_login(client, servers):
    response = client.get(reverse("daq:status_fragment"), **HTMX)
    assert response["HX-Redirect"] == "/login/?next=%2F"


def test_login_page_logs_in(client, servers):
    User.objects.create_user("carol", password="secret-pw")
    assert "Log in" in text(client.get("/login/"))
    response = client.post("/login/", {"username": "carol", "password": "secret-pw"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_viewer_sees_no_buttons_and_is_refused(client, servers, viewer):
    Event.objects.create(level="alarm", source="CoBo[1]", message="fire")
    page = text(client.get("/"))
    assert "CoBo[0]" in page and "fire" in page
    for marker in ("hx-post", "System controls", "Acknowledge", "<select"):
        assert marker not in page
    assert "hx-post" not in text(client.get(reverse("daq:status_fragment")))
    event = Event.objects.get()
    for name, data, kwargs in [
            ("system_transition", {"action": "go_ready"}, {}),
            ("eccserver_transition", {"target": "described"}, {"pk": servers[0].pk}),
            ("eccserver_select_config", {"config": "pulser/exp/exp"}, {"pk": servers[0].pk}),
            ("eccserver_refresh_configs", {}, {"pk": servers[0].pk}),
            ("event_acknowledge", {}, {"pk": event.pk})]:
        response = post(client, name, data, **kwargs)
        assert response.status_code == 403, name
        assert "may watch but not control" in text(response)
    assert Command.objects.count() == 0
    assert not Event.objects.get().acknowledged
    servers[0].refresh_from_db()
    assert servers[0].selected_config is None


def test_actions_are_post_only(client, servers, operator):
    assert client.get(reverse("daq:system_transition")).status_code == 405


# What the page shows -------------------------------------------------------------------

def test_page_shows_states_run_and_errors(client, servers, operator):
    alive()
    experiment = Experiment.active()
    ECCServer.objects.filter(pk=servers[0].pk).update(
        state=ECCServer.RUNNING, last_error="CoBo 0 said <no>")
    ECCServer.objects.filter(pk=servers[1].pk).update(
        state=ECCServer.PREPARED, is_transitioning=True, transition=3)
    start = timezone.now() - timedelta(hours=1, minutes=2, seconds=3)
    RunMetadata.objects.create(experiment=experiment, run_number=42, status="running",
                               title="beam on target", start_datetime=start)
    Command.objects.create(kind="transition", target=ECCServer.READY, user=operator,
                           status="failed", error="CoBo[1]: Configure refused")
    Event.objects.create(level="error", source="CoBo[1]", message="lost the link")
    DataRouter.objects.create(name="router0", ip_address="10.0.0.5", port=46005,
                              is_online=True, data_rate=2.5e6)
    page = text(client.get("/"))
    assert 'id="overall-state">Mixed<' in page
    assert ">42<" in page and "beam on target" in page and "1:02:0" in page
    assert ">Running<" in page and ">Prepared<" in page and "Configuring…" in page
    assert "CoBo 0 said &lt;no&gt;" in page  # escaped
    assert "Last command failed" in page and "CoBo[1]: Configure refused" in page
    assert "lost the link" in page and "10.0.0.5:46005" in page and "2.5 MB/s" in page
    assert "engine is not running" not in page


def test_fragment_is_out_of_band_regions(client, servers, operator, django_assert_max_num_queries):
    alive()
    ECCServer.objects.filter(pk=servers[1].pk).update(state=ECCServer.READY)
    # 16: one for the events saying why servers have no configuration selected, one for
    # the data written while no run was open.
    with django_assert_max_num_queries(16):
        response = client.get(reverse("daq:status_fragment"), **HTMX)
    page = text(response)
    for region in ("banners", "run-panel", "system-controls", "ecc-servers", "data-routers",
                   "recent-commands", "recent-events", "unattributed"):
        assert f'id="{region}"' in page
    assert page.count('hx-swap-oob="true"') == 8
    assert ">Ready<" in page and 'id="overall-state">Mixed<' in page


def test_engine_banner_and_alarms(client, servers, operator):
    EngineHeartbeat.objects.all().delete()  # the engine never ran
    Event.objects.create(level="alarm", source="router0", message="disk full")
    Event.objects.create(level="alarm", source="CoBo[0]", message="seen", acknowledged=True)
    page = text(client.get(reverse("daq:status_fragment")))
    assert "The engine is not running" in page
    assert "1 unacknowledged alarm" in page and "disk full" in page
    assert "Acknowledge" in page


def test_acknowledging_an_alarm(client, servers, operator):
    alarm = Event.objects.create(level="alarm", source="router0", message="disk full")
    response = post(client, "event_acknowledge", pk=alarm.pk)
    assert response.status_code == 200 and "Acknowledged" in text(response)
    alarm.refresh_from_db()
    assert (alarm.acknowledged, alarm.acknowledged_by) == (True, operator)
    assert alarm.acknowledged_at is not None
    assert "unacknowledged" not in text(client.get(reverse("daq:status_fragment")))


def test_system_controls_follow_the_state(client, servers, operator):
    def enabled():
        page = text(client.get(reverse("daq:status_fragment")))
        buttons = re.findall(r'<button[^>]*data-action="(\w+)"[^>]*>', page)
        tags = re.findall(r'<button[^>]*data-action="\w+"[^>]*>', page)
        return {key for key, tag in zip(buttons, tags, strict=True)
                if not re.search(r"\sdisabled(?=[\s>])", tag)}
    assert enabled() == {"describe", "go_ready"}
    Command.objects.create(kind="refresh_configs", ecc_server=servers[0])  # a read: not busy
    assert enabled() == {"describe", "go_ready"}
    ECCServer.objects.update(state=ECCServer.READY)
    assert enabled() == {"start", "reset"}
    ECCServer.objects.update(state=ECCServer.RUNNING)
    assert enabled() == {"pause", "stop", "reset"}
    ECCServer.objects.filter(pk=servers[0].pk).update(state=ECCServer.PAUSED)
    assert enabled() == {"stop", "reset"}
    Command.objects.create(kind="transition", target=ECCServer.READY)  # pending: busy
    assert enabled() == set()


# Actions -------------------------------------------------------------------------------

@pytest.mark.parametrize(("action", "target"), [
    ("describe", ECCServer.DESCRIBED), ("go_ready", ECCServer.READY)])
def test_system_action_queues_a_command(client, servers, operator, action, target):
    response = post(client, "system_transition", {"action": action})
    assert response.status_code == 202
    assert response["X-Toast"] == "1" and "Queued" in text(response)
    command = Command.objects.get()
    assert (command.kind, command.target, command.ecc_server, command.user) == (
        "transition", target, None, operator)


def test_start_stop_and_reset_targets(client, servers, operator):
    for server in servers:  # a Start needs a configuration selected on every server
        server.selected_config = server.configs.first()
        server.save()
    ECCServer.objects.update(state=ECCServer.READY)
    assert post(client, "system_transition", {"action": "start"}).status_code == 202
    assert Command.objects.get().target == ECCServer.RUNNING
    Command.objects.update(status="done")
    assert post(client, "system_transition", {"action": "reset"}).status_code == 202
    assert Command.objects.first().kind == "reset"


def test_a_second_system_command_conflicts(client, servers, operator):
    assert post(client, "system_transition", {"action": "go_ready"}).status_code == 202
    response = post(client, "system_transition", {"action": "describe"})
    assert response.status_code == 409
    assert "busy" in text(response) and "alice" in text(response)
    assert Command.objects.count() == 1


def test_a_stale_button_is_refused(client, servers, operator):
    ECCServer.objects.update(state=ECCServer.READY)
    response = post(client, "system_transition", {"action": "describe"})
    assert response.status_code == 409 and "Describe all does not apply" in text(response)
    assert Command.objects.count() == 0


@pytest.mark.parametrize("action", ["", "explode", "go_ready'; --", "x" * 5000])
def test_unknown_system_action_is_400(client, servers, operator, action):
    response = post(client, "system_transition", {"action": action})
    assert response.status_code == 400 and "action" in text(response)
    assert Command.objects.count() == 0


def test_server_forward_and_back(client, servers, operator):
    response = post(client, "eccserver_transition", {"target": "described"}, pk=servers[0].pk)
    assert response.status_code == 202
    command = Command.objects.get()
    assert (command.kind, command.target, command.ecc_server, command.user) == (
        "transition", ECCServer.DESCRIBED, servers[0], operator)
    command.delete()
    ECCServer.objects.filter(pk=servers[1].pk).update(state=ECCServer.READY)
    assert post(client, "eccserver_transition", {"target": "reset"},
                pk=servers[1].pk).status_code == 202
    assert (Command.objects.get().kind, Command.objects.get().ecc_server) == ("reset", servers[1])


@pytest.mark.parametrize("target", ["ready", "reset", "running"])
def test_server_steps_other_than_its_buttons_are_refused(client, servers, operator, target):
    response = post(client, "eccserver_transition", {"target": target}, pk=servers[0].pk)
    assert response.status_code in (400, 409)
    assert Command.objects.count() == 0


def test_refresh_configs_queues_a_command(client, servers, operator):
    response = post(client, "eccserver_refresh_configs", pk=servers[0].pk)
    assert response.status_code == 202
    command = Command.objects.get()
    assert (command.kind, command.ecc_server, command.user) == (
        "refresh_configs", servers[0], operator)


def test_select_config(client, servers, operator):
    response = post(client, "eccserver_select_config", {"config": "pulser/exp/exp"},
                    pk=servers[0].pk)
    assert response.status_code == 200 and "pulser/exp/exp" in text(response)
    servers[0].refresh_from_db()
    assert str(servers[0].selected_config) == "pulser/exp/exp"
    assert "selected>pulser/exp/exp<" in text(client.get("/")).replace('" selected', " selected")


def test_select_config_refused_unless_idle(client, servers, operator):
    ECCServer.objects.filter(pk=servers[0].pk).update(state=ECCServer.PREPARED)
    response = post(client, "eccserver_select_config", {"config": "pulser/exp/exp"},
                    pk=servers[0].pk)
    assert response.status_code == 409 and "Prepared" in text(response)
    servers[0].refresh_from_db()
    assert servers[0].selected_config is None
    # And the page offers the chooser disabled.
    row = text(client.get("/")).split(f'id="eccserver-{servers[0].pk}"')[1].split("</tr>")[0]
    assert "disabled title=\"Choose a configuration while the server is Idle\"" in row


@pytest.mark.parametrize("config", [
    "cobo1/exp/exp",  # another server's set
    "../../etc/passwd", "a'b\"/c/d", "only/two", "<script>/x/y", "", "x/y/" + "z" * 500])
def test_hostile_or_foreign_configs_are_400(client, servers, operator, config):
    response = post(client, "eccserver_select_config", {"config": config}, pk=servers[0].pk)
    assert response.status_code == 400
    assert "<script>" not in text(response)  # escaped in the toast
    assert "toast-body" in text(response)
    servers[0].refresh_from_db()
    assert servers[0].selected_config is None


@pytest.mark.parametrize("pk", ["abc", "1 OR 1=1", "0x1", "99999", "9" * 40, "-1",
                                "\N{ARABIC-INDIC DIGIT ONE}"])
def test_bad_server_ids_are_404_with_a_message(client, servers, operator, pk):
    for name in ("eccserver_transition", "eccserver_select_config",
                 "eccserver_refresh_configs"):
        response = post(client, name, {"target": "described", "config": "pulser/exp/exp"},
                        pk=pk)
        assert response.status_code == 404, (name, pk)
        assert "There is no ECC server with id" in text(response)
    assert Command.objects.count() == 0
    assert not ECCServer.objects.exclude(selected_config=None).exists()


def test_csrf_is_enforced(servers):
    from django.test import Client

    user = User.objects.create_user("dave", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(reverse("daq:system_transition"), {"action": "go_ready"})
    assert response.status_code == 403
    assert Command.objects.count() == 0


def test_a_failed_log_read_is_not_a_failed_command(client, servers, viewer):
    ECCServer.objects.filter(pk=servers[0].pk).update(log_path="/var/log/ecc.log")
    Command.objects.create(kind="tail_log", ecc_server=servers[0], user=viewer, status="failed",
                           error="no such file: /var/log/ecc.log")
    page = text(client.get("/"))
    assert "Last command failed" not in page and "no such file" not in page
