#!/usr/bin/env python3
"""Driver of scripts/fuzz-http.sh: an nginx differential and a fuzzer for
examples/httpd. See that script for what it checks."""
import argparse, os, random, re, signal, socket, subprocess, sys, tempfile, threading, time

MTIME = 1000000000  # Sun, 09 Sep 2001 01:46:40 GMT, as in tests/test_httpd.c
LM = "Sun, 09 Sep 2001 01:46:40 GMT"
SECRET = b"TOP-SECRET-OUTSIDE-ROOT"


def make_root(tmp):
    root = os.path.join(tmp, "root")
    for d in ("", "sub", "empty", "dir x"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    files = {"small.txt": b"hello\n", "big.bin": bytes((i * 7) & 255 for i in range(100000)),
             "with space.txt": b"spaces\n", "sub/index.html": b"<p>index</p>\n",
             "sub/inner.txt": b"inner\n", "dir x/index.html": b"<p>x</p>\n", "index.html": b"<p>top</p>\n"}
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    with open(os.path.join(tmp, "secret"), "wb") as f:
        f.write(SECRET + b"\n")
    os.symlink(os.path.join(tmp, "secret"), os.path.join(root, "link"))
    for dirpath, dirs, names in os.walk(root):
        for n in names + dirs:
            os.utime(os.path.join(dirpath, n), (MTIME, MTIME), follow_symlinks=False)
    os.utime(os.path.join(tmp, "secret"), (MTIME, MTIME))
    return root, files


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_nginx(tmp, root):
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    t = os.path.join(tmp, "ngx")
    os.makedirs(t, exist_ok=True)
    with open(conf, "w") as f:
        f.write(f"""user root;
worker_processes 1;
daemon off;
pid {t}/nginx.pid;
error_log {t}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  types {{ text/plain txt; text/html html; }}
  default_type application/octet-stream;
  absolute_redirect off;
  if_modified_since before;
  server_tokens off;
  client_body_temp_path {t}/body;
  proxy_temp_path {t}/proxy;
  fastcgi_temp_path {t}/fastcgi;
  uwsgi_temp_path {t}/uwsgi;
  scgi_temp_path {t}/scgi;
  server {{ listen 127.0.0.1:{port}; root {root}; location / {{ }} }}
}}
""")
    p = subprocess.Popen(["nginx", "-p", t, "-e", f"{t}/error.log", "-c", conf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port, p)
    return p, port


def start_httpd(binary, root, log):
    p = subprocess.Popen([binary, "--port", "0", "--root", root, "--header-ms", "2000",
                          "--idle-ms", "2000", "--send-ms", "3000"],
                         stdout=subprocess.PIPE, stderr=log)
    line = p.stdout.readline().decode()
    m = re.match(r"listening on (\d+)", line)
    if not m:
        sys.exit(f"httpd did not start: {line!r}")
    return p, int(m.group(1))


def wait_port(port, proc):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                sys.exit("server exited: " + proc.stderr.read().decode(errors="replace"))
            time.sleep(0.02)
    sys.exit(f"no server on port {port}")


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def h(self, name):
        return self.headers.get(name.lower())


def parse_replies(data, head_req, want):
    """Splits data into replies; returns (replies, leftover_ok)."""
    out, off = [], 0
    while len(out) < want:
        end = data.find(b"\r\n\r\n", off)
        if end < 0:
            break
        lines = data[off:end].split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0])
        if not m:
            out.append(Reply(-1, {}, b""))  # not HTTP: nginx's 0.9 reply
            break
        status = int(m.group(1))
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            hdrs[k.decode(errors="replace").strip().lower()] = v.decode(errors="replace").strip()
        off = end + 4
        if 100 <= status < 200:
            continue
        n = 0 if head_req[min(len(out), len(head_req) - 1)] or status in (204, 304) else int(
            hdrs.get("content-length", "0") or 0)
        if len(data) - off < n:
            break
        out.append(Reply(status, hdrs, data[off:off + n]))
        off += n
    return out


