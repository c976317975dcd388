"""The run sheet: the runs page (filters, sort, edit in place), observables, charts.

The runs page shows one row per run with its class, title, duration, events and data
(from the manifest, summed in the database so any column sorts over every run, not
just one page), problems, and its measurements as columns. Operators edit a row in
place (htmx swaps the row for a form and back); nothing is saved unless every field
is valid, and every change is kept as a RunEdit. Observables are defined per
experiment on a page of their own, their order changed by drag and drop. Charts draw
any numeric column against run number or time from ``/runs/chart-data``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.paginator import Paginator
from django.db import connection, transaction
from django.db.models import (
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Q,
    QuerySet,
    TextField,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Lower, Now
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from . import observables as obs
from .models import Experiment, Measurement, Observable, RunClass, RunEdit, RunMetadata
from .runmeta import MetadataError, update_run
from .sheet_forms import NUMERIC, ObservableForm, RunFilterForm
from .views import RUNS_PER_PAGE, DaqAccessMixin, NotFound, find, not_found, read_manifest

#: At most this many runs are drawn in a chart (the newest).
CHART_MAX_POINTS = 20_000
CONTROL = "daq.control_daq"


# Choosing the experiment ---------------------------------------------------------------

def choose_experiment(request) -> tuple[list[Experiment], Experiment | None]:
    """The experiments, and the one asked for by ``?experiment=NAME`` (else the active
    one, else the newest). Raises NotFound for a name that is not one."""
    experiments = list(Experiment.objects.all())
    name = request.GET.get("experiment", "") or request.POST.get("experiment", "")
    if name:
        found = next((e for e in experiments if e.name == name), None)
        if found is None:
            raise NotFound(f"There is no experiment named {name[:100]!r}.")
        return experiments, found
    # No active experiment: the newest one, so the page still shows something.
    return experiments, next((e for e in experiments if e.is_active),
                             experiments[0] if experiments else None)


class SheetMixin(DaqAccessMixin):
    """Login required; NotFound answered as a 404 page saying what was missing."""

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except NotFound as exc:
            return not_found(request, str(exc))


# The manifest in SQL ---------------------------------------------------------------------
#
# The engine writes ``manifest["events"]["CoBo[N]"]["events"]`` per CoBo and
# ``manifest["routers"][name]["bytes"]`` (and ``files``) per router. The runs page sorts
# and the charts draw over every run, so these are computed by the database; anything
# of another shape counts as missing (guarded per backend, never an error).

def _table() -> str:
    return connection.ops.quote_name(RunMetadata._meta.db_table)


def _events_sql() -> str:
    """The run's events: the most any CoBo counted (every CoBo sees every trigger)."""
    t = _table()
    if connection.vendor == "postgresql":
        return (f"(SELECT MAX((e.value->>'events')::numeric)::bigint FROM jsonb_each("  # noqa: S608 (constant SQL)
                f"CASE WHEN jsonb_typeof({t}.manifest->'events') = 'object' "
                f"THEN {t}.manifest->'events' ELSE '{{}}'::jsonb END) AS e "
                f"WHERE jsonb_typeof(e.value->'events') = 'number')")
    return (f"(SELECT MAX(json_extract(e.value, '$.events')) FROM "  # noqa: S608 (constant SQL)
            f"json_each({t}.manifest, '$.events') AS e WHERE e.type = 'object' "
            f"AND json_type(e.value, '$.events') = 'integer')")


