"""The charts' data endpoint (/runs/chart-data) and the page that draws it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from attpcdaq.daq.models import Experiment, Measurement, Observable, RunClass, RunMetadata

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script>'


@pytest.fixture(autouse=True)
def run_classes():
    """The seeded classes (a transactional test earlier in a session flushes them)."""
    for order, name in enumerate(("Testing", "Production", "Beam", "Pulser", "Junk")):
        RunClass.objects.get_or_create(name=name, defaults={"order": order})


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("bob", password="pw")
    client.force_login(user)
    return user


@pytest.fixture
def experiment():
    return Experiment.objects.create(name="e20009", is_active=True)


@pytest.fixture
def observables(experiment):
    make = Observable.objects.create
    return {"current": make(experiment=experiment, name="beam current", kind="float",
                            units="pA"),
            "scalers": make(experiment=experiment, name="scalers", kind="integer"),
            "note": make(experiment=experiment, name="note", kind="text")}


@pytest.fixture
def runs(experiment, observables):
    beam, pulser = RunClass.objects.get(name="Beam"), RunClass.objects.get(name="Pulser")
    made = []
    for number, (klass, minutes, events, paused) in enumerate(
            [(beam, 60, 1000, 0), (pulser, 30, 50, 0), (beam, 90, 2500, 600)], start=1):
        start = T0 + timedelta(hours=number * 3)
        made.append(RunMetadata.objects.create(
            experiment=experiment, run_number=number, title=f"run «{number}»",
            status="stopped", run_class=klass, start_datetime=start,
            stop_datetime=start + timedelta(minutes=minutes), paused_seconds=paused,
            manifest={"events": {"CoBo[0]": {"events": events}},
                      "routers": {"r0": {"bytes": events * 1000, "files": []}}}))
    # One that never started: no time, no duration.
    made.append(RunMetadata.objects.create(experiment=experiment, run_number=4,
                                           status="aborted"))
    Measurement.objects.create(run=made[0], observable=observables["current"], value=12.5)
    Measurement.objects.create(run=made[2], observable=observables["current"], value=7)
    Measurement.objects.create(run=made[1], observable=observables["note"], value="x")
    # A value that is no number (written behind the form's back) is left out.
    Measurement.objects.create(run=made[1], observable=observables["current"], value="n/a")
    return made


def data(client, **query):
    response = client.get(reverse("daq:chart_data"), query)
    return response.status_code, response.json()


def xy(answer) -> list[tuple]:
    return [(p["x"], p["y"]) for p in answer["points"]]


def test_events_against_run_number(client, runs, viewer):
    status, answer = data(client, y="events", x="number")
    assert status == 200
    assert xy(answer) == [(1, 1000), (2, 50), (3, 2500)]
    assert answer["y_label"] == "Events" and answer["x_label"] == "Run number"
    assert answer["points"][0]["title"] == "run «1»" and answer["points"][0]["class"] == "Beam"
    assert answer["truncated"] is False


def test_duration_live_time_and_bytes(client, runs, viewer):
    assert xy(data(client, y="duration")[1]) == [(1, 3600.0), (2, 1800.0), (3, 5400.0)]
    assert xy(data(client, y="live_time")[1]) == [(1, 3600.0), (2, 1800.0), (3, 4800.0)]
    status, answer = data(client, y="bytes")
    assert xy(answer) == [(1, 1_000_000), (2, 50_000), (3, 2_500_000)]
    assert answer["units"] == "bytes"


def test_against_time(client, runs, viewer):
    status, answer = data(client, y="events", x="time")
    assert status == 200 and answer["x_label"] == "Start time"
    assert [p["x"] for p in answer["points"]] == [
        int((T0 + timedelta(hours=3 * n)).timestamp() * 1000) for n in (1, 2, 3)]


def test_a_numeric_observable(client, runs, observables, viewer):
    status, answer = data(client, y=f"obs{observables['current'].pk}")
    assert status == 200
    assert xy(answer) == [(1, 12.5), (3, 7)]  # "n/a" and the runs without a value left out
    assert answer["y_label"] == "beam current" and answer["units"] == "pA"


def test_filtered_by_class(client, runs, viewer):
    assert xy(data(client, y="events", **{"class": "Beam"})[1]) == [(1, 1000), (3, 2500)]
    assert xy(data(client, y="events", **{"class": "Pulser"})[1]) == [(2, 50)]
    assert data(client, y="events", **{"class": "Junk"})[1]["points"] == []


@pytest.mark.parametrize(("query", "field"), [
    ({"y": "title"}, "y"), ({"y": HOSTILE}, "y"), ({"y": "obs999999"}, "y"),
    ({"y": "events", "x": "stop"}, "x"), ({"y": "events", "x": HOSTILE}, "x"),
    ({"y": "events", "class": "Nonsense"}, "class"),
])
def test_bad_parameters_are_400_naming_the_parameter(client, runs, observables, viewer,
                                                     query, field):
    status, answer = data(client, **query)
    assert status == 400 and answer["field"] == field
    assert answer["error"].startswith(f"{field}: ")


def test_text_observables_are_not_drawn(client, runs, observables, viewer):
    status, answer = data(client, y=f"obs{observables['note'].pk}")
    assert status == 400 and answer["field"] == "y"


def test_another_experiment_and_an_unknown_one(client, runs, viewer):
    other = Experiment.objects.create(name="other")
    RunMetadata.objects.create(experiment=other, run_number=1, status="stopped",
                               manifest={"events": {"CoBo[0]": {"events": 7}}})
    assert xy(data(client, y="events", experiment="other")[1]) == [(1, 7)]
    status, answer = data(client, y="events", experiment=HOSTILE)
    assert status == 404 and "There is no experiment" in answer["error"]


def test_login_required(client, runs):
    response = client.get(reverse("daq:chart_data"), {"y": "events"})
    assert response.status_code == 401 and response.json()["error"] == "Log in first."


def test_the_page_offers_the_numeric_quantities(client, runs, observables, viewer):
    html = client.get(reverse("daq:charts")).content.decode()
    for key in ("events", "duration", "bytes", f"obs{observables['current'].pk}",
                f"obs{observables['scalers'].pk}"):
        assert f'<option value="{key}"' in html
    assert f'value="obs{observables["note"].pk}"' not in html
    assert "/static/chartjs/chart.umd.min.js" in html
    assert 'id="run-chart"' in html


def test_the_chart_library_is_served_with_its_licence(client):
    from pathlib import Path

    import attpcdaq

    static = Path(attpcdaq.__file__).parent / "daq" / "static"
    for library, path, banner in (("chartjs", "chart.umd.min.js", "Chart.js v"),
                                  ("sortablejs", "Sortable.min.js", "Sortable ")):
        version = (static / library / "VERSION").read_text().strip()
        response = client.get(f"/static/{library}/{path}")
        assert response.status_code == 200
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert f"{banner}{version}".encode() in body[:300]
        assert "MIT License" in (static / library / "LICENSE").read_text()