def exchange(port, req, want=1, chunk=None, timeout=1.5, head=None):
    """Sends req (chunk bytes at a time), reads `want` replies or until
    EOF / timeout. Returns (replies, closed_by_server, seconds)."""
    head = head or [req.startswith(b"HEAD ")]
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    data, closed = b"", False
    try:
        if chunk:
            for i in range(0, len(req), chunk):
                s.sendall(req[i:i + chunk])
        else:
            s.sendall(req)
    except OSError:
        pass
    deadline = t0 + timeout
    while time.time() < deadline:
        try:
            s.settimeout(max(0.01, deadline - time.time()))
            x = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            closed = True
            break
        if not x:
            closed = True
            break
        data += x
        if len(parse_replies(data, head, want)) >= want:
            break
    s.close()
    return parse_replies(data, head, want), closed, time.time() - t0, data


# ---- (a) the differential -------------------------------------------------

def R(line, *hdrs, body=b"", host=True):
    h = ([b"Host: a"] if host else []) + [x.encode() if isinstance(x, str) else x for x in hdrs]
    return line.encode() + b"\r\n" + b"".join(x + b"\r\n" for x in h) + b"\r\n" + body


def chunked(total, size=4096):
    out, left = b"", total
    while left > 0:
        n = min(size, left)
        out += b"%x\r\n" % n + b"x" * n + b"\r\n"
        left -= n
    return out + b"0\r\n\r\n"


ETAG = '"%x-%x"' % (MTIME, 6)  # small.txt, as both servers make it


