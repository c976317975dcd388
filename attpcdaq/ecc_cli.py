"""``attpcdaq ecc``: talk to one ECC server from a terminal, for troubleshooting.

Exit status: 0 on success, 1 when the server answered with an error or ignored the
transition (its state does not allow it: the board did not move), 2 when it could
not be reached, timed out, answered badly, or the arguments were wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .get import (
    DEFAULT_STATE_TIMEOUT,
    DEFAULT_TRANSITION_TIMEOUT,
    ConfigId,
    DataLinkSet,
    EccClient,
    EccError,
    EccIgnored,
    EccRefused,
    Operation,
    XmlError,
    parse_configure_answer,
    parse_data_senders,
)

ACTIONS = ["state", "configs", *(op.name.lower() for op in Operation)]


def add_ecc_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``attpcdaq ecc``."""
    parser = commands.add_parser(
        "ecc", help="talk to one ECC server", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the server, http://HOST:PORT/")
    parser.add_argument("action", choices=ACTIONS, help="what to ask the server")
    parser.add_argument("--config", metavar="DESCRIBE/PREPARE/CONFIGURE",
                        help="configuration set sent with a transition")
    parser.add_argument("--links", type=Path, metavar="FILE",
                        help="DataLinkSet XML file sent with a transition")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help=f"give up after this long (default {DEFAULT_STATE_TIMEOUT:g} s, "
                        f"{DEFAULT_TRANSITION_TIMEOUT:g} s for transitions)")
    parser.set_defaults(run=run)


def _arguments(args: argparse.Namespace) -> tuple[ConfigId | None, DataLinkSet | None]:
    """Read --config and --links, raising XmlError or OSError on bad ones."""
    config = ConfigId.parse(args.config) if args.config else None
    links = DataLinkSet.from_xml(args.links.read_bytes()) if args.links else None
    return config, links


async def _act(args: argparse.Namespace, config, links) -> str:
    """Do the action and return the line to print."""
    timeouts = {}
    if args.timeout is not None:
        timeouts = {"state_timeout": args.timeout, "transition_timeout": args.timeout}
    async with EccClient(args.url, **timeouts) as ecc:
        if args.action == "state":
            reply = await ecc.get_state()
            if reply.transitioning:
                return f"{reply.state.label} ({reply.transition.label})"
            return reply.state.label
        if args.action == "configs":
            return "\n".join(str(config) for config in await ecc.get_config_ids())
        operation = Operation[args.action.upper()]
        reply, now = await ecc.run_operation(operation, config, links)
        return f"{operation} done, now {now.state.label}{_detail(operation, reply.text)}"


def _detail(operation: Operation, text: str) -> str:
    """What Describe and Configure answered, in a few words (Configure's answer holds
    whole configuration files)."""
    try:
        if operation is Operation.DESCRIBE and text:
            return f" (boards: {', '.join(parse_data_senders(text)) or 'none'})"
        if operation is Operation.CONFIGURE and text:
            answer = parse_configure_answer(text)
            links = ", ".join(f"{link.sender} -> {link.router_name}"
                              for link in answer.links or ())
            files = ", ".join(f.filename for f in answer.files)
            return f" (links: {links or 'none'}; files used: {files or 'none'})"
    except XmlError as exc:
        return f" (its answer could not be read: {exc})"
    return ""


def run(args: argparse.Namespace) -> int:
    """Run ``attpcdaq ecc`` and return its exit status."""
    try:
        config, links = _arguments(args)
    except (XmlError, OSError) as exc:
        print(f"attpcdaq ecc: {exc}", file=sys.stderr)
        return 2
    try:
        output = asyncio.run(_act(args, config, links))
    except EccIgnored as exc:
        print(f"error: the server {exc.detail}", file=sys.stderr)
        return 1
    except EccRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except EccError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 2
    if output:
        print(output)
    return 0
