"""lines.py - known allocations and frees at known lines (run_py.py: py_lines, py_allocators).

Every line the test checks ends with a marker comment `# L:<name>`; the script finds its own line
numbers by scanning its source for them. At the end of its main code it prints its ledger, one
line `memprof-ledger <json>`: the marked lines, and for each the bytes and blocks it allocated,
freed and kept, computed from what the program did (sys.getsizeof of the objects, which for bytes
and bytearray is the sum of their heap blocks; run_py.py checks that against tracemalloc).

Sizes are literals: an int computed at run time (MB + 1) would be one more allocation on the line.
"""
import json
import os
import re
import sys

keep = [None] * 4  # preallocated: storing into it allocates nothing
# Warm-up: the first bytes(int) of 3.8-3.10 creates and drops a 58-byte "__bytes__" string.
bytes(0), bytearray(0)


def build(slot, n):  # L:def_build
    keep[slot] = bytearray(n)  # L:build_keep
    tmp = bytes(3145728)  # L:build_tmp
    bytes(1048583)  # L:build_same
    del tmp  # L:build_del


keep[0] = bytes(4194311)  # L:top_bytes
keep[1] = bytearray(2097157)  # L:top_bytearray
build(2, 3145739)  # L:call_1
build(3, 5242883)  # L:call_2

# Heap blocks per object: bytes is one block (header and data together), bytearray two (the
# object and its buffer).
BLOCKS = {bytes: 1, bytearray: 2}


def ledger():
    marks = {}
    with open(__file__) as f:
        for number, text in enumerate(f, 1):
            m = re.search(r"# L:(\w+)\s*$", text)
            if m:
                marks[m.group(1)] = number
    size = sys.getsizeof

    def obj(o):
        return [size(o), BLOCKS[type(o)]]

    k0, k1, k2, k3 = (obj(o) for o in keep)
    tmp, same = obj(bytes(3145728)), obj(bytes(1048583))

    def row(alloc=(0, 0), freed=(0, 0), calls=1):
        return {"alloc_bytes": alloc[0] * calls, "freed_bytes": freed[0] * calls,
                "occurrences": alloc[1] * calls}

    def call(kept):
        # what one call of build() allocates and frees, all lines of build() together
        return {"alloc_bytes": kept[0] + tmp[0] + same[0], "freed_bytes": tmp[0] + same[0],
                "occurrences": kept[1] + tmp[1] + same[1]}

    return {
        "pid": os.getpid(),
        "file": os.path.abspath(__file__),
        "marks": marks,
        # the function each marked line belongs to (qualname); `def build` runs in <module>
        "functions": {name: "build" if name.startswith("build_") else "<module>"
                      for name in marks},
        # live at the end of the main code, by innermost line: [bytes, blocks]
        "kept": {"top_bytes": k0, "top_bytearray": k1,
                 "build_keep": [k2[0] + k3[0], k2[1] + k3[1]]},
        # live at the highest point of the heap, in the second build() at build_same: what is
        # kept so far and both temporaries
        "peak": {"top_bytes": k0, "top_bytearray": k1,
                 "build_keep": [k2[0] + k3[0], k2[1] + k3[1]], "build_tmp": tmp,
                 "build_same": same},
        # every event of these lines (exact)
        "rows": {"top_bytes": row(k0), "top_bytearray": row(k1),
                 "build_keep": {"alloc_bytes": k2[0] + k3[0], "freed_bytes": 0,
                                "occurrences": k2[1] + k3[1]},
                 "build_tmp": row(tmp, calls=2), "build_same": row(same, same, calls=2),
                 "build_del": row(freed=tmp, calls=2)},
        # call lines: inclusive, so at least what build() did (the call itself may add a frame)
        "calls": {"call_1": call(k2), "call_2": call(k3)},
    }


print("memprof-ledger " + json.dumps(ledger()), flush=True)
