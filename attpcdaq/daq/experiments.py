"""Experiments: create, rename and switch the active one (admins; issue 10, item 4).

Runs are numbered and filed per experiment, and every page shows the active one, so
switching is refused while anything could still belong to the old one: unless every
enabled ECC server is Idle (and none transitioning), no transition or reset is waiting
or running, and no run is open. Disabled servers take no part in runs and do not
count. The check and the switch happen in one transaction that locks the experiments,
the lock a Start takes too (services._queue), so a Start and a switch cannot cross.

A rename changes the folder name of the experiment's *future* runs only; folders of
runs filed already keep their names (nothing is moved on the DAQ computers), and it is
refused while a run of the experiment is open.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .models import Command, ECCServer, Experiment, RunMetadata
from .services import Conflict, ControlError
from .validators import validate_experiment_name

_BLOCKING_KINDS = (Command.Kind.TRANSITION, Command.Kind.RESET)


class InvalidName(ControlError):
    """A name refused (HTTP 400), with the field it is about."""

    status = 400


def clean_name(name, *, exclude: Experiment | None = None) -> str:
    """The name as it would be stored, or :class:`InvalidName` saying what is wrong."""
    if not isinstance(name, str):
        raise InvalidName("The name must be text.")
    try:
        validate_experiment_name(name)
    except ValidationError as exc:
        raise InvalidName(" ".join(exc.messages)) from None
    taken = Experiment.objects.filter(name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    if taken.exists():
        raise Conflict(f"There is already an experiment named {name!r}.")
    return name


def create(name, *, activate: bool = False) -> Experiment:
    """A new experiment named ``name`` (active if ``activate`` and switching is allowed)."""
    with transaction.atomic():
        name = clean_name(name)
        try:
            experiment = Experiment.objects.create(name=name)
        except IntegrityError:
            raise Conflict(f"There is already an experiment named {name!r}.") from None
        if activate:
            switch_to(experiment)
    return experiment


def rename(experiment: Experiment, name) -> Experiment:
    """Give ``experiment`` a new name; refused while one of its runs is open."""
    with transaction.atomic():
        list(Experiment.objects.select_for_update().filter(is_active=True))
        experiment = Experiment.objects.get(pk=experiment.pk)
        name = clean_name(name, exclude=experiment)
        if name == experiment.name:
            return experiment
        run = experiment.runs.filter(status__in=RunMetadata.OPEN).first()
        if run is not None:
            raise Conflict(f"Run {run.run_number} of {experiment.name} is "
                           f"{run.get_status_display().lower()}: rename the experiment "
                           "once it is over (its folder name would change under it).")
        experiment.name = name
        try:
            experiment.save(update_fields=["name"])
        except IntegrityError:
            raise Conflict(f"There is already an experiment named {name!r}.") from None
    return experiment


def switch_refusal() -> str:
    """Why the active experiment may not change now, or ""."""
    run = (RunMetadata.objects.select_related("experiment").filter(status__in=RunMetadata.OPEN)
           .order_by("-created").first())
    if run is not None:
        return (f"Run {run.run_number} of {run.experiment.name} is "
                f"{run.get_status_display().lower()}: stop it before switching experiments.")
    busy = [s for s in ECCServer.objects.filter(enabled=True)
            if s.state != ECCServer.IDLE or s.is_transitioning]
    if busy:
        names = ", ".join(f"{s.name} is {s.state_name}"
                          + (" (transitioning)" if s.is_transitioning else "")
                          for s in busy[:5])
        more = f" and {len(busy) - 5} more" if len(busy) > 5 else ""
        return (f"Every ECC server must be Idle to switch experiments: {names}{more}. "
                "Take the system to Idle first.")
    command = (Command.objects.select_related("user", "ecc_server", "data_router")
               .filter(status__in=Command.ACTIVE, kind__in=_BLOCKING_KINDS).first())
    if command is not None:
        return (f"Command {command.pk}, {command.describe()}, is {command.status}: wait for "
                "it before switching experiments.")
    return ""


def switch_to(experiment: Experiment) -> Experiment:
    """Make ``experiment`` the active one, or :class:`Conflict` saying why not."""
    with transaction.atomic():
        list(Experiment.objects.select_for_update().filter(is_active=True))
        experiment = Experiment.objects.get(pk=experiment.pk)
        if experiment.is_active:
            return experiment
        if refusal := switch_refusal():
            raise Conflict(refusal)
        experiment.activate()
    return experiment
