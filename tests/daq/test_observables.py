"""Observables: each rule of validate_measurements, save_measurements' edits, the page
that defines them (add, edit, remove, reorder) and who may use it."""

from __future__ import annotations

import math

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from attpcdaq.daq.models import Experiment, Measurement, Observable, RunEdit, RunMetadata
from attpcdaq.daq.observables import (
    MAX_TEXT,
    save_measurements,
    show_value,
    validate_measurements,
)

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def experiment():
    return Experiment.objects.create(name="e20009", is_active=True)


@pytest.fixture
def kinds(experiment):
    """One observable of each kind, by kind."""
    make = Observable.objects.create
    return {
        "integer": make(experiment=experiment, name="scalers", kind="integer", minimum=0,
                        maximum=1000, order=0),
        "float": make(experiment=experiment, name="beam current", kind="float", units="pA",
                      minimum=0.5, maximum=200, required=True, order=1),
        "text": make(experiment=experiment, name="note", kind="text", order=2),
        "choice": make(experiment=experiment, name="target", kind="choice",
                       choices=["C4H10", "D2", "isobutane ü"], order=3),
        "boolean": make(experiment=experiment, name="beam on", kind="boolean", order=4),
    }


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


def check(experiment, **data):
    values, errors = validate_measurements(experiment, data)
    return {o.name: v for o, v in values.items()}, errors


def one_error(experiment, name, raw) -> str:
    values, errors = validate_measurements(experiment, {name: raw})
    assert values == {} and list(errors) == [name], (values, errors)
    return errors[name]


# validate_measurements ----------------------------------------------------------------

def test_good_values_come_back_typed(experiment, kinds):
    values, errors = validate_measurements(experiment, {
        "scalers": " 42 ", "beam current": "12.5", "note": "  gas ok ☢ ", "target": "D2",
        "beam on": "Yes"})
    assert errors == {}
    assert {o.name: v for o, v in values.items()} == {
        "scalers": 42, "beam current": 12.5, "note": "gas ok ☢", "target": "D2",
        "beam on": True}
    assert type(values[kinds["integer"]]) is int and type(values[kinds["float"]]) is float


def test_json_values_from_the_api(experiment, kinds):
    values, errors = check(experiment, scalers=7.0, **{"beam current": 3, "beam on": False})
    assert errors == {} and values == {"scalers": 7, "beam current": 3.0, "beam on": False}
    _, errors = check(experiment, scalers=True, **{"beam current": True, "beam on": 2})
    assert errors == {"scalers": "scalers is not a whole number",
                      "beam current": "beam current is not a number",
                      "beam on": "beam on is not yes or no"}


@pytest.mark.parametrize("raw", ["", "   ", None])
def test_empty_where_required(experiment, kinds, raw):
    assert one_error(experiment, "beam current", raw) == "beam current is required"


@pytest.mark.parametrize("raw", ["", "  ", None])
def test_empty_where_not_required_clears(experiment, kinds, raw):
    values, errors = check(experiment, scalers=raw, note=raw, target=raw)
    assert errors == {} and values == {"scalers": None, "note": None, "target": None}


@pytest.mark.parametrize(("name", "raw"), [
    ("beam current", "abc"), ("beam current", "12,5"), ("beam current", "1_0"),
    ("beam current", "0x10"), ("beam current", "12 pA"), ("beam current", ["12"]),
    ("scalers", "1.5"), ("scalers", "ten"), ("scalers", 2.5), ("scalers", "1e3")])
def test_not_a_number(experiment, kinds, name, raw):
    message = one_error(experiment, name, raw)
    assert message.startswith(name) and ("not a number" in message or "not a whole number"
                                         in message or "single value" in message)


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-Infinity", "1e999", math.nan, math.inf])
def test_nan_and_infinity_refused(experiment, kinds, raw):
    assert "finite" in one_error(experiment, "beam current", raw)


@pytest.mark.parametrize(("name", "raw", "words"), [
    ("beam current", "0.1", "below the minimum, 0.5 pA"),
    ("beam current", "200.5", "above the maximum, 200 pA"),
    ("scalers", "-1", "below the minimum, 0"), ("scalers", "1001", "above the maximum, 1000"),
    ("scalers", str(2**80), "too large")])
def test_out_of_range(experiment, kinds, name, raw, words):
    assert words in one_error(experiment, name, raw)


