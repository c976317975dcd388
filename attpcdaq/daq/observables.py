"""Measurements of an experiment's observables: typed, checked, saved with who changed them.

:func:`validate_measurements` turns what a form or the API sent (strings, or JSON
values) into typed values, or says per observable what is wrong; nothing is saved
unless there are no errors, and :func:`save_measurements` then writes the changes and
keeps each one as a :class:`RunEdit`. The run sheet page, ``PATCH /api/runs`` and
``runmeta.update_run`` all go through here, so the rules are the same everywhere.
"""

from __future__ import annotations

import math
import re
import unicodedata

from django.db import transaction

from .models import Experiment, Measurement, Observable, RunEdit, RunMetadata

#: The longest text a measurement (or any value sent for one) may be, in characters.
MAX_TEXT = 10_000
#: Longer than this, a number is not one anybody typed.
MAX_NUMBER_CHARS = 100
#: Integers are stored as JSON numbers: keep them exact in a 64-bit integer and in
#: JavaScript (2**53), which the charts and exports read.
MAX_INTEGER = 2**53
TRUE_WORDS = frozenset({"yes", "true", "on", "1", "y"})
FALSE_WORDS = frozenset({"no", "false", "off", "0", "n"})
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
#: Characters that reorder or hide text (bidi overrides and isolates, zero-width).
_HIDDEN = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200e"
                    "\u200f\u2060\ufeff")


class Invalid(ValueError):
    """A value that is not one for its observable; the message says why."""


def hostile_text(value: str, *, multiline: bool) -> str | None:
    """What is wrong with ``value`` as text people read, or None.

    Control characters (newlines and tabs allowed when ``multiline``) and characters
    that reorder or hide text are refused; any other unicode is fine.
    """
    allowed = "\n\r\t" if multiline else ""
    for ch in value:
        if ch in allowed:
            continue
        if ch in _HIDDEN:
            return f"contains an invisible or reordering character (U+{ord(ch):04X})"
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return f"contains a control character (U+{ord(ch):04X})"
    return None


def _bounds(observable: Observable, number: float) -> None:
    units = f" {observable.units}" if observable.units else ""
    if observable.minimum is not None and number < observable.minimum:
        raise Invalid(f"is below the minimum, {observable.minimum:g}{units}")
    if observable.maximum is not None and number > observable.maximum:
        raise Invalid(f"is above the maximum, {observable.maximum:g}{units}")


def _integer(observable: Observable, raw) -> int:
    if isinstance(raw, bool):
        raise Invalid("is not a whole number")
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise Invalid("must be a finite number (not NaN or infinity)")
        if not raw.is_integer():
            raise Invalid("is not a whole number")
        raw = int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > MAX_NUMBER_CHARS or not _INTEGER.fullmatch(text):
            if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                raise Invalid("must be a finite number (not NaN or infinity)")
            raise Invalid("is not a whole number")
        raw = int(text)
    if not isinstance(raw, int):
        raise Invalid("is not a whole number")
    if abs(raw) > MAX_INTEGER:
        raise Invalid(f"is too large (at most {MAX_INTEGER:,} either way)")
    _bounds(observable, raw)
    return raw


def _float(observable: Observable, raw) -> float | int:
    if isinstance(raw, bool):
        raise Invalid("is not a number")
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > MAX_NUMBER_CHARS or not _DECIMAL.fullmatch(text):
            if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                raise Invalid("must be a finite number (not NaN or infinity)")
            raise Invalid("is not a number")
        raw = float(text)
    if isinstance(raw, int):
        if abs(raw) > MAX_INTEGER:
            raise Invalid("is too large")
        raw = float(raw)
    if not isinstance(raw, float):
        raise Invalid("is not a number")
    if math.isnan(raw) or math.isinf(raw):
        # "1e999" reads as infinity: say so rather than "not a number".
        raise Invalid("must be a finite number (not NaN or infinity)")
    _bounds(observable, raw)
    return raw


def _text(observable: Observable, raw) -> str:
    if not isinstance(raw, str):
        raise Invalid("is not text")
    problem = hostile_text(raw, multiline=True)
    if problem:
        raise Invalid(problem)
    return raw.strip()


