"""The Django admin of the DAQ: every model's list, change and add pages load."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from attpcdaq.daq.models import (
    ApiToken,
    Command,
    ConfigId,
    DataRouter,
    DataSource,
    ECCServer,
    EngineHeartbeat,
    Event,
    Experiment,
    LogEntry,
    Measurement,
    Observable,
    RunClass,
    RunEdit,
    RunMetadata,
)

pytestmark = pytest.mark.django_db

MODELS = [ApiToken, Command, ConfigId, DataRouter, DataSource, ECCServer, EngineHeartbeat,
          Event, Experiment, RunMetadata]


@pytest.fixture
def rows(admin_user):
    experiment = Experiment.objects.create(name="e20009", is_active=True)
    server = ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1", port=9000)
    config = ConfigId.objects.create(ecc_server=server, describe="cobo0", prepare="exp",
                                     configure="exp")
    router = DataRouter.objects.create(name="router0", ip_address="127.0.0.1")
    DataSource.objects.create(name="CoBo[0]", ecc_server=server, data_router=router)
    run = RunMetadata.objects.create(experiment=experiment, run_number=3, status="stopped",
                                     start_datetime=timezone.now())
    Command.objects.create(kind="transition", target=ECCServer.READY, user=admin_user)
    Event.objects.create(level="alarm", source="CoBo[0]", message="hot", run=run)
    ApiToken.issue(admin_user)
    now = timezone.now()
    EngineHeartbeat.objects.create(pk=1, beat=now, started=now, pid=1, hostname="daq")
    return {"server": server, "config": config}


def test_every_model_is_registered():
    assert set(MODELS) <= set(admin.site._registry)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_list_and_change_pages_load(admin_client, rows, model):
    meta = model._meta
    response = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert response.status_code == 200
    obj = model.objects.first()
    response = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change",
                                        args=[obj.pk]))
    assert response.status_code == 200


@pytest.mark.parametrize("model", [ECCServer, DataRouter, DataSource, Experiment, ConfigId],
                         ids=lambda m: m.__name__)
def test_add_pages_load(admin_client, rows, model):
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
    assert admin_client.get(url).status_code == 200


def test_records_of_the_system_cannot_be_added_or_edited(admin_client, rows):
    for model in (Command, ApiToken, EngineHeartbeat):
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
        assert admin_client.get(url).status_code == 403
    token = ApiToken.objects.get()
    page = admin_client.get(reverse("admin:daq_apitoken_change", args=[token.pk])).content
    assert token.digest.encode() not in page  # only a prefix is shown
    assert b'name="digest"' not in page


def test_server_page_offers_only_its_own_configs(admin_client, rows):
    other = ECCServer.objects.create(name="CoBo[1]", ip_address="127.0.0.1", port=9001)
    ConfigId.objects.create(ecc_server=other, describe="cobo1", prepare="exp", configure="exp")
    page = admin_client.get(reverse("admin:daq_eccserver_change",
                                    args=[rows["server"].pk])).content.decode()
    assert "cobo0/exp/exp" in page and "cobo1/exp/exp" not in page
    assert "Data sources" in page  # the inline


def test_acknowledge_and_activate_actions(admin_client, rows):
    event = Event.objects.get()
    admin_client.post(reverse("admin:daq_event_changelist"),
                      {"action": "acknowledge", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.acknowledged
    second = Experiment.objects.create(name="e21000")
    admin_client.post(reverse("admin:daq_experiment_changelist"),
                      {"action": "activate", "_selected_action": [second.pk]})
    assert Experiment.active() == second


def test_admin_link_is_for_staff_only(client, admin_client, rows):
    assert "/admin/" in admin_client.get("/").content.decode()
    User.objects.create_user("viewer", password="pw")
    client.login(username="viewer", password="pw")
    assert "/admin/" not in client.get("/").content.decode()


SHEET_MODELS = [Observable, Measurement, RunClass, RunEdit, LogEntry]


@pytest.fixture
def sheet_rows(admin_user, rows):
    run = RunMetadata.objects.get()
    beam = RunClass.objects.get_or_create(name="Beam")[0]
    run.run_class = beam
    run.save()
    current = Observable.objects.create(experiment=run.experiment, name="beam current",
                                        units="pnA")
    Measurement.objects.create(run=run, observable=current, value=10.5)
    RunEdit.objects.create(run=run, user=admin_user, field="beam current", old=None, new=10.5)
    LogEntry.objects.create(run=run, drafted=True, text="Run 3 — «Beam on target» ✓")


@pytest.mark.parametrize("model", SHEET_MODELS, ids=lambda m: m.__name__)
def test_run_sheet_and_logbook_pages_load(admin_client, sheet_rows, model):
    meta = model._meta
    assert model in admin.site._registry
    response = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert response.status_code == 200
    assert model.objects.count() >= 1
    assert f"0 {meta.verbose_name_plural}" not in response.content.decode()
    response = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change",
                                        args=[model.objects.first().pk]))
    assert response.status_code == 200


def test_run_edits_are_read_only(admin_client, sheet_rows):
    edit = RunEdit.objects.get()
    assert admin_client.get(reverse("admin:daq_runedit_add")).status_code == 403
    page = admin_client.get(reverse("admin:daq_runedit_change", args=[edit.pk])).content
    assert b'name="field"' not in page  # shown, not a form field
    admin_client.post(reverse("admin:daq_runedit_change", args=[edit.pk]),
                      {"run": edit.run_id, "field": "title", "old": "null", "new": "null"})
    edit.refresh_from_db()
    assert edit.field == "beam current"
