"""Checks on the names that become path components, and the run directory's layout.

An experiment name or a configuration file name becomes one component of a
path on a DAQ computer. Anything a person can type is accepted (spaces,
quotes, ``$``, ``;``, unicode) because every use is quoted or goes through
SFTP; what could leave the directory or be read as an option is refused.
"""

from __future__ import annotations

import posixpath

from .exceptions import UnsafeName

__all__ = ["check_component", "check_process_name", "run_dir", "run_dir_name"]


def _problem(name: object) -> str | None:
    """Say why ``name`` cannot be one path component, or None when it can."""
    if not isinstance(name, str):
        return f"must be a string, not {type(name).__name__}"
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "is a relative directory reference"
    if "/" in name:
        return "contains '/'"
    if "\0" in name:
        return "contains NUL"
    if name.startswith("-"):
        return "starts with '-' (would read as an option)"
    # Control characters (newline, escape...) are legal in a file name but corrupt
    # every listing and log line that shows it.
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character"
    return None


def check_component(host: str, what: str, name: object) -> str:
    """Return ``name`` if it is safe as one path component.

    Parameters
    ----------
    host
        The host the name is meant for, for the error message.
    what
        What the name is (``"experiment name"``, ``"file name"``), for the message.
    name
        The candidate.

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    UnsafeName
        When the name is empty, ``.`` or ``..``, contains ``/``, NUL or a
        control character, or starts with ``-``.
    """
    problem = _problem(name)
    if problem:
        raise UnsafeName(host, f"{what} {name!r} {problem}")
    return name  # type: ignore[return-value]


def check_process_name(host: str, name: object) -> str:
    """Return ``name`` if it can name a process (same rules as a path component)."""
    return check_component(host, "process name", name)


def run_dir_name(host: str, run_number: object) -> str:
    """Return ``run_NNNN`` for a run number (4 digits at least, zero-padded).

    Raises
    ------
    UnsafeName
        When the run number is not a non-negative int.
    """
    if isinstance(run_number, bool) or not isinstance(run_number, int) or run_number < 0:
        raise UnsafeName(host, f"run number {run_number!r} is not a non-negative integer")
    return f"run_{run_number:04d}"


def run_dir(host: str, base: str, experiment: object, run_number: object) -> tuple[str, str]:
    """Return ``(relative, absolute)`` of ``<base>/<experiment>/run_NNNN`` after checking both.

    Raises
    ------
    UnsafeName
        When the experiment name or the run number is refused.
    """
    relative = posixpath.join(check_component(host, "experiment name", experiment),
                              run_dir_name(host, run_number))
    return relative, posixpath.join(base, relative)