def _bytes_sql() -> str:
    """Bytes filed over every router (a router's files summed when it says no total)."""
    t = _table()
    if connection.vendor == "postgresql":
        files = ("(SELECT SUM((f->>'size')::numeric) FROM jsonb_array_elements("
                 "CASE WHEN jsonb_typeof(r.value->'files') = 'array' THEN r.value->'files' "
                 "ELSE '[]'::jsonb END) AS f WHERE jsonb_typeof(f->'size') = 'number')")
        return (f"(SELECT SUM(CASE WHEN jsonb_typeof(r.value->'bytes') = 'number' "  # noqa: S608 (constant SQL)
                f"THEN (r.value->>'bytes')::numeric ELSE COALESCE({files}, 0) END)::bigint "
                f"FROM jsonb_each(CASE WHEN jsonb_typeof({t}.manifest->'routers') = 'object' "
                f"THEN {t}.manifest->'routers' ELSE '{{}}'::jsonb END) AS r "
                f"WHERE jsonb_typeof(r.value) IN ('object', 'null'))")
    files = ("(SELECT SUM(json_extract(f.value, '$.size')) FROM json_each(r.value, '$.files') "
             "AS f WHERE f.type = 'object' AND json_type(f.value, '$.size') = 'integer')")
    return (f"(SELECT SUM(CASE WHEN json_type(r.value, '$.bytes') = 'integer' "  # noqa: S608 (constant SQL)
            f"THEN json_extract(r.value, '$.bytes') ELSE COALESCE({files}, 0) END) "
            f"FROM json_each({t}.manifest, '$.routers') AS r "
            f"WHERE r.type IN ('object', 'null'))")


def _files_sql() -> str:
    """Files filed over every router."""
    t = _table()
    if connection.vendor == "postgresql":
        return (f"(SELECT SUM(jsonb_array_length(r.value->'files')) FROM jsonb_each("  # noqa: S608 (constant SQL)
                f"CASE WHEN jsonb_typeof({t}.manifest->'routers') = 'object' "
                f"THEN {t}.manifest->'routers' ELSE '{{}}'::jsonb END) AS r "
                f"WHERE jsonb_typeof(r.value->'files') = 'array')")
    return (f"(SELECT SUM(json_array_length(r.value, '$.files')) FROM "  # noqa: S608 (constant SQL)
            f"json_each({t}.manifest, '$.routers') AS r WHERE r.type = 'object' "
            f"AND json_type(r.value, '$.files') = 'array')")


def _measurement_sql(observable: Observable) -> tuple[str, tuple]:
    """The run's value of ``observable`` as the database orders it (numbers as numbers)."""
    table = connection.ops.quote_name(Measurement._meta.db_table)
    where = f"m.run_id = {_table()}.id AND m.observable_id = %s"
    if connection.vendor == "postgresql":
        if observable.kind in NUMERIC:
            value = ("CASE WHEN jsonb_typeof(m.value) = 'number' "
                     "THEN (m.value #>> '{}')::double precision END")
        elif observable.kind == Observable.Kind.BOOLEAN:
            value = ("CASE WHEN jsonb_typeof(m.value) = 'boolean' "
                     "THEN (CASE WHEN (m.value #>> '{}') = 'true' THEN 1 ELSE 0 END) END")
        else:
            value = "lower(m.value #>> '{}')"
    elif observable.kind in NUMERIC:
        value = ("CASE WHEN json_type(m.value) IN ('integer', 'real') "
                 "THEN json_extract(m.value, '$') END")
    elif observable.kind == Observable.Kind.BOOLEAN:
        value = ("CASE json_type(m.value) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END")
    else:
        value = "lower(json_extract(m.value, '$'))"
    return f"(SELECT {value} FROM {table} AS m WHERE {where})", (observable.pk,)  # noqa: S608 (constant SQL)


def with_manifest_numbers(runs: QuerySet) -> QuerySet:
    """``runs`` with ``sheet_events``, ``sheet_bytes`` and ``sheet_files`` from the manifest
    and ``sheet_duration`` (to now while open)."""
    from django.db.models import BigIntegerField

    return runs.annotate(
        sheet_events=RawSQL(_events_sql(), (), output_field=BigIntegerField()),  # noqa: S611
        sheet_bytes=RawSQL(_bytes_sql(), (), output_field=BigIntegerField()),  # noqa: S611
        sheet_files=RawSQL(_files_sql(), (), output_field=BigIntegerField()),  # noqa: S611
        sheet_duration=ExpressionWrapper(Coalesce(F("stop_datetime"), Now())
                                         - F("start_datetime"),
                                         output_field=DurationField()))


