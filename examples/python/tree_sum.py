"""tree_sum.py DIR — the asyncio twin of examples/tree_sum.c: the CRC-32 of
every regular file under DIR (symbolic links are not followed), at most 8
files at once: listing and reading in threads (as weft's fs futures do),
the CRC in the executor, one task per file. On a terminal, stderr shows the
progress. Prints the file count, the bytes and the sum of the CRCs; exit 1
if a file or directory could not be read."""
import argparse
import asyncio
import os
import sys
import zlib

IN_FLIGHT = 8
files = size = total = errors = 0


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


async def sum_file(path, slots):
    global files, size, total, errors
    try:
        data = await asyncio.to_thread(read_bytes, path)
        crc = await asyncio.get_running_loop().run_in_executor(None, zlib.crc32, data)
        files, size, total = files + 1, size + len(data), total + crc
        if sys.stderr.isatty():
            print(f"\r{files} files, {size} bytes", end="", file=sys.stderr)
    except OSError as e:
        print(f"tree_sum: {path}: {e.strerror}", file=sys.stderr)
        errors += 1
    finally:
        slots.release()


async def walk(d, slots, tasks):
    global errors
    try:
        entries = await asyncio.to_thread(lambda: sorted(os.scandir(d), key=lambda e: e.name))
    except OSError as e:
        print(f"tree_sum: {d}: {e.strerror}", file=sys.stderr)
        errors += 1
        return
    for e in entries:
        path = f"{d}/{e.name}"
        if e.is_dir(follow_symlinks=False):
            await walk(path, slots, tasks)
        elif e.is_file(follow_symlinks=False):
            await slots.acquire()
            tasks.add(asyncio.create_task(sum_file(path, slots)))


async def tree_sum(d):
    slots, tasks = asyncio.Semaphore(IN_FLIGHT), set()
    await walk(d, slots, tasks)
    await asyncio.gather(*tasks)  # every file task has finished


def main():
    p = argparse.ArgumentParser(description="CRC-32 of every file in a tree")
    p.add_argument("dir")
    asyncio.run(tree_sum(p.parse_args().dir))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{files} files, {size} bytes, crc32 sum {total}")
    sys.exit(errors != 0)


if __name__ == "__main__":
    main()
