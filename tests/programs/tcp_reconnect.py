"""A client of a server outside the job, which reconnects when its connection is reset:
`tcp_reconnect.py PORT N [IDLE]` sends N numbered requests to 127.0.0.1:PORT, one line each,
and prints each answer; a request whose connection fails (reset, broken pipe, end of file) is
sent again over a new connection. IDLE more connections to the server are opened first and
kept, unused."""
import socket
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 0)]
s = None
i = 0
while i < n:
    try:
        if s is None:
            s = socket.create_connection(("127.0.0.1", port))
            f = s.makefile("rb")
        s.sendall(f"request {i}\n".encode())
        line = f.readline()
        if not line:
            raise ConnectionResetError("end of file")
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        s.close()
        s = None
        continue
    print(line.decode().rstrip(), flush=True)
    i += 1
    time.sleep(0.02)