def crafted():
    c = [("get", R("GET /small.txt HTTP/1.1")), ("head", R("HEAD /small.txt HTTP/1.1")),
         ("big", R("GET /big.bin HTTP/1.1")), ("space", R("GET /with%20space.txt HTTP/1.1")),
         ("symlink-out", R("GET /link HTTP/1.1")), ("index", R("GET /sub/ HTTP/1.1")),
         ("root-index", R("GET / HTTP/1.1")), ("dir-redirect", R("GET /sub HTTP/1.1")),
         ("dir-redirect-query", R("GET /sub?x=1 HTTP/1.1")), ("dir-noindex", R("GET /empty/ HTTP/1.1")),
         ("dir-noindex-redirect", R("GET /empty HTTP/1.1")), ("missing", R("GET /nope HTTP/1.1")),
         ("missing-dir", R("GET /nope/ HTTP/1.1")),
         ("noindex-explicit", R("GET /empty/index.html HTTP/1.1")),
         ("dir-redirect-long", R("GET /sub?" + "q" * 900 + " HTTP/1.1")), ("file-slash", R("GET /small.txt/ HTTP/1.1")),
         ("http10", R("GET /small.txt HTTP/1.0", host=False)),
         ("http10-ka", R("GET /small.txt HTTP/1.0", "Connection: keep-alive", host=False)),
         ("close", R("GET /small.txt HTTP/1.1", "Connection: close")),
         ("no-host", R("GET /small.txt HTTP/1.1", host=False)),
         ("two-hosts", R("GET /small.txt HTTP/1.1", "Host: b")),
         ("host-space", R("GET /small.txt HTTP/1.1", "Host: a b", host=False)),
         ("host-port", R("GET /small.txt HTTP/1.1", "Host: a:80", host=False)),
         ("space-before-colon", R("GET /small.txt HTTP/1.1", "X-A : b")),
         ("host-space-before-colon", R("GET /small.txt HTTP/1.1", "Host : a", host=False)),
         ("obs-fold", R("GET /small.txt HTTP/1.1", "X-A: b", " c")),
         ("version-backslash", R("GET /small.txt HTTP\\1.1")), ("version-httx", R("GET /small.txt HTTX/1.1")),
         ("version-2", R("GET /small.txt HTTP/2.0")), ("version-12", R("GET /small.txt HTTP/1.2")),
         ("version-0.9", b"GET /small.txt\r\n"),
         ("lf-only", b"GET /small.txt HTTP/1.1\nHost: a\n\n"),
         ("unknown-method", R("FOO /small.txt HTTP/1.1")), ("lower-method", R("get /small.txt HTTP/1.1")),
         ("post", R("POST /small.txt HTTP/1.1", "Content-Length: 3", body=b"abc")),
         ("post-missing", R("POST /nope HTTP/1.1", "Content-Length: 3", body=b"abc")),
         ("delete", R("DELETE /small.txt HTTP/1.1")), ("options", R("OPTIONS /small.txt HTTP/1.1")),
         ("put", R("PUT /small.txt HTTP/1.1", "Content-Length: 0")),
         ("te-gzip", R("POST /small.txt HTTP/1.1", "Transfer-Encoding: gzip", body=b"abc")),
         ("te-and-cl", R("POST /small.txt HTTP/1.1", "Transfer-Encoding: chunked", "Content-Length: 3",
                         body=b"0\r\n\r\n")),
         ("post-20k", R("POST /small.txt HTTP/1.1", "Content-Length: 20000", body=b"x" * 20000)),
         ("post-chunked-300k", R("POST /small.txt HTTP/1.1", "Transfer-Encoding: chunked",
                                 body=chunked(300000))),
         ("post-2m-declared", R("POST /small.txt HTTP/1.1", "Content-Length: 2000000", body=b"abc")),
         ("post-chunked-1.1m", R("POST /small.txt HTTP/1.1", "Transfer-Encoding: chunked",
                                 body=chunked(1100000, 65536))),
         ("get-body", R("GET /small.txt HTTP/1.1", "Content-Length: 5", body=b"abcde")),
         ("expect-100", R("GET /small.txt HTTP/1.1", "Expect: 100-continue", "Content-Length: 3",
                          body=b"abc")),
         ("headers-4000", R("GET /small.txt HTTP/1.1", *["X-%d: abcdefgh" % i for i in range(4000)])),
         ("url-9000", R("GET /" + "a" * 9000 + " HTTP/1.1")),
         ("header-9000", R("GET /small.txt HTTP/1.1", "X-Big: " + "b" * 9000)),
         ("range", R("GET /small.txt HTTP/1.1", "Range: bytes=0-2")),
         ("range-suffix", R("GET /small.txt HTTP/1.1", "Range: bytes=-3")),
         ("range-416", R("GET /small.txt HTTP/1.1", "Range: bytes=10-")),
         ("range-multi", R("GET /small.txt HTTP/1.1", "Range: bytes=0-1,3-4")),
         ("range-head", R("HEAD /small.txt HTTP/1.1", "Range: bytes=0-2")),
         ("if-range-etag", R("GET /small.txt HTTP/1.1", "Range: bytes=0-2", "If-Range: " + ETAG)),
         ("if-range-other", R("GET /small.txt HTTP/1.1", "Range: bytes=0-2", 'If-Range: "x"')),
         ("if-range-date", R("GET /small.txt HTTP/1.1", "Range: bytes=0-2", "If-Range: " + LM)),
         ("if-range-old", R("GET /small.txt HTTP/1.1", "Range: bytes=0-2",
                            "If-Range: Sat, 08 Sep 2001 01:46:40 GMT")),
         ("inm-star", R("GET /small.txt HTTP/1.1", "If-None-Match: *")),
         ("inm-match", R("GET /small.txt HTTP/1.1", "If-None-Match: " + ETAG)),
         ("inm-weak", R("GET /small.txt HTTP/1.1", "If-None-Match: W/" + ETAG)),
         ("inm-list", R("GET /small.txt HTTP/1.1", 'If-None-Match: "a", ' + ETAG)),
         ("inm-other", R("GET /small.txt HTTP/1.1", 'If-None-Match: "a"')),
         ("inm-match-ims-old", R("GET /small.txt HTTP/1.1", "If-None-Match: " + ETAG,
                                 "If-Modified-Since: Sat, 08 Sep 2001 01:46:40 GMT")),
         ("inm-other-ims-fresh", R("GET /small.txt HTTP/1.1", 'If-None-Match: "a"', "If-Modified-Since: " + LM)),
         ("im-star", R("GET /small.txt HTTP/1.1", "If-Match: *")),
         ("im-match", R("GET /small.txt HTTP/1.1", "If-Match: " + ETAG)),
         ("im-other", R("GET /small.txt HTTP/1.1", 'If-Match: "a"')),
         ("im-other-range", R("GET /small.txt HTTP/1.1", 'If-Match: "a"', "Range: bytes=0-1")),
         ("ius-old", R("GET /small.txt HTTP/1.1", "If-Unmodified-Since: Sat, 08 Sep 2001 01:46:40 GMT")),
         ("ius-fresh", R("GET /small.txt HTTP/1.1", "If-Unmodified-Since: " + LM)),
         ("ims-exact", R("GET /small.txt HTTP/1.1", "If-Modified-Since: " + LM)),
         ("ims-later", R("GET /small.txt HTTP/1.1", "If-Modified-Since: Mon, 10 Sep 2001 01:46:40 GMT")),
         ("ims-older", R("GET /small.txt HTTP/1.1", "If-Modified-Since: Sat, 08 Sep 2001 01:46:40 GMT")),
         ("ims-rfc850", R("GET /small.txt HTTP/1.1", "If-Modified-Since: Sunday, 09-Sep-01 01:46:40 GMT")),
         ("ims-asctime", R("GET /small.txt HTTP/1.1", "If-Modified-Since: Sun Sep  9 01:46:40 2001")),
         ("ims-garbage", R("GET /small.txt HTTP/1.1", "If-Modified-Since: yesterday")),
         ("traversal", R("GET /../secret HTTP/1.1")), ("traversal-enc", R("GET /%2e%2e/secret HTTP/1.1")),
         ("dot-segment", R("GET /sub/../small.txt HTTP/1.1")), ("nul", R("GET /a%00b HTTP/1.1")),
         ("bad-escape", R("GET /%zz HTTP/1.1")), ("overlong", R("GET /%c0%ae%c0%ae/secret HTTP/1.1")),
         ("absolute-form", R("GET http://a/small.txt HTTP/1.1")),
         ("leading-crlf", b"\r\n" + R("GET /small.txt HTTP/1.1")),
         ("cl-dup", R("GET /small.txt HTTP/1.1", "Content-Length: 0", "Content-Length: 0")),
         ("cl-bad", R("GET /small.txt HTTP/1.1", "Content-Length: 1x")),
         ("double-space", R("GET  /small.txt HTTP/1.1")),
         ("empty-host", R("GET /small.txt HTTP/1.1", "Host:", host=False)),
         ]
    return c


