"""The run sheet's downloads (CSV, JSON, logbook CSV), the Start dialog's post and the
run page's edit form."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from attpcdaq.daq import exports
from attpcdaq.daq.models import (
    Command,
    ConfigId,
    ECCServer,
    Experiment,
    LogEntry,
    Measurement,
    Observable,
    RunClass,
    RunEdit,
    RunMetadata,
)

pytestmark = pytest.mark.django_db

HOSTILE = '=HYPERLINK("http://evil","x")'


@pytest.fixture
def operator():
    user = User.objects.create_user("alice", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    return user


@pytest.fixture
def sheet(operator):
    experiment = Experiment.objects.create(name="e20009 ⚛", is_active=True)
    current = Observable.objects.create(experiment=experiment, name="beam current",
                                        kind="float", units="pnA", order=1)
    target = Observable.objects.create(experiment=experiment, name="target", kind="text",
                                       order=2)
    ok = Observable.objects.create(experiment=experiment, name="ok", kind="boolean", order=3)
    Observable.objects.create(experiment=experiment, name="title", kind="text", order=4)
    start = timezone.now() - timedelta(hours=1)
    run = RunMetadata.objects.create(
        experiment=experiment, run_number=7, status="stopped", title="⁴⁸Ca, \"quoted\", ok",
        comment="two\nlines, one with « and עברית", run_class=RunClass.objects.get(name="Beam"),
        start_datetime=start, stop_datetime=start + timedelta(seconds=125.5),
        paused_seconds=25.5, started_by=operator, incomplete=True,
        problems=["CoBo[1] short", "-1 frames"],
        manifest={"events": {"CoBo[0]": {"events": 4321}},
                  "routers": {"r0": {"bytes": 123456789, "files": []}}})
    Measurement.objects.create(run=run, observable=current, value=-3.25)
    Measurement.objects.create(run=run, observable=target, value=HOSTILE)
    Measurement.objects.create(run=run, observable=ok, value=True)
    RunMetadata.objects.create(experiment=experiment, run_number=8, title="+1 dB",
                               status="running")
    LogEntry.objects.create(author=operator, text="@here beam is back ✓", run=run)
    return experiment


def read_csv(data: bytes) -> list[dict]:
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_round_trips_values_units_and_unicode(client, sheet, operator):
    client.force_login(operator)
    response = client.get("/runs/export.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = read_csv(response.content)
    header = list(rows[0])
    assert header[-4:] == ["beam current [pnA]", "target", "ok", "title (measurement)"]
    assert "start [UTC]" in header and "duration [s]" in header
    first, second = rows
    assert (first["run"], first["status"], first["class"], first["title"], first["comment"]) == (
        "7", "stopped", "Beam", "⁴⁸Ca, \"quoted\", ok", "two\nlines, one with « and עברית")
    assert (first["duration [s]"], first["live time [s]"], first["events"],
            first["data [bytes]"], first["incomplete"], first["started by"]) == (
        "125.5", "100", "4321", "123456789", "yes", "alice")
    assert float(first["beam current [pnA]"]) == -3.25  # a number stays a number
    assert first["ok"] == "yes" and first["title (measurement)"] == ""
    # Text a spreadsheet would run as a formula is prefixed, and reads back without it.
    assert first["target"] == "'" + HOSTILE and first["target"][1:] == HOSTILE
    assert first["problems"] == "CoBo[1] short; -1 frames"
    assert second["title"] == "'+1 dB" and second["stop [UTC]"] == ""
    start = RunMetadata.objects.get(run_number=7).start_datetime
    assert first["start [UTC]"] == start.strftime("%Y-%m-%d %H:%M:%S")


def test_json_keeps_the_values_as_typed_with_the_logbook(client, sheet, operator):
    client.force_login(operator)
    response = client.get("/runs/export.json?experiment=e20009 ⚛")
    body = json.loads(response.content.decode("utf-8"))
    assert body["experiment"] == "e20009 ⚛"
    assert [o["column"] for o in body["observables"]] == [
        "beam current [pnA]", "target", "ok", "title"]
    run = body["runs"][0]
    assert (run["number"], run["class"], run["title"], run["events"], run["bytes"],
            run["live_time_seconds"]) == (7, "Beam", "⁴⁸Ca, \"quoted\", ok", 4321, 123456789,
                                          100.0)
    assert run["measurements"] == {"beam current": -3.25, "target": HOSTILE, "ok": True}
    assert [r["number"] for r in body["runs"]] == [7, 8]
    assert [e["text"] for e in body["logbook"]] == ["@here beam is back ✓"]


def test_logbook_csv(client, sheet, operator):
    client.force_login(operator)
    rows = read_csv(client.get("/runs/logbook.csv").content)
    assert len(rows) == 1
    text = next(v for v in rows[0].values() if "beam is back" in v)
    assert text == "'@here beam is back ✓"


def test_exports_need_a_login_and_an_experiment(client, sheet, operator):
    assert client.get("/runs/export.csv").status_code == 302
    client.force_login(operator)
    assert client.get("/runs/export.csv?experiment=nope").status_code == 404
    assert b"export-csv" in client.get("/runs/").content


def test_safe_cell():
    assert [exports.safe_cell(v) for v in ("=1+1", "+x", "-x", "@x", "\tx", "a=b", "", None,
                                           "\uff1d1")] == [
        "'=1+1", "'+x", "'-x", "'@x", "'\tx", "a=b", "", "", "\uff1d1"]


# The Start dialog's post -----------------------------------------------------------------

@pytest.fixture
def ready(sheet, engine_beating):
    server = ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1", port=9000,
                                      is_online=True, state=ECCServer.READY)
    server.selected_config = ConfigId.objects.create(ecc_server=server, describe="c",
                                                     prepare="p", configure="c")
    server.save()
    RunMetadata.objects.filter(status="running").update(status="stopped")
    return server


def test_start_dialog_posts_the_details(client, ready, operator):
    client.force_login(operator)
    page = client.get("/").content.decode()
    assert 'id="start-dialog"' in page and "data-start-dialog" in page
    assert 'value="+1 dB"' in page  # prefilled from the previous run
    prefill = client.get("/start/prefill/").json()
    assert (prefill["title"], prefill["previous"]) == ("+1 dB", 8)
    response = client.post("/start/", {"title": "Ca «48»", "run_class": "Production",
                                       "comment": "", "limit_duration": "2",
                                       "limit_duration_unit": "hours", "limit_data": "",
                                       "limit_data_unit": "GB", "limit_events": ""},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 202, response.content
    command = Command.objects.get()
    assert (command.options["title"], command.options["run_class"],
            command.options["limit_seconds"]) == ("Ca «48»", "Production", 7200.0)


def test_start_dialog_refusal_names_the_field_and_queues_nothing(client, ready, operator):
    client.force_login(operator)
    response = client.post("/start/", {"title": "x\u202e", "limit_duration": "soon",
                                       "limit_duration_unit": "minutes"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert set(json.loads(response["X-Field-Errors"])) == {"title", "limit_duration"}
    assert "U+202E" in response.content.decode()
    assert not Command.objects.exists()
    viewer = User.objects.create_user("bob")
    client.force_login(viewer)
    assert client.post("/start/", {"title": "x"}).status_code == 403


# The run page ----------------------------------------------------------------------------

def test_run_page_shows_and_edits_the_metadata(client, sheet, operator):
    run = RunMetadata.objects.get(run_number=7)
    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="run-edit-form"' in page and "beam current" in page and "-3.25" in page
    target = Observable.objects.get(name="target")
    response = client.post(f"/runs/{run.pk}/metadata/",
                           {"title": "renamed", "run_class": "Junk", "comment": run.comment,
                            f"m-{target.pk}": "CD₂"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Refresh"] == "true"
    run.refresh_from_db()
    assert (run.title, run.run_class.name) == ("renamed", "Junk")
    assert sorted(RunEdit.objects.values_list("field", flat=True)) == [
        "measurements.target", "run_class", "title"]
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "changed <em>class</em>" in page and "changed <em>target</em>" in page
    bad = client.post(f"/runs/{run.pk}/metadata/", {"title": "t" * 300, "run_class": "Nope"},
                      HTTP_HX_REQUEST="true")
    assert bad.status_code == 400
    assert set(json.loads(bad["X-Field-Errors"])) == {"title", "run_class"}
    assert RunMetadata.objects.get(pk=run.pk).title == "renamed"


def test_viewers_see_the_metadata_but_no_form(client, sheet):
    run = RunMetadata.objects.get(run_number=7)
    viewer = User.objects.create_user("bob")
    client.force_login(viewer)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Beam" in page and 'id="run-edit-form"' not in page
    assert client.post(f"/runs/{run.pk}/metadata/", {"title": "x"}).status_code == 403
    assert RunMetadata.objects.get(pk=run.pk).title.startswith("⁴⁸Ca")
