"""``attpcdaq demo``: the whole system on this machine, against emulated hardware.

Starts emulated ECC servers for four CoBos and a MuTAnT on loopback and a data
router per board (working directories under the data directory), a database in
the data directory, the engine and the web server, with an experiment and a
data model pointing at the emulators; prints the URL, a login and an API token.
A run's files end up in ``DATA_DIR/routers/DataRouterN/demo experiment/run_NNNN/``
and its configuration in ``DATA_DIR/config-backups/demo experiment/run_NNNN/``.
Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from .emulator.process import EmulatorProcess

BOARDS = ["CoBo[0]", "CoBo[1]", "CoBo[2]", "CoBo[3]", "Mutant[master]"]
DEMO_USER = "demo"


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``attpcdaq demo``."""
    parser = commands.add_parser("demo", help="run everything against emulated hardware",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000, help="web server port (8000)")
    parser.add_argument("--data-dir", type=Path,
                        help="where the database and data go (default: a temporary "
                        "directory, deleted on exit)")
    parser.add_argument("--transition-seconds", default="1",
                        help="how long each emulated transition takes (1)")
    parser.set_defaults(run=run)


def _describe_name(board: str) -> str:
    """The describe file a board's server uses in the example configurations."""
    if board.startswith("CoBo["):
        return "cobo" + board[5:-1]
    return "mutant"


def start_emulators(data_dir: Path, transition_seconds: str):
    """The ECC servers (one process) and a data router per board; return processes, ports."""
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    with (logs / "ecc.log").open("ab") as log:
        ecc = EmulatorProcess(["ecc", "--count", str(len(BOARDS)), "--transition-seconds",
                               transition_seconds, "-v"], len(BOARDS), log)
    processes, router_ports = [ecc], []
    for number in range(len(BOARDS)):
        workdir = data_dir / "routers" / f"DataRouter{number}"
        workdir.mkdir(parents=True, exist_ok=True)
        with (logs / f"DataRouter{number}.log").open("ab") as log:
            router = EmulatorProcess(["router", "--data-dir", str(workdir), "-v"], 1, log)
        processes.append(router)
        router_ports += router.ports
    return processes, ecc.ports, router_ports


def build_model(data_dir: Path, ecc_ports: list[int], router_ports: list[int]) -> tuple[str, str]:
    """The demo experiment, servers, routers, sources and user; returns (password, token)."""
    from django.contrib.auth.models import Permission, User

    from .daq.models import ApiToken, DataRouter, DataSource, ECCServer, Experiment
    from .emulator.server import EXAMPLE_CONFIG_DIR

    experiment, _ = Experiment.objects.get_or_create(name="demo experiment")
    experiment.activate()
    for number, (board, port, router_port) in enumerate(zip(BOARDS, ecc_ports, router_ports,
                                                             strict=True)):
        name = "MuTAnT" if board.startswith("Mutant") else board
        server, _ = ECCServer.objects.update_or_create(name=name, defaults={
            "ip_address": "127.0.0.1", "port": port, "config_dir": str(EXAMPLE_CONFIG_DIR),
            "log_path": str(data_dir / "logs" / "ecc.log")})
        router, _ = DataRouter.objects.update_or_create(name=f"DataRouter{number}", defaults={
            "ip_address": "127.0.0.1", "port": router_port,
            "working_dir": str(data_dir / "routers" / f"DataRouter{number}"),
            "log_path": str(data_dir / "logs" / f"DataRouter{number}.log")})
        DataSource.objects.filter(ecc_server=server).delete()
        DataSource.objects.create(name=board, ecc_server=server, data_router=router)
    password = secrets.token_urlsafe(9)
    user, _ = User.objects.get_or_create(username=DEMO_USER)
    user.set_password(password)
    user.is_staff = user.is_superuser = True
    user.save()
    user.user_permissions.add(Permission.objects.get(codename="control_daq"))
    return password, ApiToken.issue(user)


async def select_configs() -> None:
    """Fetch each server's configuration sets over SOAP and preselect the board's own."""
    from asgiref.sync import sync_to_async

    from .daq.models import ECCServer
    from .get import EccClient

    servers = await sync_to_async(lambda: list(ECCServer.objects.prefetch_related(
        "data_sources")))()
    for server in servers:
        async with EccClient(server.url) as ecc:
            configs = await ecc.get_config_ids()
        board = server.data_sources.all()[0].name
        wanted = f"{_describe_name(board)}/experiment/experiment"

        def store(server=server, configs=configs, wanted=wanted):
            rows = server.store_configs(configs)
            server.selected_config = next(r for r in rows if str(r) == wanted)
            server.save(update_fields=["selected_config"])
        await sync_to_async(store)()


def run(args: argparse.Namespace) -> int:
    """Run the demo until interrupted."""
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="attpcdaq-demo-"))
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # as settings makes DATA_DIR
    os.environ["ATTPCDAQ_DATA_DIR"] = str(data_dir.resolve())
    os.environ.setdefault("ATTPCDAQ_TRANSITION_TIMEOUT", "30")
    from .runtime import setup_django

    setup_django()
    processes, ecc_ports, router_ports = start_emulators(data_dir, args.transition_seconds)
    try:
        password, token = build_model(data_dir, ecc_ports, router_ports)
        return asyncio.run(_serve(args.port, password, token))
    except KeyboardInterrupt:
        return 0
    finally:
        for emulator in processes:
            emulator.stop()
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _serve(port: int, password: str, token: str) -> int:
    from .runtime import run_web_and_engine

    await select_configs()
    ready = asyncio.Event()
    serving = asyncio.create_task(run_web_and_engine("127.0.0.1", port, ready=ready))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait([serving, waiting], return_when=asyncio.FIRST_COMPLETED)
    if serving.done():
        waiting.cancel()
        serving.result()
        return 1
    print(f"URL: http://127.0.0.1:{port}/", flush=True)
    print(f"Login: {DEMO_USER} / {password}", flush=True)
    print(f"Token: {token}", flush=True)
    await serving
    return 0
