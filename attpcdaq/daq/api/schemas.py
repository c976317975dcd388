"""Request and answer bodies of the JSON API."""

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

Target = Literal["idle", "described", "prepared", "ready", "running", "paused", "reset"]


class RunOut(Schema):
    """The current (or last) run."""

    number: int
    running: bool
    status: str
    started: datetime | None
    stopped: datetime | None
    title: str
    filed: bool


class ConfigFileOut(Schema):
    """One file a server used at Configure: its name, SHA-256 and size."""

    filename: str
    sha256: str
    chars: int


class LoadedConfigOut(Schema):
    """What one ECC server had loaded when the run started (Configure's ConfigSet)."""

    server: str
    config: str
    configured_at: datetime | None
    problem: str
    files: list[ConfigFileOut]


class SpanOut(Schema):
    """From when to when (ISO 8601 times as the engine wrote them; ``to`` null: still so,
    or to the end of the run)."""

    from_: str | None = Field(None, alias="from")
    to: str | None = None


class ExclusionOut(SpanOut):
    """A time a board or router was excluded, and why."""

    reason: str = ""


class BoardCoverageOut(Schema):
    """Whether a board took part in the run, from when to when, and its exclusions."""

    took_part: bool = False
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    excluded: list[ExclusionOut] = []


class RouterCoverageOut(BoardCoverageOut):
    """A data router's part in the run, with the times it was offline."""

    outages: list[SpanOut] = []


class CoverageOut(Schema):
    """The boards (ECC servers) and data routers of the run, by name ({} for old runs)."""

    boards: dict[str, BoardCoverageOut] = {}
    routers: dict[str, RouterCoverageOut] = {}


class FrameCountOut(Schema):
    """The frames of one CoBo's AsAd in a file, and its first and last event number."""

    cobo: int
    asad: int
    frames: int
    first_event: int
    last_event: int


class FiledFileOut(Schema):
    """One data file of the run, as filed: where from, its size, its frames.

    ``frames`` is null for runs filed before frames were counted; ``error`` says
    where a truncated or malformed frame stopped the count ("" when none).
    """

    router: str
    name: str
    bytes: int
    frames: int | None = None
    counts: list[FrameCountOut] = []
    error: str = ""


class RouterFiledOut(Schema):
    """Where one router's files of the run went, how many and how many bytes."""

    directory: str
    files: int
    bytes: int


class AsadEventsOut(Schema):
    """One AsAd over the whole run."""

    frames: int
    first_event: int
    last_event: int


class CoboEventsOut(Schema):
    """One CoBo over the whole run: events (its fullest AsAd's frames), first, last."""

    events: int
    first_event: int
    last_event: int
    asads: dict[str, AsadEventsOut]


class BackupOut(Schema):
    """Where a server's configuration files were backed up, and which."""

    directory: str
    files: list[str]


class ManifestOut(Schema):
    """What was filed: every file, per router, per CoBo, and the configuration backups."""

    files: list[FiledFileOut] = []
    routers: dict[str, RouterFiledOut] = {}
    events: dict[str, CoboEventsOut] = {}
    configs: dict[str, BackupOut] = {}


class RunEditOut(Schema):
    """One change of a run's metadata or measurements."""

    field: str = Field(description='"title", "run_class", "comment" or '
                       '"measurements.NAME".')
    old: Any
    new: Any
    user: str | None
    time: datetime


class RunSheetOut(Schema):
    """One run of the run sheet (``GET /api/runs``)."""

    number: int
    status: str
    run_class: str | None = Field(alias="class")
    title: str
    comment: str
    start: datetime | None
    stop: datetime | None
    duration_seconds: float | None
    live_time_seconds: float | None
    events: int | None
    bytes: int | None
    incomplete: bool
    problems: list[str]
    measurements: dict[str, Any]


class RunListOut(Schema):
    """A page of the run sheet, by run number."""

    experiment: str
    count: int = Field(description="Runs matching the filters.")
    page: int
    pages: int
    limit: int
    next: str | None = Field(description="The query of the next page, if any.")
    runs: list[RunSheetOut]


