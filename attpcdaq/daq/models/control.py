"""Control records: commands users asked for, events the engine saw, API tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class Command(models.Model):
    """One user action, queued for the engine: who asked what, when, and how it went.

    The web request only writes this row; the engine claims it, runs it and writes
    the outcome back, which makes the table an audit trail.
    """

    class Kind(models.TextChoices):
        """What to do."""

        TRANSITION = "transition", "Transition"
        RESET = "reset", "Reset (one step back)"
        REFRESH_CONFIGS = "refresh_configs", "Fetch configuration sets"
        TAIL_LOG = "tail_log", "Read a log"
        ABORT = "abort", "Abandon the transition"
        EXCLUDE = "exclude", "Take out of the system"
        INCLUDE = "include", "Put back into the system"

    class Status(models.TextChoices):
        """Where the command stands."""

        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.PENDING, Status.RUNNING)

    kind = models.CharField(max_length=20, choices=Kind.choices)
    target = models.IntegerField(null=True, blank=True, help_text="Target state, for a "
                                 "transition.")
    ecc_server = models.ForeignKey("ECCServer", on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="commands",
                                   help_text="The one server it is for; empty: system-wide.")
    data_router = models.ForeignKey("DataRouter", on_delete=models.CASCADE, null=True,
                                    blank=True, related_name="commands",
                                    help_text="The data router it is for (reading its log).")
    result = models.TextField(blank=True, help_text="What it produced (a log's last lines).")
    label = models.CharField(max_length=60, blank=True, help_text="What it means as asked, "
                             "when the target alone does not say (\"Stop the run\").")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                             blank=True, related_name="+")
    reason = models.TextField(blank=True, help_text="Why, as the operator said (exclude, "
                              "include, abort).")
    options = models.JSONField(default=dict, blank=True, help_text="What a Start gives the "
                               "run: title, class, comment, limits.")
    confirm_drift = models.BooleanField(default=False, help_text="A Start the operator "
                                        "confirmed although configuration files changed "
                                        "since Configure.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING,
                              db_index=True)
    error = models.TextField(blank=True, help_text="What failed and where.")
    run = models.ForeignKey("RunMetadata", on_delete=models.SET_NULL, null=True, blank=True,
                            related_name="commands", help_text="The run it started or stopped.")
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    #: How the engine's refusal of a Start for configuration drift begins.
    DRIFT_REFUSAL = "cannot start: configuration drift"

    class Meta:
        ordering = ["-created", "-pk"]
        permissions = [("control_daq", "Can operate the DAQ")]
        # The engine claims the oldest pending; the page lists the newest.
        indexes = [models.Index(fields=["status", "created"], name="command_claim"),
                   models.Index(fields=["-created"], name="command_newest")]

    @property
    def refused_for_drift(self) -> bool:
        """A Start that failed because configuration files changed since Configure."""
        return (self.status == self.Status.FAILED and self.ecc_server_id is None
                and self.error.startswith(self.DRIFT_REFUSAL))

    def __str__(self) -> str:
        return f"#{self.pk} {self.describe()}"

    def describe(self) -> str:
        """What was asked, in words: ``Go to Ready (all servers)``."""
        from .hardware import ECCServer

        if self.data_router_id:
            where = self.data_router.name
        elif self.ecc_server_id:
            where = self.ecc_server.name
        else:
            where = "all servers"
        if self.label:
            what = self.label
        elif self.kind == self.Kind.TRANSITION:
            what = f"Go to {ECCServer.STATE_DICT.get(self.target, self.target)}"
        else:
            what = self.get_kind_display()
        return f"{what} ({where})"


class Event(models.Model):
    """Something the engine saw that people should know: errors and alarms."""

    class Level(models.TextChoices):
        """How bad."""

        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"
        ALARM = "alarm", "Alarm"

    time = models.DateTimeField(default=timezone.now, db_index=True)
    level = models.CharField(max_length=10, choices=Level.choices)
    source = models.CharField(max_length=100, help_text="The server, router or part that "
                              "reported it.")
    message = models.TextField()
    run = models.ForeignKey("RunMetadata", on_delete=models.SET_NULL, null=True, blank=True,
                            related_name="events")
    acknowledged = models.BooleanField(default=False, help_text="An alarm someone has seen.")
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                        null=True, blank=True, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-time", "-pk"]

    def __str__(self) -> str:
        return f"{self.level} {self.source}: {self.message}"

    @classmethod
    def acknowledge(cls, events, user) -> int:
        """Mark ``events`` (a queryset) as seen by ``user``; return how many were new."""
        return events.filter(acknowledged=False).update(
            acknowledged=True, acknowledged_by=user if user and user.is_authenticated else None,
            acknowledged_at=timezone.now())


class EngineHeartbeat(models.Model):
    """One row the engine touches every ENGINE_HEARTBEAT_INTERVAL, so the page can tell
    it is alive (services reads a beat older than ENGINE_STALE_AFTER as "not running")."""

    beat = models.DateTimeField()
    started = models.DateTimeField()
    pid = models.IntegerField()
    hostname = models.CharField(max_length=200)


class ApiToken(models.Model):
    """An API token of a user; only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for, "
                            "as its owner said (\"run CLI on daqpc\").")
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True, help_text="When it was revoked; "
                                   "a revoked token authenticates nobody.")

    class Meta:
        verbose_name = "API token"
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"token{label} of {self.user} ({self.digest[:8]}…)"

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked is None

    @staticmethod
    def hash(token: str) -> str:
        """The digest stored for ``token``."""
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str = "") -> str:
        """Make a new token for ``user`` and return it (shown once, never stored)."""
        return cls.create(user, name)[1]

    @classmethod
    def create(cls, user, name: str = "") -> tuple[ApiToken, str]:
        """Make a new token for ``user``: the row and the token (shown once, never stored)."""
        token = secrets.token_urlsafe(32)
        row = cls.objects.create(user=user, name=name, digest=cls.hash(token))
        return row, token

    def revoke(self) -> bool:
        """Revoke the token; return whether it was active."""
        if self.revoked is not None:
            return False
        self.revoked = timezone.now()
        self.save(update_fields=["revoked"])
        return True

    @classmethod
    def user_for(cls, token: str):
        """The active user owning ``token`` if it is not revoked, or None."""
        row = (cls.objects.select_related("user")
               .filter(digest=cls.hash(token), revoked__isnull=True).first())
        if row is None or not row.user.is_active:
            return None
        cls.objects.filter(pk=row.pk).update(last_used=timezone.now())
        return row.user
