"""``attpcdaq serve``, ``engine``, ``token`` and ``manage``: the Django side of the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys

from .runtime import run_web_and_engine, setup_django


def add_server_parsers(commands: argparse._SubParsersAction) -> None:
    """Register the Django-side subcommands."""
    serve = commands.add_parser("serve", help="run the web server and the engine")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--no-engine", action="store_true",
                       help="web server only (the engine runs elsewhere: attpcdaq engine)")
    serve.set_defaults(run=_serve)

    engine = commands.add_parser("engine", help="run the engine alone")
    engine.set_defaults(run=_engine)

    token = commands.add_parser("token", help="print a new API token for a user")
    token.add_argument("username")
    token.set_defaults(run=_token)

    manage = commands.add_parser("manage", help="run a Django management command",
                                 add_help=False)
    manage.add_argument("arguments", nargs=argparse.REMAINDER)
    manage.set_defaults(run=_manage)


def _serve(args: argparse.Namespace) -> int:
    setup_django()
    print(f"serving on http://{args.host}:{args.port}/", flush=True)
    asyncio.run(run_web_and_engine(args.host, args.port, engine=not args.no_engine))
    return 0


def _engine(args: argparse.Namespace) -> int:
    setup_django()
    asyncio.run(run_web_and_engine("", 0, web=False))
    return 0


def _token(args: argparse.Namespace) -> int:
    setup_django()
    from django.contrib.auth import get_user_model

    from .daq.models import ApiToken

    user = get_user_model().objects.filter(username=args.username).first()
    if user is None:
        print(f"attpcdaq token: no user named {args.username!r}", file=sys.stderr)
        return 2
    print(ApiToken.issue(user))
    return 0


def _manage(args: argparse.Namespace) -> int:
    from django.core.management import execute_from_command_line

    if args.arguments[:1] != ["makemigrations"]:
        setup_django()  # a fresh data dir gets its tables before createsuperuser & co.
    else:
        import os

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "attpcdaq.settings")
    execute_from_command_line(["attpcdaq manage", *args.arguments])
    return 0
