#!/bin/sh
# redis-server on 127.0.0.1 (a free port) and a client of it (redis_client.py) in one job.
dir=$(dirname "$0")
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "redis-server and a client"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --protected-mode no \
    --logfile /dev/null --dir "$PWD" &
/usr/bin/python3 "$dir/redis_client.py" "$port" 600
wait
