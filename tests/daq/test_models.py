"""The model keeps attpcdaq's ECCServer interface; its methods talk to a real emulator."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from attpcdaq.daq.models import ConfigId, DataRouter, DataSource, ECCServer, Experiment, RunMetadata
from attpcdaq.emulator.process import EmulatorProcess
from attpcdaq.get import EccClient, PlanError

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def port():
    with EmulatorProcess(["ecc", "--transition-seconds", "0.02", "--no-data"]) as emulator:
        yield emulator.ports[0]


@pytest.fixture
def server(port):
    server = ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1", port=port)
    router = DataRouter.objects.create(name="router0", ip_address="10.0.0.20", port=46005)
    exporter = DataRouter.objects.create(name="exporter", ip_address="10.0.0.21", port=46010)
    DataSource.objects.create(name="CoBo[0]", ecc_server=server, data_router=router)
    DataSource.objects.create(name="CoBo[0]", ecc_server=server, data_router=exporter)
    return server


def test_public_interface_of_the_original():
    assert (ECCServer.IDLE, ECCServer.DESCRIBED, ECCServer.PREPARED, ECCServer.READY,
            ECCServer.RUNNING) == (1, 2, 3, 4, 5)
    assert ECCServer.RESET not in ECCServer.STATE_DICT
    assert ECCServer.STATE_DICT[ECCServer.READY] == "Ready"
    for name in ("name", "ip_address", "port", "is_online", "is_transitioning", "log_path",
                 "selected_config", "state"):
        assert ECCServer._meta.get_field(name)
    for method in ("change_state", "get_data_link_xml_from_clients", "refresh_configs",
                   "refresh_state", "_get_soap_client", "_get_transition"):
        assert callable(getattr(ECCServer, method))


def test_data_link_xml_has_one_link_per_source_and_router(server):
    assert server.get_data_link_xml_from_clients() == (
        '<DataLinkSet><DataLink><DataSender id="CoBo[0]"/><DataRouter name="exporter" '
        'ipAddress="10.0.0.21" port="46010" type="TCP"/></DataLink><DataLink><DataSender '
        'id="CoBo[0]"/><DataRouter name="router0" ipAddress="10.0.0.20" port="46005" '
        'type="TCP"/></DataLink></DataLinkSet>')


def test_refresh_state_configs_and_change_state_talk_to_the_server(server):
    server.refresh_state()
    server.refresh_from_db()
    assert (server.state, server.is_online, server.is_transitioning) == (ECCServer.IDLE, True,
                                                                         False)
    configs = server.refresh_configs()
    assert "cobo0/experiment/experiment" in {str(c) for c in configs}
    server.selected_config = server.configs.get(describe="cobo0", prepare="experiment",
                                                configure="experiment")
    server.change_state(ECCServer.DESCRIBED)
    server.refresh_from_db()
    assert server.state == ECCServer.DESCRIBED
    assert isinstance(server._get_soap_client(), EccClient)
    with pytest.raises(PlanError, match="Ready is not one step from Described"):
        server._get_transition(server._get_soap_client(), server.state, ECCServer.READY)
    server.change_state(ECCServer.IDLE)
    server.refresh_from_db()
    assert server.state == ECCServer.IDLE


def test_config_id_xml_round_trip(server):
    config = ConfigId(describe="cobo0", prepare="experiment", configure="experiment",
                      ecc_server=server)
    assert str(ConfigId.from_xml(config.as_xml())) == "cobo0/experiment/experiment"


def test_run_numbers_are_unique_per_experiment_and_one_experiment_is_active():
    first = Experiment.objects.create(name="e20009", is_active=True)
    RunMetadata.objects.create(experiment=first, run_number=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        RunMetadata.objects.create(experiment=first, run_number=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Experiment.objects.create(name="e20020", is_active=True)
    second = Experiment.objects.create(name="e20020")
    second.activate()
    assert Experiment.active() == second
    RunMetadata.objects.create(experiment=second, run_number=0)  # numbers are per experiment


@pytest.mark.parametrize("name", ["..", "a/b", "", " padded", "-rf", "tab\there"])
def test_hostile_experiment_names_are_refused(name):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        Experiment(name=name).full_clean()


@pytest.mark.parametrize("name", ["e20009 run 'A' \"B\"", "é実験 ✓", "$(touch pwned)"])
def test_odd_but_safe_experiment_names_are_accepted(name):
    Experiment(name=name).full_clean()