# Structural mutations: a request is built from pieces drawn from pools,
# so every difference found is one the classifier can explain.
METHODS = ["GET", "HEAD", "POST", "DELETE", "FOO"]
PATHS = ["/small.txt", "/big.bin", "/sub", "/sub/", "/empty/", "/nope", "/with%20space.txt", "/link",
         "/", "/sub/inner.txt", "/%2e%2e/secret", "/sub?q=1", "/dir%20x"]
VERSIONS = ["HTTP/1.1", "HTTP/1.0"]
EXTRA = ["Range: bytes=0-2", "Range: bytes=-3", "Range: bytes=5-", "Range: bytes=99999-",
         "If-None-Match: *", "If-None-Match: " + ETAG, 'If-None-Match: "zz"', "If-Match: *",
         'If-Match: "zz"', "If-Modified-Since: " + LM, "If-Modified-Since: Sat, 08 Sep 2001 01:46:40 GMT",
         "If-Unmodified-Since: Sat, 08 Sep 2001 01:46:40 GMT", "If-Unmodified-Since: " + LM,
         "If-Range: " + ETAG, 'If-Range: "zz"', "Connection: close", "Connection: keep-alive",
         "Accept: */*", "User-Agent: fuzz", "X-Empty:", "Cookie: a=b"]


def mutated(rng):
    m, p, v = rng.choice(METHODS), rng.choice(PATHS), rng.choice(VERSIONS)
    hdrs = rng.sample(EXTRA, rng.randint(0, 4))
    if rng.random() < 0.9:
        hdrs.insert(rng.randint(0, len(hdrs)), "Host: a")
    body = b""
    if m == "POST" or rng.random() < 0.1:
        body = b"x" * rng.choice([0, 1, 100, 5000])
        hdrs.append("Content-Length: %d" % len(body))
    req = (f"{m} {p} {v}\r\n" + "".join(h + "\r\n" for h in hdrs) + "\r\n").encode() + body
    if rng.random() < 0.2:
        req = req.replace(b"\r\n", b"\n")
    return req


