"""The configuration loaded at Start on the run page, the diff between two runs, the raw
file, "Start anyway" after a drift refusal (page and API), and the admin of the records.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from attpcdaq.daq.models import (
    ApiToken,
    Command,
    ConfigId,
    ECCServer,
    Experiment,
    LoadedConfig,
    RunConfig,
    RunMetadata,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
HOSTILE = '<script>alert("x")</script>'
HOSTILE_ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
SERVER = "CoBo[0] 'A' & \u202eevil"  # quotes, ampersand, a bidi override
DRIFT = ("cannot start: configuration drift: configure-experiment.xcfg changed since "
         "CoBo[3] was configured at 21:04: Configure again. The boards run with what they "
         "loaded: Configure again, or confirm to start anyway")


@pytest.fixture
def operator(client):
    user = User.objects.create_user("alice", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    client.force_login(user)
    return user


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("bob", password="pw")
    client.force_login(user)
    return user


@pytest.fixture
def experiment():
    return Experiment.objects.create(name="e20009", is_active=True)


def entry(name: str, text: str) -> dict:
    return {"filename": name, "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "text": text}


def run_with(experiment, number: int, files: dict[str, str], *, server=SERVER,
             config="cobo0/experiment/experiment") -> RunMetadata:
    created = timezone.now() - timedelta(hours=10 - number)
    run = RunMetadata.objects.create(experiment=experiment, run_number=number,
                                     status="stopped", created=created,
                                     start_datetime=created, configs={server: config})
    RunConfig.objects.create(run=run, server_name=server, config=config,
                             configured_at=created - timedelta(minutes=5),
                             files=[entry(n, t) for n, t in files.items()])
    return run


def text(response) -> str:
    return response.content.decode()


# The run page -----------------------------------------------------------------------------

def test_run_page_shows_each_file_loaded_collapsible_and_escaped(client, viewer, experiment):
    run = run_with(experiment, 4, {"describe-cobo0.xcfg": f"<Setup>{HOSTILE}</Setup>\n",
                                   "configure-experiment.xcfg": "<Setup>thresholds</Setup>"})
    RunConfig.objects.create(run=run, server_name="Mutant", config="mutant/exp/exp",
                             problem="Configure's answer held no configuration files")
    page = text(client.get(reverse("daq:run_detail", args=[run.pk])))
    section = page[page.index('id="run-loaded"'):page.index('id="run-files"')]
    assert section.count('<details class="loaded-file">') == 2
    assert "describe-cobo0.xcfg" in section and "configure-experiment.xcfg" in section
    assert HOSTILE_ESCAPED in section and HOSTILE not in page
    assert "&lt;Setup&gt;thresholds&lt;/Setup&gt;" in section
    digest = hashlib.sha256(b"<Setup>thresholds</Setup>").hexdigest()
    assert digest[:16] in section and f'title="{digest}"' in section
    assert "Configure&#x27;s answer held no configuration files" in section
    assert "CoBo[0] &#x27;A&#x27; &amp;" in section  # the server's name, escaped


def test_run_page_links_the_diff_against_the_run_before(client, viewer, experiment):
    older = run_with(experiment, 2, {"describe-cobo0.xcfg": "a"})
    run_with(experiment, 3, {"describe-cobo0.xcfg": "a"}, server="CoBo[1]")  # another server
    run = run_with(experiment, 4, {"describe-cobo0.xcfg": "b"})
    page = text(client.get(reverse("daq:run_detail", args=[run.pk])))
    link = re.search(r'class="ms-auto small config-diff-link" href="([^"]+)"', page).group(1)
    url = urlsplit(link.replace("&amp;", "&"))
    assert url.path == reverse("daq:config_diff")
    assert parse_qs(url.query) == {"server": [SERVER], "a": [str(older.pk)],
                                   "b": [str(run.pk)]}
    assert "Compare with the run before" in page
    first = text(client.get(reverse("daq:run_detail", args=[older.pk])))
    assert "Compare with another run" in first


def test_run_page_without_a_loaded_configuration_says_so(client, viewer, experiment):
    run = RunMetadata.objects.create(experiment=experiment, run_number=1, status="stopped")
    page = text(client.get(reverse("daq:run_detail", args=[run.pk])))
    assert 'id="no-loaded"' in page and "No configuration recorded at Start" in page


def test_a_long_file_is_offered_as_text_not_inlined(client, viewer, experiment):
    from attpcdaq.daq import views

    long_text = "<Setup>" + "x" * (views.INLINE_CONFIG_CHARS + 1) + "</Setup>"
    run = run_with(experiment, 1, {"configure-experiment.xcfg": long_text})
    page = text(client.get(reverse("daq:run_detail", args=[run.pk])))
    assert "Too long to show here" in page and long_text not in page


def test_raw_file_download(client, viewer, experiment):
    run = run_with(experiment, 1, {"configure-é 'x'.xcfg": "<Setup>é</Setup>\n",
                                   "describe-cobo0.xcfg": HOSTILE})
    config = RunConfig.objects.get(run=run)
    # Files are numbered in name order, as the page lists them.
    response = client.get(reverse("daq:run_config_file", args=[config.pk, 0]),
                          {"download": "1"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "filename*=utf-8''configure-%C3%A9%20%27x%27.xcfg" in response["Content-Disposition"]
    assert response.content == "<Setup>é</Setup>\n".encode()
    inline = client.get(reverse("daq:run_config_file", args=[config.pk, 1]))
    assert inline["Content-Disposition"].startswith("inline;")
    assert inline.content == HOSTILE.encode() and inline["X-Content-Type-Options"] == "nosniff"
    assert client.get(reverse("daq:run_config_file", args=[config.pk, 2])).status_code == 404
    assert client.get(reverse("daq:run_config_file", args=[config.pk, "x"])).status_code == 404
    assert client.get(reverse("daq:run_config_file", args=[999, 0])).status_code == 404


def test_pages_need_a_login(client, experiment):
    run = run_with(experiment, 1, {"a.xcfg": "a"})
    for url in (reverse("daq:config_diff"),
                reverse("daq:run_config_file", args=[RunConfig.objects.get(run=run).pk, 0])):
        assert client.get(url).status_code == 302


# The diff page ----------------------------------------------------------------------------

def test_diff_names_added_removed_and_changed_files_with_a_unified_diff(client, viewer,
                                                                        experiment):
    a = run_with(experiment, 5, {"describe-cobo0.xcfg": "<Setup>same</Setup>\n",
                                 "configure-experiment.xcfg": "line 1\nthreshold 10\nline 3\n",
                                 "configure-old.xcfg": "gone"})
    b = run_with(experiment, 6, {"describe-cobo0.xcfg": "<Setup>same</Setup>\n",
                                 "configure-experiment.xcfg":
                                     f"line 1\nthreshold 12 {HOSTILE}\nline 3\n",
                                 "hardware.xcfg": "new"}, config="cobo0/pulser/pulser")
    response = client.get(reverse("daq:config_diff"), {"server": SERVER, "a": a.pk, "b": b.pk})
    assert response.status_code == 200
    page = text(response)
    statuses = dict(re.findall(r'diff-status" data-file="([^"]+)">(\w+)</span>', page))
    assert statuses == {"configure-experiment.xcfg": "changed", "configure-old.xcfg": "removed",
                        "describe-cobo0.xcfg": "same", "hardware.xcfg": "added"}
    assert '<span class="d-block bg-danger-subtle diff-del">-threshold 10</span>' in page
    assert (f'<span class="d-block bg-success-subtle diff-add">+threshold 12 {HOSTILE_ESCAPED}'
            "</span>") in page
    assert '<span class="d-block">' + " line 1</span>" in page
    assert "--- run 5/configure-experiment.xcfg" in page
    assert "+++ run 6/configure-experiment.xcfg" in page
    assert HOSTILE not in page
    assert "only in A (run 5)" in page and "only in B (run 6)" in page
    assert "cobo0/pulser/pulser" in page  # each side's configuration set is named
    # Identical files get no diff section.
    assert page.count('class="card shadow-sm mb-3 file-diff"') == 3


def test_diff_defaults_to_the_latest_run_against_the_one_before(client, viewer, experiment):
    run_with(experiment, 1, {"a.xcfg": "one"})
    run_with(experiment, 2, {"a.xcfg": "two"})
    run_with(experiment, 3, {"a.xcfg": "three"})
    page = text(client.get(reverse("daq:config_diff")))
    assert "-two" in page and "+three" in page
    assert re.search(r'name="server"[^>]*>\s*<option value="CoBo\[0\] &#x27;A&#x27; &amp; '
                     "\u202eevil\" selected", page)


def test_diff_refuses_unknown_servers_and_runs_saying_what(client, viewer, experiment):
    a = run_with(experiment, 1, {"a.xcfg": "one"})
    other = run_with(experiment, 2, {"a.xcfg": "x"}, server="CoBo[9]")
    response = client.get(reverse("daq:config_diff"), {"server": "CoBo[7]"})
    assert response.status_code == 404
    assert "No run recorded a configuration loaded by &#x27;CoBo[7]&#x27;" in text(response)
    for bad in ("999", "x'1", str(other.pk)):
        response = client.get(reverse("daq:config_diff"),
                              {"server": SERVER, "a": a.pk, "b": bad})
        assert response.status_code == 404, bad
        assert "holding a configuration loaded by" in text(response)


def test_diff_with_a_single_run_asks_for_two(client, viewer, experiment):
    run_with(experiment, 1, {"a.xcfg": "one"})
    response = client.get(reverse("daq:config_diff"))
    assert response.status_code == 200
    assert "only 1 run recorded one" in text(response)


# Start anyway -----------------------------------------------------------------------------

@pytest.fixture
def ready(experiment, engine_beating):
    for n in range(2):
        server = ECCServer.objects.create(name=f"CoBo[{n}]", ip_address="127.0.0.1",
                                          port=9000 + n, is_online=True, state=ECCServer.READY)
        server.selected_config = ConfigId.objects.create(ecc_server=server, describe=f"cobo{n}",
                                                         prepare="exp", configure="exp")
        server.save()


def fragment(client) -> str:
    return text(client.get(reverse("daq:status_fragment"), **HTMX))


def test_start_anyway_is_offered_after_a_drift_refusal_only(client, ready, operator):
    Command.objects.create(kind="transition", target=ECCServer.RUNNING, label="Start a run",
                           status="failed", error=DRIFT)
    page = fragment(client)
    assert 'id="start-anyway"' in page
    assert "configure-experiment.xcfg changed since CoBo[3] was configured at 21:04" in page
    # Not when the servers are not all Ready any more, nor after another failure.
    ECCServer.objects.filter(name="CoBo[0]").update(state=ECCServer.PREPARED)
    assert 'id="start-anyway"' not in fragment(client)
    ECCServer.objects.update(state=ECCServer.READY)
    Command.objects.update(error="cannot start: data router router0 is offline")
    assert 'id="start-anyway"' not in fragment(client)


def test_viewers_are_not_offered_start_anyway(client, ready, viewer):
    Command.objects.create(kind="transition", target=ECCServer.RUNNING, status="failed",
                           error=DRIFT)
    page = fragment(client)
    assert 'id="last-failure"' in page and 'id="start-anyway"' not in page


def test_start_anyway_queues_a_confirmed_start(client, ready, operator):
    response = client.post(reverse("daq:system_transition"),
                           {"action": "start", "confirm_drift": "on"}, **HTMX)
    assert response.status_code == 202
    command = Command.objects.get()
    assert (command.target, command.confirm_drift, command.user) == (
        ECCServer.RUNNING, True, operator)
    assert command.describe() == "Start a run despite configuration drift (all servers)"
    assert "despite configuration drift" in text(response)


def test_a_plain_start_is_not_confirmed_and_only_start_can_be(client, ready, operator):
    assert client.post(reverse("daq:system_transition"), {"action": "start"},
                       **HTMX).status_code == 202
    assert Command.objects.get().confirm_drift is False
    Command.objects.all().delete()
    response = client.post(reverse("daq:system_transition"),
                           {"action": "reset", "confirm_drift": "on"}, **HTMX)
    assert response.status_code == 400
    assert "only Start can be confirmed" in text(response)
    assert not Command.objects.exists()


# The API ----------------------------------------------------------------------------------

def bearer(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.issue(user)}"}


def test_api_start_with_confirm_drift(client, ready, operator):
    auth = bearer(operator)
    response = client.post("/api/transition", {"target": "running", "confirm_drift": True},
                           content_type="application/json", **auth)
    assert response.status_code == 202
    command = Command.objects.get(pk=response.json()["command"])
    assert command.confirm_drift and command.target == ECCServer.RUNNING
    command.delete()
    plain = client.post("/api/transition", {"target": "running"},
                        content_type="application/json", **auth)
    assert not Command.objects.get(pk=plain.json()["command"]).confirm_drift
    Command.objects.all().delete()
    refused = client.post("/api/transition", {"target": "ready", "confirm_drift": True},
                          content_type="application/json", **auth)
    assert refused.status_code == 400 and "system-wide Start" in refused.json()["detail"]
    server = ECCServer.objects.first()
    refused = client.post(f"/api/ecc-servers/{server.pk}/transition",
                          {"target": "running", "confirm_drift": True},
                          content_type="application/json", **auth)
    assert refused.status_code == 400
    assert not Command.objects.exists()


def test_api_run_lists_loaded_files_by_name_and_hash(client, experiment, viewer):
    run = run_with(experiment, 8, {"describe-cobo0.xcfg": "<Setup/>",
                                   "configure-experiment.xcfg": "é"})
    # /api/runs/ takes the run's number in the active experiment, not its row id.
    body = client.get(f"/api/runs/{run.run_number}", **bearer(viewer)).json()
    assert (body["number"], body["experiment"], body["configs"]) == (
        8, "e20009", {SERVER: "cobo0/experiment/experiment"})
    (loaded,) = body["loaded_configs"]
    assert loaded["server"] == SERVER and loaded["config"] == "cobo0/experiment/experiment"
    assert loaded["files"] == [
        {"filename": "configure-experiment.xcfg", "chars": 1,
         "sha256": hashlib.sha256("é".encode()).hexdigest()},
        {"filename": "describe-cobo0.xcfg", "chars": 8,
         "sha256": hashlib.sha256(b"<Setup/>").hexdigest()}]
    assert "text" not in str(loaded["files"])
    assert client.get("/api/runs/999", **bearer(viewer)).status_code == 404


# Admin ------------------------------------------------------------------------------------

def test_admin_shows_loaded_records_read_only(admin_client, experiment):
    run = run_with(experiment, 1, {"describe-cobo0.xcfg": "<Setup/>"})
    server = ECCServer.objects.create(name="CoBo[0]", ip_address="127.0.0.1")
    loaded = LoadedConfig.objects.create(ecc_server=server, config="cobo0/e/e",
                                         configured_at=timezone.now(),
                                         files=[entry("describe-cobo0.xcfg", "<Setup/>")])
    digest = hashlib.sha256(b"<Setup/>").hexdigest()[:12]
    for model, obj in (("loadedconfig", loaded), ("runconfig", RunConfig.objects.get(run=run))):
        listing = admin_client.get(reverse(f"admin:daq_{model}_changelist"))
        assert listing.status_code == 200 and digest in text(listing)
        assert admin_client.get(reverse(f"admin:daq_{model}_change",
                                        args=[obj.pk])).status_code == 200
        assert admin_client.get(reverse(f"admin:daq_{model}_add")).status_code == 403