def test_the_bounds_themselves_are_allowed(experiment, kinds):
    values, errors = check(experiment, scalers="1000", **{"beam current": "0.5"})
    assert errors == {} and values == {"scalers": 1000, "beam current": 0.5}


@pytest.mark.parametrize("raw", ["Argon", "d2", "", "C4H10 ", 3])
def test_not_one_of_the_choices(experiment, kinds, raw):
    values, errors = check(experiment, target=raw)
    if raw == "":  # empty: cleared, not a choice
        assert errors == {} and values == {"target": None}
    elif raw == "C4H10 ":  # white space around a choice is not a difference
        assert errors == {} and values == {"target": "C4H10"}
    else:
        assert errors["target"].startswith("target is not one of the choices (C4H10, D2")


@pytest.mark.parametrize(("raw", "expected"), [
    ("yes", True), ("NO", False), ("true", True), ("False", False), ("on", True),
    ("off", False), ("1", True), ("0", False), (True, True), (0, False)])
def test_booleans(experiment, kinds, raw, expected):
    values, errors = check(experiment, **{"beam on": raw})
    assert errors == {} and values == {"beam on": expected}


@pytest.mark.parametrize("raw", ["maybe", "2", "si", "yes please"])
def test_not_a_boolean(experiment, kinds, raw):
    assert one_error(experiment, "beam on", raw) == "beam on is not yes or no"


@pytest.mark.parametrize("name", ["note", "beam current", "target", "scalers", "beam on"])
def test_huge_input_refused_for_every_kind(experiment, kinds, name):
    message = one_error(experiment, name, "1" * (MAX_TEXT + 1))
    assert "too long (10,001 characters; at most 10,000)" in message


def test_text_at_the_limit_is_kept(experiment, kinds):
    values, errors = check(experiment, note="x" * MAX_TEXT)
    assert errors == {} and len(values["note"]) == MAX_TEXT


@pytest.mark.parametrize("raw", ["a\u202eb", "bell\x07", "zero\u200bwidth", "nul\x00"])
def test_hostile_text_refused(experiment, kinds, raw):
    message = one_error(experiment, "note", raw)
    assert "control character" in message or "invisible or reordering" in message


def test_html_is_just_text(experiment, kinds):
    values, errors = check(experiment, note=HOSTILE + "\nline two\ttab")
    assert errors == {} and values["note"] == HOSTILE + "\nline two\ttab"


def test_unknown_observable_and_other_experiments(experiment, kinds):
    other = Experiment.objects.create(name="other")
    Observable.objects.create(experiment=other, name="theirs")
    values, errors = check(experiment, theirs="1", **{HOSTILE: "1"})
    assert values == {}
    assert errors["theirs"] == "e20009 has no observable named 'theirs'"
    assert set(errors) == {"theirs", HOSTILE}


def test_all_errors_at_once_and_none_of_the_values(experiment, kinds):
    values, errors = validate_measurements(experiment, {
        "scalers": "x", "beam current": "", "note": "fine", "target": "Argon"})
    assert set(errors) == {"scalers", "beam current", "target"}
    assert [o.name for o in values] == ["note"]  # the caller saves nothing: errors


def test_show_value_reads_back(experiment, kinds):
    for kind, value in (("integer", 42), ("float", 12.5), ("float", 3.0),
                        ("boolean", False), ("choice", "D2")):
        observable = kinds[kind]
        shown = show_value(observable, value)
        values, errors = validate_measurements(experiment, {observable.name: shown})
        assert errors == {} and values[observable] == value, (kind, shown)
    assert show_value(kinds["float"], None) == ""


# save_measurements ----------------------------------------------------------------------

def test_save_records_each_change_once(experiment, kinds, operator):
    run = RunMetadata.objects.create(experiment=experiment, run_number=5)
    values, _ = validate_measurements(experiment, {"scalers": "3", "beam current": "2.5"})
    edits = save_measurements(operator, run, values)
    assert sorted((e.field, e.old, e.new) for e in edits) == [
        ("measurements.beam current", None, 2.5), ("measurements.scalers", None, 3)]
    assert dict(run.measurements.values_list("observable__name", "value")) == {
        "scalers": 3, "beam current": 2.5}
    # The same values again: no change, no edit.
    assert save_measurements(operator, run, values) == []
    values, _ = validate_measurements(experiment, {"scalers": "", "beam current": "4"})
    edits = save_measurements(operator, run, values)
    assert sorted((e.field, e.old, e.new) for e in edits) == [
        ("measurements.beam current", 2.5, 4.0), ("measurements.scalers", 3, None)]
    assert dict(run.measurements.values_list("observable__name", "value")) == {
        "beam current": 4.0}
    assert RunEdit.objects.filter(run=run, user=operator).count() == 4


