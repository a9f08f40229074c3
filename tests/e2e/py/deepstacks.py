"""deepstacks.py - thousands of deep Python stacks, some of them again and again (run_py.py: py_deep).

Each allocation it checks is made at the bottom of a recursion of down(), each call of which
comes from one of two lines (A or B), picked by one bit of the allocation's pattern: a pattern
names one stack, as deep as the pattern is long. The depths are 40, 70 and 135 calls: from 3.11
on a frame is one word of memprof's stack keys and 3.8-3.10 two, so they cross what the memo's
ways and hot entries hold inline, the longest key of a hot entry (128 words) and the longest
key of the memo (128 frames), beyond which the stack is walked every time (preload/capture.c).
Every allocation of a pattern is a bytes object of a size of its own, kept to the end.

First THRASH new patterns once each, then ROUNDS rounds: the HOT patterns REPEAT times each,
then NEW patterns never seen before. Hot patterns come in families that differ in one call. New patterns are thousands of new stacks (each level's
`bits >> 1` makes an int there too), enough to wrap the memo's key log several times a round,
so that the hot patterns come back to ways and hot entries whose words were overwritten, as well
as to entries still whole.

Prints its ledger, one line `memprof-ledger <json>`: pid, the lines, and per pattern (A/B from
the outermost call in) the size of its objects (sys.getsizeof, one block each) and their count.
"""
import json
import os
import random
import sys

THRASH = 1500
ROUNDS = 12
NEW = 120
REPEAT = 5


def down(d, bits, slot, size):  # L:def
    if d == 0:
        kept[slot] = bytes(size)  # L:alloc
        return
    if bits & 1:
        down(d - 1, bits >> 1, slot, size)  # L:a
    else:
        down(d - 1, bits >> 1, slot, size)  # L:b


rng = random.Random(7)
hot = [(40, rng.getrandbits(40)) for _ in range(4)]
# Each next to patterns that differ from it in one call only, from the outermost to the
# innermost: a check that skipped a frame would take one for the other.
hot += [(40, hot[0][1] ^ 1 << k) for k in (0, 5, 11, 17, 23, 29, 34, 39)]
deep = rng.getrandbits(70)
hot += [(70, deep)] + [(70, deep ^ 1 << k) for k in (2, 40, 69)] + [(135, rng.getrandbits(135))]
order = [(40, rng.getrandbits(40)) for _ in range(THRASH)]
for _ in range(ROUNDS):
    order += [p for p in hot for _ in range(REPEAT)]
    order += [(40, rng.getrandbits(40)) for _ in range(NEW)]

sizes = {}
for p in order:
    sizes.setdefault(p, 16 + len(sizes))
kept = [None] * len(order)  # preallocated: storing into it allocates nothing
for slot, (depth, bits) in enumerate(order):
    down(depth, bits, slot, sizes[(depth, bits)])

ledger = {}
for slot, p in enumerate(order):
    name = "".join("A" if p[1] >> i & 1 else "B" for i in range(p[0]))
    size, count = ledger.get(name, (sys.getsizeof(kept[slot]), 0))
    ledger[name] = (size, count + 1)
marks = {}
with open(__file__) as src:
    for number, text in enumerate(src, 1):
        if "# L:" in text:
            marks[text.rsplit("# L:", 1)[1].strip()] = number
print("memprof-ledger " + json.dumps({"pid": os.getpid(), "file": os.path.abspath(__file__),
                                      "marks": marks, "patterns": ledger}), flush=True)
