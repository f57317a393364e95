"""A TCP server and its clients exchanging long streams with checksums.

`tcp_stream.py server PORTFILE CLIENTS` listens on 127.0.0.1 (a port the kernel picks,
written to PORTFILE), serves CLIENTS connections at once: every block a client sends is
answered with its SHA-256 and the block itself, reversed. `tcp_stream.py client PORTFILE N
BLOCK` sends N blocks of BLOCK pseudo-random bytes, checks every answer, and prints a running
checksum every 50 blocks. tcp_stream.sh starts them all.
"""
import hashlib
import os
import random
import selectors
import socket
import struct
import sys
import time


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return bytes(buf)


def server(portfile, clients):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(clients)
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(tmp, portfile)
    sel = selectors.DefaultSelector()
    served = 0
    pending = {}
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ)
    done = 0
    total = 0
    while done < clients:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                c, _ = ls.accept()
                c.setblocking(True)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(c, selectors.EVENT_READ)
                pending[c] = b""
                served += 1
                continue
            try:
                head = recv_exact(s, 4)
            except EOFError:
                sel.unregister(s)
                s.close()
                done += 1
                continue
            (n,) = struct.unpack("!I", head)
            block = recv_exact(s, n)
            total += n
            s.sendall(hashlib.sha256(block).digest() + block[::-1])
    print(f"server: {served} clients, {total} bytes", flush=True)


def client(portfile, n, size, name):
    while not os.path.exists(portfile):
        time.sleep(0.01)
    port = int(open(portfile).read())
    s = socket.create_connection(("127.0.0.1", port))
    rng = random.Random(name)
    run = hashlib.sha256()
    for i in range(n):
        block = rng.randbytes(size)
        s.sendall(struct.pack("!I", size) + block)
        answer = recv_exact(s, 32 + size)
        if answer[:32] != hashlib.sha256(block).digest() or answer[32:] != block[::-1]:
            print(f"client {name}: block {i} answered wrongly", flush=True)
            sys.exit(1)
        run.update(answer)
        if i % 50 == 49:
            print(f"client {name}: {i + 1} blocks, {run.hexdigest()[:16]}", flush=True)
        time.sleep(0.004)
    s.close()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
