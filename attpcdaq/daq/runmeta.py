"""A run's metadata: what a Start gives it, the dialog's prefill, edits afterwards.

:func:`start_options` checks what an operator gives a Start (the page's dialog, the
API, the command line) and returns the ``Command.options`` the engine copies onto the
run in the Start's transaction (``engine/database.py``'s ``_apply_start_options``).
:func:`update_run` writes the editable metadata and the measurements of a run
afterwards, all or nothing, keeping a :class:`~.models.RunEdit` per changed field.
Every refusal is a :class:`MetadataError` carrying one message per field, and changes
nothing.
"""

from __future__ import annotations

import math
import unicodedata
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from . import roles
from .models import Experiment, RunClass, RunEdit, RunMetadata
from .services import ControlError

#: The longest title and comment, in characters (the title's column holds 200).
MAX_TITLE = 200
MAX_COMMENT = 5000
#: The longest duration limit: a year (and within what a timedelta holds).
MAX_LIMIT_SECONDS = 366 * 86400
#: The largest event or data limit: what the database's 64-bit integer holds.
MAX_LIMIT_COUNT = 2**63 - 1
#: The metadata of a run that may be edited after its Start.
EDITABLE = ("title", "run_class", "comment")
#: The options a Start takes, in the order the dialog asks for them.
START_FIELDS = ("title", "run_class", "comment", "limit_seconds", "limit_events",
                "limit_bytes", "auto_restart")
#: Units the Start dialog offers for its duration and data limits.
DURATION_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600}
DATA_UNITS = {"MB": 10**6, "GB": 10**9, "TB": 10**12}
#: Where measurements come in an edit, and the prefix of their fields in errors and
#: edits (``measurements.beam current``).
MEASUREMENTS = "measurements"

# Characters that reorder or hide the text around them (bidirectional embeddings,
# overrides, isolates and marks) or break lines oddly: refused in titles and comments,
# which are shown to others and exported, with the rest of Cc (newlines and tabs are
# allowed in a comment).
_INVISIBLE = frozenset("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e"
                       "\u2066\u2067\u2068\u2069")
_TRUE = frozenset({"true", "on", "yes", "1"})
_FALSE = frozenset({"false", "off", "no", "0", ""})


class MetadataError(ControlError):
    """Run metadata that cannot be accepted (HTTP 400); ``errors`` maps each field to
    what is wrong with it. Nothing was changed."""

    status = 400

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


class EditForbidden(ControlError):
    """The user may watch but not edit runs (HTTP 403)."""

    status = 403


# Checking single values ------------------------------------------------------------------

class _Invalid(Exception):
    """What is wrong with one value (collected into a MetadataError)."""


def clean_text(value, *, limit: int, multiline: bool) -> str:
    """Text as a title (one line) or comment (``multiline``) takes it, stripped.

    Any unicode is fine; control characters (but newlines and tabs in a comment) and
    characters that reorder or hide the text around them are refused, saying which and
    where. The length is checked first, so a huge paste is refused without a scan.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid("must be text")
    value = value.strip()
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if len(value) > limit:
        raise _Invalid(f"is {len(value):,} characters long: at most {limit:,} are kept")
    for position, char in enumerate(value, 1):
        if multiline and char in "\n\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cs") or char in _INVISIBLE:
            name = unicodedata.name(char, "a control character")
            where = "" if multiline else " on one line"
            raise _Invalid(f"contains U+{ord(char):04X} ({name}) at character {position}: "
                           f"write it as plain text{where}")
    return value


def clean_run_class(value) -> str | None:
    """The name of an existing run class (matched ignoring case), or None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise _Invalid("must be the name of a run class")
    names = list(RunClass.objects.values_list("name", flat=True))
    wanted = value.strip()
    for name in names:
        if name == wanted or name.casefold() == wanted.casefold():
            return name
    shown = wanted if len(wanted) <= 40 else wanted[:40] + "…"
    raise _Invalid(f"there is no run class {shown!r}: choose one of {', '.join(names)}"
                   if names else f"there is no run class {shown!r}: an admin adds them")


def _number(value, *, integer: bool, maximum: float, what: str) -> float | int | None:
    """A positive number (``integer``: whole), as JSON or a form gives it; None if empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise _Invalid(f"must be a number of {what}, not {str(value).lower()}")
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        if len(text) > 40:
            raise _Invalid(f"must be a number of {what}")
        try:
            value = int(text) if integer and text.isascii() and text.isdigit() else float(text)
        except ValueError:
            raise _Invalid(f"must be a number of {what}: {value.strip()[:40]!r} is not "
                           "one") from None
    if not isinstance(value, int | float):
        raise _Invalid(f"must be a number of {what}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(f"must be a finite number of {what}")
    if value <= 0:
        raise _Invalid("must be positive: leave it empty for no limit")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise _Invalid(f"must be a whole number of {what}")
        value = int(value)
    if value > maximum:
        raise _Invalid(f"is more than the {maximum:,} {what} allowed")
    return value if integer else float(value)


def clean_bool(value) -> bool:
    """A yes/no as JSON (true/false) or a form ("on", "true", "1", "" ...) gives it."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Invalid("must be true or false")


