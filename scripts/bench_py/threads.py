"""threads.py SIZE - 4 threads, a workload of scripts/bench.

Four threads each run SIZE/4 iterations of a churn-like mix: tuples, lists, dicts and strings,
a small JSON round-trip every 16 iterations, a ring of the newest 256 records per thread, and a
few records handed to a shared list under a lock (so objects are freed by a thread other than the
one that allocated them). Deterministic in the work done; prints one line (a checksum). The hot
functions carry @profile for `python -m memory_profiler` (identity otherwise).
"""
import json
import sys
import threading

try:
    profile  # noqa: B018  (injected into builtins by `python -m memory_profiler`)
except NameError:
    def profile(func):
        return func

THREADS = 4
WINDOW = 256


@profile
def make_record(t, i):
    key = "t%d-%d" % (t, i)
    rec = {"t": t, "i": i, "key": key, "pair": (i, key), "items": [i, key] * (1 + i % 9)}
    if i % 16 == 0:
        rec = json.loads(json.dumps(rec))
    return rec


@profile
def worker(t, n, shared, lock, totals):
    ring = [None] * WINDOW
    total = 0
    for i in range(n):
        rec = make_record(t, i)
        total += len(rec["items"]) + len(rec["key"])
        ring[i % WINDOW] = rec
        if i % 32 == 0:
            with lock:
                shared.append(rec)
                if len(shared) > 64:
                    del shared[:32]
    totals[t] = total


def main(n):
    shared, lock, totals = [], threading.Lock(), [0] * THREADS
    threads = [threading.Thread(target=worker, args=(t, n // THREADS, shared, lock, totals))
               for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(totals)


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 700000))
