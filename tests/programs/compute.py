# Differential test program: computes primes and a running hash, printing as it goes.
import hashlib
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 120
h = hashlib.sha256()
found = []
candidate = 2
while len(found) < n:
    if all(candidate % p for p in found if p * p <= candidate):
        found.append(candidate)
        h.update(str(candidate).encode())
        print(len(found), candidate, h.hexdigest()[:16], flush=True)
        time.sleep(0.01)
    candidate += 1
table = {p: p * p for p in found}
print("done", sum(table.values()), h.hexdigest(), flush=True)
