#!/usr/bin/env python3
"""CPU a server spends on one 4 MB request (DEL of 65,000 56-byte keys) sent
in 256-byte writes with PAUSE seconds between them (argv[2], default 0),
read from /proc/PID/stat. usage: split_request_cpu.py KVD [PAUSE] [OLD_KVD]"""
import os, socket, subprocess, sys, time
PAUSE = float(sys.argv[2]) if len(sys.argv) > 2 else 0
def cpu(pid):
    f = open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')
def run(argv, port=None):
    if port is None:
        p = subprocess.Popen(argv + ['--port', '0'], stdout=subprocess.PIPE)
        port = int(p.stdout.readline().split()[2])
    else:
        p = subprocess.Popen(argv + ['--port', str(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], stdout=subprocess.DEVNULL)
        time.sleep(0.3)
    req = b'*65001\r\n$3\r\nDEL\r\n' + b''.join(b'$56\r\n%056d\r\n' % i for i in range(65000))
    s = socket.create_connection(('127.0.0.1', port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c0, t0 = cpu(p.pid), time.time()
    for i in range(0, len(req), 256):
        s.sendall(req[i:i+256]); time.sleep(PAUSE)
    r = s.recv(100)
    c1, t1 = cpu(p.pid), time.time()
    assert r == b':0\r\n', r
    s.close(); p.terminate(); p.wait()
    return len(req), c1 - c0, t1 - t0
def free_port():
    t = socket.socket()
    t.bind(('127.0.0.1', 0))
    port = t.getsockname()[1]
    t.close()
    return port
servers = [('kvd', [sys.argv[1]], None)]
if len(sys.argv) > 3:
    servers.append(('kvd (other)', [sys.argv[3]], None))
servers.append(('redis-server', ['redis-server'], free_port()))
for name, argv, port in servers:
    n, c, w = run(argv, port)
    print('%-13s %d bytes in 256-byte writes: server CPU %.2f s, wall %.2f s' % (name, n, c, w))
