"""Run metadata: every rule of a Start's details, the dialog's prefill, edits kept, times."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from attpcdaq.daq import runmeta, services
from attpcdaq.daq.models import (
    Command,
    ConfigId,
    ECCServer,
    Experiment,
    Measurement,
    Observable,
    RunClass,
    RunEdit,
    RunMetadata,
)
from attpcdaq.daq.runmeta import MetadataError

pytestmark = pytest.mark.django_db


def refused(data) -> dict[str, str]:
    with pytest.raises(MetadataError) as caught:
        runmeta.start_options(data)
    return caught.value.errors


def test_start_options_accepts_and_normalises():
    options = runmeta.start_options({
        "target": "running", "title": "  ⁴⁸Ca on ⁹Be — شكرا  ", "run_class": "beam",
        "comment": "first line\r\nsecond\tline", "limit_seconds": "90", "limit_events": 1e6,
        "limit_bytes": "2_000_000", "auto_restart": "on"})
    assert options == {"title": "⁴⁸Ca on ⁹Be — شكرا", "run_class": "Beam",
                       "comment": "first line\nsecond\tline", "limit_seconds": 90.0,
                       "limit_events": 1_000_000, "limit_bytes": 2_000_000,
                       "auto_restart": True}
    assert type(options["limit_events"]) is int


def test_start_options_empty_means_none():
    assert runmeta.start_options({}) == {
        "title": "", "run_class": None, "comment": "", "limit_seconds": None,
        "limit_events": None, "limit_bytes": None, "auto_restart": False}
    assert runmeta.start_options({"run_class": " ", "limit_seconds": "", "limit_events": None,
                                  "auto_restart": ""})["limit_seconds"] is None


@pytest.mark.parametrize(("field", "value", "words"), [
    ("title", "x" * 201, "201 characters long: at most 200"),
    ("title", "x" * 10_000_000, "10,000,000 characters long"),
    ("title", "two\nlines", "U+000A"),
    ("title", "evil\u202etxt.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE) at character 5"),
    ("title", "iso\u2067late", "U+2067"),
    ("title", "nul\x00", "U+0000"),
    ("title", 42, "must be text"),
    ("title", ["a"], "must be text"),
    ("comment", "y" * 5001, "5,001 characters long: at most 5,000"),
    ("comment", "bell\x07", "U+0007"),
    ("comment", "rlo \u202e", "U+202E"),
    ("run_class", "Physics", "no run class 'Physics': choose one of Testing"),
    ("run_class", "B" * 10_000, "no run class"),
    ("run_class", 3, "must be the name of a run class"),
    ("limit_seconds", "soon", "'soon' is not one"),
    ("limit_seconds", "0", "must be positive"),
    ("limit_seconds", -5, "must be positive"),
    ("limit_seconds", "nan", "finite"),
    ("limit_seconds", float("inf"), "finite"),
    ("limit_seconds", 10**9, "allowed"),
    ("limit_seconds", True, "not true"),
    ("limit_seconds", "9" * 1000, "must be a number of seconds"),
    ("limit_events", "1.5", "whole number of events"),
    ("limit_events", "ten", "not one"),
    ("limit_events", 2**63, "allowed"),
    ("limit_events", {"n": 1}, "must be a number"),
    ("limit_bytes", "-1", "must be positive"),
    ("limit_bytes", False, "not false"),
    ("auto_restart", "maybe", "true or false"),
    ("auto_restart", 2, "true or false"),
])
def test_each_rule_names_its_field(field, value, words):
    errors = refused({field: value})
    assert list(errors) == [field]
    assert words in errors[field]


def test_every_wrong_field_is_named_at_once():
    errors = refused({"title": 1, "comment": "\u202e", "limit_events": "x", "run_class": "?"})
    assert set(errors) == {"title", "comment", "limit_events", "run_class"}
    with pytest.raises(MetadataError) as caught:
        runmeta.start_options({"title": 1})
    assert str(caught.value) == "title: must be text"
    assert caught.value.status == 400


def test_auto_restart_needs_a_limit():
    assert "set a duration, event or data limit" in refused({"auto_restart": True})[
        "auto_restart"]
    assert runmeta.start_options({"auto_restart": True, "limit_events": 10})["auto_restart"]


def test_start_options_refuses_what_is_not_an_object():
    with pytest.raises(MetadataError):
        runmeta.start_options(["title"])


def test_form_options_convert_units_and_name_the_form_fields():
    options = runmeta.form_start_options({
        "title": "t", "limit_duration": "1.5", "limit_duration_unit": "hours",
        "limit_data": "2", "limit_data_unit": "GB", "limit_events": "", "auto_restart": "on"})
    assert (options["limit_seconds"], options["limit_bytes"], options["auto_restart"]) == (
        5400.0, 2_000_000_000, True)
    with pytest.raises(MetadataError) as caught:
        runmeta.form_start_options({"limit_duration": "x", "limit_data": "9e30",
                                    "limit_data_unit": "GB", "limit_duration_unit": "weeks"})
    assert set(caught.value.errors) == {"limit_duration_unit", "limit_data"}
    with pytest.raises(MetadataError) as caught:
        runmeta.form_start_options({"limit_duration": "400", "limit_duration_unit": "days"})
    assert set(caught.value.errors) == {"limit_duration_unit"}
    with pytest.raises(MetadataError) as caught:
        runmeta.form_start_options({"limit_duration": "10000", "limit_duration_unit": "hours"})
    assert "allowed" in caught.value.errors["limit_duration"]


@pytest.fixture
def experiment():
    return Experiment.objects.create(name="e20009", is_active=True)


def test_prefill_takes_the_previous_run_but_not_its_limits(experiment):
    assert runmeta.prefill(experiment)["title"] == ""
    assert runmeta.prefill(None)["previous"] is None
    RunMetadata.objects.create(experiment=experiment, run_number=4, title="old",
                               run_class=RunClass.objects.get(name="Junk"))
    RunMetadata.objects.create(
        experiment=experiment, run_number=5, status="aborted", title="Ca-48 «beam» ✓",
        comment="target 2", run_class=RunClass.objects.get(name="Beam"), limit_seconds=60,
        limit_events=5, limit_bytes=7, auto_restart=True)
    other = Experiment.objects.create(name="other")
    RunMetadata.objects.create(experiment=other, run_number=99, title="elsewhere")
    assert runmeta.prefill(experiment) == {
        "title": "Ca-48 «beam» ✓", "run_class": "Beam", "comment": "target 2",
        "limit_seconds": None, "limit_events": None, "limit_bytes": None,
        "auto_restart": False, "previous": 5}
    # What the dialog submits from the prefill is accepted as it is.
    assert runmeta.start_options(runmeta.prefill(experiment))["run_class"] == "Beam"


@pytest.fixture
def operator():
    user = User.objects.create_user("alice")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def run(experiment):
    Observable.objects.create(experiment=experiment, name="beam current", kind="float",
                              units="pnA")
    Observable.objects.create(experiment=experiment, name="shifts", kind="integer",
                              required=True)
    return RunMetadata.objects.create(experiment=experiment, run_number=1, title="first",
                                      run_class=RunClass.objects.get(name="Testing"))


def test_update_run_records_one_edit_per_changed_field(run, operator):
    before = timezone.now()
    edits = runmeta.update_run(operator, run, {
        "title": "first", "comment": "שלום ☢", "run_class": "Production",
        "measurements": {"beam current": "3.5", "shifts": 2}})
    assert sorted(e.field for e in edits) == ["comment", "measurements.beam current",
                                              "measurements.shifts", "run_class"]
    stored = {e.field: e for e in RunEdit.objects.filter(run=run)}
    assert set(stored) == {e.field for e in edits}
    assert (stored["run_class"].old, stored["run_class"].new) == ("Testing", "Production")
    assert (stored["comment"].old, stored["comment"].new) == ("", "שלום ☢")
    assert all(e.user == operator and e.time >= before for e in stored.values())
    run.refresh_from_db()
    assert (run.title, run.comment, run.run_class.name) == ("first", "שלום ☢", "Production")
    assert {m.observable.name: m.value for m in run.measurements.all()} == {
        "beam current": 3.5, "shifts": 2}
    # A class removed, a measurement changed: two more edits.
    runmeta.update_run(operator, run, {"run_class": "", "measurements": {"shifts": "3"}})
    assert RunEdit.objects.filter(run=run).count() == 6
    assert RunEdit.objects.get(run=run, field="run_class", new__isnull=True).old == "Production"


@pytest.mark.parametrize(("fields", "field"), [
    ({"title": "t" * 201}, "title"),
    ({"comment": "\u202d"}, "comment"),
    ({"run_class": "Nope"}, "run_class"),
    ({"measurements": {"beam current": "high"}}, "measurements.beam current"),
    ({"measurements": {"beam current": "1" * 200}}, "measurements.beam current"),
    ({"measurements": {"shifts": ""}}, "measurements.shifts"),
    ({"measurements": {"shifts": "2.5"}}, "measurements.shifts"),
    ({"measurements": "3"}, "measurements"),
    ({"status": "stopped"}, "status"),
    ({"limit_seconds": 5}, "limit_seconds"),
])
def test_update_run_saves_nothing_unless_all_is_valid(run, operator, fields, field):
    with pytest.raises(MetadataError) as caught:
        runmeta.update_run(operator, run, {"title": "changed", "comment": "also", **fields})
    assert field in caught.value.errors
    run.refresh_from_db()
    assert (run.title, run.comment, run.run_class.name) == ("first", "", "Testing")
    assert not Measurement.objects.exists() and not RunEdit.objects.exists()


def test_update_run_is_for_operators(run):
    viewer = User.objects.create_user("bob")
    with pytest.raises(runmeta.EditForbidden):
        runmeta.update_run(viewer, run, {"title": "mine"})
    run.refresh_from_db()
    assert run.title == "first" and not RunEdit.objects.exists()


def test_update_run_leaves_what_the_engine_wrote(run, operator):
    stale = RunMetadata.objects.get(pk=run.pk)
    RunMetadata.objects.filter(pk=run.pk).update(status="stopped", manifest={"x": 1})
    runmeta.update_run(operator, stale, {"title": "new"})
    run.refresh_from_db()
    assert (run.title, run.status, run.manifest) == ("new", "stopped", {"x": 1})


def test_duration_and_live_time(experiment):
    now = timezone.now()
    run = RunMetadata(experiment=experiment, run_number=1)
    assert runmeta.duration(run) is None and runmeta.live_time(run) is None
    run.start_datetime = now - timedelta(seconds=100)
    run.paused_seconds = 20.0
    assert runmeta.duration(run, now) == timedelta(seconds=100)
    assert runmeta.live_time(run, now) == timedelta(seconds=80)
    run.paused_since = now - timedelta(seconds=30)  # paused now, for 30 s
    assert runmeta.live_time(run, now) == timedelta(seconds=50)
    run.stop_datetime, run.paused_since = now - timedelta(seconds=50), None
    assert runmeta.duration(run, now) == timedelta(seconds=50)
    assert runmeta.live_time(run, now) == timedelta(seconds=30)


def test_events_and_bytes_read_any_manifest(experiment):
    run = RunMetadata(experiment=experiment, run_number=1, manifest={
        "events": {"CoBo[0]": {"events": 10}, "CoBo[1]": {"events": 12},
                   "CoBo[2]": "junk", "CoBo[3]": {"events": True}},
        "routers": {"r0": {"bytes": 5}, "r1": {"files": [{"size": 2}, {"size": "x"}]},
                    "r2": 7}})
    assert (runmeta.events(run), runmeta.data_bytes(run)) == (12, 7)
    run.manifest = "broken"
    assert (runmeta.events(run), runmeta.data_bytes(run)) == (None, None)


# The Start through services ---------------------------------------------------------------

@pytest.fixture
def ready(experiment, engine_beating):
    server = ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1", port=9000,
                                      is_online=True, state=ECCServer.READY)
    server.selected_config = ConfigId.objects.create(ecc_server=server, describe="c",
                                                     prepare="p", configure="c")
    server.save()
    return server


def test_request_transition_keeps_the_checked_options_on_the_start(ready, operator):
    command = services.request_transition(operator, "running", options={
        "title": " beam ", "run_class": "pulser", "limit_seconds": "60"})
    command.refresh_from_db()
    assert command.options == {"title": "beam", "run_class": "Pulser", "comment": "",
                               "limit_seconds": 60.0, "limit_events": None,
                               "limit_bytes": None, "auto_restart": False}


def test_request_transition_refuses_bad_options_queueing_nothing(ready, operator):
    with pytest.raises(MetadataError) as caught:
        services.request_transition(operator, "running", options={"limit_events": "many"})
    assert list(caught.value.errors) == ["limit_events"]
    with pytest.raises(services.ControlError, match="system-wide Start only"):
        services.request_transition(operator, "ready", options={"title": "x"})
    with pytest.raises(services.ControlError, match="system-wide Start only"):
        services.request_transition(operator, "running", ready, options={"title": "x"})
    assert not Command.objects.exists()


def test_a_resume_takes_no_details(ready, operator, experiment):
    RunMetadata.objects.create(experiment=experiment, run_number=0, status="paused")
    with pytest.raises(services.ControlError, match="paused"):
        services.request_transition(operator, "running", options={"title": "x"})
    assert services.request_transition(operator, "running").options == {}
