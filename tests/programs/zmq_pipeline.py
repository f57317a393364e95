"""A three-process pyzmq pipeline over TCP on 127.0.0.1: a ventilator (PUSH) sends N tasks
to a worker (PULL, then PUSH) that hashes them for a sink (PULL), which prints every 50th
result and a checksum of all. `zmq_pipeline.py N`."""
import hashlib
import os
import socket
import sys
import time

n = int(sys.argv[1])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


tasks_port, results_port = free_port(), free_port()
print(f"pipeline of {n} tasks", flush=True)

worker = os.fork()
if worker == 0:
    import zmq

    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.connect(f"tcp://127.0.0.1:{tasks_port}")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{results_port}")
    while True:
        msg = pull.recv()
        if msg == b"stop":
            break
        push.send(msg + b" " + hashlib.sha256(msg * 100).hexdigest()[:16].encode())
    push.close(linger=-1)
    pull.close()
    ctx.term()
    os._exit(0)

sink = os.fork()
if sink == 0:
    import zmq

    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(f"tcp://127.0.0.1:{results_port}")
    total = hashlib.sha256()
    for i in range(n):
        r = pull.recv()
        total.update(r)
        if i % 50 == 49:
            print(f"sink: {r.decode()}", flush=True)
    print(f"sink: {n} results, {total.hexdigest()[:16]}", flush=True)
    pull.close()
    ctx.term()
    os._exit(0)

import zmq

ctx = zmq.Context()
push = ctx.socket(zmq.PUSH)
push.bind(f"tcp://127.0.0.1:{tasks_port}")
for i in range(n):
    push.send(f"task {i}".encode())
    time.sleep(0.008)
os.waitpid(sink, 0)
push.send(b"stop")
os.waitpid(worker, 0)
push.close()
ctx.term()
print("done", flush=True)
