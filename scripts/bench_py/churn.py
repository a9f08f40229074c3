"""churn.py SIZE - small-object churn, a workload of scripts/bench.

SIZE iterations; each creates tuples, a list, a dict and strings of a few sizes and keeps the
newest 512 records alive (a ring), so that every object is freed a little later, by a later
iteration, the way a program's short-lived objects are. Deterministic; prints one line (a
checksum). The hot functions carry @profile for `python -m memory_profiler` (identity otherwise).
"""
import sys

try:
    profile  # noqa: B018  (injected into builtins by `python -m memory_profiler`)
except NameError:
    def profile(func):
        return func

WINDOW = 512


@profile
def make_record(i):
    key = "key-%d" % i
    pair = (i, key)
    items = [i, i + 1, key, pair] + [None] * (i % 24)
    text = key * (1 + i % 7)
    rec = {"id": i, "key": key, "pair": pair, "items": items, "text": text}
    rec["upper"] = text.upper()
    return rec


@profile
def churn(n):
    ring = [None] * WINDOW
    total = 0
    for i in range(n):
        rec = make_record(i)
        total += len(rec["items"]) + len(rec["text"])
        ring[i % WINDOW] = rec
        if i % 64 == 0:
            total += len(tuple(ring[j]["id"] for j in range(0, min(i + 1, WINDOW), 8)))
    return total


if __name__ == "__main__":
    print(churn(int(sys.argv[1]) if len(sys.argv) > 1 else 700000))