def test_save_refuses_another_experiments_observable(experiment, kinds, operator):
    other = Experiment.objects.create(name="other")
    run = RunMetadata.objects.create(experiment=other, run_number=1)
    with pytest.raises(ValueError, match="not an observable of other"):
        save_measurements(operator, run, {kinds["integer"]: 1})
    assert Measurement.objects.count() == 0 and RunEdit.objects.count() == 0


# The observables page -------------------------------------------------------------------

def page_url(experiment) -> str:
    return f"{reverse('daq:observables')}?experiment={experiment.name}"


def test_the_page_lists_them_in_order_and_escapes(client, experiment, kinds, viewer):
    Observable.objects.filter(pk=kinds["text"].pk).update(help_text=HOSTILE, order=99)
    page = client.get(page_url(experiment)).content.decode()
    names = ["scalers", "beam current", "target", "beam on", "note"]
    positions = [page.index(f'observable-name">{n}<') for n in names]
    assert positions == sorted(positions)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    # A viewer sees them but no controls.
    assert "Add an observable" not in page and "drag-handle" not in page


def test_login_required(client, experiment):
    response = client.get(reverse("daq:observables"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def add(client, experiment, **fields):
    data = {"experiment": experiment.name, "name": "gas pressure", "kind": "float",
            "units": "Torr", "help_text": "", "choices": "", "minimum": "", "maximum": "",
            **fields}
    return client.post(page_url(experiment), data)


def test_an_operator_adds_one(client, experiment, kinds, operator):
    response = add(client, experiment, minimum="0", maximum="760", required="on",
                   help_text="From the gauge «P1»")
    assert response.status_code == 302
    added = Observable.objects.get(name="gas pressure")
    assert (added.kind, added.units, added.minimum, added.maximum, added.required,
            added.order, added.help_text) == ("float", "Torr", 0, 760, True, 5,
                                               "From the gauge «P1»")
    choice = add(client, experiment, name="trigger", kind="choice",
                 choices="pulser\n\n  beam \nbeam")
    assert choice.status_code == 400  # listed twice
    assert "&#x27;beam&#x27; is listed twice." in choice.content.decode()
    assert add(client, experiment, name="trigger", kind="choice", minimum="",
               choices="pulser\n beam ").status_code == 302
    assert Observable.objects.get(name="trigger").choices == ["pulser", "beam"]


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"name": ""}, "name", "This field is required."),
    ({"name": "   "}, "name", "This field is required."),
    ({"name": "Beam Current"}, "name", "has an observable named"),
    ({"name": "Title"}, "name", "is a column of the run sheet already"),
    ({"name": "a\u202eb"}, "name", "invisible or reordering"),
    ({"name": "x" * 81}, "name", "at most 80 characters"),
    ({"kind": "colour"}, "kind", "Select a valid choice"),
    ({"kind": "choice"}, "choices", "at least one value"),
    ({"kind": "text", "choices": "a\nb"}, "choices", "Only a choice"),
    ({"kind": "text", "minimum": "1"}, "minimum", "Only an integer or a number"),
    ({"minimum": "5", "maximum": "1"}, "maximum", "below the minimum"),
    ({"minimum": "nan"}, "minimum", "Enter a number."),
    ({"maximum": "inf"}, "maximum", "Enter a number."),
    ({"minimum": "low"}, "minimum", "Enter a number."),
    ({"units": "x\x07"}, "units", "control character"),
])
def test_bad_observables_are_refused_beside_the_field(client, experiment, kinds, operator,
                                                      fields, field, words):
    before = list(Observable.objects.values_list("pk", "name", "order"))
    response = add(client, experiment, **fields)
    assert response.status_code == 400
    page = response.content.decode()
    beside = page.split(f'data-error-for="{field}">')[1].split("</div>")[0]
    assert words in beside.replace("&#x27;", "'"), beside
    assert list(Observable.objects.values_list("pk", "name", "order")) == before


