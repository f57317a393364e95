"""Python multiprocessing with a manager over TCP: a SyncManager (its own server process)
serving a queue and a dict on 127.0.0.1, four worker processes taking tasks from the queue
and storing results in the dict through proxies (each its own TCP connection to the
manager); the parent prints the results. `mp_manager.py TASKS`."""
import hashlib
import multiprocessing as mp
import sys
import time
from multiprocessing.managers import SyncManager


def worker(tasks, results):
    while True:
        t = tasks.get()
        if t is None:
            break
        results[t] = hashlib.sha256(str(t).encode() * 1000).hexdigest()[:12]
        time.sleep(0.1)


def main():
    n = int(sys.argv[1])
    print(f"{n} tasks", flush=True)
    m = SyncManager(address=("127.0.0.1", 0), authkey=b"cairn-test")
    m.start()
    tasks, results = m.Queue(), m.dict()
    for t in range(n):
        tasks.put(t)
    workers = [mp.Process(target=worker, args=(tasks, results)) for _ in range(4)]
    for w in workers:
        w.start()
    for _ in workers:
        tasks.put(None)
    for w in workers:
        w.join()
    for t in range(n):
        print(t, results[t])
    m.shutdown()


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