# Columns and sorting ---------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """A column of the run sheet: its sort key, heading and how the database orders it."""

    key: str
    heading: str
    numeric: bool = False
    observable: Observable | None = None


FIXED_COLUMNS = [
    Column("number", "Run", numeric=True), Column("class", "Class"),
    Column("title", "Title"), Column("status", "Status"), Column("start", "Start"),
    Column("stop", "Stop"), Column("duration", "Duration", numeric=True),
    Column("events", "Events", numeric=True), Column("files", "Files", numeric=True),
    Column("bytes", "Size", numeric=True), Column("filed", "Filed"),
]
_ORDER_BY = {"number": F("run_number"), "class": Lower("run_class__name"),
             "title": Lower("title"), "status": F("status"), "start": F("start_datetime"),
             "stop": F("stop_datetime"), "duration": F("sheet_duration"),
             "events": F("sheet_events"), "files": F("sheet_files"),
             "bytes": F("sheet_bytes"), "filed": F("filed")}
DEFAULT_SORT = "-number"


def observable_key(observable: Observable) -> str:
    return f"obs{observable.pk}"


def columns_of(observables: list[Observable]) -> list[Column]:
    """The fixed columns then one per observable."""
    headings = [Column(observable_key(o), o.name, numeric=o.kind in NUMERIC, observable=o)
                for o in observables]
    return FIXED_COLUMNS + headings


def sort_runs(runs: QuerySet, sort: str, columns: list[Column]) -> tuple[QuerySet, str, bool]:
    """``runs`` ordered by the column ``sort`` names (``-key`` descending; empty values
    last either way, ties newest first). Returns the queryset, the sort applied and
    whether ``sort`` was refused (an unknown column sorts by the default)."""
    sort = sort or DEFAULT_SORT
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    column = next((c for c in columns if c.key == key), None)
    refused = column is None
    if refused:
        sort, descending, key = DEFAULT_SORT, True, DEFAULT_SORT.removeprefix("-")
        column = next(c for c in columns if c.key == key)
    if column.observable is not None:
        sql, params = _measurement_sql(column.observable)
        output = FloatField() if column.numeric or \
            column.observable.kind == Observable.Kind.BOOLEAN else TextField()
        runs = runs.alias(sheet_sort=RawSQL(sql, params, output_field=output))  # noqa: S611
        expression = F("sheet_sort")
    else:
        expression = _ORDER_BY[key]
    ordered = expression.desc(nulls_last=True) if descending else \
        expression.asc(nulls_last=True)
    return runs.order_by(ordered, "-run_number"), sort, refused


# Rows ------------------------------------------------------------------------------------

@dataclass
class Cell:
    """A measurement as the sheet shows it."""

    observable: Observable
    value: object
    text: str


@dataclass
class SheetRow:
    """A run of the sheet: the run (annotated), its manifest and its measurement cells."""

    run: RunMetadata
    manifest: object
    cells: list[Cell] = field(default_factory=list)


def sheet_rows(runs, observables: list[Observable]) -> list[SheetRow]:
    """Rows of the (annotated) ``runs``, with their measurements in two queries."""
    runs = list(runs)
    values: dict[tuple[int, int], object] = {}
    if runs and observables:
        for run_id, observable_id, value in Measurement.objects.filter(
                run__in=[r.pk for r in runs], observable__in=observables).values_list(
                "run_id", "observable_id", "value"):
            values[run_id, observable_id] = value
    rows = []
    for run in runs:
        cells = []
        for o in observables:
            value = values.get((run.pk, o.pk))
            cells.append(Cell(o, value, obs.show_value(o, value)))
        rows.append(SheetRow(run, read_manifest(run.manifest), cells))
    return rows


def experiment_observables(experiment: Experiment | None) -> list[Observable]:
    return list(experiment.observables.order_by("order", "pk")) if experiment else []


