"""The DAQ's data model, one module per sub-domain, re-exported here."""

from .control import ApiToken, Command, EngineHeartbeat, Event
from .hardware import ConfigId, DataRouter, DataSource, ECCServer
from .loaded import LoadedConfig, RunConfig
from .runs import Experiment, RunMetadata, UnattributedData

__all__ = [
    "ApiToken",
    "Command",
    "ConfigId",
    "DataRouter",
    "DataSource",
    "ECCServer",
    "EngineHeartbeat",
    "Event",
    "Experiment",
    "LoadedConfig",
    "RunConfig",
    "RunMetadata",
    "UnattributedData",
]
