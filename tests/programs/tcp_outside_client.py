"""A client of a server outside the job that never reconnects: `tcp_outside_client.py PORT N`
sends N numbered requests over one connection to 127.0.0.1:PORT, one line each, and prints
each answer; a connection that fails ends the program with the error (exit 1)."""
import socket
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
print(f"connected from port {s.getsockname()[1]}", flush=True)
for i in range(n):
    try:
        s.sendall(f"request {i}\n".encode())
        line = f.readline()
        if not line:
            raise ConnectionResetError("end of file")
    except OSError as e:
        print(f"connection lost: {e!r}", flush=True)
        sys.exit(1)
    print(line.decode().rstrip(), flush=True)
    time.sleep(0.02)
print(f"still from port {s.getsockname()[1]}", flush=True)
