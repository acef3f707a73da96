"""Python asyncio (and uvloop) peers of bench_fibers, and the echo servers of
the fibers echo rows. One run per invocation, one JSON line on stdout in the
bench harness's format, after an unreported warm-up pass.

Usage: peers.py asyncio|uvloop await|spawn|mem N
       peers.py uvloop|asyncio echo-streams|echo-proto   (prints the port)
"""
import asyncio
import gc
import json
import sys
import time


def emit(bench, impl, value, unit, better):
    print(json.dumps({"bench": bench, "impl": impl, "value": value,
                      "unit": unit, "better": better, "runs": 1}, separators=(",", ":")), flush=True)


def check(cond, what):
    if not cond:
        print(f"peers.py: FAILED: {what}", file=sys.stderr)
        sys.exit(1)


async def await_settled(n):
    fut = asyncio.get_running_loop().create_future()
    fut.set_result(1)
    total = 0
    t0 = time.perf_counter()
    for _ in range(n):
        total += await fut
    t = time.perf_counter() - t0
    check(total == n, f"await sum {total}")
    return n / t


async def spawn(n):
    ran = 0

    async def body(i):
        nonlocal ran
        ran += 1
        return i

    t0 = time.perf_counter()
    for _ in range(0, n, 1000):
        await asyncio.gather(*[asyncio.create_task(body(i)) for i in range(1000)])
    t = time.perf_counter() - t0
    check(ran == n, f"spawn ran {ran}")
    return n / t


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


async def mem(n):
    gate = asyncio.Event()
    woken = 0

    async def body():
        nonlocal woken
        await gate.wait()
        woken += 1

    gc.collect()
    rss0 = rss()
    tasks = [asyncio.create_task(body()) for _ in range(n)]
    await asyncio.sleep(0)  # every task starts and parks on the event
    gc.collect()
    per = (rss() - rss0) / n
    gate.set()
    await asyncio.gather(*tasks)
    check(woken == n, f"woken {woken}")
    return per


async def echo_streams():
    async def handle(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def echo_proto():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(EchoProtocol, "127.0.0.1", 0, backlog=4096)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()


async def main(impl, what, n):
    if what == "echo-streams":
        return await echo_streams()
    if what == "echo-proto":
        return await echo_proto()
    if what == "await":
        await await_settled(n)
        emit("fibers_await_settled_1m", impl, await await_settled(n), "awaits/s", "higher")
    elif what == "spawn":
        await spawn(n)
        emit("fibers_spawn_1m", impl, await spawn(n), "spawns/s", "higher")
    elif what == "mem":
        emit("fibers_idle_mem_100k", impl, await mem(n), "B", "lower")
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("asyncio", "uvloop"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    impl, what = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000000
    if impl == "uvloop":
        import uvloop
        uvloop.install()
    asyncio.run(main(impl, what, n))
