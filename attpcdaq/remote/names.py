"""Checks on the names that become path components, the run directory's layout, .graw names.

An experiment name or a configuration file name becomes one component of a
path on a DAQ computer. Anything a person can type is accepted (spaces,
quotes, ``$``, ``;``, unicode) because every use is quoted or goes through
SFTP; what could leave the directory or be read as an option is refused.

A data router names its files ``CoBo<N>_AsAd<M>_<local time to the ms>_<NNNN>.graw``
(the MuTAnT's ``MuTanT_<time>_<NNNN>.graw``); older routers wrote
``CoBo_AsAd<M>_...``, without the CoBo number, still found in 2015-2020 data.
:func:`parse_graw_name` reads both.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from .exceptions import UnsafeName

__all__ = ["GrawName", "check_component", "check_process_name", "is_graw_name",
           "parse_graw_name", "run_dir", "run_dir_name"]

# Which form the deployed routers write is not settled (GET-PROTOCOL.md): accept both.
# Nor is the MuTAnT's, documented only as "MuTanT_...": read as MuTanT_<time>_<NNNN>.
_GRAW_NAME = re.compile(
    r"(?:CoBo(?P<cobo>\d+)?_AsAd(?P<asad>\d+)|(?P<mutant>MuTanT))"
    r"_(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})_(?P<number>\d{4,})\.graw",
    re.ASCII)


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


def run_dir(host: str, base: str, experiment: object, run_number: object,
            folder: tuple[str, ...] = ()) -> tuple[str, str]:
    """Return ``(relative, absolute)`` of ``<base>/<experiment>/run_NNNN`` after checking both.

    With ``folder`` (components), ``<base>/<experiment>/<folder...>`` instead: where
    data that belongs to no run is set aside (``("unattributed", "2026-12-01T21-04-10")``).

    Raises
    ------
    UnsafeName
        When the experiment name, the run number or a folder component is refused.
    """
    parts = ([check_component(host, "folder name", part) for part in folder] if folder
             else [run_dir_name(host, run_number)])
    relative = posixpath.join(check_component(host, "experiment name", experiment), *parts)
    return relative, posixpath.join(base, relative)


@dataclass(frozen=True, slots=True)
class GrawName:
    """What a data router's file name says.

    ``cobo`` is None in the older form (``CoBo_AsAd0_...``) and for the MuTAnT;
    ``asad`` is None for the MuTAnT. ``stamp`` is the time as written (local, to the
    millisecond, no zone) and ``number`` the file's place in its set, from 0.
    """

    cobo: int | None
    asad: int | None
    stamp: str
    number: int
    mutant: bool = False

    @property
    def older_form(self) -> bool:
        """Whether the name is the older routers' ``CoBo_AsAd<M>_...``, without the CoBo."""
        return not self.mutant and self.cobo is None

    @property
    def file_set(self) -> tuple[str, int | None, int | None, str]:
        """What the files of one set share: all but the number."""
        return ("MuTanT" if self.mutant else "CoBo", self.cobo, self.asad, self.stamp)


def parse_graw_name(name: str) -> GrawName | None:
    """Read a data router's file name, current or older form; None for any other name.

    >>> parse_graw_name("CoBo3_AsAd1_2021-03-01T15:30:12.345_0002.graw")
    GrawName(cobo=3, asad=1, stamp='2021-03-01T15:30:12.345', number=2, mutant=False)
    >>> parse_graw_name("CoBo_AsAd1_2017-03-01T15:30:12.345_0000.graw").older_form
    True
    """
    match = _GRAW_NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        return None
    cobo, asad = match["cobo"], match["asad"]
    return GrawName(None if cobo is None else int(cobo), None if asad is None else int(asad),
                    match["stamp"], int(match["number"]), match["mutant"] is not None)


def is_graw_name(name: str) -> bool:
    """Whether ``name`` is a data router's file name, in the current or the older form."""
    return parse_graw_name(name) is not None
