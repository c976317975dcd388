"""Data written while no run was open: the operator's choice (service, API, status page)
and the alarms of ``/api/status``.

Through Django's test client against the real database; the engine's side (noticing
the files, moving them as decided) is tested in tests/engine/test_unattributed_choice.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from attpcdaq.daq import services, unattributed
from attpcdaq.daq.models import (
    ApiToken,
    DataRouter,
    EngineHeartbeat,
    Event,
    Experiment,
    RunMetadata,
    UnattributedData,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
JSON = "application/json"
FRIENDLY = "after the restart: O'Brien says \"keep\" <b>☢</b> 日本語 עברית ok"
FILES = [{"name": "CoBo0_AsAd0_2026-12-01T21:04:10.000_0000.graw", "size": 4096},
         {"name": "CoBo0_AsAd1_2026-12-01T21:04:10.001_0000.graw", "size": 2048}]
# Notes refused with a message saying what is wrong, changing nothing.
HOSTILE = [
    ("a\u202eevil", "U+202E"),           # right-to-left override
    ("x\u2066y\u2069", "U+2066"),        # a bidi isolate
    ("two\nlines", "U+000A"),
    ("nul\x00", "U+0000"),
    ("\x1b[31mred", "U+001B"),
    ("é" * 501, "501 characters long"),
    ("x" * 1_000_000, "1,000,000 characters long"),
    (12345, "must be text"),
]


@pytest.fixture
def model(settings):
    # No engine runs here: its one beat counts as fresh for the length of a test.
    settings.ENGINE_STALE_AFTER = 600
    now = timezone.now()
    EngineHeartbeat.objects.create(pk=1, beat=now, started=now, pid=1, hostname="here")
    experiment = Experiment.objects.create(name="e20009", is_active=True)
    for number in (3, 4):
        RunMetadata.objects.create(experiment=experiment, run_number=number, status="stopped",
                                   filed=True, start_datetime=now, stop_datetime=now)
    router = DataRouter.objects.create(name="router0", ip_address="127.0.0.1", port=46005,
                                       is_online=True, is_clean=False)
    record = UnattributedData.objects.create(experiment=experiment, router=router,
                                             files=FILES)
    return experiment, router, record


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


def unchanged(record: UnattributedData) -> bool:
    """The record still waits, as the engine wrote it, and no decision was recorded."""
    record = UnattributedData.objects.get(pk=record.pk)
    return ((record.decision, record.run, record.note, record.decided_by, record.decided_at)
            == ("", None, "", None, None)
            and not Event.objects.filter(message__contains="chose to").exists())


def text(response) -> str:
    return response.content.decode()


# The service ----------------------------------------------------------------------------

def test_filing_into_a_run_records_who_chose_what(model, operator):
    experiment, router, record = model
    decided = unattributed.decide_unattributed(operator, record, "run", 3, f"  {FRIENDLY}  ")
    assert (decided.decision, decided.run.run_number, decided.note, decided.decided_by) == (
        "run", 3, FRIENDLY, operator)
    assert decided.decided_at is not None and decided.settled_at is None
    (event,) = Event.objects.filter(source="router0")
    assert event.level == "info" and event.run.run_number == 3
    assert event.message == ("alice chose to file them into run 3: 2 file(s), 6,144 bytes "
                             f"written on router0 while no run was open ({FRIENDLY})")
    # Decided once: a second choice, however it comes, is refused saying who chose what.
    with pytest.raises(services.Conflict, match=r"decided already by alice at .*: to file "
                       r"them into run 3"):
        unattributed.decide_unattributed(operator, record, "aside")
    assert UnattributedData.objects.get(pk=record.pk).decision == "run"


def test_setting_aside_needs_no_run_nor_note(model, operator):
    experiment, router, record = model
    decided = unattributed.decide_unattributed(operator, record, "aside")
    assert (decided.decision, decided.run, decided.note) == ("aside", None, "")
    assert Event.objects.get(source="router0").message == (
        "alice chose to set them aside in e20009/unattributed/: 2 file(s), 6,144 bytes "
        "written on router0 while no run was open")


@pytest.mark.parametrize(("note", "words"), HOSTILE)
def test_a_hostile_note_is_refused_saying_why_and_changes_nothing(model, operator, note, words):
    experiment, router, record = model
    with pytest.raises(services.ControlError) as refused:
        unattributed.decide_unattributed(operator, record, "aside", note=note)
    assert refused.value.status == 400
    assert words in str(refused.value) and "note" in str(refused.value)
    assert len(str(refused.value)) < 300  # never the whole paste back
    assert unchanged(record)


@pytest.mark.parametrize(("decision", "run", "status", "words"), [
    ("delete", None, 400, "unknown decision 'delete'"),
    ("run", None, 400, "choose the run"),
    ("run", "", 400, "choose the run"),
    ("run", 999, 400, "experiment e20009 has no run 999"),
    ("run", -1, 400, "-1' is not a run number"),
    ("run", True, 400, "is not a run number"),
    ("run", 10**30, 400, "is not a run number"),
    ("run", "3; DROP TABLE", 400, "is not a run number"),
    ("run", "٣", 400, "is not a run number"),  # an Arabic-Indic digit is no run number
    ("aside", 3, 400, "a run is chosen only to file"),
])
def test_a_choice_that_names_no_run_of_its_experiment_is_refused(model, operator, decision,
                                                                 run, status, words):
    experiment, router, record = model
    with pytest.raises(services.ControlError, match=words) as refused:
        unattributed.decide_unattributed(operator, record, decision, run)
    assert refused.value.status == status
    assert unchanged(record)


def test_a_run_that_is_open_or_not_filed_or_of_another_experiment_is_refused(model, operator):
    experiment, router, record = model
    other = Experiment.objects.create(name="e19001")
    RunMetadata.objects.create(experiment=other, run_number=7, status="stopped", filed=True)
    with pytest.raises(services.ControlError, match="experiment e20009 has no run 7"):
        unattributed.decide_unattributed(operator, record, "run", 7)
    RunMetadata.objects.create(experiment=experiment, run_number=5, status="stopped")
    with pytest.raises(services.Conflict, match="run 5 is not filed yet"):
        unattributed.decide_unattributed(operator, record, "run", 5)
    # While a run is open its files are on the routers too: no choice moves anything.
    RunMetadata.objects.create(experiment=experiment, run_number=6, status="running")
    with pytest.raises(services.Conflict, match="run 6 is running: its files are on the "
                       "routers too"):
        unattributed.decide_unattributed(operator, record, "aside")
    assert unchanged(record)


def test_no_choice_while_the_engine_is_not_running(model, operator):
    experiment, router, record = model
    EngineHeartbeat.objects.update(beat=timezone.now() - timedelta(hours=1))
    with pytest.raises(services.EngineNotRunning) as refused:
        unattributed.decide_unattributed(operator, record, "aside")
    assert refused.value.status == 503 and "the engine is not running" in str(refused.value)
    assert unchanged(record)


# The API ---------------------------------------------------------------------------------

def decide(client, record_id, body, auth):
    return client.post(f"/api/unattributed/{record_id}/decide", body, content_type=JSON,
                       **auth)


def test_api_lists_waiting_records_and_takes_the_choice(client, model, operator):
    experiment, router, record = model
    auth = bearer(operator)
    (listed,) = client.get("/api/status", **auth).json()["unattributed"]
    assert {k: listed[k] for k in ("id", "router", "experiment", "files", "bytes",
                                   "decision", "run", "settled_at")} == {
        "id": record.pk, "router": "router0", "experiment": "e20009", "files": 2,
        "bytes": 6144, "decision": "", "run": None, "settled_at": None}
    assert listed["found"].startswith(str(record.found.year))
    response = decide(client, record.pk, {"decision": "run", "run": 4, "note": FRIENDLY}, auth)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["id"], body["decision"], body["run"], body["note"], body["decided_by"]) == (
        record.pk, "run", 4, FRIENDLY, "alice")
    record.refresh_from_db()
    assert (record.decision, record.run.run_number, record.decided_by) == ("run", 4, operator)
    # Decided, not moved yet: still listed, with the choice; gone once the engine moved it.
    (listed,) = client.get("/api/status", **auth).json()["unattributed"]
    assert (listed["decision"], listed["run"]) == ("run", 4)
    again = decide(client, record.pk, {"decision": "aside"}, auth)
    assert again.status_code == 409 and "decided already by alice" in again.json()["detail"]
    UnattributedData.objects.filter(pk=record.pk).update(settled_at=timezone.now())
    assert client.get("/api/status", **auth).json()["unattributed"] == []


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"decision": "aside", "note": "a\u202eb"}, 400, "U+202E"),
    ({"decision": "aside", "note": "\u200f" * 10_000}, 400, "10,000 characters long"),
    ({"decision": "aside", "note": "n" * 600}, 400, "600 characters long"),
    ({"decision": "run", "run": 999}, 400, "has no run 999"),
    ({"decision": "run"}, 400, "choose the run"),
    ({"decision": "run", "run": 10**30}, 400, "is not a run number"),
    ({"decision": "aside", "run": 3}, 400, "a run is chosen only"),
])
def test_api_refuses_a_bad_choice_saying_why(client, model, operator, body, status, words):
    experiment, router, record = model
    response = decide(client, record.pk, body, bearer(operator))
    assert response.status_code == status and words in response.json()["detail"]
    assert unchanged(record)


def test_api_validates_the_body_and_the_id(client, model, operator):
    experiment, router, record = model
    auth = bearer(operator)
    # A body of another shape: the schema's 422, naming the field (as for every endpoint).
    for body, words in [({"decision": "delete"}, "Input should be 'run' or 'aside'"),
                        ({"decision": "run", "run": "three"}, "valid integer"),
                        ({}, "Field required")]:
        response = decide(client, record.pk, body, auth)
        assert response.status_code == 422 and words in str(response.json()["detail"]), body
    for missing in (record.pk + 1, 2**70):
        response = decide(client, missing, {"decision": "aside"}, auth)
        assert response.status_code == 404, missing
    assert decide(client, "x'; --", {"decision": "aside"}, auth).status_code == 422
    assert unchanged(record)


def test_api_refuses_who_may_only_watch_and_a_decision_under_an_open_run(
        client, model, operator, viewer):
    experiment, router, record = model
    response = decide(client, record.pk, {"decision": "aside"}, bearer(viewer))
    assert response.status_code == 403 and "may watch but not control" in response.json()[
        "detail"]
    assert decide(client, record.pk, {"decision": "aside"}, {}).status_code == 401
    RunMetadata.objects.create(experiment=experiment, run_number=5, status="paused")
    response = decide(client, record.pk, {"decision": "aside"}, bearer(operator))
    assert response.status_code == 409 and "run 5 is paused" in response.json()["detail"]
    assert unchanged(record)


def test_api_status_lists_the_unacknowledged_alarms_newest_first_bounded(client, model,
                                                                         viewer):
    base = timezone.now() - timedelta(hours=1)
    Event.objects.bulk_create(
        [Event(level="alarm", source=f"CoBo[{n % 3}]", message=f"alarm {n} ☢ <b>",
               time=base + timedelta(seconds=n)) for n in range(105)]
        + [Event(level="alarm", source="router0", message="seen", acknowledged=True,
                 time=base + timedelta(hours=2)),
           Event(level="error", source="router0", message="not an alarm",
                 time=base + timedelta(hours=2))])
    body = client.get("/api/status", **bearer(viewer)).json()
    assert body["alarm_count"] == 105 and len(body["alarms"]) == 100
    newest = body["alarms"][0]
    assert set(newest) == {"id", "time", "source", "message"}
    assert (newest["source"], newest["message"]) == ("CoBo[2]", "alarm 104 ☢ <b>")
    assert [a["message"] for a in body["alarms"]][-1] == "alarm 5 ☢ <b>"
    # Acknowledged (here as the page's button does): off the list.
    Event.acknowledge(Event.objects.filter(pk=newest["id"]), viewer)
    body = client.get("/api/status", **bearer(viewer)).json()
    assert body["alarm_count"] == 104 and newest["id"] not in {a["id"] for a in body["alarms"]}
    Event.acknowledge(Event.objects.all(), viewer)
    body = client.get("/api/status", **bearer(viewer)).json()
    assert (body["alarms"], body["alarm_count"]) == ([], 0)


def test_openapi_documents_alarms_and_the_choice(client):
    schema = client.get("/api/openapi.json").json()
    decide_op = schema["paths"]["/api/unattributed/{record_id}/decide"]["post"]
    assert {"202", "400", "403", "404", "409", "503"} <= set(decide_op["responses"])
    components = schema["components"]["schemas"]
    assert set(components["AlarmOut"]["properties"]) == {"id", "time", "source", "message"}
    status = components["StatusOut"]["properties"]
    assert {"alarms", "alarm_count", "unattributed"} <= set(status)
    assert "newest 100" in status["alarms"]["description"]
    assert {"id", "router", "files", "bytes", "found"} <= set(
        components["UnattributedOut"]["properties"])
    assert components["DecideIn"]["properties"]["decision"]["enum"] == ["run", "aside"]


# The status page -----------------------------------------------------------------------

def test_the_panel_lists_each_waiting_record_with_both_choices(client, model, operator):
    experiment, router, record = model
    second = DataRouter.objects.create(name="router1 <i>", ip_address="127.0.0.1", port=46006)
    UnattributedData.objects.create(experiment=experiment, router=second,
                                    files=[{"name": "a.graw", "size": 3_500_000}, "junk"])
    client.force_login(operator)
    for name in ("daq:status", "daq:status_fragment"):
        page = text(client.get(reverse(name), **HTMX))
        start = page.index('<section id="unattributed"')
        panel = page[start:page.index("</section>", start)]
        assert " hidden" not in panel[:200]
        assert "Start is refused until someone chooses where these files go" in panel
        assert f'id="unattributed-{record.pk}"' in panel
        assert "router0" in panel and "2 files, 6.1 kB" in panel and 'title="6,144 bytes"' in panel
        assert f"found {timezone.localtime(record.found):%Y-%m-%d %H:%M:%S}" in panel
        assert "router1 &lt;i&gt;" in panel and "1 file, 3.5 MB" in panel  # escaped; junk skipped
        assert panel.count("File into run 4…") == 2 and 'data-runs="4,3"' in panel
        assert panel.count("Set aside…") == 2
        assert reverse("daq:unattributed_decide", args=[record.pk]) in panel
    assert 'hx-swap-oob="true"' in text(client.get(reverse("daq:status_fragment"), **HTMX))
    assert 'id="unattributed-dialog"' in text(client.get(reverse("daq:status")))


def test_the_panel_is_hidden_when_nothing_waits_and_read_only_for_viewers(client, model,
                                                                           viewer):
    experiment, router, record = model
    client.force_login(viewer)
    page = text(client.get(reverse("daq:status_fragment"), **HTMX))
    assert "waiting for an operator's choice" in page and "Only operators can choose" in page
    assert "File into run" not in page and "Set aside…" not in page
    assert 'id="unattributed-dialog"' not in text(client.get(reverse("daq:status")))
    record.delete()
    page = text(client.get(reverse("daq:status_fragment"), **HTMX))
    assert '<section id="unattributed" class="card border-warning shadow-sm mb-3" ' \
        'hx-swap-oob="true" hidden>' in page


def test_without_a_filed_run_only_setting_aside_is_offered(client, model, operator):
    experiment, router, record = model
    RunMetadata.objects.all().delete()
    client.force_login(operator)
    page = text(client.get(reverse("daq:status_fragment"), **HTMX))
    assert "File into a run…" in page and 'data-runs=""' in page
    assert "No run of e20009 is over and filed" in page


def test_after_the_choice_the_panel_says_moving_then_the_error_then_moved(client, model,
                                                                          operator):
    experiment, router, record = model
    client.force_login(operator)
    unattributed.decide_unattributed(operator, record, "run", 3, FRIENDLY)
    page = text(client.get(reverse("daq:status_fragment"), **HTMX))
    assert "moving…" in page and "into run <a" in page and "as alice chose" in page
    assert "Note: after the restart: O&#x27;Brien says &quot;keep&quot; &lt;b&gt;" in page
    assert "File into run" not in page and "Start is refused" not in page
    UnattributedData.objects.filter(pk=record.pk).update(error="router0: permission denied")
    page = text(client.get(reverse("daq:status_fragment"), **HTMX))
    assert "Moving failed</span> router0: permission denied (the engine tries again)" in page
    UnattributedData.objects.filter(pk=record.pk).update(settled_at=timezone.now(), error="")
    page = text(client.get(reverse("daq:status_fragment"), **HTMX))
    assert ">moved<" in page and "moving…" not in page and "Moving failed" not in page
    # A minute later the panel has nothing left to say.
    UnattributedData.objects.filter(pk=record.pk).update(
        settled_at=timezone.now() - timedelta(minutes=2))
    page = text(client.get(reverse("daq:status_fragment"), **HTMX))
    assert f'id="unattributed-{record.pk}"' not in page


def post(client, record_id, data):
    return client.post(reverse("daq:unattributed_decide", args=[record_id]), data, **HTMX)


def test_the_page_takes_the_choice_from_operators_only(client, model, operator, viewer):
    experiment, router, record = model
    client.force_login(viewer)
    response = post(client, record.pk, {"decision": "aside"})
    assert response.status_code == 403 and "may watch but not control" in text(response)
    assert unchanged(record)
    client.force_login(operator)
    for data, status, words in [
            ({"decision": "aside", "note": "bad\u202e"}, 400, "U+202E"),
            ({"decision": "aside", "note": "nul\x00"}, 400, "NUL character"),
            ({"decision": "run", "run": "999"}, 400, "has no run 999"),
            ({"decision": "run"}, 400, "choose the run"),
            ({"decision": "blow up"}, 400, "unknown decision")]:
        response = post(client, record.pk, data)
        assert response.status_code == status and words in text(response), data
        assert response["X-Toast"] == "1"
    assert unchanged(record)
    assert post(client, "12x", {"decision": "aside"}).status_code == 404
    assert post(client, str(record.pk + 100), {"decision": "aside"}).status_code == 404
    response = post(client, record.pk, {"decision": "run", "run": "3", "note": FRIENDLY})
    assert response.status_code == 202
    assert "router0&#x27;s files go into run 3" in text(response)
    record.refresh_from_db()
    assert (record.decision, record.run.run_number, record.note) == ("run", 3, FRIENDLY)
    response = post(client, record.pk, {"decision": "aside"})
    assert response.status_code == 409 and "decided already" in text(response)
