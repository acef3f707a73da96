#!/usr/bin/env python3
"""resp_diff: a differential tester of kvd against a real redis-server 7.

Starts both servers on free loopback ports, then for FUZZ_SECONDS runs
random cases: valid and malformed RESP and inline requests over the
commands kvd implements. Each case flushes both stores, sends the same
bytes to each on a fresh connection (in one write, or split into random
small writes with short pauses so that the server sees partial reads),
reads the replies until the expected number arrived, EOF, or a quiet
period, and compares them byte for byte. A divergence is minimised (frames
dropped, then bytes) and printed with the seed, the case number and a
reproduction. The last line is "resp-diff: N cases, D divergences".

Excluded by design (see docs/kvd.md, "Differential testing"):
- commands kvd does not implement (COMMAND, INFO, CONFIG, ...): cases never
  name them on purpose, and a divergence whose first differing reply is
  kvd's "unknown command" for a command redis-server has is counted as
  excluded, not as a divergence (a mutation can make one, e.g. LPUSHX);
- the limits documented as kvd's own (512 KiB arguments, 65,536 arguments,
  4 MiB requests, the output limit): cases stay below them;
- timing: every positive expiry is at least 1000 s away, so TTL is stable,
  and PTTL is only sent in cases that set no positive expiry;
- KEYS lists keys in hash order: its replies are compared as sorted sets.

usage: resp_diff.py --kvd PATH [--redis redis-server] [--seconds S]
                    [--seed N] [--case N] [--replay PYTHON-BYTES-LITERAL]
"""
import argparse
import ast
import os
import random
import select
import socket
import subprocess
import sys
import threading
import time

QUIET = 0.01  # s without a byte that ends an open-ended read
CONFIRM_QUIET = 0.25  # the same, when confirming a divergence
CASE_CAP = 3.0  # s: no case reads longer