def key(rep, closed):
    """The compared part of a reply."""
    if rep is None:
        return (("status", None), ("server closed", closed))
    k = {"status": rep.status}
    if rep.status in (200, 206):
        k["content-length"] = rep.h("content-length")
    if rep.status in (206, 416):
        k["content-range"] = rep.h("content-range")
    if rep.status in (200, 206, 304):
        k["etag"] = rep.h("etag") is not None
    if rep.status in (301, 302):
        loc = rep.h("location") or ""
        k["location"] = loc if len(loc) < 80 else "%s...(%d bytes)" % (loc[:60], len(loc))
    k["close"] = "close" in (rep.h("connection") or "").lower()
    return tuple(sorted(k.items()))


def classify(req, n, h):
    """The id of a deliberate difference (docs/httpd.md), or None."""
    line = req.split(b"\n", 1)[0]
    head = req.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    ns, hs = dict(n).get("status"), dict(h).get("status")
    if ns in (-1, None) and hs == 400 and not re.search(rb" HTTP/", line):
        return "http09"
    if hs == 413 and ns == 405 and re.search(rb"Transfer-Encoding: chunked", head, re.I):
        return "chunked-413"
    if hs == 200 and ns == 206 and re.search(rb"\nRange: bytes=[^\r\n]*,", head):
        return "multi-range"
    if hs == 431 and ns in (400, 413, 414):
        return "status-431"
    if hs == 501 and line.split(b" ")[0] not in (b"GET", b"HEAD", b"POST") and ns in (400, 405):
        return "method-501"
    if hs == 400 and re.search(rb"^[^ ]+  |HTTP/\d\.\d\d|HTTP/1\.[2-9]", line) is not None:
        return "strict-request-line"
    if hs in (403, 405) and re.search(rb"/\.\.(/|$| )|%2e%2e", line, re.I):
        return "dot-segments"
    if hs == 404 and ns == 400 and re.search(rb"%c0%ae", line, re.I):
        return "overlong"
    if hs == 400 and re.search(rb"\nHost:\s*\r?\n", head + b"\n", re.I):
        return "empty-host"
    if hs == 400 and re.search(rb"\n[!-~]+ :", head):
        return "space-before-colon"
    if hs == 400 and re.search(rb"\n[ \t]", head):
        return "obs-fold"
    if hs == 400 and re.search(rb"Host: a b", head):
        return "host-syntax"
    if hs == 400 and re.search(rb"Host:.*\n(.*\n)*Host:", head, re.I):
        return "two-hosts"
    if hs == 400 and ns in (200, 301, 403, 404, 405, 304, 206, 416, 412) and b"HTTP/1.1" in line \
            and not re.search(rb"\nHost:", head, re.I):
        return "no-host"
    if hs == 400 and re.search(rb"HTTX|HTTP\\", line):
        return "strict-request-line"
    if b"If-None-Match" in head and b"If-Modified-Since" in head and hs == 304 and ns in (200, 206, 416):
        return "ims-with-inm"
    if line.startswith(b"HEAD ") and b"Range:" in head and hs == 200 and ns in (206, 416):
        return "head-range"
    def dup(name):
        return len(re.findall(rb"\n" + name + rb":", head, re.I)) > 1
    if ns == 400 and hs != 400 and (dup(b"If-Match") or dup(b"If-None-Match")):
        return "list-fields"
    if ns in (206, 416) and hs == 200 and dup(b"Range"):
        return "duplicate-range"
    if ns == 412 and re.search(rb"\nIf-Match:", head, re.I) and re.search(rb"\nIf-Unmodified-Since:", head, re.I):
        return "ius-with-im"
    dn, dh = dict(n), dict(h)
    if dh.get("close") and not dn.get("close") and re.search(rb"\nConnection: close", head, re.I) \
            and re.search(rb"\nConnection: keep-alive", head, re.I):
        return "close-wins"
    if ns == hs == 405 and dn.get("close") != dh.get("close"):
        return "body-405-close"
    if ns == 400 and hs == 400 and dn.get("close") != dh.get("close"):
        return None
    return None


def listed_ids(doc):
    text = open(doc).read()
    sec = text.split("## Differences from nginx", 1)
    return set(re.findall(r"^\| `([a-z0-9.-]+)` \|", sec[1], re.M)) if len(sec) == 2 else set()


