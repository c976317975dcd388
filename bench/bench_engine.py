"""The engine at scale, against emulated ECC servers in another process.

(a) a system-wide Describe on 100 servers with 1 s transitions, from the command
    row's creation to its outcome, divided by 1 s (target <= 1.1); the median of
    ROUNDS Describes (each followed by an Undo back to Idle, not timed), since one
    on this shared machine varies by +-0.05;
(b) the delay from a state change on an emulator to ``/api/status`` showing it,
    median and 95th percentile (target p95 <= 1 s), through the real web server;
(c) the engine's CPU seconds per wall second while polling 200 servers
    (target <= 0.25), the engine running alone in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from _common import ROOT, cpu_seconds, ecc_emulators, percentile, use_temporary_data_dir, wait_until


def setup(urls: list[str]) -> None:
    """A fresh database with an experiment and one server per URL, configured."""
    import django
    from django.core.management import call_command

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "attpcdaq.settings")
    django.setup()
    call_command("migrate", verbosity=0)
    from attpcdaq.daq.models import ConfigId, ECCServer, Experiment

    Experiment.objects.create(name="bench", is_active=True)
    for number, url in enumerate(urls):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        server = ECCServer.objects.create(name=f"CoBo[{number:03d}]", ip_address="127.0.0.1",
                                          port=port)
        server.selected_config = ConfigId.objects.create(
            ecc_server=server, describe="cobo0", prepare="experiment", configure="experiment")
        server.save()


#: How many Describes (a) times; it prints their median and range.
ROUNDS = 5


def median_and_range(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.3f} (from {min(ratios):.3f} to {max(ratios):.3f})"


async def bare_protocol(urls: list[str], seconds: float) -> list[float]:
    """What the protocol alone costs here: every server stepped at once by a bare
    EccClient (Describe, confirmed by GetState, then Undo back), over one transition's.

    Not a target: it shows how much of (a) is the engine's and how much the client's
    and the emulators' own (a hundred servers served by one process, on this
    machine's two cores).
    """
    from attpcdaq.get import ConfigId, EccClient, State, step_for

    config = ConfigId("cobo0", "experiment", "experiment")
    clients = [EccClient(url) for url in urls]

    async def describe_and_back() -> float:
        started = time.monotonic()
        await asyncio.gather(*(c.run_step(step_for("Describe", State.IDLE), config, None)
                               for c in clients))
        elapsed = time.monotonic() - started
        await asyncio.gather(*(c.run_step(step_for("Undo", State.DESCRIBED), None, None)
                               for c in clients))
        return elapsed / seconds

    await describe_and_back()  # the first, while the emulators' process warms up
    return [await describe_and_back() for _ in range(ROUNDS)]


async def system_describe(count: int, seconds: float) -> list[float]:
    """(a): times of system-wide Describes through the engine, over one transition's."""
    from asgiref.sync import sync_to_async

    from attpcdaq.daq import services
    from attpcdaq.daq.models import Command, ECCServer
    from attpcdaq.engine.supervisor import Engine
    from attpcdaq.runtime import engine_settings, freeze_startup_objects

    async def outcome(target: str) -> Command:
        command = await sync_to_async(services.request_transition)(None, target)
        while True:
            done = await sync_to_async(Command.objects.filter(
                pk=command.pk, status__in=["done", "failed"]).first)()
            if done:
                assert done.status == "done", done.error
                return done
            # The ratio is read from the command's own timestamps: polling faster would
            # only take the engine's CPU (this process is the engine's) for nothing.
            await asyncio.sleep(0.1)

    engine = Engine(engine_settings())
    await engine.start()
    freeze_startup_objects()  # as `attpcdaq engine` does once started
    try:
        online = sync_to_async(lambda: ECCServer.objects.filter(is_online=True).count())
        while await online() < count:
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # past start-up: every server's configuration sets fetched
        ratios = []
        for _ in range(ROUNDS):
            done = await outcome("described")
            print(f"    claimed after {(done.started - done.created).total_seconds():.3f} s, "
                  f"ran {(done.finished - done.started).total_seconds():.3f} s")
            ratios.append((done.finished - done.created).total_seconds() / seconds)
            await outcome("idle")
            await asyncio.sleep(1)  # the polls of every server back to their usual pace
        return ratios
    finally:
        await engine.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def status_delay(url: str, samples: int) -> list[float]:
    """(b): delays from an emulator's state change to /api/status showing it."""
    from django.contrib.auth.models import User

    from attpcdaq.daq.models import ApiToken, ECCServer
    from attpcdaq.get import ConfigId, EccClient, Operation

    token = ApiToken.issue(User.objects.create_user("bench"))
    server_url = ECCServer.objects.order_by("name").first().url
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "attpcdaq", "serve", "--port", str(port)],
                             cwd=ROOT, stdout=subprocess.DEVNULL)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status",
                                     headers={"Authorization": f"Bearer {token}"})

    def state_seen() -> int | None:
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                body = json.load(answer)
        except OSError:
            return None
        return next(s["state"] for s in body["ecc_servers"] if s["url"] == server_url)

    async def change(operation: Operation) -> float:
        async with EccClient(server_url) as ecc:
            await ecc.transition(operation, ConfigId("cobo0", "experiment", "experiment"), None)
            return time.monotonic()

    try:
        wait_until(lambda: state_seen() == 1, 30, "the server to show the emulator Idle")
        delays = []
        for n in range(samples):
            operation, expected = (Operation.DESCRIBE, 2) if n % 2 == 0 else (Operation.UNDO, 1)
            changed = asyncio.run(change(operation))
            while state_seen() != expected:
                time.sleep(0.005)
            delays.append(time.monotonic() - changed)
            time.sleep(random.uniform(0.1, 1.1))  # sample every phase of the poll cycle
        return delays
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(20)


