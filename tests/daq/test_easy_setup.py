"""The easy setup: one or many ECC servers, with and without a MuTAnT (on its own server
or not), addresses counting up, the preview, and the replacement refused while a run is
open or a server is not Idle."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from attpcdaq.daq import setup
from attpcdaq.daq.models import (
    Command,
    ConfigId,
    DataRouter,
    DataSource,
    ECCServer,
    Experiment,
    RunMetadata,
)

pytestmark = pytest.mark.django_db
URL = "/setup/easy/"


@pytest.fixture
def admin(client):
    user = User.objects.create_superuser("chief", password="pw")
    client.force_login(user)
    return user


def form(**changes):
    return {"cobos": "3", "ecc_layout": "each", "first_ecc_address": "127.0.0.20",
            "ecc_port": "8083", "first_router_address": "127.0.0.40", "router_port": "46005",
            "connection_type": "TCP", "ssh_user": "", "ecc_log_path": "/home/daq/ecc.log",
            "config_dir": "/home/daq/configs", "router_working_dir": "/data/router",
            "router_log_path": "", **changes}


def links():
    return sorted((s.name, s.ecc_server.name, s.data_router.name if s.data_router else None)
                  for s in DataSource.objects.select_related("ecc_server", "data_router"))


def endpoints(model):
    return list(model.objects.order_by("name").values_list("name", "ip_address", "port"))


def test_one_ecc_server_per_cobo_without_a_mutant(client, admin):
    answer = client.post(URL, {**form(), "action": "apply"})
    assert answer.status_code == 302
    assert endpoints(ECCServer) == [("CoBo[0]", "127.0.0.20", 8083),
                                    ("CoBo[1]", "127.0.0.21", 8083),
                                    ("CoBo[2]", "127.0.0.22", 8083)]
    assert endpoints(DataRouter) == [("DataRouter0", "127.0.0.40", 46005),
                                     ("DataRouter1", "127.0.0.41", 46005),
                                     ("DataRouter2", "127.0.0.42", 46005)]
    assert links() == [("CoBo[0]", "CoBo[0]", "DataRouter0"), ("CoBo[1]", "CoBo[1]",
                                                               "DataRouter1"),
                       ("CoBo[2]", "CoBo[2]", "DataRouter2")]
    server = ECCServer.objects.get(name="CoBo[1]")
    assert (server.log_path, server.config_dir, server.ssh_host) == (
        "/home/daq/ecc.log", "/home/daq/configs", "")
    assert set(DataRouter.objects.values_list("working_dir", flat=True)) == {"/data/router"}
    page = client.get(reverse("daq:setup")).content.decode()
    assert "Setup replaced: created 3 ECC servers, 3 data routers, 3 data sources." in page


def test_one_ecc_server_for_all_with_a_mutant_on_it(client, admin):
    answer = client.post(URL, {**form(cobos="2", ecc_layout="one", mutant="on",
                                      ssh_user="daq"), "action": "apply"})
    assert answer.status_code == 302
    assert endpoints(ECCServer) == [("ECC", "127.0.0.20", 8083)]
    assert endpoints(DataRouter) == [("DataRouter0", "127.0.0.40", 46005),
                                     ("DataRouter1", "127.0.0.41", 46005),
                                     ("DataRouterMutant", "127.0.0.42", 46005)]
    assert links() == [("CoBo[0]", "ECC", "DataRouter0"), ("CoBo[1]", "ECC", "DataRouter1"),
                       ("Mutant[master]", "ECC", "DataRouterMutant")]
    assert ECCServer.objects.get().ssh_host == "daq@127.0.0.20"
    assert DataRouter.objects.get(name="DataRouterMutant").ssh_host == "daq@127.0.0.42"
    # The data link set the engine sends names every board once.
    senders = [link.sender for link in ECCServer.objects.get().data_link_set().links]
    assert senders == ["CoBo[0]", "CoBo[1]", "Mutant[master]"]


def test_a_mutant_with_its_own_ecc_server(client, admin):
    answer = client.post(URL, {**form(cobos="4", mutant="on", mutant_own_server="on"),
                               "action": "apply"})
    assert answer.status_code == 302
    assert [n for n, *_ in endpoints(ECCServer)] == ["CoBo[0]", "CoBo[1]", "CoBo[2]",
                                                    "CoBo[3]", "Mutant"]
    assert ECCServer.objects.get(name="Mutant").ip_address == "127.0.0.24"
    assert ("Mutant[master]", "Mutant", "DataRouterMutant") in links()
    # All the MuTAnT's sources are Mutant[...]: the engine gives it a phase of its own.
    assert [s.name for s in ECCServer.objects.get(name="Mutant").data_sources.all()] == [
        "Mutant[master]"]


def test_own_server_means_nothing_without_a_mutant(client, admin):
    assert client.post(URL, {**form(cobos="1", mutant_own_server="on"), "action": "apply"}
                       ).status_code == 302
    assert endpoints(ECCServer) == [("CoBo[0]", "127.0.0.20", 8083)]
    assert DataRouter.objects.count() == 1


def test_the_preview_shows_what_it_will_create_and_changes_nothing(client, admin):
    old = ECCServer.objects.create(name="old", ip_address="10.1.1.1")
    answer = client.post(URL, {**form(cobos="2", mutant="on"), "action": "preview"})
    assert answer.status_code == 200
    page = answer.content.decode()
    assert 'id="preview"' in page and "Replace the setup" in page
    for text in ("CoBo[0]", "127.0.0.21", "DataRouterMutant", "127.0.0.42", "Mutant[master]",
                 "/home/daq/configs"):
        assert text in page
    assert "ECC servers: 2 added (CoBo[0], CoBo[1]), 0 changed, 1 removed (old)" in " ".join(
        page.split())
    assert list(ECCServer.objects.all()) == [old] and not DataRouter.objects.exists()


def test_a_replacement_keeps_what_it_names_again(client, admin):
    client.post(URL, {**form(), "action": "apply"})
    kept = ECCServer.objects.get(name="CoBo[0]")
    config = ConfigId.objects.create(ecc_server=kept, describe="cobo0", prepare="e",
                                     configure="e")
    ECCServer.objects.filter(pk=kept.pk).update(selected_config=config)
    assert client.post(URL, {**form(cobos="1", first_ecc_address="127.0.0.20",
                                    ecc_port="8090"), "action": "apply"}).status_code == 302
    server = ECCServer.objects.get()
    assert (server.pk, server.port, server.selected_config) == (kept.pk, 8090, config)
    assert links() == [("CoBo[0]", "CoBo[0]", "DataRouter0")]


@pytest.mark.parametrize("state", [ECCServer.DESCRIBED, ECCServer.READY, ECCServer.RUNNING,
                                   ECCServer.OFF])
def test_refused_while_a_server_is_not_idle(client, admin, state):
    busy = ECCServer.objects.create(name="CoBo[7]", ip_address="10.1.1.7", state=state)
    answer = client.post(URL, {**form(), "action": "apply"})
    assert answer.status_code == 409
    page = " ".join(answer.content.decode().split())
    assert (f"The setup was not replaced: every ECC server concerned must be Idle: CoBo[7] "
            f"is {busy.state_name}") in page
    assert list(ECCServer.objects.all()) == [busy] and not DataRouter.objects.exists()


def test_refused_while_a_transition_runs_or_a_run_is_open(client, admin):
    server = ECCServer.objects.create(name="x", ip_address="10.1.1.7", is_transitioning=True)
    assert client.post(URL, {**form(), "action": "apply"}).status_code == 409
    ECCServer.objects.filter(pk=server.pk).update(is_transitioning=False)
    command = Command.objects.create(kind="transition", target=ECCServer.DESCRIBED)
    answer = client.post(URL, {**form(), "action": "apply"})
    assert answer.status_code == 409 and b"a transition command is waiting" in answer.content
    Command.objects.filter(pk=command.pk).update(status="done")
    experiment = Experiment.objects.create(name="e20009", is_active=True)
    RunMetadata.objects.create(experiment=experiment, run_number=1, status="paused")
    answer = client.post(URL, {**form(), "action": "apply"})
    assert answer.status_code == 409 and b"run 1 of e20009 is paused" in answer.content
    # The page says so before anyone tries, and offers no button.
    page = client.post(URL, {**form(), "action": "preview"}).content.decode()
    assert 'id="setup-blocked"' in page and "disabled>Replace the setup" in page
    assert list(ECCServer.objects.all()) == [server]


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"cobos": "0"}, "cobos", "At least one CoBo."),
    ({"cobos": "257"}, "cobos", "At most 256 CoBos."),
    ({"cobos": "three"}, "cobos", "A whole number of CoBos."),
    ({"first_ecc_address": "127.0.0.253"}, "first_ecc_address",
     "3 addresses from 127.0.0.253 would pass .254 (the last would be .255)."),
    ({"first_router_address": "mac-mini"}, "first_router_address",
     "Must be an IPv4 address (e.g. 10.0.0.20): its last number counts up."),
    ({"first_ecc_address": "::1"}, "first_ecc_address",
     "Must be an IPv4 address (e.g. 10.0.0.20): its last number counts up."),
    ({"ecc_port": "0"}, "ecc_port", "must be 1-65535"),
    ({"router_port": "99999"}, "router_port", "must be 1-65535"),
    ({"ssh_user": "-oProxyCommand"}, "ssh_user", "Letters, digits, '.', '_' and '-' only, "
     "not starting with '-' or '.'."),
    ({"ssh_user": "d q"}, "ssh_user", "Letters, digits, '.', '_' and '-' only, not starting "
     "with '-' or '.'."),
    ({"ecc_log_path": "ecc.log"}, "ecc_log_path", "Must be an absolute path (starting "
     "with /)."),
    ({"config_dir": "/home/../etc"}, "config_dir", "May not contain '..'."),
    ({"router_working_dir": "/data/\u202erouter"}, "router_working_dir",
     "May not contain invisible or direction-changing characters (U+202E)."),
    ({"router_log_path": "/x/\x01"}, "router_log_path", "May not contain control "
     "characters."),
    ({"connection_type": "UDP"}, "connection_type", "Select a valid choice. UDP is not one "
     "of the available choices."),
])
def test_bad_input_is_said_beside_its_field_and_changes_nothing(client, admin, changes,
                                                                field, message):
    answer = client.post(URL, {**form(**changes), "action": "apply"})
    assert answer.status_code == 400
    errors = answer.context["form"].errors
    assert errors[field] == [message]
    assert f'data-error-for="{field}"' in answer.content.decode()
    assert not ECCServer.objects.exists() and not DataRouter.objects.exists()


def test_ecc_servers_and_routers_on_one_address_need_different_ports(client, admin):
    same = form(cobos="2", first_router_address="127.0.0.20", router_port="8083")
    answer = client.post(URL, {**same, "action": "apply"})
    assert answer.status_code == 400
    assert answer.context["form"].non_field_errors() == [
        "data_routers[0].port: 127.0.0.20:8083 is already the address of the ECC server "
        "ecc_servers[0]",
        "data_routers[1].port: 127.0.0.21:8083 is already the address of the ECC server "
        "ecc_servers[1]"]
    # The usual layout: each Mac mini runs both, on their own ports.
    assert client.post(URL, {**form(cobos="2", first_router_address="127.0.0.20"),
                             "action": "apply"}).status_code == 302


def test_easy_document_is_a_valid_setup():
    plan = setup.EasySetup(cobos=10, one_ecc_server=False, first_ecc_address="127.0.0.10",
                           ecc_port=8083, first_router_address="127.0.0.10",
                           router_port=46005, mutant=True, mutant_own_server=True)
    document = setup.easy_document(plan)
    assert setup.validate_document(document) == []
    assert [s["ip_address"] for s in document["ecc_servers"]][-2:] == ["127.0.0.19",
                                                                       "127.0.0.20"]
    with pytest.raises(ValueError, match=r"would pass \.254"):
        setup.count_up("10.0.0.250", 10)
