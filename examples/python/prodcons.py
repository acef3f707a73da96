"""prodcons.py [-n ITEMS] — the asyncio twin of examples/prodcons_fibers.c:
producer/consumer through a bounded queue (64 items), both tasks on one
loop: the producer awaits each put (so it waits while the queue is full),
the consumer each get, until the 0 that ends production. Checks the count
and the sum."""
import argparse
import asyncio
import sys


async def producer(q, n):
    for i in range(1, n + 2):  # then the end mark, 0
        await q.put(i if i <= n else 0)


async def consumer(q):
    count = total = 0
    while item := await q.get():
        count, total = count + 1, total + item
    return count, total


async def run(n):
    q = asyncio.Queue(64)
    _, (count, total) = await asyncio.gather(producer(q, n), consumer(q))
    return count, total


def main():
    p = argparse.ArgumentParser(description="producer/consumer through a bounded queue")
    p.add_argument("-n", type=int, default=100000)
    n = p.parse_args().n
    if n < 0:
        p.error("ITEMS < 0")
    count, total = asyncio.run(run(n))
    print(f"consumed {count} items, sum {total}")
    sys.exit(0 if count == n and total == n * (n + 1) // 2 else 1)


if __name__ == "__main__":
    main()