def engine_cpu(count: int, seconds: float) -> float:
    """(c): CPU seconds per wall second of `attpcdaq engine` polling ``count`` servers."""
    engine = subprocess.Popen([sys.executable, "-m", "attpcdaq", "engine"], cwd=ROOT)
    try:
        from attpcdaq.daq.models import ECCServer

        wait_until(lambda: ECCServer.objects.filter(is_online=True).count() == count, 60,
                   "every server online")
        time.sleep(2)  # past start-up: configuration fetches, first writes
        cpu0, wall0 = cpu_seconds(engine.pid), time.monotonic()
        time.sleep(seconds)
        return (cpu_seconds(engine.pid) - cpu0) / (time.monotonic() - wall0)
    finally:
        engine.send_signal(signal.SIGINT)
        engine.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["a", "b", "c"])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    args = parser.parse_args()
    if args.only is None:
        # Each part in a process of its own: its own data dir, settings and database.
        for part in "abc":
            subprocess.run([sys.executable, __file__, "--only", part, "--samples",
                            str(args.samples), "--cpu-seconds", str(args.cpu_seconds)],
                           check=True)
        return
    use_temporary_data_dir()
    os.environ.setdefault("ATTPCDAQ_LOG_LEVEL", "WARNING")
    if args.only == "a":
        with ecc_emulators(100, "1") as urls:
            floor = asyncio.run(bare_protocol(urls, 1.0))
            setup(urls)
            ratios = asyncio.run(system_describe(100, 1.0))
        print("    the protocol alone (a bare client, Describe + GetState on all at once): "
              f"{median_and_range(floor)}")
        share = statistics.median(ratios) - statistics.median(floor)
        print(f"    the engine's own share: {share:+.3f} (the medians' difference)")
        print(f"(a) system-wide Describe, 100 servers, 1 s transitions: ratio "
              f"{median_and_range(ratios)} over {ROUNDS} (target <= 1.1)", flush=True)
    elif args.only == "b":
        with ecc_emulators(11, "1") as urls:  # ten CoBos and a MuTAnT
            setup(urls)
            delays = status_delay(urls[0], args.samples)
        print(f"(b) state change to /api/status: median {percentile(delays, 0.5):.3f} s, "
              f"p95 {percentile(delays, 0.95):.3f} s over {len(delays)} changes "
              "(target p95 <= 1 s)", flush=True)
    else:
        with ecc_emulators(200, "1") as urls:
            setup(urls)
            per_second = engine_cpu(200, args.cpu_seconds)
        print(f"(c) engine CPU polling 200 servers: {per_second:.3f} CPU s per s "
              "(target <= 0.25)", flush=True)


if __name__ == "__main__":
    main()
