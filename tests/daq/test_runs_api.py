"""GET /api/runs (paged, filtered), GET and PATCH /api/runs/N: the run sheet through the
API, its refusals naming the field, the edits kept."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from attpcdaq.daq.models import (
    ApiToken,
    Experiment,
    Measurement,
    Observable,
    RunClass,
    RunEdit,
    RunMetadata,
)

pytestmark = pytest.mark.django_db


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


@pytest.fixture
def sheet():
    """An active experiment with 12 runs (classes alternating Beam and Pulser), two
    observables and measurements on run 3; and another experiment's run 3."""
    experiment = Experiment.objects.create(name="e20009 ⚛", is_active=True)
    current = Observable.objects.create(experiment=experiment, name="beam current",
                                        kind="float", units="pnA", order=1)
    target = Observable.objects.create(experiment=experiment, name="target", kind="text",
                                       order=2)
    beam, pulser = RunClass.objects.get(name="Beam"), RunClass.objects.get(name="Pulser")
    start = timezone.now() - timedelta(hours=2)
    for number in range(12):
        RunMetadata.objects.create(
            experiment=experiment, run_number=number, status="stopped",
            run_class=beam if number % 2 else pulser, title=f"run {number}",
            start_datetime=start, stop_datetime=start + timedelta(seconds=600),
            paused_seconds=60.0,
            manifest={"events": {"CoBo[0]": {"events": 100 + number},
                                 "CoBo[1]": {"events": 99}},
                      "routers": {"router0": {"bytes": 1000 * number, "files": []}}})
    run3 = RunMetadata.objects.get(experiment=experiment, run_number=3)
    Measurement.objects.create(run=run3, observable=current, value=12.5)
    Measurement.objects.create(run=run3, observable=target, value="CD₂ ‮ foil")
    other = Experiment.objects.create(name="other")
    RunMetadata.objects.create(experiment=other, run_number=3, title="not this one")
    return experiment


def test_list_is_paged_by_number(client, sheet, viewer):
    body = client.get("/api/runs?limit=5", **bearer(viewer)).json()
    assert (body["experiment"], body["count"], body["pages"], body["page"]) == (
        "e20009 ⚛", 12, 3, 1)
    assert [r["number"] for r in body["runs"]] == [0, 1, 2, 3, 4]
    assert "page=2" in body["next"] and "limit=5" in body["next"]
    last = client.get("/api/runs?" + client.get(
        "/api/runs?" + body["next"], **bearer(viewer)).json()["next"], **bearer(viewer)).json()
    assert [r["number"] for r in last["runs"]] == [10, 11] and last["next"] is None
    run3 = client.get("/api/runs?from=3&to=3", **bearer(viewer)).json()["runs"][0]
    assert run3 == {
        "number": 3, "status": "stopped", "class": "Beam", "title": "run 3", "comment": "",
        "start": run3["start"], "stop": run3["stop"], "duration_seconds": 600.0,
        "live_time_seconds": 540.0, "events": 103, "bytes": 3000, "incomplete": False,
        "problems": [], "measurements": {"beam current": 12.5, "target": "CD₂ ‮ foil"}}


def test_list_filters_by_class_and_number_range(client, sheet, viewer):
    def numbers(query):
        return [r["number"] for r in client.get(f"/api/runs?{query}",
                                                **bearer(viewer)).json()["runs"]]

    assert numbers("class=beam") == [1, 3, 5, 7, 9, 11]
    assert numbers("class=Beam&class=Pulser&from=4&to=7") == [4, 5, 6, 7]
    assert numbers("from=10") == [10, 11]
    assert numbers("to=1") == [0, 1]
    assert numbers("class=Junk") == []
    assert numbers("experiment=other") == [3]


@pytest.mark.parametrize(("query", "field"), [
    ("page=0", "page"), ("page=two", "page"), ("limit=0", "limit"), ("limit=1001", "limit"),
    ("from=-1", "from"), ("to=1e3", "to"), ("from=" + "9" * 40, "from"),
    ("class=Nope", "class"), ("class=%E2%80%AEmaeB", "class")])
def test_list_refuses_a_malformed_parameter_naming_it(client, sheet, viewer, query, field):
    response = client.get(f"/api/runs?{query}", **bearer(viewer))
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert response.json()["detail"].startswith(f"{field}: ")


def test_list_needs_authentication_and_an_experiment(client, sheet, viewer):
    assert client.get("/api/runs").status_code == 401
    assert client.get("/api/runs?experiment=nope", **bearer(viewer)).status_code == 404
    Experiment.objects.update(is_active=False)
    assert client.get("/api/runs", **bearer(viewer)).status_code == 404