# What a Start gives the run ----------------------------------------------------------------

def start_options(data) -> dict:
    """The options of a Start, checked: ``title`` (at most 200 characters, one line),
    ``run_class`` (an existing class's name, or empty), ``comment`` (at most 5000),
    ``limit_seconds``, ``limit_events``, ``limit_bytes`` (positive, or empty for no
    limit) and ``auto_restart`` (needs a limit to restart after).

    Other keys of ``data`` (``target``...) are not looked at. Returns every option, with
    None for no limit and no class. Raises :class:`MetadataError` naming each field
    that is wrong.
    """
    if not isinstance(data, dict):
        raise MetadataError({"options": "must be an object of run details"})
    errors: dict[str, str] = {}
    options: dict = {}
    checks = {
        "title": lambda v: clean_text(v, limit=MAX_TITLE, multiline=False),
        "run_class": clean_run_class,
        "comment": lambda v: clean_text(v, limit=MAX_COMMENT, multiline=True),
        "limit_seconds": lambda v: _number(v, integer=False, maximum=MAX_LIMIT_SECONDS,
                                           what="seconds"),
        "limit_events": lambda v: _number(v, integer=True, maximum=MAX_LIMIT_COUNT,
                                          what="events"),
        "limit_bytes": lambda v: _number(v, integer=True, maximum=MAX_LIMIT_COUNT,
                                         what="bytes"),
        "auto_restart": clean_bool,
    }
    for field, check in checks.items():
        try:
            options[field] = check(data.get(field))
        except _Invalid as exc:
            errors[field] = str(exc)
    if options.get("auto_restart") and not errors and not any(
            options[k] for k in ("limit_seconds", "limit_events", "limit_bytes")):
        errors["auto_restart"] = ("restarts a run that a limit stopped: set a duration, "
                                  "event or data limit too")
    if errors:
        raise MetadataError(errors)
    return options


def form_start_options(data) -> dict:
    """:func:`start_options` from the Start dialog's form: the duration limit as
    ``limit_duration`` in ``limit_duration_unit`` (seconds, minutes, hours), the data
    limit as ``limit_data`` in ``limit_data_unit`` (MB, GB, TB), the rest as named.
    Errors name the form's fields."""
    values = {k: data.get(k) for k in ("title", "run_class", "comment", "limit_events",
                                       "auto_restart")}
    errors: dict[str, str] = {}
    for field, unit_field, units, target, what in (
            ("limit_duration", "limit_duration_unit", DURATION_UNITS, "limit_seconds",
             "minutes, hours or seconds"),
            ("limit_data", "limit_data_unit", DATA_UNITS, "limit_bytes", "MB, GB or TB")):
        unit = data.get(unit_field) or next(iter(units))
        if unit not in units:
            errors[unit_field] = f"must be one of {what}"
            continue
        try:
            amount = _number(data.get(field), integer=False, maximum=float("inf"), what=unit)
        except _Invalid as exc:
            errors[field] = str(exc)
            continue
        if amount is not None:
            amount *= units[unit]
            values[target] = round(amount) if target == "limit_bytes" else amount
    try:
        options = start_options(values)
    except MetadataError as exc:
        renamed = {"limit_seconds": "limit_duration", "limit_bytes": "limit_data"}
        errors.update({renamed.get(k, k): v for k, v in exc.errors.items()})
    if errors:
        raise MetadataError(errors)
    return options


def prefill(experiment: Experiment | None) -> dict:
    """What the Start dialog offers: the title, class and comment of the experiment's
    previous run (the one with the highest number, aborted or not); no limits and no
    automatic restart.

    Limits are not carried over: a limit stops a run by itself, and one forgotten in
    the dialog would end a long run early or restart it unasked. A chain of runs that
    should keep its limits is what ``auto_restart`` is for.
    """
    previous = experiment.runs.select_related("run_class").order_by("-run_number").first() \
        if experiment is not None else None
    return {"title": previous.title if previous else "",
            "run_class": previous.run_class.name if previous and previous.run_class else "",
            "comment": previous.comment if previous else "",
            "limit_seconds": None, "limit_events": None, "limit_bytes": None,
            "auto_restart": False,
            "previous": previous.run_number if previous else None}


# Times --------------------------------------------------------------------------------------

def duration(run: RunMetadata, now=None) -> timedelta | None:
    """From start to stop (or to now, while open); None before it started."""
    if run.start_datetime is None:
        return None
    end = run.stop_datetime or now or timezone.now()
    return max(end - run.start_datetime, timedelta(0))


