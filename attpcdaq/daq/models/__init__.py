"""The DAQ's data model, one module per sub-domain, re-exported here."""

from .control import ApiToken, Command, EngineHeartbeat, Event
from .hardware import ConfigId, DataRouter, DataSource, ECCServer
from .loaded import LoadedConfig, RunConfig
from .runs import Experiment, RunMetadata, UnattributedData
from .sheet import LogEntry, Measurement, Observable, RunClass, RunEdit

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
    "LogEntry",
    "Measurement",
    "Observable",
    "RunClass",
    "RunConfig",
    "RunEdit",
    "RunMetadata",
    "UnattributedData",
]
