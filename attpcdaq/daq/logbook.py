"""The shift logbook: free entries by anyone logged in, and the entries the engine drafts.

At each Stop the engine drafts an entry when the run is filed
(``engine/logdraft.py``): ``drafted`` and not yet confirmed, it waits at the top of
the logbook for an operator to edit and confirm it. Free entries (text, author,
time, optionally a run) may be written by anyone logged in and edited by their
author; drafts are edited and confirmed by operators ("Can operate the DAQ").

Text is kept as typed: any unicode, lines and tabs; control characters and the
characters that reorder the text around them (bidirectional overrides) are refused,
since entries are read by others and exported. Pages escape it as any text.
"""

from __future__ import annotations

import unicodedata

from django.db import transaction
from django.db.models import BooleanField, Case, Q, QuerySet, Value, When
from django.utils import timezone

from . import roles
from .models import Experiment, LogEntry, RunMetadata
from .services import Conflict, ControlError

#: The longest entry, in characters (a drafted one of a large system fits).
MAX_TEXT = 50_000
#: The longest search, in characters.
MAX_QUERY = 200
#: Entries per page of the logbook.
PER_PAGE = 25
_REORDERING = frozenset("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e"
                        "\u2066\u2067\u2068\u2069")


class Forbidden(ControlError):
    """The user may not do that to this entry."""

    status = 403


def _signed_in(user) -> bool:
    return bool(user and user.is_authenticated)


def is_operator(user) -> bool:
    """Whether ``user`` may edit and confirm the engine's drafts."""
    return _signed_in(user) and roles.is_operator(user)


def clean_text(text) -> str:
    """An entry's text: line ends made ``\\n``, trailing blanks stripped; raises
    ControlError saying what is wrong (empty, too long, a control character)."""
    if not isinstance(text, str):
        raise ControlError("the entry must be text")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ControlError("the entry is empty: write what happened")
    if len(text) > MAX_TEXT:
        raise ControlError(f"the entry is {len(text):,} characters long: at most "
                           f"{MAX_TEXT:,} are kept")
    for position, char in enumerate(text, 1):
        if char in "\n\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cs") or char in _REORDERING:
            name = unicodedata.name(char, "a control character")
            raise ControlError(f"the entry contains U+{ord(char):04X} ({name}) at character "
                               f"{position}: write it as plain text")
    return text


def run_of(number) -> RunMetadata | None:
    """The run of the active experiment with ``number`` (text or int; empty: None);
    raises ControlError when there is no such run."""
    if number is None or (isinstance(number, str) and not number.strip()):
        return None
    text = str(number).strip().removeprefix("run").strip()
    experiment = Experiment.active()
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise ControlError(f"{str(number)[:20]!r} is not a run number")
    run = experiment.runs.filter(run_number=int(text)).first() if experiment else None
    if run is None:
        raise ControlError(f"{experiment.name if experiment else 'no active experiment'} "
                           f"has no run {text}")
    return run


def add_entry(user, text, run: RunMetadata | None = None) -> LogEntry:
    """Write a free entry by ``user`` (anyone logged in), optionally on ``run``."""
    if not _signed_in(user):
        raise Forbidden("log in to write in the logbook")
    return LogEntry.objects.create(author=user, text=clean_text(text), run=run)


def is_draft(entry: LogEntry) -> bool:
    """Drafted by the engine and not yet confirmed."""
    return entry.drafted and entry.confirmed_at is None


def can_edit(user, entry: LogEntry) -> bool:
    """Drafts: operators; other entries: their author."""
    if not _signed_in(user):
        return False
    if entry.drafted:
        return is_operator(user)
    return entry.author_id == user.pk


def edit_entry(user, entry: LogEntry, text) -> LogEntry:
    """Change an entry's text (see :func:`can_edit`)."""
    if not can_edit(user, entry):
        raise Forbidden(_refusal(user, entry, "edit"))
    entry.text = clean_text(text)
    entry.save(update_fields=["text"])
    return entry


def confirm_entry(user, entry: LogEntry, text=None) -> LogEntry:
    """Confirm a draft of the engine, with its text edited when ``text`` is given."""
    if not is_operator(user):
        raise Forbidden(_refusal(user, entry, "confirm"))
    cleaned = None if text is None else clean_text(text)
    with transaction.atomic():
        entry = LogEntry.objects.select_for_update().get(pk=entry.pk)
        if not entry.drafted:
            raise ControlError("only the engine's drafts are confirmed")
        if entry.confirmed_at is not None:
            who = entry.confirmed_by.get_username() if entry.confirmed_by else "someone"
            raise Conflict(f"this draft was confirmed by {who} at "
                           f"{timezone.localtime(entry.confirmed_at):%Y-%m-%d %H:%M}")
        if cleaned is not None:
            entry.text = cleaned
        entry.confirmed_by, entry.confirmed_at = user, timezone.now()
        entry.save(update_fields=["text", "confirmed_by", "confirmed_at"])
    return entry


def _refusal(user, entry: LogEntry, verb: str) -> str:
    who = user.get_username() if _signed_in(user) else "someone not logged in"
    if entry.drafted:
        return f"{who} may watch but not {verb} the engine's drafts (operators do)"
    return f"only the author of an entry may {verb} it"


def of_experiment(experiment: Experiment) -> Q:
    """The entries of ``experiment``: those on its runs, and those on no run written
    while it was the newest experiment (from its creation to the next one's)."""
    later = (Experiment.objects.filter(created__gt=experiment.created).order_by("created")
             .values_list("created", flat=True).first())
    free = Q(run=None, time__gte=experiment.created)
    if later is not None:
        free &= Q(time__lt=later)
    return Q(run__experiment=experiment) | free


def entries(query: str = "", experiment: Experiment | None = None) -> QuerySet:
    """The logbook, drafts waiting for confirmation first, then newest first; ``query``
    keeps the entries whose text or author holds every word of it; ``experiment`` its
    entries (:func:`of_experiment`), else all."""
    found = LogEntry.objects.select_related("author", "run", "confirmed_by")
    if experiment is not None:
        found = found.filter(of_experiment(experiment))
    found = found.annotate(
        waiting=Case(When(drafted=True, confirmed_at=None, then=Value(True)),
                     default=Value(False), output_field=BooleanField()))
    for word in (query or "")[:MAX_QUERY].split():
        found = found.filter(Q(text__icontains=word) | Q(author__username__iexact=word))
    return found.order_by("-waiting", "-time", "-pk")


def _user(user) -> str | None:
    return user.get_username() if user else None


def export_entries(experiment: Experiment) -> list[dict]:
    """The logbook of ``experiment``, oldest first, for the run sheet's export.

    Its entries are those on its runs, and those on no run written while it was the
    newest experiment (from its creation to the next one's).
    """
    found = (LogEntry.objects.select_related("author", "run", "confirmed_by")
             .filter(of_experiment(experiment)).order_by("time", "pk"))
    return [{"id": e.pk, "time": e.time, "author": _user(e.author),
             "run": e.run.run_number if e.run else None, "text": e.text,
             "drafted": e.drafted, "confirmed_by": _user(e.confirmed_by),
             "confirmed_at": e.confirmed_at} for e in found]
