"""The runs page as a run sheet: columns from the manifest and the measurements, filters,
sort by any column (hostile names refused), edit in place (all or nothing), same as
previous, bounded pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from attpcdaq.daq.models import (
    Experiment,
    Measurement,
    Observable,
    RunClass,
    RunEdit,
    RunMetadata,
)
from attpcdaq.daq.views import RUNS_PER_PAGE

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
HOSTILE = '<script>alert("x")</script>'
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def operator(client):
    user = User.objects.create_user("alice", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    client.force_login(user)
    return user


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
def current(experiment):
    return Observable.objects.create(experiment=experiment, name="beam current",
                                     kind="float", units="pA", minimum=0, maximum=500,
                                     help_text="From the Faraday cup", order=0)


@pytest.fixture
def target(experiment):
    return Observable.objects.create(experiment=experiment, name="target", kind="choice",
                                     choices=["D2", "C4H10"], required=True, order=1)


def manifest(events: list[int], router_bytes: list[int]) -> dict:
    return {
        "events": {f"CoBo[{i}]": {"events": n, "first_event": 0, "last_event": n - 1}
                   for i, n in enumerate(events)},
        "routers": {f"router{i}": {"directory": f"/d/{i}", "bytes": b,
                                   "files": [{"name": f"f{i}.graw", "size": b}]}
                    for i, b in enumerate(router_bytes)},
    }


def make_run(experiment, number, *, hours=1.0, title="", klass=None, events=None,
             data=None, start=None, **fields):
    start = start or T0 + timedelta(days=number)
    return RunMetadata.objects.create(
        experiment=experiment, run_number=number, title=title, status="stopped",
        start_datetime=start, stop_datetime=start + timedelta(hours=hours),
        run_class=RunClass.objects.get(name=klass) if klass else None, filed=True,
        manifest=manifest(events or [], data or []), **fields)


def page(client, **query) -> str:
    response = client.get(reverse("daq:run_list"), query)
    assert response.status_code == 200
    return response.content.decode()


def numbers(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="run-\d+"[^>]*>\s*<th[^>]*><a[^>]*>(\d+)<',
                                       html)]


def row(html: str, run: RunMetadata) -> str:
    return html.split(f'<tr id="run-{run.pk}"')[1].split("</tr>")[0]


@pytest.fixture
def sheet(experiment, current, target):
    """Five runs of different classes, lengths, events, data and measurements."""
    runs = {
        1: make_run(experiment, 1, hours=3, title="pulser check", klass="Pulser",
                    events=[100, 100], data=[5_000, 7_000]),
        2: make_run(experiment, 2, hours=0.5, title="Beam on target", klass="Beam",
                    events=[9_000, 8_990], data=[2_000_000_000, 1_000_000_000],
                    comment="gas at 600 Torr"),
        3: make_run(experiment, 3, hours=2, title="beam tuning", klass="Beam",
                    events=[50], data=[10]),
        4: make_run(experiment, 4, hours=1, title="junk", klass="Junk"),
        5: RunMetadata.objects.create(experiment=experiment, run_number=5, status="aborted",
                                      reason="CoBo[1] did not start", title="aborted one"),
    }
    for number, value in ((1, 9.5), (2, 10.0), (3, 100.0)):
        Measurement.objects.create(run=runs[number], observable=current, value=value)
    Measurement.objects.create(run=runs[2], observable=target, value="D2")
    return runs


# Columns ------------------------------------------------------------------------------

def test_a_row_has_class_events_data_problems_and_measurements(client, sheet, viewer,
                                                                current, target):
    html = page(client)
    assert numbers(html) == [5, 4, 3, 2, 1]
    two = row(html, sheet[2])
    assert 'data-col="class">Beam<' in two and "Beam on target" in two
    assert 'data-col="events">9,000<' in two  # the most any CoBo counted
    assert "3.0 GB" in two and "3,000,000,000 bytes" in two and ">2<" in two  # 2 files
    assert "0:30:00" in two
    assert f'data-observable="{current.pk}">10<' in two
    assert f'data-observable="{target.pk}">D2<' in two
    five = row(html, sheet[5])
    assert ">Aborted<" in five and "aborted: CoBo[1] did not start" in five
    # Headings: the observables with their units and help text.
    assert "beam current" in html and "(pA)" in html and 'title="From the Faraday cup"' in html


def test_incomplete_runs_keep_their_problems(client, experiment, viewer):
    run = make_run(experiment, 9, incomplete=True, problems=["CoBo[2]: 10 events short",
                                                            HOSTILE])
    html = row(page(client), run)
    assert "run-incomplete" in html and "CoBo[2]: 10 events short" in html
    assert ">incomplete<" in html
    assert "<script>alert" not in html and "&lt;script&gt;" in html


def test_the_manifest_of_another_shape_does_not_break_the_sheet(client, experiment, viewer):
    odd = [{"events": "many", "routers": []}, {"events": {"CoBo[0]": [1]}, "routers": {
        "r": {"bytes": True, "files": "nope"}, "s": None}}, ["x"], {"events": {"a": None}}]
    for number, entry in enumerate(odd):
        RunMetadata.objects.create(experiment=experiment, run_number=number, manifest=entry,
                                   filed=True)
    for sort in ("events", "-events", "bytes", "-bytes", "files"):
        html = page(client, sort=sort)
        assert sorted(numbers(html)) == [0, 1, 2, 3]
    response = client.get(reverse("daq:chart_data"), {"y": "bytes"})
    assert response.status_code == 200 and response.json()["points"] == [
        {"run": 1, "x": 1, "y": 0, "title": "", "class": ""}]


# Filters ----------------------------------------------------------------------------------

def test_filter_by_class(client, sheet, viewer):
    assert numbers(page(client, run_class="Beam")) == [3, 2]
    assert numbers(page(client, run_class="Junk")) == [4]
    html = page(client, run_class=HOSTILE)
    assert numbers(html) == [5, 4, 3, 2, 1]  # not applied, and said beside the field
    assert 'id="filter-error-run_class"' in html and "not applied" in html
    assert "<script>alert" not in html


def test_filter_by_date_range(client, sheet, viewer):
    day = lambda n: (T0 + timedelta(days=n)).date().isoformat()  # noqa: E731
    assert numbers(page(client, start_from=day(2), start_to=day(3))) == [3, 2]
    assert numbers(page(client, start_from=day(4))) == [4]  # 5 never started
    assert numbers(page(client, start_to=day(1))) == [1]
    html = page(client, start_from="2025-13-45")
    assert 'id="filter-error-start_from"' in html and "Enter a valid date." in html
    assert numbers(html) == [5, 4, 3, 2, 1]
    html = page(client, start_from=day(3), start_to=day(2))
    assert "This date is before the first one." in html
    assert numbers(html) == [4, 3]  # the valid one applies


def test_filter_by_text_in_title_or_comment(client, sheet, viewer):
    assert numbers(page(client, q="beam")) == [3, 2]  # any case
    assert numbers(page(client, q="600 torr")) == [2]  # the comment
    assert numbers(page(client, q="beam", run_class="Beam", start_from="2025-03-04")) == [3]
    html = page(client, q="nothing like it")
    assert numbers(html) == [] and "No runs of e20009 match these filters." in html
    assert numbers(page(client, q="%")) == []  # no wildcard
    html = page(client, q="a\u202eb")
    assert "invisible or reordering" in html and numbers(html) == [5, 4, 3, 2, 1]


# Sort -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("sort", "expected"), [
    ("number", [1, 2, 3, 4, 5]), ("-number", [5, 4, 3, 2, 1]),
    ("duration", [2, 4, 3, 1, 5]), ("-duration", [1, 3, 4, 2, 5]),
    # Runs without a value come last either way, the newest first.
    ("events", [3, 1, 2, 5, 4]), ("-events", [2, 1, 3, 5, 4]),
    ("bytes", [3, 1, 2, 5, 4]), ("-bytes", [2, 1, 3, 5, 4]),
    ("title", [5, 2, 3, 4, 1]), ("class", [3, 2, 4, 1, 5]),
    ("start", [1, 2, 3, 4, 5]), ("-stop", [4, 3, 2, 1, 5]),
    ("status", [5, 4, 3, 2, 1]),
])
def test_sort_by_any_column(client, sheet, viewer, sort, expected):
    assert numbers(page(client, sort=sort)) == expected


def test_sort_by_a_measurement_numerically(client, sheet, viewer, current, target):
    # 9.5 < 10 < 100 as numbers (as text "100" < "9.5"); runs without a value last.
    assert numbers(page(client, sort=f"obs{current.pk}")) == [1, 2, 3, 5, 4]
    assert numbers(page(client, sort=f"-obs{current.pk}")) == [3, 2, 1, 5, 4]
    assert numbers(page(client, sort=f"obs{target.pk}"))[0] == 2


def test_sort_links_keep_the_filters(client, sheet, viewer):
    html = page(client, run_class="Beam", sort="events")
    link = re.search(r'data-sort="events" href="([^"]+)"', html).group(1)
    assert "sort=-events" in link and "run_class=Beam" in link  # the second click
    assert 'data-sort="events"' in html and "\u25b2" in html


@pytest.mark.parametrize("sort", [
    "'; DROP TABLE daq_runmetadata; --", "obs99999", "-obs", "run_number", "manifest",
    "__class__", "-" * 40, HOSTILE, "obs1 OR 1=1", "x" * 5000, "--number"])
def test_a_hostile_sort_is_refused_and_sorts_newest_first(client, sheet, viewer, sort):
    html = page(client, sort=sort)
    assert numbers(html) == [5, 4, 3, 2, 1]
    assert 'id="sort-refused"' in html and "<script>alert" not in html
    assert RunMetadata.objects.count() == 5


# Pages ------------------------------------------------------------------------------------

def test_pages_are_bounded_and_sorted_over_every_run(client, experiment, viewer):
    for number in range(RUNS_PER_PAGE * 2 + 3):
        make_run(experiment, number, events=[(number * 7919) % 1000 + 1])
    html = page(client, sort="-events")
    assert len(numbers(html)) == RUNS_PER_PAGE
    best = max(range(RUNS_PER_PAGE * 2 + 3), key=lambda n: (n * 7919) % 1000 + 1)
    assert numbers(html)[0] == best  # over all runs, not just one page
    last = page(client, sort="-events", page=3)
    assert len(numbers(last)) == 3


# Edit in place ------------------------------------------------------------------------------

def edit_url(run) -> str:
    return reverse("daq:run_sheet_edit", args=[run.pk])


def post_edit(client, run, observables, **fields):
    data = {"title": run.title, "run_class": run.run_class.name if run.run_class else "",
            "comment": run.comment}
    data.update({k: v for k, v in fields.items() if k in data})
    for o in observables:
        data[f"m-{o.pk}"] = fields.get(o.name.replace(" ", "_"), "")
    return client.post(edit_url(run), data, **HTMX)


def test_the_row_turns_into_a_form_and_back(client, sheet, operator, current, target):
    run = sheet[2]
    form = client.get(edit_url(run), **HTMX)
    assert form.status_code == 200
    html = form.content.decode()
    assert f'<tr id="run-{run.pk}" class="run-edit' in html
    assert 'name="title" value="Beam on target"' in html
    assert '<option value="Beam" selected>' in html
    assert f'name="m-{current.pk}" value="10"' in html
    assert '<option value="D2" selected>D2</option>' in html
    assert "From the Faraday cup" in html  # the help text beside the field
    back = client.get(reverse("daq:run_sheet_row", args=[run.pk]), **HTMX)
    assert back.status_code == 200 and 'data-action="edit-run"' in back.content.decode()


def test_edit_in_place_saves_everything_and_keeps_the_edits(client, sheet, operator,
                                                            current, target):
    run = sheet[3]
    response = post_edit(client, run, [current, target], title="beam tuning «2» ☢",
                         run_class="Production", comment="line 1\nline 2",
                         beam_current="42.5", target="C4H10")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<tr id="run-{run.pk}"' in html and "beam tuning «2» ☢" in html
    assert "Run 3 saved: 5 change(s)." in html
    run.refresh_from_db()
    assert (run.title, run.run_class.name, run.comment) == ("beam tuning «2» ☢",
                                                           "Production", "line 1\nline 2")
    assert dict(run.measurements.values_list("observable__name", "value")) == {
        "beam current": 42.5, "target": "C4H10"}
    edits = {e.field: (e.old, e.new, e.user) for e in RunEdit.objects.filter(run=run)}
    assert edits["title"] == ("beam tuning", "beam tuning «2» ☢", operator)
    assert edits["run_class"] == ("Beam", "Production", operator)
    assert edits["measurements.beam current"] == (100.0, 42.5, operator)
    assert edits["measurements.target"] == (None, "C4H10", operator)
    # Saving it again as it is changes nothing.
    again = post_edit(client, run, [current, target], beam_current="42.5", target="C4H10")
    assert "nothing changed" in again.content.decode()
    assert RunEdit.objects.filter(run=run).count() == 5


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"beam_current": "lots", "target": "D2"}, "beam current", "beam current is not a number"),
    ({"beam_current": "501", "target": "D2"}, "beam current", "above the maximum, 500 pA"),
    ({"beam_current": "nan", "target": "D2"}, "beam current", "finite"),
    ({"beam_current": "1", "target": ""}, "target", "target is required"),
    ({"beam_current": "1", "target": "Argon"}, "target", "not one of the choices"),
    ({"beam_current": "1" * 10_001, "target": "D2"}, "beam current", "too long"),
    ({"title": "x" * 201, "target": "D2"}, "title", "at most 200"),
    ({"title": "a\u202eb", "target": "D2"}, "title", "U+202E"),
    ({"run_class": HOSTILE, "target": "D2"}, "run_class", "there is no run class"),
])
def test_an_edit_with_errors_saves_nothing(client, sheet, operator, current, target, fields,
                                           field, words):
    run = sheet[2]
    before = (run.title, run.run_class_id, run.comment,
              sorted(run.measurements.values_list("observable_id", "value")))
    # Everything else changed and valid: still nothing may be saved.
    values = {"comment": "a new comment", "beam_current": "12", **fields}
    if "title" not in fields:
        values["title"] = "a new title"
    response = post_edit(client, run, [current, target], **values)
    assert response.status_code == 400 and response["X-Sheet-Form"] == "1"
    html = response.content.decode()
    assert "Nothing was saved" in html
    beside = html.split(f'data-error-for="{field}">')[1].split("</div>")[0]
    assert words in beside.replace("&#x27;", "'"), beside
    assert "<script>alert" not in html
    # The form keeps what was typed.
    if field != "title":
        assert 'value="a new title"' in html
    run.refresh_from_db()
    assert (run.title, run.run_class_id, run.comment,
            sorted(run.measurements.values_list("observable_id", "value"))) == before
    assert RunEdit.objects.count() == 0


def test_same_as_previous_fills_the_form_but_saves_nothing(client, sheet, operator, current,
                                                           target):
    run = sheet[3]
    html = client.get(edit_url(run), {"previous": "1"}, **HTMX).content.decode()
    assert "Filled from run 2" in html
    assert 'name="title" value="Beam on target"' in html
    assert "gas at 600 Torr</textarea>" in html
    assert f'name="m-{current.pk}" value="10"' in html
    assert '<option value="D2" selected>D2</option>' in html
    assert "<strong>Run 3</strong>" in html  # still this run: its number is its own
    assert f'hx-post="{edit_url(run)}"' in html
    run.refresh_from_db()
    assert run.title == "beam tuning" and RunEdit.objects.count() == 0
    # The first run has none before it.
    first = client.get(edit_url(sheet[1]), {"previous": "1"}, **HTMX).content.decode()
    assert "There is no run before run 1." in first and 'value="pulser check"' in first


def test_same_as_previous_then_save_copies_only_what_is_typed(client, sheet, operator,
                                                              current, target):
    run = sheet[3]
    post_edit(client, run, [current, target], title="Beam on target", run_class="Beam",
              comment="gas at 600 Torr", beam_current="10", target="D2")
    run.refresh_from_db()
    assert (run.title, run.comment, run.run_number, run.status) == (
        "Beam on target", "gas at 600 Torr", 3, "stopped")
    assert run.start_datetime == T0 + timedelta(days=3)  # automatic: untouched


def test_a_viewer_sees_no_edit_and_may_not_edit(client, sheet, viewer, current, target):
    html = page(client)
    assert 'data-action="edit-run"' not in html
    run = sheet[2]
    assert client.get(edit_url(run), **HTMX).status_code == 403
    response = post_edit(client, run, [current, target], title="mine", target="D2")
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.title == "Beam on target" and RunEdit.objects.count() == 0


@pytest.mark.parametrize("pk", ["999999", "abc", "-1", "9" * 40])
def test_edit_of_a_run_that_is_not_one(client, sheet, operator, pk):
    response = client.get(reverse("daq:run_sheet_edit", args=[pk]), **HTMX)
    assert response.status_code == 404 and "There is no run with id" in response.content.decode()
