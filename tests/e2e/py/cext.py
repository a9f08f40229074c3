"""cext.py - a C extension leaks native memory from known lines (run_py.py: py_cext).

    python3 cext.py DIR     # DIR holds the mpext module built for this interpreter

Prints its ledger, one line `memprof-ledger <json>`: the lines of the two calls (marker comments
`# L:<name>`), the C function each calls, and the bytes each leaks.
"""
import json
import os
import re
import sys

sys.path.insert(0, sys.argv[1])
import mpext  # noqa: E402

mpext.leak_malloc(1234567)  # L:call_malloc
mpext.leak_raw(2345671)  # L:call_raw


def ledger():
    marks = {}
    with open(__file__) as f:
        for number, text in enumerate(f, 1):
            m = re.search(r"# L:(\w+)\s*$", text)
            if m:
                marks[m.group(1)] = number
    return {
        "pid": os.getpid(),
        "file": os.path.abspath(__file__),
        "marks": marks,
        # line -> the C function that allocates, the bytes and blocks it leaks
        "leaks": {"call_malloc": ["mpext_leak_malloc", 1234567, 1],
                  "call_raw": ["mpext_leak_raw", 2345671, 1]},
    }


print("memprof-ledger " + json.dumps(ledger()), flush=True)