def filter_runs(runs: QuerySet, form: RunFilterForm) -> QuerySet:
    """``runs`` filtered by the valid fields of ``form`` (an invalid one filters nothing:
    the page says why beside it)."""
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    if data.get("run_class"):
        runs = runs.filter(run_class__name=data["run_class"])
    if data.get("start_from"):
        runs = runs.filter(start_datetime__date__gte=data["start_from"])
    if data.get("start_to") and "start_to" not in form.errors:
        runs = runs.filter(start_datetime__date__lte=data["start_to"])
    if data.get("q"):
        runs = runs.filter(Q(title__icontains=data["q"]) | Q(comment__icontains=data["q"]))
    return runs


class RunSheetView(SheetMixin, TemplateView):
    """The runs of one experiment: the active one unless ``?experiment=``; newest first
    unless ``?sort=``; filtered by ``run_class``, ``start_from``/``start_to``, ``q``."""

    template_name = "daq/run_list.html"

    def get_context_data(self, **kwargs):
        experiments, experiment = choose_experiment(self.request)
        context = super().get_context_data(experiments=experiments, experiment=experiment,
                                           can_edit=self.request.user.has_perm(CONTROL),
                                           **kwargs)
        if experiment is None:
            return context
        observables = experiment_observables(experiment)
        columns = columns_of(observables)
        form = RunFilterForm(self.request.GET)
        runs = with_manifest_numbers(experiment.runs.select_related("run_class"))
        runs = filter_runs(runs, form)
        runs, sort, refused = sort_runs(runs, self.request.GET.get("sort", "")[:50], columns)
        # A page number that is not one shows the first or last page, not an error.
        page = Paginator(runs, RUNS_PER_PAGE).get_page(self.request.GET.get("page"))
        filtered = any(self.request.GET.get(k) for k in form.fields)
        context.update(
            form=form, columns=columns, observables=observables, sort=sort,
            sort_refused=refused, filtered=filtered, page=page,
            page_numbers=page.paginator.get_elided_page_range(page.number, on_each_side=2,
                                                              on_ends=1),
            rows=sheet_rows(page, observables),
            sort_links=[(c, _sort_link(c, sort)) for c in columns])
        return context


def _sort_link(column: Column, sort: str) -> tuple[str, str]:
    """The sort a column's heading asks for, and the arrow it shows now."""
    if sort == column.key:
        return f"-{column.key}", "\u25b2"
    if sort == f"-{column.key}":
        return column.key, "\u25bc"
    # A first click sorts numbers and dates the biggest first, text A to Z.
    first = "" if column.key in ("class", "title", "status", "filed") or (
        column.observable is not None and not column.numeric) else "-"
    return f"{first}{column.key}", ""


# Edit in place ---------------------------------------------------------------------------

def _field_name(observable: Observable) -> str:
    return f"m-{observable.pk}"


@dataclass
class EditField:
    """A measurement's field in the row's form."""

    observable: Observable
    name: str
    value: str
    error: str = ""


def save_sheet(user, run: RunMetadata, fields: dict) -> tuple[list[RunEdit], dict[str, str]]:
    """Write the row's form through ``runmeta.update_run`` (title, class and comment checked
    as at Start, measurements by :func:`.observables.validate_measurements`, all or
    nothing); returns the edits, or the errors by field and changes nothing."""
    try:
        return update_run(user, run, fields), {}
    except MetadataError as exc:
        return [], dict(exc.errors)


class RunRowView(SheetMixin, View):
    """A run's row of the sheet, as shown (Cancel of an edit swaps it back)."""

    def get(self, request, pk):
        run = find(RunMetadata.objects.all(), pk)
        return render_row(request, run)