def live_time(run: RunMetadata, now=None) -> timedelta | None:
    """The duration less the time spent Paused (counting a pause still going on)."""
    now = now or timezone.now()
    total = duration(run, now)
    if total is None:
        return None
    paused = run.paused_seconds or 0.0
    if run.paused_since is not None:
        paused += max((now - run.paused_since).total_seconds(), 0.0)
    return max(total - timedelta(seconds=paused), timedelta(0))


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def events(run: RunMetadata) -> int | None:
    """Events of the run counted at filing: the most any CoBo recorded (every CoBo
    sees every trigger); None before it was counted."""
    counts = [_count(_mapping(entry).get("events"))
              for entry in _mapping(_mapping(run.manifest).get("events")).values()]
    counts = [c for c in counts if c is not None]
    return max(counts) if counts else None


def data_bytes(run: RunMetadata) -> int | None:
    """Bytes filed for the run, over every router; None before it was filed."""
    routers = _mapping(_mapping(run.manifest).get("routers"))
    if not routers:
        return None
    total = 0
    for entry in routers.values():
        entry = _mapping(entry)
        size = _count(entry.get("bytes"))
        if size is None:
            size = sum(_count(_mapping(f).get("size")) or 0 for f in entry.get("files") or [])
        total += size
    return total


# Edits afterwards --------------------------------------------------------------------------

def _validate_measurements(experiment, data):
    """The observables' check (the run sheet's typed measurements, the same rules as
    the runs page)."""
    from .observables import validate_measurements

    return validate_measurements(experiment, data)


def _save_measurements(user, run, values):
    """The observables' writer: a RunEdit per change (``measurements.NAME``)."""
    from .observables import save_measurements

    return save_measurements(user, run, values)


def update_run(user, run: RunMetadata, fields: dict) -> list[RunEdit]:
    """Write ``fields`` on ``run``: any of ``title``, ``run_class`` (a class's name, or
    empty for none), ``comment``, and ``measurements`` (observable name to value, None
    to clear), checked as at Start and by the observables' types.

    All or nothing: on any error nothing is saved and :class:`MetadataError` names
    each wrong field (``measurements.NAME`` for a measurement). Returns the edits
    recorded, one per field that changed (old and new value, who, when; a measurement's
    field is ``measurements.NAME``); a field given its current value records nothing.
    Raises :class:`EditForbidden` for a user who may not control the DAQ.
    """
    if user is not None and not roles.is_operator(user):
        raise EditForbidden(f"{user} may watch but not edit runs")
    if not isinstance(fields, dict):
        raise MetadataError({"fields": "must be an object of run fields"})
    errors: dict[str, str] = {}
    clean: dict = {}
    for field in fields:
        if field not in EDITABLE and field != MEASUREMENTS:
            shown = str(field)[:40]
            errors[shown] = (f"cannot be edited: the editable fields are "
                             f"{', '.join(EDITABLE)} and {MEASUREMENTS}")
    checks = {"title": lambda v: clean_text(v, limit=MAX_TITLE, multiline=False),
              "comment": lambda v: clean_text(v, limit=MAX_COMMENT, multiline=True),
              "run_class": clean_run_class}
    for field, check in checks.items():
        if field in fields:
            try:
                clean[field] = check(fields[field])
            except _Invalid as exc:
                errors[field] = str(exc)
    values: dict = {}
    if MEASUREMENTS in fields:
        given = fields[MEASUREMENTS]
        if not isinstance(given, dict):
            errors[MEASUREMENTS] = "must be an object of observable names and values"
        elif given:
            values, wrong = _validate_measurements(run.experiment, given)
            errors.update({f"{MEASUREMENTS}.{name}": message for name, message in wrong.items()})
    if errors:
        raise MetadataError(errors)

    who = user if user is not None and user.is_authenticated else None
    now = timezone.now()
    edits: list[RunEdit] = []
    with transaction.atomic():
        # of=self: PostgreSQL refuses FOR UPDATE on the nullable join to the class.
        current = (RunMetadata.objects.select_for_update(of=("self",))
                   .select_related("run_class").get(pk=run.pk))
        update: dict = {}
        for field in ("title", "comment"):
            if field in clean and clean[field] != getattr(current, field):
                edits.append(RunEdit(run=current, user=who, time=now, field=field,
                                     old=getattr(current, field), new=clean[field]))
                update[field] = clean[field]
        if "run_class" in clean:
            old = current.run_class.name if current.run_class else None
            if clean["run_class"] != old:
                edits.append(RunEdit(run=current, user=who, time=now, field="run_class",
                                     old=old, new=clean["run_class"]))
                update["run_class"] = (RunClass.objects.get(name=clean["run_class"])
                                       if clean["run_class"] else None)
        if update:
            # Only these columns: the engine writes others (status, manifest) meanwhile.
            RunMetadata.objects.filter(pk=current.pk).update(**update)
        RunEdit.objects.bulk_create(edits)
        if values:
            edits += _save_measurements(who, current, values)
    for field, value in clean.items():
        if field == "run_class":
            run.run_class = RunClass.objects.filter(name=value).first() if value else None
        else:
            setattr(run, field, value)
    return edits


def edit_label(field: str) -> str:
    """How a RunEdit's field reads on a page: "title", "class", "beam current"."""
    if field.startswith(MEASUREMENTS + "."):
        return field[len(MEASUREMENTS) + 1:]
    return "class" if field == "run_class" else field
