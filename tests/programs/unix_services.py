"""A job of UNIX socket services: a socketserver.ThreadingUnixStreamServer in a child process, a
syslog-style datagram logger in another, and a main process that talks to both every step
(short connections, one long connection, logging.handlers.SysLogHandler and a bound datagram
sender). Prints what the services answered; deterministic for a given step count.

A client sends only after the server's greeting: bytes sent on a connection the server has not
accepted yet make a checkpoint fail by design (they cannot be read without accepting)."""

import logging
import logging.handlers
import os
import socket
import socketserver
import sys
import time

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 200


class Upper(socketserver.StreamRequestHandler):
    count = 0

    def handle(self):
        self.wfile.write(b"hello\n")
        for line in self.rfile:
            Upper.count += 1
            self.wfile.write(b"%d %s" % (Upper.count, line.upper()))


def server():
    with socketserver.ThreadingUnixStreamServer("svc.sock", Upper) as srv:
        srv.serve_forever(poll_interval=0.05)


def logger():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("log.sock")
    lines, total = 0, 0
    while True:
        data, addr = s.recvfrom(4096)
        if data == b"DUMP":
            s.sendto(b"%d lines, %d bytes" % (lines, total), addr)
            continue
        if data == b"STOP":
            return
        lines += 1
        total += len(data)


def start(fn):
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        finally:
            os._exit(0)
    return pid


def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.01)


def main():
    for p in ("svc.sock", "log.sock", "me.sock"):
        if os.path.exists(p):
            os.unlink(p)
    srv = start(server)
    log = start(logger)
    wait_for("svc.sock")
    wait_for("log.sock")
    syslog = logging.handlers.SysLogHandler(address="log.sock")
    lg = logging.getLogger("job")
    lg.addHandler(syslog)
    lg.setLevel(logging.INFO)
    me = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    me.bind("me.sock")
    long = socket.socket(socket.AF_UNIX)
    long.connect("svc.sock")
    longf = long.makefile("rwb")
    longf.readline()
    for i in range(STEPS):
        with socket.socket(socket.AF_UNIX) as c:
            c.connect("svc.sock")
            f = c.makefile("rb")
            f.readline()
            c.sendall(b"short %d\n" % i)
            c.shutdown(socket.SHUT_WR)
            print("short:", f.readline().decode().strip(), flush=True)
        longf.write(b"long %d\n" % i)
        longf.flush()
        print("long:", longf.readline().decode().strip(), flush=True)
        lg.info("step %d", i)
        me.sendto(b"datagram %d" % i, "log.sock")
        time.sleep(0.02)
    me.sendto(b"DUMP", "log.sock")
    print("logger:", me.recv(100).decode(), flush=True)
    me.sendto(b"STOP", "log.sock")
    os.waitpid(log, 0)
    long.close()
    os.kill(srv, 15)
    os.waitpid(srv, 0)
    print("done", flush=True)


main()