def render_row(request, run: RunMetadata, message: str = "", status: int = 200):
    observables = experiment_observables(run.experiment)
    annotated = with_manifest_numbers(RunMetadata.objects.filter(pk=run.pk)
                                      .select_related("run_class"))
    return render(request, "daq/inc/sheet_row.html", {
        "row": sheet_rows(annotated, observables)[0], "observables": observables,
        "can_edit": request.user.has_perm(CONTROL), "message": message,
        "columns": columns_of(observables)}, status=status)


class RunEditView(SheetMixin, View):
    """The row as a form (GET; ``?previous=1`` fills it from the run before), and its
    answer (POST): the row as shown once saved, or the form with each error beside its
    field (400), nothing saved."""

    permission_required = CONTROL

    def get(self, request, pk):
        run = find(RunMetadata.objects.select_related("run_class", "experiment"), pk)
        observables = experiment_observables(run.experiment)
        source, note = run, ""
        if request.GET.get("previous"):
            source = (run.experiment.runs.filter(run_number__lt=run.run_number)
                      .select_related("run_class").order_by("-run_number").first())
            if source is None:
                source, note = run, f"There is no run before run {run.run_number}."
            else:
                note = (f"Filled from run {source.run_number}: check it, then save "
                        "(nothing is saved yet).")
        stored = dict(Measurement.objects.filter(run=source, observable__in=observables)
                      .values_list("observable_id", "value"))
        data = {"title": source.title, "comment": source.comment,
                "run_class": source.run_class.name if source.run_class else ""}
        edit_fields = [EditField(o, _field_name(o), obs.show_value(o, stored.get(o.pk)))
                       for o in observables]
        return self.form(request, run, data, edit_fields, {}, note)

    def post(self, request, pk):
        run = find(RunMetadata.objects.select_related("run_class", "experiment"), pk)
        observables = experiment_observables(run.experiment)
        data = {name: request.POST.get(name, "") for name in ("title", "run_class",
                                                              "comment")}
        measurements = {o.name: request.POST.get(_field_name(o), "") for o in observables}
        edits, errors = save_sheet(request.user, run, {**data, "measurements": measurements})
        if errors:
            edit_fields = [EditField(o, _field_name(o), measurements[o.name],
                                     errors.get(f"measurements.{o.name}", ""))
                           for o in observables]
            return self.form(request, run, data, edit_fields, errors, "", status=400)
        run.refresh_from_db()
        message = (f"Run {run.run_number} saved: {len(edits)} change(s)." if edits
                   else f"Run {run.run_number}: nothing changed.")
        return render_row(request, run, message)

    def form(self, request, run, data, edit_fields, errors, note, status=200):
        known = {"title", "run_class", "comment"} | {
            f"measurements.{f.observable.name}" for f in edit_fields}
        response = render(request, "daq/inc/sheet_edit_row.html", {
            "run": run, "data": data, "fields": edit_fields, "errors": errors,
            "other_errors": [f"{k}: {v}" for k, v in errors.items() if k not in known],
            "classes": list(RunClass.objects.all()), "note": note,
            "colspan": len(FIXED_COLUMNS) + len(edit_fields) + 1}, status=status)
        if status >= 400:
            response["X-Sheet-Form"] = "1"  # the page's script swaps it in
        return response


# Observables -----------------------------------------------------------------------------

class ObservableListView(SheetMixin, TemplateView):
    """The observables of an experiment; operators add (POST), edit, remove and reorder."""

    template_name = "daq/observables.html"

    def get(self, request, *args, **kwargs):
        experiments, experiment = choose_experiment(request)
        form = ObservableForm(experiment=experiment) if experiment else None
        return self.page(experiments, experiment, form)

    def post(self, request, *args, **kwargs):
        if not request.user.has_perm(CONTROL):
            return HttpResponse(f"{request.user} may watch but not change observables.",
                                status=403)
        experiments, experiment = choose_experiment(request)
        if experiment is None:
            return not_found(request, "There is no experiment to add an observable to.")
        form = ObservableForm(request.POST, experiment=experiment)
        if form.is_valid():
            observable = form.save()
            return redirect(_observables_url(experiment, f"added-{observable.pk}"))
        return self.page(experiments, experiment, form, status=400)

    def page(self, experiments, experiment, form, edit=None, status=200):
        return self.render_to_response(self.get_context_data(
            experiments=experiments, experiment=experiment, form=form, editing=edit,
            observables=experiment_observables(experiment),
            can_edit=self.request.user.has_perm(CONTROL),
            added=self.request.GET.get("done", "")), status=status)


