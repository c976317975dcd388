"""The run list, a run's page and the log pages, through Django's test client."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from attpcdaq.daq.models import (
    Command,
    DataRouter,
    ECCServer,
    EngineHeartbeat,
    Event,
    Experiment,
    RunMetadata,
)
from attpcdaq.daq.templatetags.daq_tags import size
from attpcdaq.daq.views import RUNS_PER_PAGE, read_manifest

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
HOSTILE = '<script>alert("x")</script>'
HOSTILE_ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("bob", password="pw")
    client.force_login(user)
    return user


@pytest.fixture
def operator(client):
    user = User.objects.create_user("alice", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    client.force_login(user)
    return user


@pytest.fixture
def experiment():
    return Experiment.objects.create(name="e20009", is_active=True)


@pytest.fixture
def server():
    return ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1", port=9000,
                                    log_path="/var/log/ecc/cobo0.log")


@pytest.fixture
def router():
    return DataRouter.objects.create(name="router0", ip_address="127.0.0.1", port=46005,
                                     log_path="/var/log/dataRouter.log")


def filed_run(experiment, number=7, **fields):
    start = timezone.now() - timedelta(hours=2)
    values = {
        "title": "beam on target", "status": "stopped", "start_datetime": start,
        "stop_datetime": start + timedelta(hours=1, minutes=2, seconds=3),
        "configs": {"CoBo[0]": "cobo0/exp/exp", "MuTAnT": "mutant/exp/exp"},
        "manifest": {
            "routers": {
                "router0": {"directory": "/data/e20009/run_0007",
                            "files": [{"name": "CoBo_AsAd0.graw", "size": 1_500_000},
                                      {"name": "CoBo_AsAd1.graw", "size": 2_000}],
                            "bytes": 1_502_000},
                "router1": {"directory": "/data1/e20009/run_0007",
                            "files": [{"name": "CoBo_AsAd2.graw", "size": 3_000_000_000}],
                            "bytes": 3_000_000_000},
            },
            "configs": {"CoBo[0]": {"directory": "/backup/e20009/run_0007",
                                    "files": ["describe-cobo0.xcfg", "prepare-exp.xcfg",
                                              "configure-exp.xcfg"]}},
        },
        "filed": True,
    }
    values.update(fields)
    return RunMetadata.objects.create(experiment=experiment, run_number=number, **values)


def text(response) -> str:
    return response.content.decode()


def get(client, name, **kwargs):
    return client.get(reverse(f"daq:{name}", kwargs=kwargs or None))


# Access -------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "pk"), [
    ("run_list", None), ("run_detail", 1), ("eccserver_log", 1), ("datarouter_log", 1),
    ("command_result", 1)])
def test_login_required(client, experiment, name, pk):
    response = get(client, name, **({"pk": pk} if pk else {}))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_log_request_needs_a_login(client, server):
    for name in ("eccserver_log_request", "datarouter_log_request"):
        response = client.post(reverse(f"daq:{name}", args=[server.pk]), **HTMX)
        assert "HX-Redirect" in response and "/login/" in response["HX-Redirect"]
    assert Command.objects.count() == 0


def test_pages_are_linked_from_the_status_page(client, experiment, server, router, viewer):
    run = filed_run(experiment)
    page = text(client.get("/"))
    assert f'href="{reverse("daq:run_list")}"' in page  # navbar and run panel
    assert f'href="{reverse("daq:run_detail", args=[run.pk])}"' in page
    assert f'href="{reverse("daq:eccserver_log", args=[server.pk])}"' in page
    assert f'href="{reverse("daq:datarouter_log", args=[router.pk])}"' in page
    fragment = text(client.get(reverse("daq:status_fragment"), **HTMX))
    assert f'href="{reverse("daq:eccserver_log", args=[server.pk])}"' in fragment


# The run list -------------------------------------------------------------------------

def test_run_list_shows_runs_newest_first(client, experiment, viewer):
    filed_run(experiment, 7)
    RunMetadata.objects.create(experiment=experiment, run_number=8, status="stopped",
                               filing_error="router0: disk full")
    RunMetadata.objects.create(experiment=experiment, run_number=9, status="running",
                               title="now", start_datetime=timezone.now())
    RunMetadata.objects.create(experiment=Experiment.objects.create(name="old"), run_number=99)
    page = text(get(client, "run_list"))
    numbers = [int(n) for n in re.findall(r'<tr id="run-\d+">\s*<th[^>]*><a[^>]*>(\d+)<', page)]
    assert numbers == [9, 8, 7]
    row7 = page.split(">7</a>")[1].split("</tr>")[0]
    assert "beam on target" in row7 and "1:02:03" in row7 and ">Stopped<" in row7
    assert ">3<" in row7 and "3.0 GB" in row7 and "3,001,502,000 bytes" in row7
    assert ">filed<" in row7
    row8 = page.split(">8</a>")[1].split("</tr>")[0]
    assert "filing failed" in row8 and "router0: disk full" in row8
    assert ">open<" in page.split(">9</a>")[1].split("</tr>")[0]


def test_run_list_of_another_experiment(client, experiment, viewer):
    other = Experiment.objects.create(name="e18027 übung")
    RunMetadata.objects.create(experiment=other, run_number=3, title="old beam")
    filed_run(experiment)
    page = text(client.get(reverse("daq:run_list"), {"experiment": other.name}))
    assert "old beam" in page and "beam on target" not in page
    assert 'value="e18027 übung" selected' in page
    response = client.get(reverse("daq:run_list"), {"experiment": HOSTILE})
    assert response.status_code == 404
    assert "There is no experiment named" in text(response)
    assert "<script>alert" not in text(response)


def test_run_list_without_active_experiment_shows_the_newest(client, viewer):
    assert "No experiments yet" in text(get(client, "run_list"))
    Experiment.objects.create(name="older", created=timezone.now() - timedelta(days=1))
    newest = Experiment.objects.create(name="newest")
    RunMetadata.objects.create(experiment=newest, run_number=1, title="the newest's")
    assert "the newest&#x27;s" in text(get(client, "run_list"))


def test_run_list_pages(client, experiment, viewer):
    for number in range(RUNS_PER_PAGE + 5):
        RunMetadata.objects.create(experiment=experiment, run_number=number, status="stopped")
    first = text(get(client, "run_list"))
    assert first.count('<tr id="run-') == RUNS_PER_PAGE
    assert f">{RUNS_PER_PAGE + 4}</a>" in first and ">4</a>" not in first
    assert "?page=2" in first
    second = text(client.get(reverse("daq:run_list"), {"page": 2,
                                                      "experiment": experiment.name}))
    assert second.count('<tr id="run-') == 5 and ">0</a>" in second
    assert 'href="?page=1&amp;experiment=e20009"' in second  # the experiment stays
    # A page that is not one shows a page, not an error.
    for page in ("abc", "999", "-1"):
        response = client.get(reverse("daq:run_list"), {"page": page})
        assert response.status_code == 200 and '<tr id="run-' in text(response)


# A run's page ---------------------------------------------------------------------------

def test_run_detail_shows_everything(client, experiment, viewer):
    run = filed_run(experiment, reason="CoBo[2] did not stop: timeout")
    server = ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1")
    Event.objects.create(level="info", source="filing", message="run 7 filed: 3 file(s)",
                         run=run)
    Event.objects.create(level="error", source="CoBo[9]", message="another run's")
    Command.objects.create(kind="transition", target=ECCServer.RUNNING, status="done",
                           run=run, ecc_server=server)
    page = text(get(client, "run_detail", pk=run.pk))
    for expected in (
            "beam on target", ">Stopped<", "1:02:03", "CoBo[2] did not stop: timeout",
            "Filed:", "3 data files", "3.0 GB",
            # configuration per server, with its backup
            "cobo0/exp/exp", "mutant/exp/exp", "/backup/e20009/run_0007",
            "describe-cobo0.xcfg", "configure-exp.xcfg", "not backed up",
            # the manifest, per router
            "router0", "/data/e20009/run_0007", "CoBo_AsAd0.graw", "1.5 MB", "1,500,000",
            "CoBo_AsAd1.graw", "2.0 kB", "router1", "/data1/e20009/run_0007", "3,000,000,000",
            # events and commands of the run
            "run 7 filed: 3 file(s)", "Go to Running (CoBo[0])"):
        assert expected in page, expected
    assert "another run&#x27;s" not in page
    router0 = page.split("router0")[1].split("router1")[0]
    assert "2 files" in router0 and "1.5 MB" in router0 and "1,502,000" in router0


def test_run_detail_of_a_run_not_filed(client, experiment, viewer):
    run = RunMetadata.objects.create(experiment=experiment, run_number=3, status="stopped",
                                     configs={"CoBo[0]": "a/b/c"})
    page = text(get(client, "run_detail", pk=run.pk))
    assert "Not filed yet" in page and "Nothing filed yet" in page
    RunMetadata.objects.filter(pk=run.pk).update(filing_error="router0: 2 file(s) still in /w")
    page = text(get(client, "run_detail", pk=run.pk))
    assert "filing failed" in page and "router0: 2 file(s) still in /w" in page
    RunMetadata.objects.filter(pk=run.pk).update(status="running", filing_error="")
    assert "its data is filed after it stops" in text(get(client, "run_detail", pk=run.pk))


def test_hostile_names_are_escaped(client, experiment, viewer):
    run = filed_run(experiment, title=HOSTILE, reason=HOSTILE, filed=False,
                    filing_error=HOSTILE, configs={HOSTILE: HOSTILE})
    run.manifest["routers"]["router0"]["files"].append({"name": HOSTILE, "size": 1})
    run.manifest["routers"][HOSTILE] = {"directory": HOSTILE, "files": [], "bytes": 0}
    run.manifest["configs"][HOSTILE] = {"directory": HOSTILE, "files": [HOSTILE]}
    run.save()
    Event.objects.create(level="error", source=HOSTILE, message=HOSTILE, run=run)
    for response in (get(client, "run_detail", pk=run.pk), get(client, "run_list")):
        page = text(response)
        assert "<script>alert" not in page
        assert HOSTILE_ESCAPED in page


def test_a_manifest_of_another_shape_does_not_break_the_pages(client, experiment, viewer):
    odd = {"routers": {"r": {"files": [{"name": "a.graw"}, "junk", {"size": "big"}]},
                       "s": None, "t": {"files": "nope", "bytes": True}},
           "configs": ["not", "a", "mapping"]}
    run = filed_run(experiment, manifest=odd, configs=["odd"])
    assert get(client, "run_detail", pk=run.pk).status_code == 200
    assert get(client, "run_list").status_code == 200
    manifest = read_manifest(odd)
    assert [(r.router, r.files, r.bytes) for r in manifest.routers] == [
        ("r", [("a.graw", None), ("", None)], 0), ("s", [], 0), ("t", [], 0)]
    assert read_manifest(None).routers == [] and read_manifest("x").file_count == 0


@pytest.mark.parametrize("pk", ["999", "abc", "1 OR 1=1", "-1", "9" * 40, "<b>"])
def test_a_bad_run_id_is_404_with_a_message(client, experiment, viewer, pk):
    filed_run(experiment, number=1)
    response = get(client, "run_detail", pk=pk)
    assert response.status_code == 404
    assert "There is no run with id" in text(response)
    assert "<b>" not in text(response).split('id="not-found"')[1]


def test_sizes_read_well():
    assert [size(n) for n in (0, 999, 1_500, 2_500_000, 3 * 10**12, None)] == [
        "0 B", "999 B", "1.5 kB", "2.5 MB", "3.0 TB", "\N{EN DASH}"]


# Logs ---------------------------------------------------------------------------------

@pytest.fixture(params=["eccserver", "datarouter"])
def owner(request, server, router, engine_beating):
    return server if request.param == "eccserver" else router


def name_of(owner) -> str:
    return owner._meta.model_name


def request_log(client, owner):
    return client.post(reverse(f"daq:{name_of(owner)}_log_request", args=[owner.pk]), **HTMX)


def test_log_page_asks_for_the_log(client, owner, viewer):
    page = text(get(client, f"{name_of(owner)}_log", pk=owner.pk))
    request_url = reverse(f"daq:{name_of(owner)}_log_request", args=[owner.pk])
    assert f'hx-post="{request_url}" hx-trigger="load"' in page
    assert 'id="log-refresh"' in page and owner.log_path in page
    assert "daq/log.js" in page
    assert Command.objects.count() == 0  # the page itself asks for nothing


def test_a_log_request_queues_a_command_that_the_page_polls(client, owner, viewer):
    response = request_log(client, owner)
    assert response.status_code == 202
    command = Command.objects.get()
    assert command.kind == Command.Kind.TAIL_LOG and command.user == viewer
    assert (command.ecc_server, command.data_router) == (
        (owner, None) if isinstance(owner, ECCServer) else (None, owner))
    poll = reverse("daq:command_result", args=[command.pk])
    page = text(response)
    assert f'hx-get="{poll}"' in page and 'hx-trigger="every 500ms' in page
    assert "Waiting for the engine" in page and "engine is not running" not in page

    # The engine stops beating before it took the read up: the page says so.
    EngineHeartbeat.objects.update(beat=timezone.now() - timedelta(hours=1))
    page = text(client.get(poll, **HTMX))
    assert "Waiting for the engine" in page and "engine is not running" in page

    EngineHeartbeat.objects.update(beat=timezone.now())
    Command.objects.filter(pk=command.pk).update(status="running")
    page = text(client.get(poll, **HTMX))
    assert f'hx-get="{poll}"' in page and "(running)" in page
    assert "engine is not running" not in page

    log = f"line 1\nline 2 {HOSTILE}\nlast line"
    Command.objects.filter(pk=command.pk).update(status="done", result=log,
                                                 finished=timezone.now())
    response = client.get(poll, **HTMX)
    page = text(response)
    assert response.status_code == 200
    assert "hx-get" not in page and "hx-trigger" not in page  # the polling stops
    tail = re.search(r'<pre class="log-tail[^"]*"[^>]*>(.*)</pre>', page, re.S).group(1)
    assert tail == f"line 1\nline 2 {HOSTILE_ESCAPED}\nlast line"


def test_a_failed_log_request_shows_why(client, owner, viewer):
    request_log(client, owner)
    command = Command.objects.get()
    Command.objects.filter(pk=command.pk).update(
        status="failed", error=f"tail: cannot open {HOSTILE}: No such file")
    page = text(client.get(reverse("daq:command_result", args=[command.pk]), **HTMX))
    assert "Reading the log failed" in page and f"cannot open {HOSTILE_ESCAPED}" in page
    assert "hx-trigger" not in page and "<pre" not in page


def test_an_empty_log(client, owner, viewer):
    request_log(client, owner)
    Command.objects.update(status="done", result="")
    command = Command.objects.get()
    assert "The log is empty" in text(client.get(reverse("daq:command_result",
                                                         args=[command.pk])))


def test_without_a_log_path_the_page_says_so(client, owner, operator):
    type(owner).objects.filter(pk=owner.pk).update(log_path="")
    assert "no log path set" in text(get(client, f"{name_of(owner)}_log", pk=owner.pk))
    response = request_log(client, owner)
    assert response.status_code == 400 and response["X-Log-Answer"] == "1"
    assert f"no log file is set for {owner.name}" in text(response)
    assert "hx-trigger" not in text(response)
    assert Command.objects.count() == 0


@pytest.mark.parametrize("pk", ["999", "abc", "1 OR 1=1", "9" * 40])
def test_bad_ids_on_the_log_pages(client, server, router, viewer, pk):
    for name, what in (("eccserver", "ECC server"), ("datarouter", "data router")):
        response = get(client, f"{name}_log", pk=pk)
        assert response.status_code == 404 and f"There is no {what} with id" in text(response)
        response = client.post(reverse(f"daq:{name}_log_request", args=[pk]), **HTMX)
        assert response.status_code == 404 and f"There is no {what} with id" in text(response)
    response = client.get(reverse("daq:command_result", args=[pk]), **HTMX)
    assert response.status_code == 404 and "There is no command with id" in text(response)
    assert response["X-Log-Answer"] == "1"
    assert Command.objects.count() == 0


def test_a_log_request_is_post_only(client, server, viewer):
    assert client.get(reverse("daq:eccserver_log_request", args=[server.pk])).status_code == 405
    assert client.post(reverse("daq:command_result", args=[1])).status_code == 405
