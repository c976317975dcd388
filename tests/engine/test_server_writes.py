"""The engine's writes of server rows: merged, in order, none lost, errors to their writers.

While one batch is on the database thread the next gathers (engine/database.py): these
tests hold the thread with a real query's worth of work and check what that changes.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from attpcdaq.daq.models import ECCServer
from attpcdaq.engine.database import EngineDatabase

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def held():
    """An engine database whose thread is held until ``release()``, and three servers."""
    servers = await sync_to_async(lambda: [
        ECCServer.objects.create(name=f"CoBo[{n}]", ip_address="127.0.0.1", port=46000 + n)
        for n in range(3)])()
    db = EngineDatabase()
    entered, gate = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        gate.wait(30)

    holding = asyncio.ensure_future(db.run(hold))
    assert await asyncio.to_thread(entered.wait, 30)
    yield db, servers, gate.set
    gate.set()
    await holding
    await db.close()


async def turns_until(predicate) -> None:
    """Let the event loop turn (no time passes) until ``predicate()`` holds."""
    for _ in range(100):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("not after 100 turns of the loop")


def rows() -> dict[str, tuple]:
    return {s.name: (s.state, s.last_error) for s in ECCServer.objects.order_by("name")}


async def test_writes_made_while_a_batch_waits_are_kept_in_order(held):
    db, (a, b, c), release = held
    first = asyncio.ensure_future(db.update_server(a.pk, state=2))
    await turns_until(lambda: db._writing)  # the first batch is on its way to the thread
    later = [asyncio.ensure_future(db.update_server(a.pk, state=3)),
             asyncio.ensure_future(db.update_server(a.pk, last_error="late")),
             asyncio.ensure_future(db.update_server(b.pk, state=4))]
    await turns_until(lambda: db._flushed is not None)  # gathered for the next batch
    await asyncio.sleep(0)
    assert db._pending.keys() == {a.pk, b.pk} and not first.done()
    release()
    await asyncio.gather(first, *later)
    assert await sync_to_async(rows)() == {
        "CoBo[0]": (3, "late"), "CoBo[1]": (4, ""), "CoBo[2]": (c.state, c.last_error)}


async def test_a_batch_that_fails_fails_its_writers_and_the_next_is_written(held):
    db, (a, b, _), release = held
    bad = asyncio.ensure_future(db.update_server(a.pk, state="not a number"))
    await turns_until(lambda: db._writing)
    good = asyncio.ensure_future(db.update_server(b.pk, state=5))
    release()
    with pytest.raises(ValueError):
        await bad
    await good
    assert (await sync_to_async(rows)())["CoBo[1]"] == (5, "")
