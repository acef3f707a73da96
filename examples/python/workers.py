"""workers.py [-n JOBS] [-j N] — the asyncio twin of
examples/workers_fibers.c: a worker pool: JOBS tasks (20), each waiting for
one of N (4) semaphore permits before its work (a short sleep standing for
I/O), so at most N run at once. Prints the peak and checks it."""
import argparse
import asyncio
import sys

running = peak = done = 0


async def worker(i, permits):
    global running, peak, done
    async with permits:
        running += 1
        peak = max(peak, running)
        await asyncio.sleep((10 + i * 7 % 20) / 1000)
        running, done = running - 1, done + 1


async def run(jobs, width):
    permits = asyncio.Semaphore(width)
    await asyncio.gather(*(worker(i, permits) for i in range(jobs)))


def main():
    p = argparse.ArgumentParser(description="a worker pool bounded by a semaphore")
    p.add_argument("-n", type=int, default=20)
    p.add_argument("-j", type=int, default=4)
    a = p.parse_args()
    if not 0 <= a.n <= 100000 or a.j < 1:
        p.error("bad -n or -j")
    asyncio.run(run(a.n, a.j))
    print(f"{done} jobs done, at most {peak} at once (limit {a.j})")
    sys.exit(0 if done == a.n and peak <= a.j else 1)


if __name__ == "__main__":
    main()
