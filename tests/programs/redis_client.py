"""A client of redis-server over TCP (the RESP protocol, no library): `redis_client.py PORT N`
waits for the server, runs N rounds of commands (INCR, SET, GET, RPUSH, LRANGE), prints every
25th round's answers, then shuts the server down."""
import socket
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])


def connect():
    for _ in range(500):
        try:
            return socket.create_connection(("127.0.0.1", port))
        except ConnectionRefusedError:
            time.sleep(0.01)
    raise SystemExit("redis-server did not start")


s = connect()
f = s.makefile("rb")


def reply():
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b"-"):
        return rest.decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else f.read(size + 2)[:-2].decode()
    if kind == b"*":
        return [reply() for _ in range(int(rest))]
    raise SystemExit(f"unexpected reply {line!r}")


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(out)
    return reply()


print(cmd("FLUSHALL"), flush=True)
for i in range(n):
    a = cmd("INCR", "counter")
    cmd("SET", f"key:{i}", f"value {i * i}")
    b = cmd("GET", f"key:{i // 2}")
    c = cmd("RPUSH", "list", i)
    d = cmd("LRANGE", "list", -3, -1)
    if i % 25 == 24:
        print(i + 1, a, b, c, d, flush=True)
    time.sleep(0.005)
try:
    cmd("SHUTDOWN", "NOSAVE")
except (ConnectionError, SystemExit):
    pass
print("done", flush=True)
