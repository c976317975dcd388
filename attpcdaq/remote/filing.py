"""Filing a run's data files: the plan (pure), the shell script that carries it out, the check.

The plan compares the working directory with the run directory before
anything moves, so that a clash stops the filing with nothing changed. The
script is POSIX sh fed to ``sh -s`` on standard input: the login shell (maybe
csh on an old Mac) only ever sees the fixed words ``sh -s``, every name in
the script is ``shlex.quote``-d, ``mv`` takes many files per call in batches
well below ARG_MAX, and ``mv -n`` never overwrites a file that appeared after
the plan was made. One round trip files thousands of files.

``mv -n`` skips such a file silently (status 0 on older coreutils), so the script
ends by naming what is left in the working directory, and :func:`unmoved` finds
the planned files among them: one listing of what remains (a handful of names, or
the next run's) instead of a test of every file moved, which cost a fifth of the
filing of 10 000 files (bench/bench_file_run_ssh.py).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .exceptions import FilingConflict, RemoteCommandError, RemoteError, RemoteFileError
from .results import Entry, FileInfo, FilingResult

__all__ = ["FilingPlan", "filing_result", "filing_script", "plan_filing", "script_error",
           "unmoved"]

#: Bytes of arguments per mv or rm call. Linux allows 2 MiB in all and 128 KiB
#: per argument, macOS 1 MiB in all: 64 KiB leaves room for the environment.
MAX_ARG_BYTES = 64 * 1024

_EXIT_CD = 90
_EXIT_DIFFERS = 91
_EXIT_MKDIR = 92
_EXIT_MV = 93
_EXIT_RM = 94
_REPORT = re.compile(rb"(differs|left):([^\0]*)\0")


@dataclass(frozen=True, slots=True)
class FilingPlan:
    """What to do: files to move, duplicates to check and delete, files already filed."""

    directory: str
    relative: str
    to_move: tuple[FileInfo, ...]
    duplicates: tuple[FileInfo, ...]
    already_there: tuple[FileInfo, ...]

    @property
    def destination(self) -> str:
        """The run directory's path."""
        return posixpath.join(self.directory, self.relative)


def plan_filing(host: str, directory: str, relative: str, sources: Iterable[Entry],
                existing: Iterable[Entry], pattern: str) -> FilingPlan:
    """Compare the working directory with the run directory and decide what to do.

    Raises
    ------
    FilingConflict
        When a file to move has a namesake in the run directory that is not a
        regular file of the same size; the message names every such file.
    """
    in_dest = {e.name: e for e in existing}
    to_move: list[FileInfo] = []
    duplicates: list[FileInfo] = []
    clashes: list[str] = []
    wanted = (e for e in sources if e.regular and fnmatch.fnmatchcase(e.name, pattern))
    for src in sorted(wanted, key=lambda e: e.name):
        there = in_dest.get(src.name)
        if there is None:
            to_move.append(src.info())
        elif there.regular and there.size == src.size:
            duplicates.append(src.info())
        else:
            what = f"{there.size} bytes" if there.regular else "not a regular file"
            clashes.append(f"{src.name!r} ({src.size} bytes here, {what} there)")
    destination = posixpath.join(directory, relative)
    if clashes:
        raise FilingConflict(host, destination, "already holds different files of the same "
                             "name; nothing was moved: " + ", ".join(clashes))
    already = tuple(sorted(e.info() for e in existing
                           if e.regular and fnmatch.fnmatchcase(e.name, pattern)))
    return FilingPlan(directory, relative, tuple(to_move), tuple(duplicates), already)


def _batches(words: Iterable[str], limit: int = MAX_ARG_BYTES) -> Iterator[list[str]]:
    """Group quoted words so that each group's bytes stay under ``limit``."""
    batch: list[str] = []
    size = 0
    for word in words:
        length = len(word.encode(errors="surrogateescape")) + 1
        if batch and size + length > limit:
            yield batch
            batch, size = [], 0
        batch.append(word)
        size += length
    if batch:
        yield batch


