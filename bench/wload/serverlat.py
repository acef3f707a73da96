#!/usr/bin/env python3
"""The second, independent latency measurement of the open-loop bench:
wrk2's schedule, rebuilt at the server from delayd's own timestamps.

  serverlat.py RECORD_FILE RATE WARMUP_S DURATION_S

An open-loop client at RATE sends request k at t0 + k/RATE (one loop, in
order). The server cannot see t0, but no request arrives before it is due,
so with the arrivals sorted, t0 is at most min_k(arrival_k - k/RATE); that
bound is taken as t0 (the least late request is taken as on time: an
estimate that errs low, by the least lateness, tens of microseconds). The
k-th arrival's latency is then its response's write minus t0 + k/RATE:
every delay from the intended send time to the response leaving the server
(the client's lateness, the loopback, the server's wake-ups, the 5 ms),
measured on the server's clock, without the client's figures. The window
is the client's: responses written in [t0 + WARMUP, t0 + WARMUP +
DURATION]. Also the server's own hold (write minus arrival), which leaves
the client and the way there out. Prints one line:
  count p50_ms p99_ms hold_p50_ms hold_p99_ms
"""
import math
import sys


def pct(xs, p):
    """The ceil(p/100*n)-th smallest, as wload reports (xs sorted)."""
    if not xs:
        return 0.0
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


def main():
    path, rate, warm, dur = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    recs = sorted(tuple(map(int, l.split())) for l in open(path) if l.strip())
    if not recs:
        sys.exit("serverlat: no records")
    step = 1e9 / rate
    t0 = min(a - k * step for k, (a, _) in enumerate(recs))
    lo, hi = t0 + warm * 1e9, t0 + (warm + dur) * 1e9
    lat, hold = [], []
    for k, (a, d) in enumerate(recs):
        if lo <= d <= hi:
            lat.append((d - (t0 + k * step)) / 1e6)
            hold.append((d - a) / 1e6)
    lat.sort()
    hold.sort()
    print(len(lat), *("%.4f" % pct(x, p) for x in (lat, hold) for p in (50, 99)))


main()
