"""get.py [-j K] [-t SECONDS] URL... — the asyncio twin of
examples/get_fibers.c: a parallel downloader. Fetches every http:// URL
(HTTP/1.0 over asyncio streams), at most K (4) at a time, each within
SECONDS (10, connecting included), and saves each body in the current
directory under the URL's last path segment ("index.html" for "/"; a name
an earlier URL took gets ".N" appended, N the URL's position). Prints a
line per URL as it ends ("[done/N] NAME: STATUS, BYTES bytes", or the URL
and what went wrong), then a summary; exit 0 if every fetch got a 2xx
reply, else 1."""
import argparse
import asyncio
import sys
import time
from urllib.parse import urlsplit

done = failed = total = 0


async def fetch(url, name):
    u = urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise ValueError("not an http:// URL")
    reader, writer = await asyncio.open_connection(u.hostname, u.port or 80)
    try:
        writer.write(f"GET {u.path or '/'} HTTP/1.0\r\nHost: {u.hostname}:{u.port or 80}\r\n\r\n".encode())
        await writer.drain()
        status = int((await reader.readuntil(b"\r\n\r\n")).split()[1])
        size = 0
        with open(name, "wb") as f:
            while data := await reader.read(65536):
                size += f.write(data)
        return status, size
    finally:
        writer.close()


async def get_one(url, name, slots, n, timeout):
    global done, failed, total
    async with slots:
        try:
            status, size = await asyncio.wait_for(fetch(url, name), timeout)
            total += size
            line, ok = f"{name}: {status}, {size} bytes", 200 <= status < 300
        except asyncio.TimeoutError:
            line, ok = f"{url}: timed out after {timeout:g} s", False
        except (OSError, ValueError, asyncio.IncompleteReadError) as e:
            line, ok = f"{url}: {e}", False
        done, failed = done + 1, failed + (not ok)
        print(f"[{done}/{n}] {line}", flush=True)


async def get_all(urls, jobs, timeout):
    slots, names = asyncio.Semaphore(jobs), []
    for i, url in enumerate(urls):
        name = urlsplit(url).path.rsplit("/", 1)[-1] or "index.html"
        names.append(f"{name}.{i + 1}" if name in names else name)
    t0 = time.monotonic()
    await asyncio.gather(*(get_one(u, f, slots, len(urls), timeout) for u, f in zip(urls, names)))
    print(f"{len(urls)} URLs, {len(urls) - failed} ok, {failed} failed, {total} bytes in {time.monotonic() - t0:.2f} s")


def main():
    p = argparse.ArgumentParser(description="fetch URLs, a few at a time, each with a timeout")
    p.add_argument("-j", type=int, default=4)
    p.add_argument("-t", type=float, default=10)
    p.add_argument("url", nargs="+")
    a = p.parse_args()
    if not 1 <= a.j <= 1000 or not 0 < a.t < 1e6:
        p.error("bad -j or -t")
    asyncio.run(get_all(a.url, a.j, a.t))
    sys.exit(failed != 0)


if __name__ == "__main__":
    main()
