#!/bin/sh
# `tail -f` (inotify) following a file that a writer process of the same job keeps
# appending to, one line every 20 ms, through a descriptor it holds open (a file the job
# has open for writing is rewound to its checkpoint-time contents at restart; one opened
# anew for each line would not be); tail stops once the writer has exited (--pid).
# Its output depends only on N.
# Usage: tail_follow.sh N
set -eu
n=$1
: > growing.log
(
  exec 3>> growing.log
  i=1
  while [ "$i" -le "$n" ]; do
    echo "line $i of $n: $(( i * i ))" >&3
    sleep 0.02
    i=$(( i + 1 ))
  done
) &
writer=$!
tail -s 0.1 -n +1 -f --pid="$writer" growing.log
wait
echo done
