"""Experiments and their runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..validators import validate_path_component


class Experiment(models.Model):
    """An experiment: runs are numbered, and their files filed, per experiment.

    Exactly one experiment is active at a time; the database enforces "at most one".
    """

    name = models.CharField(max_length=100, unique=True, validators=[validate_path_component],
                            help_text="Names the folder of its runs' data: spaces and unicode "
                            "are fine, slashes and '..' are not.")
    is_active = models.BooleanField(default=False, help_text="Runs go to the active experiment.")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True),
                                               name="one_active_experiment")]
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def active(cls) -> Experiment | None:
        """The active experiment, if any."""
        return cls.objects.filter(is_active=True).first()

    def activate(self) -> None:
        """Make this the active experiment."""
        Experiment.objects.filter(is_active=True).exclude(pk=self.pk).update(is_active=False)
        self.is_active = True
        self.save(update_fields=["is_active"])

    @property
    def latest_run(self) -> RunMetadata | None:
        """The run with the highest number."""
        return self.runs.order_by("-run_number").first()

    @property
    def next_run_number(self) -> int:
        """The number the next run gets: numbers are never reused, aborted runs included."""
        latest = self.latest_run
        return 0 if latest is None else latest.run_number + 1

    @property
    def is_running(self) -> bool:
        """A run is open (starting, running, paused or stopping)."""
        return self.runs.filter(status__in=RunMetadata.OPEN).exists()


class RunMetadata(models.Model):
    """One run: its number, times, configuration and, once filed, what was filed."""

    class Status(models.TextChoices):
        """Where the run stands."""

        STARTING = "starting", "Starting"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        STOPPING = "stopping", "Stopping"
        STOPPED = "stopped", "Stopped"
        ABORTED = "aborted", "Aborted"

    OPEN = (Status.STARTING, Status.RUNNING, Status.PAUSED, Status.STOPPING)

    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="runs")
    run_number = models.PositiveIntegerField()
    title = models.CharField(max_length=200, blank=True)
    run_class = models.ForeignKey("RunClass", on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="runs", verbose_name="class")
    comment = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STARTING)
    start_datetime = models.DateTimeField(null=True, blank=True,
                                          help_text="When every server confirmed Start.")
    stop_datetime = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="Why it was aborted, or what went wrong "
                              "when it stopped.")
    configs = models.JSONField(default=dict, blank=True,
                               help_text="Configuration set used, by ECC server name.")
    manifest = models.JSONField(default=dict, blank=True,
                                help_text="Files filed, by data router: name and size.")
    filed = models.BooleanField(default=False, help_text="Data and configurations filed.")
    filing_error = models.TextField(blank=True, help_text="Why filing failed (it is retried).")
    coverage = models.JSONField(default=dict, blank=True, help_text="The boards and routers "
                                "that took part, and those excluded: from when to when, why.")
    incomplete = models.BooleanField(default=False, help_text="Some of its data is missing "
                                     "or short (see problems).")
    problems = models.JSONField(default=list, blank=True, help_text="What is wrong with its "
                                "data, one sentence each.")
    paused_seconds = models.FloatField(default=0.0, help_text="Time spent Paused (live time "
                                       "is the duration less this).")
    paused_since = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    stopped_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    limit_seconds = models.FloatField(null=True, blank=True, help_text="Stop by itself after "
                                      "this long Running.")
    limit_events = models.BigIntegerField(null=True, blank=True, help_text="Stop by itself "
                                          "after this many events (per CoBo).")
    limit_bytes = models.BigIntegerField(null=True, blank=True, help_text="Stop by itself "
                                         "after this much data.")
    auto_restart = models.BooleanField(default=False, help_text="After a limit stops it, "
                                       "start a new run with the same metadata.")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "run_number"],
                                               name="unique_run_number")]
        ordering = ["-experiment", "-run_number"]
        verbose_name = "run"
        get_latest_by = "run_number"

    def __str__(self) -> str:
        return f"{self.experiment} run {self.run_number}"

    @property
    def is_open(self) -> bool:
        """Not yet stopped or aborted."""
        return self.status in self.OPEN

    @property
    def duration(self):
        """Time from start to stop (or now, while open); None before it started."""
        if self.start_datetime is None:
            return None
        return (self.stop_datetime or timezone.now()) - self.start_datetime


class UnattributedData(models.Model):
    """Files a data router wrote while no run was open, waiting for the operator's choice.

    Never left unattributed and never blocking Start unseen: the page offers to file
    them into a run, or to set them aside in ``<experiment>/unattributed/`` with a note.
    """

    class Decision(models.TextChoices):
        """What the operator chose."""

        PENDING = "", "Not decided"
        RUN = "run", "Filed into a run"
        ASIDE = "aside", "Set aside"

    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT,
                                   related_name="unattributed")
    router = models.ForeignKey("DataRouter", on_delete=models.CASCADE,
                               related_name="unattributed")
    files = models.JSONField(default=list, help_text="The files found: name and size.")
    found = models.DateTimeField(default=timezone.now)
    decision = models.CharField(max_length=5, choices=Decision.choices, blank=True,
                                default=Decision.PENDING)
    run = models.ForeignKey(RunMetadata, on_delete=models.SET_NULL, null=True, blank=True,
                            related_name="+", help_text="The run they were filed into.")
    note = models.TextField(blank=True, help_text="The operator's note.")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                   blank=True, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True, help_text="When the engine "
                                      "moved the files as decided.")
    error = models.TextField(blank=True, help_text="Why moving them failed (it is retried).")

    class Meta:
        ordering = ["-found"]
        verbose_name_plural = "unattributed data"

    def __str__(self) -> str:
        return f"{len(self.files)} unattributed file(s) on {self.router}"
