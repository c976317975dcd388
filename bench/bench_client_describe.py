"""Describe on 100 emulated ECC servers at once, through the client.

Ideal: every server's transition runs concurrently, so the whole takes one
transition's time. Prints total / one transition (target <= 1.2).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from _common import ecc_emulators

from attpcdaq.get import ConfigId, DataLinkSet, EccClient, Operation


async def describe_all(urls: list[str]) -> float:
    clients = [EccClient(url) for url in urls]
    try:
        config = ConfigId("cobo0", "experiment", "experiment")
        started = time.perf_counter()
        await asyncio.gather(*(c.transition(Operation.DESCRIBE, config, DataLinkSet(()))
                               for c in clients))
        elapsed = time.perf_counter() - started
        states = await asyncio.gather(*(c.get_state() for c in clients))
        assert all(s.state.label == "Described" for s in states), "not all Described"
        return elapsed
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    with ecc_emulators(args.count, str(args.seconds)) as urls:
        elapsed = asyncio.run(describe_all(urls))
    print(f"client Describe on {args.count} servers: {elapsed:.3f} s for {args.seconds:g} s "
          f"transitions: ratio {elapsed / args.seconds:.3f} (target <= 1.2)")


if __name__ == "__main__":
    main()