# ---------------------------------------------------------------- servers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_ping(port, proc, what):
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("resp-diff: %s exited with %s" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    sys.exit("resp-diff: %s did not answer on port %d" % (what, port))


class Servers:
    def __init__(self, kvd, redis):
        self.procs = []
        k = subprocess.Popen([kvd, "--port", "0"], stdout=subprocess.PIPE)
        self.procs.append(k)
        line = k.stdout.readline().decode()
        if not line.startswith("listening on "):
            self.stop()
            sys.exit("resp-diff: kvd printed %r" % line)
        self.kvd_port = int(line.split()[2])
        for _ in range(5):
            port = free_port()
            r = subprocess.Popen(
                [redis, "--port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--logfile", "/dev/null"],
                stdout=subprocess.DEVNULL)
            time.sleep(0.1)
            if r.poll() is None:
                break
        self.procs.append(r)
        self.redis_port = port
        wait_ping(self.kvd_port, k, "kvd")
        wait_ping(port, r, "redis-server")
        self.ports = (self.kvd_port, self.redis_port)

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ---------------------------------------------------------------- replies


def parse_reply(buf, i):
    """End of the RESP2 reply at buf[i:], or None if incomplete."""
    if i >= len(buf):
        return None
    nl = buf.find(b"\r\n", i)
    if nl < 0:
        return None
    t, line = buf[i:i + 1], buf[i + 1:nl]
    if t in (b"+", b"-", b":"):
        return nl + 2
    try:
        n = int(line)
    except ValueError:
        return len(buf)  # garbage: take all of it, the comparison tells
    if t == b"$":
        if n < 0:
            return nl + 2
        return nl + 2 + n + 2 if len(buf) >= nl + 2 + n + 2 else None
    if t == b"*":
        j = nl + 2
        for _ in range(max(n, 0)):
            j = parse_reply(buf, j)
            if j is None:
                return None
        return j
    return len(buf)


def split_replies(buf):
    out, i = [], 0
    while i < len(buf):
        j = parse_reply(buf, i)
        if j is None:
            out.append(buf[i:])
            break
        out.append(buf[i:j])
        i = j
    return out


def flush(port):
    with socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        got = b""
        while not got.endswith(b"\r\n"):
            d = s.recv(64)
            if not d:
                break
            got += d


def exchange(port, chunks, nreplies, quiet):
    """Sends chunks [(bytes, pause_s)], returns everything read: until
    `nreplies` complete replies (then a short grace for extra bytes), EOF,
    or QUIET seconds of silence once all is sent."""
    s = socket.create_connection(("127.0.0.1", port), 2)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    got, k, off, counted, count_pos = b"", 0, 0, 0, 0
    start = last = time.time()
    next_send = start
    sending = True
    try:
        while True:
            now = time.time()
            if now - start > CASE_CAP:
                break
            if nreplies is not None and counted >= nreplies and not sending:
                # a grace read: a server sending more than it should
                r, _, _ = select.select([s], [], [], 0.002)
                if not r:
                    break
            want_w = sending and now >= next_send
            timeout = quiet if not sending else max(0.0, next_send - now)
            if want_w:
                timeout = 0.05
            r, w, _ = select.select([s], [s] if want_w else [], [],
                                    min(timeout, 0.05))
            if r:
                try:
                    d = s.recv(1 << 20)
                except (ConnectionResetError, BlockingIOError):
                    d = b""
                if not d:
                    break
                got += d
                last = time.time()
                if nreplies is not None:
                    while True:
                        j = parse_reply(got, count_pos)
                        if j is None:
                            break
                        counted += 1
                        count_pos = j
            if w:
                data, _pause = chunks[k]
                try:
                    off += s.send(data[off:])
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    sending = False
                    continue
                if off == len(data):
                    k, off = k + 1, 0
                    last = time.time()
                    if k == len(chunks):
                        sending = False
                    else:
                        next_send = time.time() + chunks[k][1]
            if not sending and not r and time.time() - last >= quiet and (
                    nreplies is None or counted < nreplies):
                break
    finally:
        settle(s)
    return got


def settle(s):
    """Half-closes and reads to EOF, so that the server has run all it will
    of this connection's input before the next case flushes the store (on a
    loaded machine it may still be reading when the replies look done).
    What arrives now is not compared: at EOF a server may drop replies."""
    try:
        s.shutdown(socket.SHUT_WR)
        s.setblocking(True)
        s.settimeout(2)
        while s.recv(1 << 20):
            pass
    except OSError:
        pass
    s.close()


# ---------------------------------------------------------------- cases

KEYS = [b"a", b"b", b"k", b"key:1", b"l", b"\xff\x00z"]
KVD_CMDS = {b"ping", b"echo", b"get", b"set", b"del", b"exists", b"incr",
            b"decr", b"incrby", b"decrby", b"mget", b"mset", b"expire",
            b"pexpire", b"ttl", b"pttl", b"persist", b"keys", b"dbsize",
            b"flushall", b"quit", b"command", b"type", b"lpush", b"rpush",
            b"llen", b"lrange"}


class Gen:
    def __init__(self, rnd):
        self.r = rnd
        self.timed = False  # a positive expiry was set in this case

    def key(self):
        return self.r.choice(KEYS)

    def val(self):
        r = self.r
        c = r.random()
        if c < 0.5:
            return r.choice([b"v", b"hello", b"", b"1", b"-7", b"10",
                             b"9223372036854775807", b"a b", b"\r\n\x00"])
        if c < 0.8:
            return self.intish()
        if c < 0.97:
            return bytes(r.randrange(256) for _ in range(r.randrange(12)))
        return b"x" * r.randrange(1000, 40000)

    def intish(self):
        r = self.r
        return r.choice([b"0", b"1", b"-1", b"007", b"+1", b" 1", b"1 ",
                         b"-0", b"", b"abc", b"12a", b"1.5",
                         b"9223372036854775807", b"-9223372036854775808",
                         b"9223372036854775808", b"-9223372036854775809",
                         b"99999999999999999999", str(r.randrange(-50, 50))
                         .encode(), str(r.randrange(1 << 62)).encode()])

    def ttl_arg(self, ms):
        """An expiry argument: far away, non-positive, or not a number."""
        r = self.r
        c = r.random()
        if c < 0.55:
            self.timed = True
            return str(r.randrange(1000, 100000) * (1000 if ms else 1)).encode()
        if c < 0.7:
            return r.choice([b"0", b"-1", b"-100"])
        return r.choice([b"abc", b"", b"1.5", b"+5", b"9223372036854775807",
                         b"-9223372036854775808", b"99999999999999999999",
                         b"9223372036854775", b"007"])

    def case_name(self, name):
        r = self.r
        if r.random() < 0.3:
            return bytes(ch ^ 0x20 if r.random() < 0.5 and chr(ch).isalpha()
                         else ch for ch in name)
        return name

    def command(self, pttl_ok):
        r = self.r
        K, V = self.key, self.val
        c = r.randrange(30)
        if c == 0:
            return [b"PING"] + ([V()] if r.random() < 0.3 else []) + \
                ([V()] if r.random() < 0.1 else [])
        if c == 1:
            return [b"ECHO"] + [V() for _ in range(r.choice([0, 1, 1, 2]))]
        if c in (2, 3):
            return [b"GET", K()] + ([V()] if r.random() < 0.05 else [])
        if c in (4, 5, 6):
            a = [b"SET", K(), V()]
            for _ in range(r.choice([0, 0, 1, 1, 2, 3])):
                o = r.choice([b"EX", b"PX", b"NX", b"XX", b"KEEPTTL", b"GET",
                              b"EXAT", b"PXAT", b"ex", b"bogus"])
                a.append(o)
                if o.upper() in (b"EX", b"PX") and r.random() < 0.9:
                    a.append(self.ttl_arg(o.upper() == b"PX"))
                elif o.upper() in (b"EXAT", b"PXAT") and r.random() < 0.9:
                    # absolute: far future or the past
                    if r.random() < 0.5:
                        self.timed = True
                        t = int(time.time()) + r.randrange(1000, 100000)
                        a.append(str(t * (1000 if o == b"PXAT" else 1))
                                 .encode())
                    else:
                        a.append(r.choice([b"1", b"0", b"-1", b"x"]))
            return a
        if c == 7:
            return [b"DEL"] + [K() for _ in range(r.randrange(0, 4))]
        if c == 8:
            return [b"EXISTS"] + [K() for _ in range(r.randrange(0, 4))]
        if c in (9, 10):
            return [r.choice([b"INCR", b"DECR"]), K()] + \
                ([V()] if r.random() < 0.05 else [])
        if c == 11:
            return [r.choice([b"INCRBY", b"DECRBY"]), K(), self.intish()]
        if c == 12:
            return [b"MGET"] + [K() for _ in range(r.randrange(0, 4))]
        if c == 13:
            a = [b"MSET"]
            for _ in range(r.randrange(0, 3)):
                a += [K(), V()]
            if r.random() < 0.2:
                a.append(K())
            return a
        if c in (14, 15):
            ms = r.random() < 0.4
            a = [b"PEXPIRE" if ms else b"EXPIRE", K(), self.ttl_arg(ms)]
            for _ in range(r.choice([0, 0, 1, 1, 2, 3])):
                a.append(r.choice([b"NX", b"XX", b"GT", b"LT", b"nx", b"zz"]))
            if r.random() < 0.05:
                a = a[:2]
            return a
        if c == 16:
            return [b"TTL", K()]
        if c == 17 and pttl_ok:
            return [b"PTTL", K()]
        if c == 18:
            return [b"PERSIST", K()]
        if c == 19:
            pat = r.choice([b"*", b"k*", b"?", b"[ab]", b"[^a]*", b"\\*",
                            b"key:[0-9]", b"*e*", b"[", b"[a-", b"\\",
                            b"a[", b"[]]", b"*\xff*"])
            return [b"KEYS", pat] + ([K()] if r.random() < 0.05 else [])
        if c == 20:
            return [b"DBSIZE"] + ([K()] if r.random() < 0.05 else [])
        if c == 21:
            return [b"TYPE", K()]
        if c in (22, 23):
            return [r.choice([b"LPUSH", b"RPUSH"]), K()] + \
                [V() for _ in range(r.randrange(0, 4))]
        if c == 24:
            return [b"LLEN", K()]
        if c == 25:
            return [b"LRANGE", K(), self.intish(), self.intish()]
        if c == 26:
            name = b"qq" + bytes(r.choice(b"abcxyz")
                                 for _ in range(r.randrange(0, 5)))
            return [name] + [V() for _ in range(r.randrange(0, 4))]
        if c == 27:
            return [b"FLUSHALL"] + ([r.choice([b"SYNC", b"ASYNC", b"x"])]
                                    if r.random() < 0.5 else [])
        if c == 28 and r.random() < 0.2:
            return [b"QUIT"]
        return [b"GET", K()]

    def resp(self, args):
        return b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a), a) for a in args)

    def inline(self, args):
        """An inline line for args, or None if they cannot be written."""
        r = self.r
        out = []
        for a in args:
            if a and not any(ch in b" \t\r\n\v\f\"'\\\x00" for ch in a) \
                    and r.random() < 0.7:
                out.append(a)
            elif b"\x00" in a or b"\n" in a:
                out.append(b'"' + b"".join(
                    b"\\x%02x" % ch if ch in b"\x00\n\"\\" or ch > 126
                    else bytes([ch]) for ch in a) + b'"')
            elif r.random() < 0.5 and b"'" not in a:
                out.append(b"'" + a + b"'")
            else:
                out.append(b'"' + a.replace(b"\\", b"\\\\")
                           .replace(b'"', b'\\"').replace(b"\r", b"\\r")
                           + b'"')
        sep = r.choice([b" ", b" ", b"  ", b"\t"])
        line = sep.join(out) + r.choice([b"\r\n", b"\r\n", b"\n"])
        # Redis reads 16 KiB at a time: whether a line of 48-96 KiB is "too
        # big" depends on how the reads fall, so long lines go as RESP
        return line if len(line) < 32768 else self.resp(args)

    def junk_inline(self):
        r = self.r
        alpha = b"ab \t\"'\\x0fn\r\v\f\x00$*:" + b"GET SET ECHO PING"
        n = r.randrange(1, 30)
        line = bytes(r.choice(alpha) for _ in range(n))
        return r.choice([b"ECHO ", b"PING ", b"SET a ", b""]) + line + \
            r.choice([b"\r\n", b"\n", b"\r\n", b""])

    def junk_multibulk(self):
        r = self.r
        counts = [b"1", b"2", b"3", b"01", b"-0", b"-1", b"0", b"+1", b" 1",
                  b"1 ", b"", b"-", b"x", b"2147483648", b"9" * 25,
                  b"\x001", b"1\x00", b"65536"]
        lens = [b"4", b"04", b"-0", b"-1", b"-2", b"+4", b" 4", b"", b"x",
                b"3", b"5", b"99", b"\x004", b"524289",
                b"9223372036854775807", b"92233720368547758070"]
        c = r.randrange(6)
        if c == 0:
            return b"*" + r.choice(counts) + b"\r\n" + self.resp(
                [b"ECHO", b"hi"])[4:]
        if c == 1:
            return b"*2\r\n$4\r\nECHO\r\n$" + r.choice(lens) + b"\r\nabcd\r\n"
        if c == 2:  # a wrong type byte where '$' belongs
            return b"*2\r\n$4\r\nECHO\r\n" + bytes([r.choice(b"+:*-x\r\0 ")]) \
                + b"4\r\nabcd\r\n"
        if c == 3:  # an odd line end
            return b"*1\r" + bytes([r.choice(b"x\r\0 ")]) + b"$4\r" + \
                bytes([r.choice(b"\nx")]) + b"PING\r\n"
        if c == 4:  # a count line that never ends
            return r.choice([b"*", b"*1\r\n$"]) + \
                b"1" * r.choice([10, 70000]) + r.choice([b"", b"\r\n"])
        return b"*" + r.choice(counts) + b"\r\n$" + r.choice(lens) + b"\r\n"

    def mutate(self, frame):
        r = self.r
        b = bytearray(frame)
        for _ in range(r.choice([1, 1, 2, 3])):
            if not b:
                break
            i = r.randrange(len(b))
            op = r.randrange(3)
            if op == 0:
                b[i] = r.choice(b"\r\n\x00 \"'\\*$-0123456789ax")
            elif op == 1:
                del b[i]
            else:
                b.insert(i, r.choice(b"\r\n\x00 \"'\\*$-019x"))
        return bytes(b)

    def case(self):
        """A list of frames and, if every frame is a well-formed request,
        the number of replies expected."""
        r = self.r
        self.timed = False
        frames, valid = [], True
        pttl_ok = r.random() < 0.3
        for _ in range(r.choice([1, 2, 3, 5, 8, 20])):
            args = [self.case_name(a) if i == 0 else a
                    for i, a in enumerate(self.command(pttl_ok))]
            c = r.random()
            if c < 0.55:
                frames.append(self.resp(args))
            elif c < 0.8:
                frames.append(self.inline(args))
            elif c < 0.88:
                frames.append(self.mutate(self.resp(args)))
                valid = False
            elif c < 0.93:
                frames.append(self.mutate(self.inline(args)))
                valid = False
            elif c < 0.97:
                frames.append(self.junk_inline())
                valid = False
            else:
                frames.append(self.junk_multibulk())
                valid = False
            if args[0].lower() == b"quit" and valid:
                break
        if pttl_ok and self.timed:
            return None  # PTTL with a positive expiry: timing-dependent
        return frames, (len(frames) if valid else None)

    def chunks(self, data):
        r = self.r
        if r.random() < 0.5 or len(data) < 2:
            return [(data, 0)]
        out, i = [], 0
        while i < len(data):
            n = r.choice([1, 1, 2, 3, 7, 16, 256])
            out.append((data[i:i + n], r.choice([0, 0, 0.0005])))
            i += n
            if len(out) > 400:  # keep a case short
                out.append((data[i:], 0))
                break
        return out