def test_get_one_keeps_the_filing_and_adds_the_sheet(client, sheet, viewer, operator):
    RunMetadata.objects.filter(run_number=3, experiment=sheet).update(
        comment="quiet", started_by=operator, limit_seconds=900.0, incomplete=True,
        problems=["CoBo[1] short"])
    body = client.get("/api/runs/3", **bearer(viewer)).json()
    assert (body["number"], body["status"], body["filed"], body["incomplete"],
            body["problems"]) == (3, "stopped", False, True, ["CoBo[1] short"])
    assert "coverage" in body and body["manifest"]["events"]["CoBo[0]"]["events"] == 103
    assert (body["class"], body["title"], body["comment"], body["started_by"],
            body["limit_seconds"], body["duration_seconds"], body["live_time_seconds"],
            body["events"], body["bytes"]) == ("Beam", "run 3", "quiet", "alice", 900.0,
                                               600.0, 540.0, 103, 3000)
    assert body["measurements"] == {"beam current": 12.5, "target": "CD₂ ‮ foil"}
    assert client.get("/api/runs/99", **bearer(viewer)).status_code == 404


def test_patch_writes_metadata_and_measurements_keeping_the_edits(client, sheet, operator):
    response = client.patch("/api/runs/3", {"title": "Ca-48 on ⁹Be, שלום", "class": "Production",
                                            "comment": "line 1\nline 2",
                                            "measurements": {"beam current": "14",
                                                             "target": None}},
                            content_type="application/json", **bearer(operator))
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["title"], body["class"], body["comment"]) == (
        "Ca-48 on ⁹Be, שלום", "Production", "line 1\nline 2")
    assert body["measurements"] == {"beam current": 14.0}
    run = RunMetadata.objects.get(experiment=sheet, run_number=3)
    assert (run.title, run.run_class.name) == ("Ca-48 on ⁹Be, שלום", "Production")
    edits = {e.field: (e.old, e.new, e.user.username) for e in RunEdit.objects.filter(run=run)}
    assert edits == {"title": ("run 3", "Ca-48 on ⁹Be, שלום", "alice"),
                     "run_class": ("Beam", "Production", "alice"),
                     "comment": ("", "line 1\nline 2", "alice"),
                     "measurements.beam current": (12.5, 14.0, "alice"),
                     "measurements.target": ("CD₂ ‮ foil", None, "alice")}
    assert {e["field"] for e in body["edits"]} == set(edits)
    # The same values again change nothing and record nothing.
    again = client.patch("/api/runs/3", {"title": "Ca-48 on ⁹Be, שלום"},
                         content_type="application/json", **bearer(operator))
    assert again.status_code == 200 and RunEdit.objects.filter(run=run).count() == 5


@pytest.mark.parametrize(("body", "field"), [
    ({"title": "x" * 201}, "title"),
    ({"title": "a\u202eb"}, "title"),
    ({"title": 5}, "title"),
    ({"comment": "y" * 5001}, "comment"),
    ({"class": "Physics"}, "run_class"),
    ({"measurements": {"beam current": "lots"}}, "measurements.beam current"),
    ({"measurements": {"no such": 1}}, "measurements.no such"),
    ({"measurements": [1, 2]}, "measurements"),
    ({"status": "aborted"}, "status"),
    ({}, "body"),
])
def test_patch_refuses_naming_the_field_and_saves_nothing(client, sheet, operator, body,
                                                          field):
    body = {"comment": "would be saved", **body} if body else body
    response = client.patch("/api/runs/3", body, content_type="application/json",
                            **bearer(operator))
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    run = RunMetadata.objects.get(experiment=sheet, run_number=3)
    assert (run.title, run.comment, run.status, run.run_class.name) == (
        "run 3", "", "stopped", "Beam")
    assert Measurement.objects.get(run=run, observable__name="beam current").value == 12.5
    assert not RunEdit.objects.exists()


def test_patch_is_for_operators(client, sheet, viewer):
    response = client.patch("/api/runs/3", {"title": "mine"}, content_type="application/json",
                            **bearer(viewer))
    assert response.status_code == 403
    assert RunMetadata.objects.get(experiment=sheet, run_number=3).title == "run 3"
    assert client.patch("/api/runs/3", {"title": "mine"},
                        content_type="application/json").status_code == 401


def test_patch_of_a_run_that_is_not_there(client, sheet, operator):
    assert client.patch("/api/runs/42", {"title": "x"}, content_type="application/json",
                        **bearer(operator)).status_code == 404