def test_a_viewer_may_not_add_edit_remove_or_reorder(client, experiment, kinds, viewer):
    target = kinds["text"]
    assert add(client, experiment).status_code == 403
    assert client.get(reverse("daq:observable_edit", args=[target.pk])).status_code == 403
    assert client.post(reverse("daq:observable_delete", args=[target.pk])).status_code == 403
    order = client.post(reverse("daq:observable_order"), {
        "experiment": experiment.name, "ids": [o.pk for o in kinds.values()][::-1]})
    assert order.status_code == 403
    assert Observable.objects.count() == 5
    assert Observable.objects.order_by("order").first().name == "scalers"


def test_edit_and_its_rules(client, experiment, kinds, operator):
    target = kinds["integer"]
    url = reverse("daq:observable_edit", args=[target.pk])
    page = client.get(url).content.decode()
    assert 'value="scalers"' in page and 'value="1000.0"' in page
    data = {"name": "scalers (kHz)", "kind": "integer", "units": "kHz", "help_text": "",
            "choices": "", "minimum": "0", "maximum": "5000"}
    assert client.post(url, data).status_code == 302
    target.refresh_from_db()
    assert (target.name, target.units, target.maximum, target.order) == (
        "scalers (kHz)", "kHz", 5000, 0)
    # With a value on a run, the type may no longer change (the values would be wrong).
    run = RunMetadata.objects.create(experiment=experiment, run_number=1)
    Measurement.objects.create(run=run, observable=target, value=12)
    response = client.post(url, {**data, "kind": "text", "minimum": "", "maximum": ""})
    assert response.status_code == 400
    assert "1 run(s) have a value of it" in response.content.decode()
    target.refresh_from_db()
    assert target.kind == "integer"
    for pk in ("999999", "abc", "<b>x"):
        response = client.get(reverse("daq:observable_edit", args=[pk]))
        assert response.status_code == 404 and "<b>x" not in response.content.decode()


def test_remove_takes_its_measurements(client, experiment, kinds, operator):
    run = RunMetadata.objects.create(experiment=experiment, run_number=1)
    Measurement.objects.create(run=run, observable=kinds["text"], value="x")
    Measurement.objects.create(run=run, observable=kinds["integer"], value=1)
    response = client.post(reverse("daq:observable_delete", args=[kinds["text"].pk]))
    assert response.status_code == 302
    assert not Observable.objects.filter(name="note").exists()
    assert list(run.measurements.values_list("observable__name", flat=True)) == ["scalers"]
    # GET does not remove.
    assert client.get(reverse("daq:observable_delete",
                              args=[kinds["integer"].pk])).status_code == 405


# Ordering ---------------------------------------------------------------------------------

def order(client, experiment, ids):
    return client.post(reverse("daq:observable_order"),
                       {"experiment": experiment.name, "ids": [str(i) for i in ids]})


def names_in_order(experiment):
    return list(experiment.observables.order_by("order", "pk").values_list("name", flat=True))


def test_the_order_is_saved_from_the_ids_in_order(client, experiment, kinds, operator):
    ids = [kinds[k].pk for k in ("boolean", "text", "integer", "choice", "float")]
    response = order(client, experiment, ids)
    assert response.status_code == 200 and response.json()["ids"] == ids
    assert names_in_order(experiment) == ["beam on", "note", "scalers", "target",
                                          "beam current"]
    # And the run sheet's columns follow it.
    RunMetadata.objects.create(experiment=experiment, run_number=1)
    page = client.get(reverse("daq:run_list")).content.decode()
    columns = [page.index(f'data-observable="{pk}"') for pk in ids]
    assert columns == sorted(columns)


@pytest.mark.parametrize("ids", [
    "missing one", "twice", "other experiment", ["1 OR 1=1"], ["-1"], ["abc"], [],
    ["9" * 40]])
def test_a_bad_order_changes_nothing(client, experiment, kinds, operator, ids):
    pks = [o.pk for o in kinds.values()]
    other = Observable.objects.create(experiment=Experiment.objects.create(name="o"), name="z")
    if ids == "missing one":
        ids = pks[1:]
    elif ids == "twice":
        ids = [*pks, pks[0]]
    elif ids == "other experiment":
        ids = [*pks[:-1], other.pk]
    before = names_in_order(experiment)
    response = order(client, experiment, ids[::-1])
    assert response.status_code in (400, 409)
    assert response.json()["error"]
    assert names_in_order(experiment) == before


def test_order_of_an_unknown_experiment(client, experiment, kinds, operator):
    response = client.post(reverse("daq:observable_order"),
                           {"experiment": HOSTILE, "ids": [kinds["text"].pk]})
    assert response.status_code == 404 and "There is no experiment" in response.json()["error"]
