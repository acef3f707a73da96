"""run_many.py [-j N] [-t SECONDS] [CMD...] — the asyncio twin of
examples/run_many.c: runs each shell command, at most N (3) at a time, each
with a timeout (2 s; a command still running then is killed, with its
process group): one task per
command, a semaphore for the slots, wait_for on the exit. Prints how each
ended; exit 0 if every command exited 0. Without commands it runs eight
samples."""
import argparse
import asyncio
import os
import signal
import sys
import time

SAMPLES = ["echo one", "sleep 0.2", "true", "exit 3",
           "sleep 0.3; echo two", "ls / >/dev/null", "sleep 5", "kill -9 $$"]


async def run_one(cmd, slots, timeout):
    async with slots:
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", cmd, process_group=0)
        try:
            rc = await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)  # the command's whole process group
            await proc.wait()
            print(f"{cmd}: timed out after {timeout:g} s, killed", flush=True)
            return False
        secs = time.monotonic() - t0
        if rc < 0:
            print(f"{cmd}: killed by signal {-rc} ({secs:.2f} s)", flush=True)
        else:
            print(f"{cmd}: exit {rc} ({secs:.2f} s)", flush=True)
        return rc == 0


async def run_all(cmds, jobs, timeout):
    slots = asyncio.Semaphore(jobs)
    return await asyncio.gather(*(run_one(c, slots, timeout) for c in cmds))


def main():
    p = argparse.ArgumentParser(description="run commands, a few at a time, each with a timeout")
    p.add_argument("-j", type=int, default=3)
    p.add_argument("-t", type=float, default=2)
    p.add_argument("cmd", nargs="*")
    a = p.parse_args()
    if a.j < 1 or not 0 < a.t < 1e6:
        p.error("bad -j or -t")
    sys.exit(not all(asyncio.run(run_all(a.cmd or SAMPLES, a.j, a.t))))


if __name__ == "__main__":
    main()
