"""Starting Django, the web server and the engine: shared by ``serve``, ``engine`` and ``demo``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os

log = logging.getLogger(__name__)


def setup_django() -> None:
    """Configure Django (settings from the environment) and apply pending migrations."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "attpcdaq.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def freeze_startup_objects() -> None:
    """Take what start-up made (modules, Django, the coordinators of every server) out
    of the garbage collector's view, for the rest of the process's life.

    They live as long as the process, yet every full collection walked them all: a
    78 ms pause, seen amid the requests of a system-wide Describe on a hundred servers
    (bench/bench_engine.py (a)). Frozen, a full collection walks only what came later.
    Called once everything has started, after a collection, so no garbage is kept. The
    cost: a frozen object that later ends up in a garbage cycle is never freed (a
    removed server's coordinator, say); start-up's objects live as long as the process,
    so that is little.
    """
    gc.collect()
    gc.freeze()


def engine_settings():
    """Engine timing from the environment (``ATTPCDAQ_POLL_INTERVAL`` and friends)."""
    from .engine.coordinator import PollSettings
    from .engine.supervisor import EngineSettings

    def number(name: str, default: float) -> float:
        return float(os.environ.get(name, default))

    poll = PollSettings(interval=number("ATTPCDAQ_POLL_INTERVAL", 1.0),
                        fast_interval=number("ATTPCDAQ_FAST_POLL_INTERVAL", 0.2),
                        state_timeout=number("ATTPCDAQ_STATE_TIMEOUT", 3.0),
                        transition_timeout=number("ATTPCDAQ_TRANSITION_TIMEOUT", 120.0))
    return EngineSettings(poll=poll)


async def run_web_and_engine(host: str, port: int, *, web: bool = True, engine: bool = True,
                             ready: asyncio.Event | None = None) -> None:
    """Run the web server and/or the engine until cancelled or interrupted."""
    from .engine.supervisor import Engine

    the_engine = Engine(engine_settings()) if engine else None
    server = None
    if web:
        import uvicorn

        config = uvicorn.Config("attpcdaq.asgi:application", host=host, port=port,
                                log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
    try:
        if the_engine:
            await the_engine.start()
        if server:
            serving = asyncio.create_task(server.serve())
            # uvicorn offers a flag, not an event, for "listening".
            while not server.started and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if serving.done():
                serving.result()  # raises, e.g. the port is taken
                raise SystemExit(f"the web server could not listen on {host}:{port}")
        freeze_startup_objects()
        if ready:
            ready.set()
        if server:
            await serving
        else:
            await asyncio.Event().wait()
    finally:
        if server:
            server.should_exit = True
        if the_engine:
            with contextlib.suppress(Exception):
                await the_engine.stop()
