#!/usr/bin/env python3
"""A server's RSS 2 s after 10 clients each pipelined 400 GETs (3.6 KB) of a
512 KiB value without reading their replies (docs/kvd.md, item: replies are
bounded per client). usage: pipelined_rss.py KVD [KVD...]; redis-server is
measured last."""
import socket, subprocess, sys, time
def rss(pid):
    for l in open('/proc/%d/status' % pid):
        if l.startswith('VmRSS'): return int(l.split()[1]) // 1024
def go(argv, redis=False):
    if redis:
        t = socket.socket(); t.bind(('127.0.0.1', 0)); port = t.getsockname()[1]; t.close()
        p = subprocess.Popen(argv + ['--port', str(port), '--save', '', '--appendonly', 'no'], stdout=subprocess.DEVNULL); time.sleep(0.3)
    else:
        p = subprocess.Popen(argv + ['--port', '0'], stdout=subprocess.PIPE); port = int(p.stdout.readline().split()[2])
    c = socket.create_connection(('127.0.0.1', port))
    c.sendall(b'*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$524288\r\n' + b'v' * 524288 + b'\r\n'); c.recv(10)
    cl = []
    for i in range(10):
        s = socket.create_connection(('127.0.0.1', port)); s.sendall(b'GET big\r\n' * 400); cl.append(s)
    time.sleep(2)
    r = rss(p.pid)
    for s in cl: s.close()
    p.terminate(); p.wait()
    return r
for path in sys.argv[1:]:
    print('%-30s RSS %d MB' % (path, go([path])))
print('%-30s RSS %d MB' % ('redis-server', go(['redis-server'], True)))
