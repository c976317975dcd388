"""The shift logbook: entries by anyone logged in, search and pages, permissions, drafts
edited and confirmed by operators, hostile text; the run limits form and API."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from attpcdaq.daq import logbook
from attpcdaq.daq.models import Experiment, LogEntry, RunEdit, RunMetadata

pytestmark = pytest.mark.django_db
URL = "/logbook/"


@pytest.fixture
def experiment():
    return Experiment.objects.create(name="e20009", is_active=True)


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("watcher", password="pw")
    client.force_login(user)
    return user


@pytest.fixture
def operator():
    user = User.objects.create_user("shifter", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    return User.objects.get(pk=user.pk)


def test_the_logbook_needs_a_login_and_is_in_the_navbar(client, viewer):
    client.logout()
    assert client.get(URL).status_code == 302
    client.force_login(viewer)
    page = client.get(reverse("daq:status")).content.decode()
    assert 'id="nav-logbook"' in page and f'href="{URL}"' in page


def test_anyone_logged_in_writes_an_entry_on_a_run_or_none(client, viewer, experiment):
    run = RunMetadata.objects.create(experiment=experiment, run_number=7)
    answer = client.post(URL, {"text": "  beam tuned\r\nby hand  ", "run": "7"})
    assert answer.status_code == 302
    entry = LogEntry.objects.get()
    assert (entry.text, entry.author, entry.run, entry.drafted) == ("beam tuned\nby hand",
                                                                    viewer, run, False)
    assert answer["Location"].endswith(f"#entry-{entry.pk}")
    client.post(URL, {"text": "coffee", "run": ""})
    assert LogEntry.objects.filter(text="coffee", run=None).exists()
    page = client.get(URL).content.decode()
    assert page.index("coffee") < page.index("beam tuned")  # newest first
    assert f'href="/runs/{run.pk}/"' in page


@pytest.mark.parametrize(("text", "run", "said"), [
    ("", "", "the entry is empty"),
    ("   \n ", "", "the entry is empty"),
    ("x" * (logbook.MAX_TEXT + 1), "", "at most 50,000 are kept"),
    ("evil\x00", "", "U+0000"),
    ("abc\u202edcba", "", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("fine", "12", "has no run 12"),
    ("fine", "-1", "is not a run number"),
    ("fine", "9" * 40, "is not a run number"),
])
def test_a_refused_entry_says_why_and_keeps_what_was_typed(client, viewer, experiment, text,
                                                           run, said):
    answer = client.post(URL, {"text": text, "run": run})
    assert answer.status_code == 400
    page = answer.content.decode()
    assert 'id="logbook-error"' in page and said in page
    assert not LogEntry.objects.exists()
    if text.strip() and "\x00" not in text and len(text) < 100:
        assert f">{text}</textarea>" in page


def test_hostile_text_is_kept_as_typed_and_shown_as_text(client, viewer, experiment):
    hostile = '<script>alert("x")</script> & <b onmouseover=1>bold</b> é 日本 🙂\n\tindented'
    assert client.post(URL, {"text": hostile}).status_code == 302
    assert LogEntry.objects.get().text == hostile
    page = client.get(URL).content.decode()
    assert "<script>alert" not in page and "<b onmouseover" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b" in page
    assert "日本 🙂" in page


def test_search_by_words_of_the_text_or_the_author_and_pages(client, viewer, experiment,
                                                             operator):
    for n in range(logbook.PER_PAGE + 5):
        LogEntry.objects.create(author=viewer, text=f"routine entry {n}")
    LogEntry.objects.create(author=operator, text="Gas PRESSURE dropped in the chamber")
    found = client.get(URL, {"q": "pressure gas"}).content.decode()
    assert "Gas PRESSURE dropped" in found and "routine entry" not in found
    assert "Gas PRESSURE" in client.get(URL, {"q": "shifter"}).content.decode()
    nothing = client.get(URL, {"q": "<i>absent</i>"}).content.decode()
    assert 'id="no-entries"' in nothing and "&lt;i&gt;absent&lt;/i&gt;" in nothing
    first = client.get(URL).content.decode()
    assert first.count('class="card shadow-sm mb-2') == logbook.PER_PAGE
    second = client.get(URL, {"page": "2"}).content.decode()
    assert second.count('class="card shadow-sm mb-2') == 6
    assert client.get(URL, {"page": "999"}).status_code == 200  # the last page
    assert client.get(URL, {"q": "x" * 10_000}).status_code == 200


def test_drafts_come_first_and_operators_edit_and_confirm_them(client, viewer, experiment,
                                                                operator):
    run = RunMetadata.objects.create(experiment=experiment, run_number=3,
                                     status=RunMetadata.Status.STOPPED)
    draft = LogEntry.objects.create(run=run, drafted=True, text="Run 3\nDrafted",
                                    time=timezone.now() - timezone.timedelta(hours=5))
    LogEntry.objects.create(author=viewer, text="newer free entry")
    # A viewer sees the draft first, and may neither edit nor confirm it.
    page = client.get(URL).content.decode()
    assert page.index("Run 3") < page.index("newer free entry")
    assert "draft: to confirm" in page and "Confirm</button>" not in page
    refused = client.post(f"/logbook/{draft.pk}/confirm/", {"text": "mine"})
    assert refused.status_code == 403 and "may watch but not confirm" in refused.content.decode()
    assert client.post(f"/logbook/{draft.pk}/edit/", {"text": "x"}).status_code == 403
    draft.refresh_from_db()
    assert (draft.text, draft.confirmed_at) == ("Run 3\nDrafted", None)
    # An operator edits it, a refused edit comes back as typed, then confirms it.
    client.force_login(operator)
    page = client.get(URL).content.decode()
    assert f'action="/logbook/{draft.pk}/edit/"' in page and "Confirm</button>" in page
    assert client.post(f"/logbook/{draft.pk}/edit/", {"text": "Run 3\nBeam was unstable"}
                       ).status_code == 302
    bad = client.post(f"/logbook/{draft.pk}/confirm/", {"text": "bad\x07bell"})
    assert bad.status_code == 400 and "U+0007" in bad.content.decode()
    assert ">bad\x07bell</textarea>" in bad.content.decode()
    assert client.post(f"/logbook/{draft.pk}/confirm/", {"text": "Run 3\nBeam unstable, ok"}
                       ).status_code == 302
    draft.refresh_from_db()
    assert (draft.text, draft.confirmed_by, draft.drafted) == ("Run 3\nBeam unstable, ok",
                                                               operator, True)
    again = client.post(f"/logbook/{draft.pk}/confirm/")
    assert again.status_code == 409 and "confirmed by shifter" in again.content.decode()
    page = client.get(URL).content.decode()
    assert "confirmed by shifter" in page and page.index("newer free entry") < page.index(
        "Beam unstable")  # confirmed: in its place by time
    assert client.post("/logbook/99999/confirm/").status_code == 404
    assert client.post("/logbook/abc/edit/").status_code == 404


def test_only_the_author_edits_a_free_entry(client, viewer, operator, experiment):
    mine = LogEntry.objects.create(author=viewer, text="mine")
    theirs = LogEntry.objects.create(author=operator, text="theirs")
    page = client.get(URL, {"edit": str(mine.pk)}).content.decode()
    assert f'action="/logbook/{mine.pk}/edit/"' in page
    assert f'action="/logbook/{theirs.pk}/edit/"' not in page
    assert client.post(f"/logbook/{mine.pk}/edit/", {"text": "mine, fixed"}).status_code == 302
    refused = client.post(f"/logbook/{theirs.pk}/edit/", {"text": "hijacked"})
    assert refused.status_code == 403 and "only the author" in refused.content.decode()
    assert client.post(f"/logbook/{mine.pk}/confirm/").status_code == 403  # not a draft
    assert LogEntry.objects.get(pk=theirs.pk).text == "theirs"
    assert LogEntry.objects.get(pk=mine.pk).text == "mine, fixed"


def test_export_entries_of_an_experiment(experiment, operator):
    other = Experiment.objects.create(name="later", created=timezone.now()
                                      + timezone.timedelta(days=1))
    run = RunMetadata.objects.create(experiment=experiment, run_number=1)
    on_run = LogEntry.objects.create(author=operator, text="on run 1", run=run)
    free = LogEntry.objects.create(author=None, text="free")
    LogEntry.objects.create(text="after the next experiment began",
                            time=timezone.now() + timezone.timedelta(days=2))
    exported = logbook.export_entries(experiment)
    assert [e["text"] for e in exported] == ["on run 1", "free"]
    assert exported[0] == {"id": on_run.pk, "time": on_run.time, "author": "shifter", "run": 1,
                           "text": "on run 1", "drafted": False, "confirmed_by": None,
                           "confirmed_at": None}
    assert exported[1]["author"] is None and exported[1]["id"] == free.pk
    assert [e["text"] for e in logbook.export_entries(other)] == [
        "after the next experiment began"]


# The run panel's limits form and PATCH /api/runs/N/limits --------------------------------

@pytest.fixture
def open_run(experiment):
    return RunMetadata.objects.create(experiment=experiment, run_number=4,
                                      status=RunMetadata.Status.RUNNING,
                                      start_datetime=timezone.now(), limit_seconds=600.0)


def test_the_run_panel_shows_the_time_left_and_the_limits_form(client, operator, open_run,
                                                               engine_beating):
    client.force_login(operator)
    page = client.get(reverse("daq:status")).content.decode()
    assert 'id="run-limits"' in page and 'class="run-time-left" data-until=' in page
    assert 'data-seconds="0:10:00"' in page and 'id="limits-dialog"' in page
    answer = client.post(f"/runs/{open_run.pk}/limits/", {
        "limit_seconds": "1:30:00", "limit_bytes": "2G", "limit_events": "", "auto_restart": "on"})
    assert answer.status_code == 200, answer.content
    assert "duration limit 0:10:00 → 1:30:00" in answer.content.decode()
    open_run.refresh_from_db()
    assert (open_run.limit_seconds, open_run.limit_bytes, open_run.auto_restart) == (
        5400.0, 2 * 10**9, True)
    assert set(RunEdit.objects.filter(run=open_run).values_list("field", flat=True)) == {
        "limit_seconds", "limit_bytes", "auto_restart"}
    page = client.get(reverse("daq:status_fragment")).content.decode()
    assert "2.0 GB of data" in page and "restarts by itself" in page
    bad = client.post(f"/runs/{open_run.pk}/limits/", {"limit_seconds": "soon"})
    assert bad.status_code == 400 and "is not a duration" in bad.content.decode()
    bad = client.post(f"/runs/{open_run.pk}/limits/", {"limit_bytes": "5 parsecs"})
    assert bad.status_code == 400 and "is not an amount of data" in bad.content.decode()
    bad = client.post(f"/runs/{open_run.pk}/limits/", {"limit_seconds": "0"})
    assert bad.status_code == 400 and "more than zero" in bad.content.decode()
    client.force_login(User.objects.create_user("viewer2"))
    assert client.post(f"/runs/{open_run.pk}/limits/", {"limit_seconds": ""}).status_code == 403


def _patch(client, number, body, token=None):
    return client.patch(f"/api/runs/{number}/limits", data=json.dumps(body)
                        if not isinstance(body, str) else body,
                        content_type="application/json")


def test_patch_limits_through_the_api(client, operator, open_run, engine_beating):
    client.force_login(operator)
    answer = _patch(client, 4, {"limit_seconds": None, "limit_events": 5000})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["limit_seconds"], body["limit_events"], body["seconds_left"]) == (
        None, 5000, None)
    assert body["changed"] == ["duration limit 0:10:00 → none", "event limit none → 5,000 events"]
    assert "not measured yet" in body["events_unknown"]
    for wrong, said in [({"limit_seconds": "ten"}, "limit_seconds: expected a number"),
                        ({"limit_bytes": -1}, "limit_bytes: the data limit must be more"),
                        ({"limit_events": 1.5}, "limit_events: the event limit is a whole"),
                        ({"limit_seconds": 10**9}, "limit_seconds: the duration limit is at"),
                        ({"auto_restart": "yes"}, "auto_restart: expected true or false"),
                        ({"colour": 1}, "colour: not a limit"), ({}, "name a limit"),
                        ("[1, 2]", "name a limit"), ("{not json", "must be a JSON object")]:
        answer = _patch(client, 4, wrong)
        assert answer.status_code == 400, (wrong, answer.content)
        assert said in answer.json()["detail"], (wrong, answer.json())
    assert _patch(client, 99, {"limit_seconds": 5}).status_code == 404
    open_run.status = RunMetadata.Status.STOPPED
    open_run.save()
    over = _patch(client, 4, {"limit_seconds": 5})
    assert over.status_code == 409 and "can no longer change" in over.json()["detail"]
    client.force_login(User.objects.create_user("viewer3"))
    assert _patch(client, 4, {"limit_seconds": 5}).status_code == 403
    assert "/api/runs/{number}/limits" in client.get("/api/openapi.json").json()["paths"]
