"""An asyncio program that runs subprocesses through pipes: each child (python3 -c) reads
numbers on its stdin and writes their squares on its stdout; the parent feeds it with sleeps
between lines and reads the answers as they come, while timers fire. The event loop watches
the children with its child watcher (a pidfd where the kernel has it). Output depends only
on N. Usage: asyncio_subprocess.py N"""

import asyncio
import sys

CHILD = (
    "import sys\n"
    "for line in sys.stdin:\n"
    "    n = int(line)\n"
    "    print(n * n, flush=True)\n"
)


async def square_through_a_child(k, n):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    total = 0
    for i in range(n):
        proc.stdin.write(f"{k * 1000 + i}\n".encode())
        await proc.stdin.drain()
        line = await proc.stdout.readline()
        total += int(line)
        await asyncio.sleep(0.01)
    proc.stdin.close()
    rest = await proc.stdout.read()
    code = await proc.wait()
    return total, rest, code


async def main(n):
    print(f"asyncio subprocesses, {n} lines each", flush=True)
    loop = asyncio.get_running_loop()
    ticks = []
    for t in range(10):
        loop.call_later(0.2 * (t + 1), ticks.append, t)
    for round_ in range(3):
        results = await asyncio.gather(*(square_through_a_child(k, n) for k in range(3)))
        for k, (total, rest, code) in enumerate(results):
            print(f"round {round_} child {k}: sum of squares {total}, rest {rest!r}, exit {code}",
                  flush=True)
    await asyncio.sleep(0.3)
    print(f"ticks {ticks}")


asyncio.run(main(int(sys.argv[1])))
