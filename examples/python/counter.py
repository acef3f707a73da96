"""counter.py [-f TASKS] [-n INCREMENTS] — the asyncio twin of
examples/counter_fibers.c: why even cooperative tasks need a lock: TASKS
(10) tasks each add 1 to a shared counter INCREMENTS (1000) times as read,
await (a yield standing for I/O), write back. Under an asyncio.Lock the
total is exact; without it, tasks overwrite each other's updates and most
increments are lost. Prints both totals; exit 1 if the locked one is
wrong."""
import argparse
import asyncio
import contextlib
import sys

counter = 0


async def add(lock, increments):
    global counter
    for _ in range(increments):
        async with lock or contextlib.nullcontext():
            v = counter
            await asyncio.sleep(0)
            counter = v + 1


async def run(tasks, increments, locked):
    global counter
    counter = 0
    lock = asyncio.Lock() if locked else None
    await asyncio.gather(*(add(lock, increments) for _ in range(tasks)))
    return counter


def main():
    p = argparse.ArgumentParser(description="a shared counter with and without a lock")
    p.add_argument("-f", type=int, default=10)
    p.add_argument("-n", type=int, default=1000)
    a = p.parse_args()
    if not 1 <= a.f <= 10000 or a.n < 0:
        p.error("bad -f or -n")
    locked, unlocked = asyncio.run(run(a.f, a.n, True)), asyncio.run(run(a.f, a.n, False))
    print(f"with the lock: {locked}, without: {unlocked} (expected {a.f * a.n})")
    sys.exit(0 if locked == a.f * a.n else 1)


if __name__ == "__main__":
    main()