def filing_script(plan: FilingPlan) -> str:
    """Return the sh script that carries out ``plan``, every name quoted."""
    q = shlex.quote
    dest = q(plan.relative)
    # Each batch of names is set once as "$@", for its command (and cmp's check).
    lines = ["set -u", f"cd -- {q(plan.directory)} || exit {_EXIT_CD}"]
    for batch in _batches(q(f.name) for f in plan.duplicates):
        # Same name and size is not proof: compare the bytes before deleting a copy.
        lines += ["set -- " + " ".join(batch),
                  f'for f do cmp -s -- "$f" {dest}/"$f" || '
                  f"{{ printf 'differs:%s\\0' \"$f\" >&2; exit {_EXIT_DIFFERS}; }}; done"]
    lines.append(f"mkdir -p -- {dest} || exit {_EXIT_MKDIR}")
    for batch in _batches(q(f.name) for f in plan.to_move):
        # mv -n never overwrites a file that appeared in the run directory since the
        # plan; older coreutils then skip it with status 0: see the end and unmoved().
        lines += ["set -- " + " ".join(batch), f'mv -n -- "$@" {dest}/ || exit {_EXIT_MV}']
    for batch in _batches(q(f.name) for f in plan.duplicates):
        lines += ["set -- " + " ".join(batch), f'rm -f -- "$@" || exit {_EXIT_RM}']
    if plan.to_move:
        # What is left, every name (a pattern that matched nothing stays as written:
        # hence the test); unmoved() looks for the planned files among them.
        lines += ["for f in * .[!.]* ..?*; do "
                  "! [ -e \"$f\" ] || printf 'left:%s\\0' \"$f\" >&2; done", "exit 0"]
    return "\n".join(lines) + "\n"


def unmoved(host: str, plan: FilingPlan, stderr: bytes) -> RemoteFileError | None:
    """The error for a planned file the script left in place, or None when all went.

    A file is left when ``mv -n`` found one of its name in the run directory: it
    appeared there after the plan. Neither is touched; the filing is not complete.
    """
    left = {name.decode(errors="surrogateescape")
            for tag, name in _REPORT.findall(stderr) if tag == b"left"}
    stuck = [f.name for f in plan.to_move if f.name in left]
    if not stuck:
        return None
    more = f" (and {len(stuck) - 1} more)" if len(stuck) > 1 else ""
    return RemoteFileError(host, posixpath.join(plan.directory, stuck[0]),
                           f"was not moved: a file of that name appeared in the run "
                           f"directory meanwhile{more}")


def _reported(stderr: bytes, marker: bytes) -> str:
    """The file name the script reported after ``marker`` (NUL-terminated), or '?'."""
    found = _REPORT.findall(stderr)
    names = [name for tag, name in found if tag == marker]
    return names[-1].decode(errors="surrogateescape") if names else "?"


def script_error(host: str, plan: FilingPlan, exit_status: int | None,
                 stderr: bytes) -> RemoteError:
    """Turn a failed filing script's exit status into the error that explains it."""
    if exit_status == _EXIT_DIFFERS:
        name = _reported(stderr, b"differs")
        return FilingConflict(host, posixpath.join(plan.destination, name),
                              "same size as the working directory's file but other contents; "
                              "nothing was moved")
    steps = {_EXIT_CD: "cd into the working directory", _EXIT_MKDIR: "create the run directory",
             _EXIT_MV: "move the files", _EXIT_RM: "delete duplicates already filed"}
    step = steps.get(exit_status or 0, "run the filing script")
    return RemoteCommandError(host, f"filing {plan.directory!r}: could not {step}",
                              exit_status, stderr.decode(errors="replace"))


def filing_result(plan: FilingPlan) -> FilingResult:
    """The result of a plan the script carried out (it checked every move itself)."""
    return FilingResult(plan.directory, plan.destination, plan.to_move, plan.already_there,
                        plan.duplicates)