class RunPatchIn(Schema):
    """Fields of a run to change: any of ``title``, ``class`` (or ``run_class``),
    ``comment`` and ``measurements`` (observable name to value, null to clear). Checked
    as the run page checks them: a 400 names each wrong field, and nothing is saved."""

    title: str | None = None
    run_class: str | None = Field(None, alias="class")
    comment: str | None = None
    measurements: dict[str, Any] | None = None


class RunDetailOut(Schema):
    """One run: its state, whether its data is complete, its coverage and manifest, and
    the configuration each server had loaded at its Start.

    ``incomplete`` is true when some of its data is missing or short; ``problems``
    says what, one sentence each. ``filing_error`` says why it is not filed yet.
    """

    id: int
    experiment: str
    number: int
    status: str
    title: str
    started: datetime | None
    stopped: datetime | None
    filed: bool
    filing_error: str
    incomplete: bool
    problems: list[str]
    coverage: CoverageOut
    manifest: ManifestOut
    configs: dict[str, str]
    loaded_configs: list[LoadedConfigOut]
    run_class: str | None = Field(None, alias="class", description="Its run class.")
    comment: str = ""
    duration_seconds: float | None = Field(None, description="From start to stop (or now).")
    live_time_seconds: float | None = Field(None, description="The duration less the time "
                                            "spent Paused.")
    events: int | None = Field(None, description="Events counted at filing (the most any "
                               "CoBo recorded).")
    bytes: int | None = Field(None, description="Data filed, over every router.")
    started_by: str | None = None
    stopped_by: str | None = None
    limit_seconds: float | None = None
    limit_events: int | None = None
    limit_bytes: int | None = None
    auto_restart: bool = False
    measurements: dict[str, Any] = Field({}, description="Observable name to value.")
    edits: list[RunEditOut] = Field([], description="Who changed what, newest first.")


class EccServerOut(Schema):
    """One ECC server as the engine last saw it."""

    id: int
    name: str
    url: str
    enabled: bool
    state: int
    state_name: str
    transitioning: bool
    transition_name: str
    online: bool
    selected_config: str | None
    last_error: str
    excluded: bool = Field(description="Taken out of the system by an operator.")
    excluded_reason: str = Field(description="Why, as the operator said (empty unless "
                                 "excluded).")
    transition_elapsed: float | None = Field(description="Seconds since the engine began "
                                             "the transition it runs on the server; null "
                                             "when it runs none.")
    usual_transition_seconds: float | None = Field(
        description="The median of the server's recent durations of the running operation; "
        "null when none runs or there is no history.")
    slow: bool = Field(description="The running transition took three times its usual time "
                       "and at least 10 s (30 s without history): maybe hung, worth an Abort.")


class DataRouterOut(Schema):
    """One data router."""

    id: int
    name: str
    online: bool
    clean: bool
    data_rate: float
    excluded: bool = Field(description="Taken out of the system by an operator.")
    excluded_reason: str = Field(description="Why, as the operator said.")


class AlarmOut(Schema):
    """An alarm nobody has acknowledged yet (the status page shows it until someone does)."""

    id: int
    time: datetime
    source: str = Field(description="The server, router or part that raised it.")
    message: str


class UnattributedOut(Schema):
    """Files a data router wrote while no run was open: waiting for the operator's choice
    (``decision`` "", and Start is refused meanwhile), or decided and waiting for the
    engine to move them (``settled_at`` null until it has)."""

    id: int
    router: str
    experiment: str
    files: int = Field(description="How many files.")
    bytes: int = Field(description="Their total size.")
    found: datetime
    decision: Literal["", "run", "aside"] = Field(
        description='"" while waiting; "run": filed into ``run``; "aside": set aside in '
        "<experiment>/unattributed/.")
    run: int | None = Field(description="The number of the run they go into.")
    note: str
    decided_by: str | None
    decided_at: datetime | None
    settled_at: datetime | None = Field(description="When the engine moved them.")
    error: str = Field(description="Why moving them failed (the engine retries).")


