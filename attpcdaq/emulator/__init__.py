"""Faithful emulators of the GET programs, speaking their real protocols over real sockets.

:mod:`.soap` reads and writes the ECC server's SOAP messages, :mod:`.ecc` holds the
state machine of one emulated ECC server, :mod:`.server` serves many of them over
HTTP, and :mod:`.cli` is ``attpcdaq emulate``.
"""

from .ecc import (
    DEFAULT_TRANSITION_SECONDS,
    EmulatedCrash,
    EmulatedEcc,
    FaultKind,
    parse_transition_seconds,
)
from .server import CONTROL_PATH, EXAMPLE_CONFIG_DIR, EccEmulatorGroup, EccServer, ListenError

__all__ = [
    "CONTROL_PATH",
    "DEFAULT_TRANSITION_SECONDS",
    "EXAMPLE_CONFIG_DIR",
    "EccEmulatorGroup",
    "EccServer",
    "EmulatedCrash",
    "EmulatedEcc",
    "FaultKind",
    "ListenError",
    "parse_transition_seconds",
]