def run_diff(args, nport, hport, rng, deadline):
    ids = listed_ids(args.doc)
    cases = [(name, req) for name, req in crafted()]
    cases += [("pipelined", R("GET /small.txt HTTP/1.1") + R("HEAD /sub/ HTTP/1.1") + R("GET /nope HTTP/1.1"))]
    n_cases = diffs = bad = 0
    i = 0
    while True:
        if i < len(cases):
            name, req = cases[i]
        elif time.time() < deadline:
            name, req = "mutated-%d" % (i - len(cases)), mutated(rng)
        else:
            break
        i += 1
        want = 3 if name == "pipelined" else 1
        head = [False, True, False] if name == "pipelined" else None
        a = exchange(nport, req, want, head=head)
        b = exchange(hport, req, want, head=head)
        n_cases += 1
        for j in range(want):
            kn = key(a[0][j] if j < len(a[0]) else None, a[1])
            kh = key(b[0][j] if j < len(b[0]) else None, b[1])
            if kn == kh:
                continue
            diffs += 1
            cid = classify(req, kn, kh)
            if cid in ids:
                if args.verbose or not name.startswith("mutated"):
                    print(f"  deliberate [{cid}] {name}: nginx {dict(kn)} httpd {dict(kh)}")
                continue
            bad += 1
            if bad > 15:
                continue
            print(f"  DIFFERENCE [{cid or 'unclassified'}] {name}: nginx {dict(kn)} httpd {dict(kh)}\n"
                  f"    request: {req[:300]!r}{'...' if len(req) > 300 else ''}\n"
                  f"    repro: python3 -c \"import socket,sys;s=socket.create_connection(('127.0.0.1',"
                  f"int(sys.argv[1])));s.sendall(bytes.fromhex('{req.hex()}'));print(s.recv(65536))\" PORT"
                  if len(req) <= 2000 else
                  f"  DIFFERENCE [{cid or 'unclassified'}] {name}: nginx {dict(kn)} httpd {dict(kh)}\n"
                  f"    request ({len(req)} bytes): {req[:300]!r}...")
    print(f"http-diff: {n_cases} cases, {diffs} differences ({bad} not listed in {args.doc})")
    return bad == 0


# ---- (b) the fuzzer ---------------------------------------------------------

def byte_mutate(rng, req):
    b = bytearray(req)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[pos:pos] = bytes([rng.choice(b" \t\r\n:%/.\x00\x7f\xff,;=")])
        elif op == 2 and b:
            del b[min(pos, len(b) - 1)]
        elif op == 3:
            b[pos:pos] = b[pos:pos + rng.randint(1, 40)] * rng.randint(1, 50)
        elif op == 4:
            b[pos:pos] = rng.choice([b"%2e%2e/", b"/../", b"%00", b"%c0%ae", b"%2f", b"..", b"\r\n\r\n",
                                     b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n",
                                     b"ffffffffffffffff\r\n", b"Range: bytes=0-0,-1\r\n"])
        elif op == 5:
            b = b[:pos]
        else:
            b[pos:pos] = b"A" * rng.choice([100, 8000, 9000, 17000, 33000])
    return bytes(b)


def traversal(rng):
    t = rng.choice(["/../secret", "/%2e%2e/secret", "/%2E%2e%2fsecret", "/sub/../../secret",
                    "/%c0%ae%c0%ae/secret", "/..%2fsecret", "/.%2e/secret", "//../secret",
                    "/sub/%2e%2e/%2e%2e/secret", "/link/../../secret", "/a%00/../secret",
                    "http://a/../secret", "/..\\secret", "/%252e%252e/secret"])
    return R(f"GET {t} HTTP/1.1")