class DecideIn(Schema):
    """Where files written while no run was open go: ``"run"`` into run ``run`` of their
    experiment (over and filed), or ``"aside"`` into ``<experiment>/unattributed/``
    (``run`` left out). ``note``: optional, at most 500 characters on one line, without
    control characters or bidirectional overrides."""

    decision: Literal["run", "aside"]
    run: int | None = None
    note: str = ""


class StatusOut(Schema):
    """Everything the status page shows."""

    overall_state: int | None
    overall_state_name: str
    experiment: str | None
    engine_alive: bool
    #: When the engine last beat (it counts as not running ATTPCDAQ_ENGINE_STALE_AFTER
    #: seconds later); None when it never ran.
    engine_last_beat: datetime | None
    #: Why nothing can be done now ("the engine is not running: ..."), or "".
    engine_message: str
    #: Enabled, not excluded servers without a configuration selected: Start is refused.
    unconfigured_servers: list[str]
    run: RunOut | None
    ecc_servers: list[EccServerOut]
    data_routers: list[DataRouterOut]
    alarms: list[AlarmOut] = Field(description="The unacknowledged alarms, newest first: "
                                   "the newest 100 (``alarm_count`` counts them all).")
    alarm_count: int = Field(description="How many alarms are unacknowledged.")
    unattributed: list[UnattributedOut] = Field(
        description="Files written while no run was open, not moved yet: those with "
        'decision "" wait for a choice (POST /api/unattributed/ID/decide) and refuse Start.')


class TransitionIn(Schema):
    """A target state, or "reset" for one step back.

    ``confirm_drift``: start although configuration files changed since Configure
    (without it such a Start fails, naming the files); system-wide Start only.
    """

    target: Target
    confirm_drift: bool = False
    # What a system-wide Start gives its run (checked by daq.runmeta: a 400 names the
    # field); typed loosely here so that the check, not the schema, says what is wrong.
    title: Any = Field(None, description="Start only: the run's title (at most 200 "
                       "characters, one line).")
    run_class: Any = Field(None, description="Start only: the name of a run class "
                           "(Testing, Production, Beam, Pulser, Junk, or one an admin added).")
    comment: Any = Field(None, description="Start only: a comment (at most 5000 characters).")
    limit_seconds: Any = Field(None, description="Start only: stop the run after this many "
                               "seconds Running (empty: no limit).")
    limit_events: Any = Field(None, description="Start only: stop after this many events.")
    limit_bytes: Any = Field(None, description="Start only: stop after this much data.")
    auto_restart: Any = Field(None, description="Start only: after a limit stopped the run, "
                              "start a new one with the same details.")

    def start_options(self) -> dict | None:
        """The run details given, or None when none was (the Start gets none)."""
        given = self.model_dump(exclude_unset=True, exclude={"target", "confirm_drift"})
        return given or None


class ReasonIn(Schema):
    """Why, in the operator's words: required to exclude, optional to include or abort.

    At most 500 characters, on one line, without control characters or bidirectional
    overrides.
    """

    reason: str = ""


class CommandAccepted(Schema):
    """The id of the command queued for the engine."""

    command: int


class CommandOut(Schema):
    """A command and its outcome."""

    id: int
    description: str
    status: Literal["pending", "running", "done", "failed"]
    error: str
    user: str | None
    created: datetime
    finished: datetime | None
    run: int | None
    #: What it produced: a log read's last lines.
    result: str = ""


class ConfigsOut(Schema):
    """The configuration sets a server offers, as last fetched by the engine."""

    configs: list[str]
    selected: str | None


class ConfigIn(Schema):
    """A configuration set, ``describe/prepare/configure``."""

    config: str


class ConfigOut(Schema):
    """The configuration set now selected."""

    selected: str


class Error(Schema):
    """What went wrong."""

    detail: str
