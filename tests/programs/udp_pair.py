"""A UDP request/response pair on 127.0.0.1: the server (a child process) answers every
datagram with its SHA-256; the client sends N numbered requests, one at a time, prints every
20th answer, then tells the server to stop. `udp_pair.py N`."""
import hashlib
import os
import socket
import sys
import time

n = int(sys.argv[1])
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
srv.bind(("127.0.0.1", 0))
addr = srv.getsockname()
pid = os.fork()
if pid == 0:
    while True:
        data, peer = srv.recvfrom(65536)
        if data == b"stop":
            srv.sendto(b"stopped", peer)
            os._exit(0)
        srv.sendto(hashlib.sha256(data).digest() + data[:8], peer)
srv.close()
cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
cli.bind(("127.0.0.1", 0))
cli.connect(addr)
for i in range(n):
    req = f"request {i} ".encode() * (1 + i % 50)
    cli.send(req)
    ans = cli.recv(65536)
    if ans != hashlib.sha256(req).digest() + req[:8]:
        print(f"answer {i} is wrong", flush=True)
        sys.exit(1)
    if i % 20 == 19:
        print(f"{i + 1} answers, last {ans[:6].hex()}", flush=True)
    time.sleep(0.005)
cli.send(b"stop")
print(cli.recv(100).decode(), flush=True)
os.waitpid(pid, 0)
