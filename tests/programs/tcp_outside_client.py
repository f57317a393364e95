"""A client of a server outside the job that never reconnects: `tcp_outside_client.py PORT N
[zero]` sends N numbered requests over one connection to 127.0.0.1:PORT, one line each, and
prints each answer; a connection that fails ends the program with the error (exit 1). With
`zero`, a UDP socket of the program holds a zero-length datagram it never reads (which a
checkpoint refuses)."""
import socket
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
if len(sys.argv) > 3 and sys.argv[3] == "zero":
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.sendto(b"", u.getsockname())
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