# ---------------------------------------------------------------- compare


def normalise(data, frames_text):
    """KEYS replies compared as sets: sorts the elements of every array
    reply that answers a KEYS command, when the replies can be told."""
    if b"keys" not in frames_text.lower():
        return data
    out = []
    for rep in split_replies(data):
        if rep.startswith(b"*"):
            elems = split_replies(rep[rep.find(b"\r\n") + 2:])
            rep = rep[:rep.find(b"\r\n") + 2] + b"".join(sorted(elems))
        out.append(rep)
    return b"".join(out)


class Runner:
    def __init__(self, srv, redis_cmds, kvd_cmds):
        self.srv = srv
        self.redis_only = redis_cmds - kvd_cmds

    def run(self, chunks, nreplies, quiet=QUIET):
        """Both servers at once, each on a fresh connection."""
        res = [b"", b""]

        def one(i):
            flush(self.srv.ports[i])
            res[i] = exchange(self.srv.ports[i], chunks, nreplies, quiet)

        t = threading.Thread(target=one, args=(1,))
        t.start()
        one(0)
        t.join()
        return res

    def differs(self, data, chunks=None, nreplies=None, quiet=QUIET):
        """None if both agree; else (kvd, redis, excluded?)."""
        k, rd = self.run(chunks or [(data, 0)], nreplies, quiet)
        k, rd = normalise(k, data), normalise(rd, data)
        if k == rd:
            return None
        return k, rd, self.excluded(k, rd)

    def excluded(self, k, rd):
        ka, ra = split_replies(k), split_replies(rd)
        for x, y in zip(ka, ra):
            if x != y:
                break
        else:
            return False
        if x.startswith(b"-ERR unknown command '"):
            name = x[len(b"-ERR unknown command '"):].split(b"'")[0]
            return name.lower() in self.redis_only
        return False

    def minimise(self, frames, budget=250):
        """Drops frames, then bytes, while kvd and redis still differ."""
        tries = [0]

        def bad(fr):
            if tries[0] >= budget:
                return False
            tries[0] += 1
            d = self.differs(b"".join(fr))
            if d is None or d[2]:
                return False
            d = self.differs(b"".join(fr), quiet=CONFIRM_QUIET)
            return d is not None and not d[2]

        if not bad(frames):
            return None  # only with the original split or timing
        i = 0
        while i < len(frames) and len(frames) > 1:
            t = frames[:i] + frames[i + 1:]
            if bad(t):
                frames = t
            else:
                i += 1
        for fi in range(len(frames)):  # drop arguments of RESP frames
            args = resp_args(frames[fi])
            j = 1
            while args is not None and j < len(args):
                t = args[:j] + args[j + 1:]
                fr = frames[:fi] + [encode(t)] + frames[fi + 1:]
                if bad(fr):
                    frames, args = fr, t
                else:
                    j += 1
        data = b"".join(frames)
        n = max(len(data) // 2, 1)
        while n >= 1 and tries[0] < budget:
            i, shrunk = 0, False
            while i < len(data):
                t = data[:i] + data[i + n:]
                if t and bad([t]):
                    data, shrunk = t, True
                else:
                    i += n
            if not shrunk:
                n //= 2
        return data


def encode(args):
    return b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def resp_args(frame):
    """The arguments of a well-formed RESP request, else None."""
    if encode([]) == frame or not frame.startswith(b"*"):
        return None
    try:
        nl = frame.index(b"\r\n")
        n, i, args = int(frame[1:nl]), nl + 2, []
        for _ in range(n):
            nl = frame.index(b"\r\n", i)
            ln = int(frame[i + 1:nl])
            args.append(frame[nl + 2:nl + 2 + ln])
            i = nl + 2 + ln + 2
    except ValueError:
        return None
    return args if encode(args) == frame else None


def redis_commands(port):
    with socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(b"*2\r\n$7\r\nCOMMAND\r\n$4\r\nLIST\r\n")
        got = b""
        s.settimeout(2)
        while parse_reply(got, 0) is None:
            d = s.recv(1 << 16)
            if not d:
                break
            got += d
    names = set()
    for rep in split_replies(got[got.find(b"\r\n") + 2:]):
        names.add(rep.split(b"\r\n")[1].lower())
    return names


def kvd_commands(port):
    """The names in kvd's COMMAND reply (each entry's first element)."""
    with socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(b"*1\r\n$7\r\nCOMMAND\r\n")
        got = b""
        s.settimeout(2)
        while parse_reply(got, 0) is None:
            d = s.recv(1 << 16)
            if not d:
                break
            got += d
    names = set()
    for rep in split_replies(got[got.find(b"\r\n") + 2:]):
        parts = rep.split(b"\r\n")
        if len(parts) > 2:
            names.add(parts[2].lower())
    return names


def show(label, b):
    text = repr(b)
    if len(text) > 400:
        text = text[:400] + "... (%d bytes)" % len(b)
    print("  %-6s %s" % (label, text))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvd", required=True)
    ap.add_argument("--redis", default="redis-server")
    ap.add_argument("--seconds", type=float,
                    default=float(os.environ.get("FUZZ_SECONDS", "60")))
    ap.add_argument("--seed", type=int)
    ap.add_argument("--case", type=int, help="run only this case of the seed")
    ap.add_argument("--from", dest="start", type=int, default=0,
                    help="skip the seed's cases before this one")
    ap.add_argument("--replay", help="a Python bytes literal to send once")
    ap.add_argument("--max-report", type=int, default=10)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 32)
    print("resp-diff: seed %d (rerun: --seed %d)" % (seed, seed), flush=True)
    srv = Servers(a.kvd, a.redis)
    try:
        runner = Runner(srv, redis_commands(srv.redis_port),
                        KVD_CMDS | kvd_commands(srv.kvd_port))
        if a.replay:
            data = ast.literal_eval(a.replay)
            k, rd = runner.run([(data, 0)], None, CONFIRM_QUIET)
            show("input", data)
            show("kvd", k)
            show("redis", rd)
            return 0 if k == rd else 1
        rnd = random.Random(seed)
        gen = Gen(rnd)
        cases = divs = excl = flaky = 0
        seen = set()
        deadline = time.time() + a.seconds
        n = -1
        while time.time() < deadline:
            n += 1
            made = gen.case()
            if made is None:
                continue
            frames, nrep = made
            chunks = gen.chunks(b"".join(frames))
            if (a.case is not None and n != a.case) or n < a.start:
                continue
            cases += 1
            d = runner.differs(b"".join(frames), chunks, nrep)
            if not srv.alive():
                print("resp-diff: a server died in case %d" % n)
                show("input", b"".join(frames))
                divs += 1
                break
            if d is None:
                if a.case is not None:
                    break
                continue
            if d[2]:
                excl += 1
                continue
            d = runner.differs(b"".join(frames), chunks, nrep, CONFIRM_QUIET)
            if d is None or d[2]:
                d = runner.differs(b"".join(frames), None, None, CONFIRM_QUIET)
            if d is None:
                flaky += 1  # timing (a loaded machine): not reproduced
                continue
            if d[2]:
                excl += 1
                continue
            small = runner.minimise(list(frames))
            if small is None:
                small = b"".join(frames)
                note = " (only when split as in the case: %s)" % (
                    [len(ch) for ch, _ in chunks][:60])
                k, rd = d[0], d[1]
            else:
                note = ""
                k, rd = runner.run([(small, 0)], None, CONFIRM_QUIET)
            sig = (k[:40], rd[:40])
            divs += 1
            if sig in seen or divs > a.max_report:
                continue
            seen.add(sig)
            print("DIVERGENCE in case %d (--seed %d --case %d)%s:"
                  % (n, seed, n, note))
            show("input", small)
            show("kvd", k)
            show("redis", rd)
            print("  replay: %s --kvd %s --replay %r" % (
                sys.argv[0], a.kvd, repr(small)), flush=True)
            if a.case is not None:
                break
        print("resp-diff: %d cases, %d divergences (%d excluded: commands "
              "only redis-server has; %d not reproduced)"
              % (cases, divs, excl, flaky))
        return 1 if divs else 0
    finally:
        srv.stop()


if __name__ == "__main__":
    sys.exit(main())
