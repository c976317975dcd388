"""The ``attpcdaq`` command: one entry point for every tool of the project.

Subcommands: ``emulate`` (emulators of the GET programs), ``ecc`` (a terminal
client of one ECC server) and, once Django is set up, ``serve``, ``engine``,
``demo``, ``token``, ``manage`` (any Django management command) and ``setup``
(export or import the setup as JSON); ``status``, ``transition``, ``start``, ``stop``
and ``runs``: the run, over a server's API.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .check_cli import add_check_parser
from .demo import add_demo_parser
from .ecc_cli import add_ecc_parser
from .emulator.cli import add_emulate_parser
from .run_cli import add_run_parsers
from .server_cli import add_server_parsers
from .setup_cli import add_setup_parser


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the whole command line."""
    parser = argparse.ArgumentParser(prog="attpcdaq", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_emulate_parser(commands)
    add_ecc_parser(commands)
    add_server_parsers(commands)
    add_demo_parser(commands)
    add_setup_parser(commands)
    add_run_parsers(commands)
    add_check_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