def run_fuzz(args, hport, proc, rng, deadline, corpus):
    n = failures = 0
    lock = threading.Lock()
    bound = 2.0 + 3.0 + 2.5  # header-ms + send-ms + linger, the server's own bounds

    def check(req, chunk=None, slow=False):
        nonlocal n, failures
        if slow:
            t0 = time.time()
            s = socket.create_connection(("127.0.0.1", hport), timeout=bound)
            ended = False
            try:
                for i in range(len(req)):
                    s.sendall(req[i:i + 1])
                    time.sleep(0.05)
                    if time.time() - t0 > bound:
                        break
                s.settimeout(bound)
                while s.recv(65536):
                    pass
                ended = True
            except OSError:
                ended = True  # a reset after the header timeout is a close
            s.close()
            ok = ended and time.time() - t0 <= bound + 1
            data = b""
        else:
            reps, closed, secs, data = exchange(hport, req, 1, chunk=chunk, timeout=bound + 1)
            ok = bool(reps) or closed
        leak = SECRET in data and b"/link" not in req  # the link is root content, served
        with lock:
            n += 1
            if not ok or leak:
                failures += 1
                print(f"  FUZZ FAILURE ({'secret served' if leak else 'no reply and no close'}): {req[:200]!r}")

    def one(wrng):
        r = wrng.random()
        base = wrng.choice(corpus)
        if r < 0.5:
            check(byte_mutate(wrng, base))
        elif r < 0.6:
            check(wrng.choice(corpus), chunk=1)
        elif r < 0.75:
            check(traversal(wrng), chunk=wrng.choice([None, 1, 3]))
        elif r < 0.9:
            part = wrng.choice(["line", "header", "body", "chunk"])
            big = {"line": lambda: R("GET /" + "a" * wrng.choice([7990, 8001, 8100, 16000, 40000]) + " HTTP/1.1"),
                   "header": lambda: R("GET / HTTP/1.1", "X: " + "b" * wrng.choice([8180, 8200, 40000])),
                   "body": lambda: R("POST /small.txt HTTP/1.1",
                                     "Content-Length: %d" % wrng.choice([1048576, 1048577]),
                                     body=b"z" * wrng.choice([1000, 1048577])),
                   "chunk": lambda: R("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                                      body=chunked(wrng.choice([1048576, 1048577]), 60000))}[part]()
            check(big)
        elif r < 0.95:
            check(byte_mutate(wrng, base)[:wrng.randint(1, 60)], slow=True)
        else:
            check(base, chunk=wrng.choice([1, 2, 7]))

    def worker(wseed):
        wrng = random.Random(wseed)
        while time.time() < deadline and proc.poll() is None:
            one(wrng)

    workers = [threading.Thread(target=worker, args=(rng.randrange(1 << 32),)) for _ in range(12)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return n, failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--httpd", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--doc", default="docs/httpd.md")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"fuzz-http: seed {seed} (FUZZ_SEED={seed} to repeat), {args.seconds:g} s")
    rng = random.Random(seed)
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="weft-fuzz-http-")
    root, _ = make_root(tmp)
    log_path = os.path.join(tmp, "httpd.log")
    log = open(log_path, "wb")
    ngx, nport = start_nginx(tmp, root)
    hp, hport = start_httpd(args.httpd, root, log)
    ok = True
    try:
        ok = run_diff(args, nport, hport, rng, t0 + args.seconds * 0.35)
        corpus = [r for _, r in crafted()]
        n, failures = run_fuzz(args, hport, hp, rng, t0 + args.seconds * 0.9, corpus)
        crashed = hp.poll() is not None
        if not crashed:
            hp.send_signal(signal.SIGTERM)
            try:
                rc = hp.wait(timeout=10)
            except subprocess.TimeoutExpired:
                hp.kill()
                rc = "hung on SIGTERM"
        else:
            rc = hp.returncode
        log.close()
        errs = open(log_path, "rb").read().decode(errors="replace")
        sanitizer = "ERROR: AddressSanitizer" in errs or "runtime error:" in errs or "LeakSanitizer" in errs
        crashes = 1 if (crashed or rc != 0 or sanitizer) else 0
        if crashes:
            print(f"  httpd exit {rc}; log:\n{errs[-4000:]}")
        print(f"http-fuzz: {n} cases, {crashes} crashes, {failures} connections without reply or close "
              f"({time.time() - t0:.0f} s in all)")
        ok = ok and crashes == 0 and failures == 0
    finally:
        if hp.poll() is None:
            hp.kill()
        ngx.send_signal(signal.SIGQUIT)
        try:
            ngx.wait(timeout=5)
        except subprocess.TimeoutExpired:
            ngx.kill()
        subprocess.run(["rm", "-rf", tmp])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
