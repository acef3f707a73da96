"""echo_fibers.py — the asyncio twin of examples/echo_fibers.c: a TCP echo
server with one task per connection, and its client, which sends LINES lines
one at a time and checks every echo.

  echo_fibers.py [--port P]                 serve on 127.0.0.1:P (0: any free port)
  echo_fibers.py --client PORT [--lines N]  N lines (default 10000)
"""
import argparse
import asyncio
import sys


async def serve(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def server(port):
    srv = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
    print(f"echo_fibers: listening on 127.0.0.1:{srv.sockets[0].getsockname()[1]}", flush=True)
    await srv.serve_forever()


async def client(port, lines):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(lines):
        line = f"line {i}\n".encode()
        writer.write(line)
        await writer.drain()
        back = await reader.readexactly(len(line))
        if back != line:
            sys.exit(f"echo_fibers: line {i} came back as {back!r}")
    writer.close()
    print(f"echo_fibers: {lines} lines echoed and checked")


def main():
    p = argparse.ArgumentParser(description="TCP echo server and checking client")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--client", type=int, metavar="PORT")
    p.add_argument("--lines", type=int, default=10000)
    a = p.parse_args()
    asyncio.run(client(a.client, a.lines) if a.client else server(a.port))


if __name__ == "__main__":
    main()
