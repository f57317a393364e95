"""An asyncio program (epoll selector, self-pipe socketpair, timers on the monotonic clock):
a producer and a consumer through a bounded queue with sleeps, a reader woken through a
pipe, and callbacks scheduled with call_later. Its output depends only on N.
Usage: asyncio_timers.py N"""

import asyncio
import os
import sys


async def producer(q, n):
    for i in range(n):
        await asyncio.sleep(0.01)
        await q.put(i)
    await q.put(None)


async def consumer(q):
    total = 0
    while (x := await q.get()) is not None:
        total += x * x
        if x % 25 == 0:
            print(f"consumed {x} total {total}", flush=True)
    return total


async def piped(n):
    """Bytes written from timer callbacks, read through loop.add_reader."""
    loop = asyncio.get_running_loop()
    r, w = os.pipe()
    os.set_blocking(r, False)
    got = []
    done = loop.create_future()

    def readable():
        data = os.read(r, 64)
        got.append(data)
        if sum(len(d) for d in got) >= n:
            loop.remove_reader(r)
            done.set_result(None)

    loop.add_reader(r, readable)
    for i in range(n):
        loop.call_later(0.02 * (i + 1), os.write, w, bytes([65 + i % 26]))
    await done
    os.close(r)
    os.close(w)
    return b"".join(got)


async def main(n):
    print(f"asyncio with {n} items", flush=True)
    loop = asyncio.get_running_loop()
    fired = []
    for k in range(8):
        loop.call_later(0.25 * (k + 1), fired.append, k)
    q = asyncio.Queue(maxsize=3)
    total, data, _ = await asyncio.gather(consumer(q), piped(n // 2), producer(q, n))
    await asyncio.sleep(0.3)
    print(f"total {total}")
    print(f"piped {data.decode()}")
    print(f"fired {fired}")


asyncio.run(main(int(sys.argv[1])))
