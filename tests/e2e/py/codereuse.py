"""codereuse.py - code objects freed, and new ones made at their addresses (run_py.py: py_codereuse).

Each round compiles a module whose function f sits in a file of its own name (gen_<k>.py), calls
f, which allocates a bytes object of a size unique to the round (one block), keeps it, and drops f and its
code objects so that the next round's code can reuse their memory. Every call comes from the
same line of this script, at the same bytecode offsets in f: only the code objects differ. A
memo of stacks keyed by code addresses that outlived a code object would charge a round's
bytes to an earlier round's file (preload/capture.c, mp_pycode_gen).

Prints its ledger, one line `memprof-ledger <json>`: pid, the line of the call, per file the
bytes its object holds (sys.getsizeof, the size of its one block), and how many
rounds got a code object at an address an earlier round's had used (the test needs some).
"""
import gc
import json
import os
import sys

ROUNDS = 400
SOURCE = "def f(n):\n    return bytes(n)\n"

kept = []
sizes = {}
seen = set()
reused = 0
for k in range(ROUNDS):
    name = "gen_%d.py" % k
    ns = {}
    exec(compile(SOURCE, name, "exec"), ns)
    f = ns.pop("f")
    reused += id(f.__code__) in seen
    seen.add(id(f.__code__))
    obj = f(1000 + k)  # L:call
    kept.append(obj)
    sizes[name] = sys.getsizeof(obj)
    del f, ns, obj
    gc.collect()

with open(__file__) as src:
    call = next(i for i, text in enumerate(src, 1) if text.rstrip().endswith("# L:call"))
print("memprof-ledger " + json.dumps({"pid": os.getpid(), "call": call, "sizes": sizes,
                                      "reused": reused}), flush=True)
