#!/usr/bin/env bash
# Tests examples/get against a tiny local HTTP server (Python's http.server
# on 127.0.0.1 and a free port), fetching several URLs at once, by name and
# by address, and comparing the saved files byte for byte.
#   usage: examples/test_get.sh BUILD_DIR/examples/get
set -euo pipefail
GET=$(realpath "${1:?usage: $0 path/to/get}")
work=$(mktemp -d)
trap 'kill $server_pid 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/srv" "$work/out"
head -c 300000 /dev/urandom > "$work/srv/big.bin"
echo hello > "$work/srv/a.txt"
# The server prints its port once it listens: read it (no fixed sleep).
coproc SERVER { cd "$work/srv" && exec python3 -u -c '
import http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
print(s.server_address[1], flush=True)
s.serve_forever()'; }
server_pid=$SERVER_PID
read -r -t 10 port <&"${SERVER[0]}"
cd "$work/out"
"$GET" "http://localhost:$port/a.txt" "http://127.0.0.1:$port/big.bin" \
       "http://localhost:$port/a.txt" > log
cmp a.txt ../srv/a.txt
cmp a.txt.3 ../srv/a.txt
cmp big.bin ../srv/big.bin
grep -qx "big.bin: 200, 300000 bytes" log
# a 404 and a refused connection: exit status 1
if "$GET" "http://localhost:$port/missing" "http://localhost:1/x" > log 2> err; then
  echo "test_get: expected failure" >&2; exit 1
fi
grep -qx "missing: 404, .* bytes" log
grep -qi "localhost:1/x: connection refused" err
echo "test_get: ok"
