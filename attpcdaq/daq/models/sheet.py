"""The run sheet and the shift logbook: run classes, observables, measurements, edits,
log entries."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .runs import Experiment, RunMetadata


class RunClass(models.Model):
    """What a run is for: Testing, Production, Beam, Pulser, Junk, or one an admin adds."""

    name = models.CharField(max_length=40, unique=True)
    order = models.PositiveIntegerField(default=0, help_text="Where it comes in lists.")

    class Meta:
        ordering = ["order", "name"]
        verbose_name_plural = "run classes"

    def __str__(self) -> str:
        return self.name


class Observable(models.Model):
    """A quantity the shift records for every run of an experiment."""

    class Kind(models.TextChoices):
        """How a measurement of it is typed and checked."""

        INTEGER = "integer", "Integer"
        FLOAT = "float", "Number"
        TEXT = "text", "Text"
        CHOICE = "choice", "Choice from a list"
        BOOLEAN = "boolean", "Yes/no"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE,
                                   related_name="observables")
    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FLOAT)
    units = models.CharField(max_length=40, blank=True)
    help_text = models.CharField(max_length=300, blank=True,
                                 help_text="Shown beside the field.")
    required = models.BooleanField(default=False)
    choices = models.JSONField(default=list, blank=True, help_text="The allowed values, "
                               "for a choice.")
    minimum = models.FloatField(null=True, blank=True)
    maximum = models.FloatField(null=True, blank=True)
    order = models.PositiveIntegerField(default=0, help_text="Its column on the run sheet.")

    class Meta:
        ordering = ["experiment", "order", "pk"]
        constraints = [models.UniqueConstraint(fields=["experiment", "name"],
                                               name="unique_observable_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.units})" if self.units else self.name


class Measurement(models.Model):
    """The value of one observable for one run (typed as its observable says)."""

    run = models.ForeignKey(RunMetadata, on_delete=models.CASCADE, related_name="measurements")
    observable = models.ForeignKey(Observable, on_delete=models.CASCADE,
                                   related_name="measurements")
    value = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "observable"],
                                               name="one_measurement_per_run")]

    def __str__(self) -> str:
        return f"{self.observable.name} = {self.value!r}"


class RunEdit(models.Model):
    """Who changed what on a run, and when (metadata and measurements)."""

    run = models.ForeignKey(RunMetadata, on_delete=models.CASCADE, related_name="edits")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                             blank=True, related_name="+")
    time = models.DateTimeField(default=timezone.now)
    field = models.CharField(max_length=100, help_text="The field or observable changed.")
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-time", "-pk"]


class LogEntry(models.Model):
    """An entry of the shift logbook: free, or drafted by the engine at a Stop."""

    time = models.DateTimeField(default=timezone.now, db_index=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                               blank=True, related_name="+")
    text = models.TextField()
    run = models.ForeignKey(RunMetadata, on_delete=models.SET_NULL, null=True, blank=True,
                            related_name="log_entries")
    drafted = models.BooleanField(default=False, help_text="Written by the engine at a Stop, "
                                  "for the operator to edit and confirm.")
    confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+")
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-time", "-pk"]
        verbose_name_plural = "log entries"

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M} {self.text[:40]}"
