"""``attpcdaq setup export FILE`` and ``attpcdaq setup import FILE``: the whole setup
(ECC servers, data routers, data sources) as JSON, ``-`` for stdout or stdin.

Exit status: 0 done; 1 the import was rejected (every problem printed, one a line, with
its path) or refused (a run is open, a server is not Idle), nothing changed; 2 the file
could not be read or written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .runtime import setup_django


def add_setup_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``setup`` and its two subcommands."""
    parser = commands.add_parser("setup", help="export or import the whole setup as JSON",
                                 description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write the setup to FILE ('-': stdout)")
    export.add_argument("file", metavar="FILE")
    export.set_defaults(run=_export)
    imported = actions.add_parser("import", help="replace the setup with FILE ('-': stdin), "
                                  "checked completely first")
    imported.add_argument("file", metavar="FILE")
    imported.add_argument("--check", action="store_true",
                          help="only check the file: print its problems, change nothing")
    imported.set_defaults(run=_import)


def _error(message: str) -> None:
    print(f"attpcdaq setup: {message}", file=sys.stderr)


def _export(args: argparse.Namespace) -> int:
    setup_django()
    from .daq import setup

    text = setup.dumps(setup.export_setup())
    if args.file == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    target = Path(args.file)
    try:
        # Written beside the target and renamed: a reader never sees half a file.
        fd, temporary = tempfile.mkstemp(dir=target.parent or Path("."),
                                         prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        _error(f"cannot write {args.file}: {exc.strerror or exc}")
        return 2
    print(f"wrote the setup to {args.file}", file=sys.stderr)
    return 0


def _import(args: argparse.Namespace) -> int:
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        _error(f"cannot read {args.file}: {exc.strerror or exc}")
        return 2
    setup_django()
    from .daq import setup

    name = "the input" if args.file == "-" else args.file
    try:
        document = setup.parse(data)
        if args.check:
            print(f"{name} is a valid setup", file=sys.stderr)
            return 0
        summary = setup.apply_setup(document, check=False)
    except setup.InvalidSetup as exc:
        count = len(exc.problems)
        _error(f"{name} was not imported ({count} problem{'s' if count != 1 else ''}, "
               "nothing changed):")
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except setup.SetupRefused as exc:
        _error(f"{name} was not imported (nothing changed): {exc}")
        return 1
    print(f"imported {name}: {summary.text()}")
    return 0