def _observables_url(experiment: Experiment, done: str = "") -> str:
    from urllib.parse import urlencode

    query = {"experiment": experiment.name}
    if done:
        query["done"] = done
    return f"{reverse('daq:observables')}?{urlencode(query)}"


class ObservableEditView(SheetMixin, TemplateView):
    """Edit one observable (operators): its form, errors beside each field."""

    template_name = "daq/observable_edit.html"
    permission_required = CONTROL

    def get(self, request, pk):
        observable = find(Observable.objects.select_related("experiment"), pk)
        form = ObservableForm(instance=observable, experiment=observable.experiment)
        return self.render_to_response({"form": form, "observable": observable})

    def post(self, request, pk):
        observable = find(Observable.objects.select_related("experiment"), pk)
        form = ObservableForm(request.POST, instance=observable,
                              experiment=observable.experiment)
        if form.is_valid():
            form.save()
            return redirect(_observables_url(observable.experiment, f"saved-{observable.pk}"))
        observable.refresh_from_db()  # the heading shows it as saved
        return self.render_to_response({"form": form, "observable": observable}, status=400)


class ObservableDeleteView(SheetMixin, View):
    """Remove an observable and its measurements (operators; the page asks first)."""

    permission_required = CONTROL
    http_method_names = ["post"]

    def post(self, request, pk):
        observable = find(Observable.objects.select_related("experiment"), pk)
        experiment = observable.experiment
        observable.delete()
        return redirect(_observables_url(experiment, "removed"))


class ObservableOrderView(SheetMixin, View):
    """The new order of an experiment's observables: POST ``experiment`` and ``ids``,
    every id of its observables once, in their new order (JSON answers)."""

    permission_required = CONTROL
    http_method_names = ["post"]

    def post(self, request):
        try:
            _, experiment = choose_experiment(request)
        except NotFound as exc:
            return JsonResponse({"error": str(exc)}, status=404)
        if experiment is None:
            return JsonResponse({"error": "There is no experiment."}, status=404)
        given = request.POST.getlist("ids")
        if len(given) > 10_000 or not all(i.isascii() and i.isdigit() and len(i) <= 18
                                          for i in given):
            return JsonResponse({"error": "The order must be a list of observable ids."},
                                status=400)
        ids = [int(i) for i in given]
        with transaction.atomic():
            current = {o.pk: o for o in experiment.observables.select_for_update()}
            if len(set(ids)) != len(ids) or set(ids) != set(current):
                return JsonResponse({"error": "The order does not list every observable "
                                     f"of {experiment.name} once (someone changed them?): "
                                     "reload the page."}, status=409)
            changed = []
            for position, pk in enumerate(ids):
                if current[pk].order != position:
                    current[pk].order = position
                    changed.append(current[pk])
            Observable.objects.bulk_update(changed, ["order"])
        return JsonResponse({"message": f"Order of {experiment.name}'s observables saved.",
                             "ids": ids})


# Charts ----------------------------------------------------------------------------------

Y_FIXED = {"duration": ("Duration", "s"), "live_time": ("Live time", "s"),
           "events": ("Events", ""), "bytes": ("Data volume", "bytes")}


def chart_choices(observables: list[Observable]) -> list[tuple[str, str]]:
    """The quantities a chart may draw: the fixed ones and every numeric observable."""
    return [(k, label) for k, (label, _) in Y_FIXED.items()] + [
        (observable_key(o), str(o)) for o in observables if o.kind in NUMERIC]


