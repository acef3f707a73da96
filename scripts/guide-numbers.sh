#!/usr/bin/env bash
# The numbers of the guide's "Choosing" page (docs/guide/choosing.md): each
# seed topic's program in each model, run RUNS times (3) alternating the
# models, and the median of each figure:
#   wall   seconds, start to exit
#   cpu    user + system seconds of the program and every child it waited for
#   rss    the peak resident memory of the whole process tree (the program
#          and its children, summed; sampled every 2 ms from /proc)
# Usage: scripts/guide-numbers.sh [BUILD_DIR]     (default: build; the
#        examples must be built: make examples)
# RUNS=N sets the runs. Prints a Markdown table and the load average.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec python3 - "$root" "${1:-build}" "${RUNS:-3}" <<'PY'
import os, re, resource, statistics, subprocess, sys, time

root, build, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
ex = os.path.join(root, build, "examples") if not os.path.isabs(build) else os.path.join(build, "examples")

def tree_rss(pid):
    """The resident kB of pid and all its descendants."""
    kids, total = {}, 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError):
            pass
    todo = [pid]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total

def measure(argv):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0
    while p.poll() is None:
        peak = max(peak, tree_rss(p.pid))
        time.sleep(0.002)
    wall = time.monotonic() - t0
    out = p.stdout.read().decode()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode != 0:
        sys.exit(f"guide-numbers: {' '.join(argv)} failed ({p.returncode}):\n{out}")
    return wall, cpu, peak

server = subprocess.Popen([f"{ex}/models_fetch", "--serve", "--delay", "20"],
                          stdout=subprocess.PIPE)
m = re.search(r":(\d+)$", server.stdout.readline().decode().strip())
port = m.group(1)

topics = [
    ("counter with a lock", {
        "threads": ["counter_threads", "-j", "8", "-n", "1000000"],
        "processes": ["proc_counter", "-j", "2", "-n", "8", "-k", "1000000"],
        "async": ["counter_fibers", "-f", "8", "-n", "100000"]}),
    ("producer/consumer, 1M items", {
        m: ["models_prodcons", "--model", m] for m in ("threads", "processes", "async")}),
    ("CPU-bound map, 64 chunks", {
        m: ["models_map", "--model", m, "-j", "2"] for m in ("threads", "processes", "async")}),
    ("I/O-bound fetch, 1000 pages, 100 at once, 20 ms each", {
        m: ["models_fetch", "--model", m, "--port", port] for m in ("threads", "processes", "async")}),
]
try:
    print("| topic | model | command | wall s | cpu s | peak rss MiB |")
    print("|---|---|---|---|---|---|")
    for name, models in topics:
        res = {m: [] for m in models}
        for _ in range(runs):
            for m, argv in models.items():
                res[m].append(measure([f"{ex}/{argv[0]}"] + argv[1:]))
        for m, argv in models.items():
            w, c, r = (statistics.median(x[i] for x in res[m]) for i in range(3))
            shown = " ".join("PORT" if a == port else a for a in argv)
            print(f"| {name} | {m} | `{shown}` | {w:.3f} | {c:.3f} | {r / 1024:.1f} |")
finally:
    server.kill()
    server.wait()
print(f"\n{runs} runs each, models alternating, medians; load average "
      f"{os.getloadavg()[0]:.2f} at the end; {os.cpu_count()} CPUs.")
PY
