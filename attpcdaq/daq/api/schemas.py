"""Request and answer bodies of the JSON API."""

from datetime import datetime
from typing import Literal

from ninja import Schema

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


class RunDetailOut(Schema):
    """One run and the configuration each server had loaded at its Start."""

    id: int
    experiment: str
    number: int
    status: str
    title: str
    started: datetime | None
    stopped: datetime | None
    filed: bool
    configs: dict[str, str]
    loaded_configs: list[LoadedConfigOut]


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


class DataRouterOut(Schema):
    """One data router."""

    id: int
    name: str
    online: bool
    clean: bool
    data_rate: float


class StatusOut(Schema):
    """Everything the status page shows."""

    overall_state: int | None
    overall_state_name: str
    experiment: str | None
    engine_alive: bool
    run: RunOut | None
    ecc_servers: list[EccServerOut]
    data_routers: list[DataRouterOut]


class TransitionIn(Schema):
    """A target state, or "reset" for one step back.

    ``confirm_drift``: start although configuration files changed since Configure
    (without it such a Start fails, naming the files); system-wide Start only.
    """

    target: Target
    confirm_drift: bool = False


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
