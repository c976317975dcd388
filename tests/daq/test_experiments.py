"""Experiments (daq/experiments.py): create, rename, switch; the page and the API."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User

from attpcdaq.daq.models import ApiToken, Command, ECCServer, Experiment, LogEntry, RunMetadata

pytestmark = pytest.mark.django_db


def user_with(name: str, group: str) -> User:
    user = User.objects.create_user(name, password="pw")
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def admin_api(client):
    token = ApiToken.issue(user_with("ada", "admin"))

    def call(method: str, path: str, body=None):
        return client.generic(method, f"/api{path}", "" if body is None else
                              json.dumps(body), content_type="application/json",
                              HTTP_AUTHORIZATION=f"Bearer {token}")
    return call


@pytest.fixture
def two():
    first = Experiment.objects.create(name="e20009", is_active=True)
    second = Experiment.objects.create(name="e21001")
    ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1", port=9000)
    ECCServer.objects.create(name="CoBo[1]", ip_address="127.0.0.1", port=9001)
    return first, second


def test_create_list_rename_switch_through_the_api(admin_api, two):
    first, second = two
    created = admin_api("POST", "/experiments", {"name": 'He "6" run 2 ¹⁰Be'})
    assert created.status_code == 201, created.content
    new = created.json()
    assert new["name"] == 'He "6" run 2 ¹⁰Be' and new["active"] is False
    listed = admin_api("GET", "/experiments").json()
    assert listed["active"] == "e20009" and listed["switch_refused"] == ""
    assert {e["name"] for e in listed["experiments"]} == {"e20009", "e21001", new["name"]}
    renamed = admin_api("PATCH", f"/experiments/{new['id']}", {"name": "He6 run 2"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "He6 run 2"
    switched = admin_api("POST", f"/experiments/{new['id']}/activate")
    assert switched.status_code == 200 and switched.json()["active"] is True
    assert Experiment.active().name == "He6 run 2"
    assert list(Experiment.objects.filter(is_active=True)) == [Experiment.active()]
    # Created and made active at once.
    made = admin_api("POST", "/experiments", {"name": "e22000", "activate": True})
    assert made.status_code == 201 and Experiment.active().name == "e22000"


@pytest.mark.parametrize("name, said", [
    ("", "empty"), ("   ", "empty"), ("..", "'..'"), ("a/b", "slash"), ("a\\b", "slash"),
    ("tab\there", "control character"), ("nul\x00", "control character"),
    ("evil\u202ecod.exe", "hides or reorders"), ("rlm\u200f", "hides or reorders"),
    ("zw\u200bsp", "hides or reorders"), (" lead", "white space"), ("-rf", "'-'"),
    ("x" * 101, "101 characters long: at most 100"), (42, "must be text"),
])
def test_hostile_names_are_refused_with_a_clear_message(admin_api, two, name, said):
    before = list(Experiment.objects.values_list("name", flat=True))
    answer = admin_api("POST", "/experiments", {"name": name})
    assert answer.status_code == 400, answer.content
    assert said in answer.json()["detail"]
    renamed = admin_api("PATCH", f"/experiments/{two[1].pk}", {"name": name})
    assert renamed.status_code == 400 and said in renamed.json()["detail"]
    assert list(Experiment.objects.values_list("name", flat=True)) == before


def test_names_that_are_fine_and_one_that_is_taken(admin_api, two):
    for name in ("x" * 100, "O'Neil test", "spaces in the middle", "ünïcode ✓"):
        assert admin_api("POST", "/experiments", {"name": name}).status_code == 201, name
    taken = admin_api("POST", "/experiments", {"name": "e20009"})
    assert taken.status_code == 409 and "already an experiment named 'e20009'" in \
        taken.json()["detail"]
    clash = admin_api("PATCH", f"/experiments/{two[1].pk}", {"name": "e20009"})
    assert clash.status_code == 409
    assert admin_api("PATCH", "/experiments/999999", {"name": "z"}).status_code == 404
    unknown = admin_api("POST", "/experiments", {"name": "ok", "colour": "red"})
    assert unknown.status_code == 400 and "colour" in unknown.json()["detail"]
    assert admin_api("POST", "/experiments", {"name": "ok2", "activate": "yes"}).status_code \
        == 400


@pytest.mark.parametrize("setup, said", [
    (lambda: ECCServer.objects.filter(name="CoBo[1]").update(state=ECCServer.READY),
     "CoBo[1] is Ready"),
    (lambda: ECCServer.objects.filter(name="CoBo[0]").update(is_transitioning=True),
     "CoBo[0] is Idle (transitioning)"),
    (lambda: RunMetadata.objects.create(experiment=Experiment.active(), run_number=4,
                                        status="running"), "Run 4 of e20009 is running"),
    (lambda: RunMetadata.objects.create(experiment=Experiment.active(), run_number=5,
                                        status="paused"), "Run 5 of e20009 is paused"),
    (lambda: Command.objects.create(kind=Command.Kind.TRANSITION, target=ECCServer.DESCRIBED,
                                    status=Command.Status.PENDING), "is pending"),
])
def test_switch_is_refused_unless_idle_and_no_run_open(admin_api, two, setup, said):
    first, second = two
    setup()
    answer = admin_api("POST", f"/experiments/{second.pk}/activate")
    assert answer.status_code == 409 and said in answer.json()["detail"], answer.content
    assert Experiment.active() == first
    assert said in admin_api("GET", "/experiments").json()["switch_refused"]
    # Created with activate: refused as a whole, nothing created.
    made = admin_api("POST", "/experiments", {"name": "e3", "activate": True})
    assert made.status_code == 409 and not Experiment.objects.filter(name="e3").exists()


def test_switch_allowed_with_a_disabled_busy_server_and_runs_over(admin_api, two):
    first, second = two
    ECCServer.objects.filter(name="CoBo[1]").update(state=ECCServer.READY, enabled=False)
    RunMetadata.objects.create(experiment=first, run_number=0, status="stopped")
    RunMetadata.objects.create(experiment=first, run_number=1, status="aborted")
    assert admin_api("POST", f"/experiments/{second.pk}/activate").status_code == 200
    assert Experiment.active() == second


def test_rename_refused_while_its_run_is_open(admin_api, two):
    first, _ = two
    RunMetadata.objects.create(experiment=first, run_number=2, status="running")
    answer = admin_api("PATCH", f"/experiments/{first.pk}", {"name": "e20009b"})
    assert answer.status_code == 409 and "Run 2 of e20009 is running" in answer.json()["detail"]
    assert Experiment.objects.get(pk=first.pk).name == "e20009"


def test_only_admins_change_experiments(client, two):
    operator = user_with("otto", "operator")
    token = ApiToken.issue(operator)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get("/api/experiments", **auth).status_code == 200
    answer = client.post(f"/api/experiments/{two[1].pk}/activate", **auth)
    assert answer.status_code == 403 and "admin role" in answer.json()["detail"]
    assert Experiment.active() == two[0]


def test_the_page(client, two):
    first, second = two
    client.force_login(user_with("ada", "admin"))
    page = client.get("/experiments/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="active-experiment">e20009<' in text and "e21001" in text
    assert 'id="new-experiment"' in text
    created = client.post("/experiments/", {"name": "He6 <b>bold"}, follow=True)
    assert created.status_code == 200
    assert "He6 &lt;b&gt;bold" in created.content.decode()
    refused = client.post("/experiments/", {"name": "../etc"})
    assert refused.status_code == 400
    assert "may not be &#x27;.&#x27;, &#x27;..&#x27; or contain a slash" in \
        refused.content.decode() and 'value="../etc"' in refused.content.decode()
    ECCServer.objects.filter(name="CoBo[0]").update(state=ECCServer.PREPARED)
    busy = client.post(f"/experiments/{second.pk}/activate/")
    assert busy.status_code == 409 and "CoBo[0] is Prepared" in busy.content.decode()
    assert Experiment.active() == first
    ECCServer.objects.update(state=ECCServer.IDLE)
    done = client.post(f"/experiments/{second.pk}/activate/", follow=True)
    assert done.status_code == 200 and Experiment.active() == second
    assert "e21001 is now the active experiment" in done.content.decode()
    renamed = client.post(f"/experiments/{second.pk}/rename/", {"name": "e21001 (He6)"})
    assert renamed.status_code == 302
    assert Experiment.objects.get(pk=second.pk).name == "e21001 (He6)"
    assert client.post("/experiments/99999/rename/", {"name": "x"}).status_code == 404


def test_the_page_for_a_viewer_has_no_forms_and_refuses_posts(client, two):
    client.force_login(user_with("vera", "viewer"))
    text = client.get("/experiments/").content.decode()
    assert "e21001" in text and 'id="new-experiment"' not in text
    assert client.post("/experiments/", {"name": "mine"}).status_code == 403
    assert not Experiment.objects.filter(name="mine").exists()


def test_pages_show_the_active_experiment(client, two):
    first, second = two
    client.force_login(user_with("vera", "viewer"))
    RunMetadata.objects.create(experiment=first, run_number=1, status="stopped",
                               title="first-exp-run")
    RunMetadata.objects.create(experiment=second, run_number=1, status="stopped",
                               title="second-exp-run")
    run = RunMetadata.objects.get(title="first-exp-run")
    LogEntry.objects.create(text="note on first", run=run)
    LogEntry.objects.create(text="note on second",
                            run=RunMetadata.objects.get(title="second-exp-run"))

    def seen(url):
        return client.get(url).content.decode()

    assert "first-exp-run" in seen("/runs/") and "second-exp-run" not in seen("/runs/")
    assert "note on first" in seen("/logbook/") and "note on second" not in seen("/logbook/")
    assert "first-exp-run" in seen("/runs/export.csv")
    assert "second-exp-run" not in seen("/runs/export.csv")
    assert client.get("/api/runs").json()["experiment"] == "e20009"
    second.activate()
    assert "second-exp-run" in seen("/runs/") and "first-exp-run" not in seen("/runs/")
    assert "note on second" in seen("/logbook/") and "note on first" not in seen("/logbook/")
    assert "second-exp-run" in seen("/runs/export.json")
    assert client.get("/api/runs").json()["experiment"] == "e21001"
    assert 'e21001' in seen("/") and "Experiment:" in seen("/")