class ChartView(SheetMixin, TemplateView):
    """The charts page: pick a quantity, the x axis and a class; the chart is drawn
    from ``/runs/chart-data`` by Chart.js (served from the package's static files)."""

    template_name = "daq/charts.html"

    def get_context_data(self, **kwargs):
        experiments, experiment = choose_experiment(self.request)
        observables = experiment_observables(experiment)
        return super().get_context_data(
            experiments=experiments, experiment=experiment,
            y_choices=chart_choices(observables), classes=list(RunClass.objects.all()),
            y=self.request.GET.get("y", "events"), x=self.request.GET.get("x", "number"),
            run_class=self.request.GET.get("class", ""), **kwargs)


class ChartDataView(SheetMixin, View):
    """``GET /runs/chart-data?y=...&x=number|time&class=NAME&experiment=NAME``: the points
    (one per run with a value, oldest first, at most CHART_MAX_POINTS, the newest), as
    JSON; 400 naming the parameter that is wrong."""

    def handle_no_permission(self):
        return JsonResponse({"error": "Log in first."}, status=401)

    def get(self, request):
        try:
            _, experiment = choose_experiment(request)
        except NotFound as exc:
            return JsonResponse({"error": str(exc), "field": "experiment"}, status=404)
        if experiment is None:
            return JsonResponse({"error": "There is no experiment.", "field": "experiment"},
                                status=404)
        observables = experiment_observables(experiment)
        y = request.GET.get("y", "events")
        x = request.GET.get("x", "number")
        choices = dict(chart_choices(observables))
        if y not in choices:
            return JsonResponse({"error": f"y: {y[:40]!r} is not something a chart draws: "
                                 f"one of {', '.join(choices)}", "field": "y"}, status=400)
        if x not in ("number", "time"):
            return JsonResponse({"error": f"x: {x[:40]!r} must be 'number' or 'time'",
                                 "field": "x"}, status=400)
        runs = experiment.runs.select_related("run_class")
        class_name = request.GET.get("class", "")
        if class_name:
            run_class = RunClass.objects.filter(name=class_name).first()
            if run_class is None:
                return JsonResponse({"error": f"class: there is no run class "
                                     f"{class_name[:40]!r}", "field": "class"}, status=400)
            runs = runs.filter(run_class=run_class)
        if x == "time":
            runs = runs.exclude(start_datetime=None)
        runs = with_manifest_numbers(runs).order_by("-run_number")[:CHART_MAX_POINTS + 1]
        runs = list(runs)
        truncated = len(runs) > CHART_MAX_POINTS
        runs = runs[:CHART_MAX_POINTS][::-1]
        observable = next((o for o in observables if observable_key(o) == y), None)
        values = {}
        if observable is not None:
            values = dict(Measurement.objects.filter(observable=observable,
                                                     run__in=[r.pk for r in runs])
                          .values_list("run_id", "value"))
        points = []
        for run in runs:
            value = _y_value(run, y, values)
            if value is None:
                continue
            points.append({
                "run": run.run_number,
                "x": run.run_number if x == "number"
                else int(run.start_datetime.timestamp() * 1000),
                "y": value, "title": run.title,
                "class": run.run_class.name if run.run_class else ""})
        label, units = (observable.name, observable.units) if observable else Y_FIXED[y]
        return JsonResponse({
            "experiment": experiment.name, "y": y, "x": x, "class": class_name,
            "y_label": label, "units": units,
            "x_label": "Run number" if x == "number" else "Start time",
            "points": points, "truncated": truncated}, json_dumps_params={"allow_nan": False})


def _y_value(run: RunMetadata, y: str, values: dict):
    if y == "duration":
        return run.sheet_duration.total_seconds() if run.sheet_duration is not None else None
    if y == "live_time":
        if run.sheet_duration is None:
            return None
        return max(run.sheet_duration.total_seconds() - (run.paused_seconds or 0.0), 0.0)
    if y == "events":
        return run.sheet_events
    if y == "bytes":
        return run.sheet_bytes
    value = values.get(run.pk)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value

