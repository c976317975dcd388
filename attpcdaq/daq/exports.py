"""The run sheet of an experiment as records, CSV and JSON, and its logbook.

One record per run (:func:`run_record`) serves ``GET /api/runs``, ``GET /api/runs/N``
and the JSON download; the CSV has the same runs, one column per observable with its
units in the header (``beam current [pnA]``).

The CSV is UTF-8 with a byte order mark and CRLF line ends (RFC 4180, what Python's
csv module writes): Excel opens a double-clicked CSV in the system's ANSI code page
unless the file starts with a BOM, mangling every accent, arrow and ion name; with it,
Excel and LibreOffice both read UTF-8 (LibreOffice's import dialog then preselects
UTF-8), and ``csv`` reads it with ``encoding="utf-8-sig"``. Times are local
("2025-03-01 14:02:03", the zone in the header), a form both spreadsheets read as a
date and time. A text cell that a spreadsheet would read as a formula (starting with
``= + - @``, a tab or a carriage return) is prefixed with ``'``, which both show as
text; numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from . import runmeta
from .logbook import export_entries
from .models import Experiment, Measurement, Observable, RunMetadata

#: What starts a formula in Excel or LibreOffice (and tab or CR, which some read so).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def safe_cell(value) -> str:
    """A text cell a spreadsheet shows as text: one that would start a formula gets a
    leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def observables_of(experiment: Experiment) -> list[Observable]:
    """The experiment's observables in their run sheet order."""
    return list(experiment.observables.order_by("order", "pk"))


def measurement_column(observable: Observable) -> str:
    """A measurement's header: its name, and its units in brackets."""
    return f"{observable.name} [{observable.units}]" if observable.units else observable.name


def sheet_runs(experiment: Experiment) -> QuerySet:
    """The runs of the experiment by number, with what a record reads fetched along."""
    return (experiment.runs.order_by("run_number")
            .select_related("run_class", "started_by", "stopped_by")
            .prefetch_related(Prefetch("measurements",
                                       queryset=Measurement.objects.select_related(
                                           "observable"))))


def _seconds(delta) -> float | None:
    return None if delta is None else round(delta.total_seconds(), 3)


def measurements_of(run: RunMetadata) -> dict[str, object]:
    """Observable name to value (measured ones only), in the observables' order."""
    found = sorted(run.measurements.all(), key=lambda m: (m.observable.order, m.observable_id))
    return {m.observable.name: m.value for m in found if m.value is not None}


def run_record(run: RunMetadata, now: datetime | None = None) -> dict:
    """One run of the run sheet: what ``GET /api/runs`` lists and the JSON export keeps."""
    now = now or timezone.now()
    problems = run.problems if isinstance(run.problems, list) else []
    return {"number": run.run_number, "status": run.status,
            "class": run.run_class.name if run.run_class else None,
            "title": run.title, "comment": run.comment,
            "start": run.start_datetime, "stop": run.stop_datetime,
            "duration_seconds": _seconds(runmeta.duration(run, now)),
            "live_time_seconds": _seconds(runmeta.live_time(run, now)),
            "events": runmeta.events(run), "bytes": runmeta.data_bytes(run),
            "incomplete": run.incomplete, "problems": [str(p) for p in problems],
            "measurements": measurements_of(run)}


def _user(user) -> str:
    return user.get_username() if user else ""


def _local(moment: datetime | None) -> str:
    return "" if moment is None else timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def _number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return repr(value) if isinstance(value, float) else str(value)


def _measurement_cell(observable: Observable, value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _number(value)
    return safe_cell(value)


def sheet_header(observables: Iterable[Observable]) -> list[str]:
    """The CSV's header: the run's columns, then a column per observable."""
    zone = settings.TIME_ZONE
    fixed = ["run", "status", "class", "title", "comment", f"start [{zone}]",
             f"stop [{zone}]", "duration [s]", "live time [s]", "events", "data [bytes]",
             "incomplete", "problems", "started by", "stopped by"]
    columns = []
    for observable in observables:
        name = measurement_column(observable)
        # An observable named like a run column ("title") must not hide it.
        columns.append(f"{name} (measurement)" if name in fixed else name)
    return fixed + [safe_cell(c) for c in columns]


def sheet_csv(experiment: Experiment) -> str:
    """The run sheet as CSV text, BOM first (see the module's docstring)."""
    observables = observables_of(experiment)
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out)
    writer.writerow(sheet_header(observables))
    now = timezone.now()
    for run in sheet_runs(experiment):
        record = run_record(run, now)
        values = {m.observable_id: m.value for m in run.measurements.all()}
        writer.writerow([
            run.run_number, run.status, safe_cell(record["class"]), safe_cell(run.title),
            safe_cell(run.comment), _local(run.start_datetime), _local(run.stop_datetime),
            _number(record["duration_seconds"]), _number(record["live_time_seconds"]),
            _number(record["events"]), _number(record["bytes"]),
            "yes" if run.incomplete else "no", safe_cell("; ".join(record["problems"])),
            safe_cell(_user(run.started_by)), safe_cell(_user(run.stopped_by)),
            *(_measurement_cell(o, values.get(o.pk)) for o in observables)])
    return out.getvalue()


def logbook_entries(experiment: Experiment) -> list[dict]:
    """The experiment's logbook, oldest first (see ``logbook.export_entries``)."""
    return export_entries(experiment)


def _logbook_cell(value) -> str:
    if isinstance(value, datetime):
        return _local(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, list | tuple):
        return safe_cell("; ".join(str(v) for v in value))
    return safe_cell(value)


def logbook_csv(experiment: Experiment) -> str:
    """The logbook as CSV (BOM first), a column per key of its entries."""
    entries = logbook_entries(experiment)
    keys: list[str] = []
    for entry in entries:
        keys += [k for k in entry if k not in keys]
    keys = keys or ["time", "author", "run", "text"]
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out)
    writer.writerow([safe_cell(k) for k in keys])
    for entry in entries:
        writer.writerow([_logbook_cell(entry.get(k)) for k in keys])
    return out.getvalue()


def sheet_json(experiment: Experiment) -> dict:
    """The run sheet as JSON: the observables (name, kind, units), every run's record
    and the logbook. Text is kept as typed (no formula prefix: JSON is not a
    spreadsheet)."""
    now = timezone.now()
    return {"experiment": experiment.name, "exported": now,
            "time_zone": settings.TIME_ZONE,
            "observables": [{"name": o.name, "kind": o.kind, "units": o.units,
                             "column": measurement_column(o), "required": o.required}
                            for o in observables_of(experiment)],
            "runs": [run_record(run, now) for run in sheet_runs(experiment)],
            "logbook": logbook_entries(experiment)}
