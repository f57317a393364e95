#!/bin/sh
# A TCP server and three clients on 127.0.0.1 (tcp_stream.py), each client's output in its
# own file, printed in order at the end.
dir=$(dirname "$0")
echo "a server and 3 clients"
rm -f port out.*
/usr/bin/python3 "$dir/tcp_stream.py" server port 3 > out.server &
for c in a b c; do
    /usr/bin/python3 "$dir/tcp_stream.py" client port 600 20000 "$c" > "out.$c" &
done
wait
cat out.a out.b out.c out.server
rm -f port out.*