def _choice(observable: Observable, raw) -> str:
    text = raw.strip() if isinstance(raw, str) else None
    choices = [str(c) for c in observable.choices or []]
    if text not in choices:
        shown = ", ".join(choices[:20]) + (", …" if len(choices) > 20 else "")
        raise Invalid(f"is not one of the choices ({shown})" if choices
                      else "has no choices to pick from (edit the observable)")
    return text


def _boolean(observable: Observable, raw) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise Invalid("is not yes or no")


_PARSERS = {
    Observable.Kind.INTEGER: _integer,
    Observable.Kind.FLOAT: _float,
    Observable.Kind.TEXT: _text,
    Observable.Kind.CHOICE: _choice,
    Observable.Kind.BOOLEAN: _boolean,
}


def is_empty(raw) -> bool:
    """Nothing was given: None, or a string of white space only."""
    return raw is None or (isinstance(raw, str) and not raw.strip())


def parse_value(observable: Observable, raw):
    """The typed value of ``raw`` for ``observable`` (None when empty), or :class:`Invalid`."""
    if isinstance(raw, str) and len(raw) > MAX_TEXT:
        raise Invalid(f"is too long ({len(raw):,} characters; at most {MAX_TEXT:,})")
    if is_empty(raw):
        if observable.required:
            raise Invalid("is required")
        return None
    if isinstance(raw, (list, dict)):
        raise Invalid("must be a single value")
    return _PARSERS.get(observable.kind, _text)(observable, raw)


def validate_measurements(experiment: Experiment, data: dict[str, object]
                          ) -> tuple[dict[Observable, object], dict[str, str]]:
    """Typed values and errors of the measurements in ``data``, by observable name.

    ``data`` maps an observable's name to what was sent: a string from a form or a JSON
    value from the API. Observables not named are left alone (their value is not
    checked or changed); an empty value clears a measurement unless it is required.
    The errors read "<name> is not a number", one per observable name, including names
    the experiment has no observable for. Values are typed: int, float, str, bool or
    None (cleared).
    """
    observables = {o.name: o for o in experiment.observables.all()}
    values: dict[Observable, object] = {}
    errors: dict[str, str] = {}
    for name, raw in data.items():
        observable = observables.get(name)
        if observable is None:
            errors[str(name)[:200]] = (f"{experiment.name} has no observable named "
                                       f"{str(name)[:80]!r}")
            continue
        try:
            values[observable] = parse_value(observable, raw)
        except Invalid as exc:
            errors[name] = f"{name} {exc}"
    return values, errors


def show_value(observable: Observable, value) -> str:
    """A measurement as the form shows it (and as it reads back in)."""
    if value is None:
        return ""
    if observable.kind == Observable.Kind.BOOLEAN:
        return "yes" if value else "no"
    if isinstance(value, float):
        return repr(value).removesuffix(".0") if value.is_integer() else repr(value)
    return str(value)


def save_measurements(user, run: RunMetadata, values: dict[Observable, object]
                      ) -> list[RunEdit]:
    """Write ``values`` (from :func:`validate_measurements`) on ``run``, keeping each change.

    A value equal to the one stored is no change; None removes the measurement. Each
    change is a :class:`RunEdit` (field ``measurements.<name>``, as ``runmeta.update_run``
    writes it; old and new values).
    Returns the edits made, in one transaction.
    """
    edits = []
    with transaction.atomic():
        current = {m.observable_id: m for m in
                   Measurement.objects.select_for_update().filter(
                       run=run, observable__in=list(values))}
        for observable, value in values.items():
            if observable.experiment_id != run.experiment_id:
                raise ValueError(f"{observable.name} is not an observable of "
                                 f"{run.experiment}")
            measurement = current.get(observable.pk)
            old = measurement.value if measurement is not None else None
            if old == value and type(old) is type(value):
                continue
            if value is None:
                measurement.delete()
            elif measurement is None:
                Measurement.objects.create(run=run, observable=observable, value=value)
            else:
                measurement.value = value
                measurement.save(update_fields=["value"])
            edits.append(RunEdit(run=run, user=user if getattr(user, "pk", None) else None,
                                 field=f"measurements.{observable.name}", old=old,
                                 new=value))
        RunEdit.objects.bulk_create(edits)
    return edits
