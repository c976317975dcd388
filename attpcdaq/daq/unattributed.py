"""Files written while no run was open: the operator's choice, and what the page lists.

The engine finds them (``engine.filing``) and moves them once decided; this module
checks the decision and records it, as :mod:`.services` does for commands.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import Event, RunMetadata, UnattributedData
from .services import Conflict, ControlError, acting_user, clean_reason, require_engine

#: Runs offered to file unattributed data into, newest first.
UNATTRIBUTED_RUN_CHOICES = 200
#: How long a settled record stays on the status page, saying where its files went.
UNATTRIBUTED_SETTLED_SHOWN = timedelta(seconds=60)
#: The largest run number the database holds (a PositiveIntegerField).
_MAX_RUN_NUMBER = 2**31 - 1


def unattributed_totals(record: UnattributedData) -> tuple[int, int]:
    """How many files a record lists and their bytes (entries of another shape ignored)."""
    files = [f for f in record.files if isinstance(f, dict)] \
        if isinstance(record.files, list) else []
    sizes = [f.get("size") for f in files]
    return len(files), sum(n for n in sizes if isinstance(n, int) and not isinstance(n, bool)
                           and n > 0)


def _run_number(value) -> int | None:
    """A run number as an API body or a form gives it (int or digits); None if not one."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() \
            and len(value.strip()) <= 18:
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def decide_unattributed(user, record: UnattributedData, decision: str, run_number=None,
                        note: str = "") -> UnattributedData:
    """Record the operator's choice for files written while no run was open.

    ``decision``: ``"run"`` files them into run ``run_number`` of the record's
    experiment (a run that is neither open nor still being filed), ``"aside"`` sets
    them aside in ``<experiment>/unattributed/``. ``note``: optional, checked as a
    reason is (:func:`clean_reason`). The engine moves the files and sets
    ``settled_at``; an event records who chose what.

    Raises
    ------
    ControlError
        For another decision, a missing or unknown run, a run with ``"aside"``, or a
        note too long or with control characters or bidirectional overrides.
    Conflict
        When the record was decided already, a run is open (its files are on the same
        routers), or the chosen run is open or not filed yet.
    EngineNotRunning
        When the engine, which moves the files, is not running.
    """
    if decision not in (UnattributedData.Decision.RUN, UnattributedData.Decision.ASIDE):
        raise ControlError(f"unknown decision {str(decision)[:40]!r}: expected 'run' (file "
                           "them into a run) or 'aside' (set them aside)")
    where = f"the files of {record.router.name} written while no run was open"
    note = clean_reason(note, required=False, what=where, noun="note")
    number = None
    if decision == UnattributedData.Decision.RUN:
        if run_number is None or run_number == "":
            raise ControlError(f"choose the run to file {where} into")
        number = _run_number(run_number)
        if number is None or number > _MAX_RUN_NUMBER:
            raise ControlError(f"{str(run_number)[:40]!r} is not a run number")
    elif run_number is not None and run_number != "":
        raise ControlError("a run is chosen only to file the files into it, not to set them "
                           "aside")
    require_engine()
    with transaction.atomic():
        # of=self: PostgreSQL locks no nullable side of an outer join (run, decided_by).
        record = (UnattributedData.objects.select_for_update(of=("self",))
                  .select_related("experiment", "router", "decided_by", "run")
                  .get(pk=record.pk))
        if record.decision != UnattributedData.Decision.PENDING or record.settled_at:
            who = f" by {record.decided_by}" if record.decided_by else ""
            when = (f" at {timezone.localtime(record.decided_at):%Y-%m-%d %H:%M:%S}"
                    if record.decided_at else "")
            what = (f"to file them into run {record.run.run_number}" if record.run
                    else "to set them aside")
            raise Conflict(f"{where} were decided already{who}{when}: {what}")
        open_run = RunMetadata.objects.filter(status__in=RunMetadata.OPEN).first()
        if open_run is not None:
            status = open_run.get_status_display().lower()
            raise Conflict(f"run {open_run.run_number} is {status}: its files are on the "
                           "routers too; decide once it is stopped and filed")
        run = None
        if number is not None:
            run = record.experiment.runs.filter(run_number=number).first()
            if run is None:
                raise ControlError(f"experiment {record.experiment.name} has no run {number}")
            if run.is_open:
                raise Conflict(f"run {number} is {run.get_status_display().lower()}: choose "
                               "a run that is over")
            if not run.filed:
                raise Conflict(f"run {number} is not filed yet: wait for its filing, or "
                               "choose another run")
        user = acting_user(user)
        count, size = unattributed_totals(record)
        UnattributedData.objects.filter(pk=record.pk).update(
            decision=decision, run=run, note=note, decided_by=user,
            decided_at=timezone.now(), error="")
        who = user.get_username() if user else "someone"
        target = (f"file them into run {number}" if run is not None else
                  f"set them aside in {record.experiment.name}/unattributed/")
        Event.objects.create(level=Event.Level.INFO, source=record.router.name, run=run,
                             message=f"{who} chose to {target}: {count} file(s), {size:,} "
                             f"bytes written on {record.router.name} while no run was open"
                             + (f" ({note})" if note else ""))
    record.refresh_from_db()
    return record


def unattributed_shown(now: datetime | None = None) -> list[UnattributedData]:
    """What the status page lists: the records waiting for a choice or for their move,
    and those settled within ``UNATTRIBUTED_SETTLED_SHOWN``, oldest first.

    Each gets ``file_count``, ``bytes`` and ``runs`` (the run numbers its files may be
    filed into: over and filed, newest first, at most ``UNATTRIBUTED_RUN_CHOICES``).
    """
    now = now or timezone.now()
    records = list(UnattributedData.objects.select_related("router", "experiment", "run",
                                                           "decided_by")
                   .filter(Q(settled_at=None) | Q(settled_at__gte=now
                                                  - UNATTRIBUTED_SETTLED_SHOWN))
                   .order_by("found", "pk")[:100])
    runs: dict[int, list[int]] = {}
    for record in records:
        record.file_count, record.bytes = unattributed_totals(record)
        if record.decision == UnattributedData.Decision.PENDING \
                and record.experiment_id not in runs:
            runs[record.experiment_id] = list(
                record.experiment.runs.filter(filed=True).exclude(status__in=RunMetadata.OPEN)
                .order_by("-run_number").values_list("run_number", flat=True)
                [:UNATTRIBUTED_RUN_CHOICES])
        record.runs = runs.get(record.experiment_id, [])
    return records
