"""gen_linetables.py - line tables and CPython's own answers for them, from the running interpreter.

Run by tests/unit/test_pylines.c once per interpreter found (CPython 3.8+): compiles a fixed set
of standard-library files plus a few synthetic sources that stress the encodings (line jumps over
127, code runs over 255 bytes, backward lines, no-line ranges, a large first line), walks every
code object, and prints what the C decoders must reproduce:

    V <format>                                  once: 1 co_lnotab, 2 3.10 co_linetable, 3 3.11+
    C <firstlineno> <max> <table hex or -> <line(-2)> <line(-1)> <line(0)> <line(2)> ...

The lines come from ctypes.pythonapi.PyCode_Addr2Line(code, addr), CPython's own decoder, for
addr = -2, -1 and every even byte offset of the code. <max> is the largest line the code can
name: from co_positions() (start and end lines) on 3.11+, else the largest PyCode_Addr2Line
answer and co_firstlineno. Standard library only; the output is bounded by LIMIT offsets.
"""

import ctypes
import importlib.util
import sys

LIMIT = 150000  # offsets per interpreter: about a second each

MODULES = ["textwrap", "json.decoder", "argparse", "difflib", "dataclasses", "ast",
           "collections", "inspect", "typing", "email._header_value_parser"]


def synthetic():
    gap = "\n" * 300
    long_expr = " + ".join("v%d" % i for i in range(200))
    yield "<synthetic-gap>", (
        "def gap(a):\n"
        "    x = a\n" + gap +
        "    y = x + 1\n" + gap +
        "    return (x,\n"
        "            y)\n")
    yield "<synthetic-long>", (
        "def long(" + ", ".join("v%d" % i for i in range(200)) + "):\n"
        "    total = " + long_expr + "\n"
        "    for i in range(3):\n"
        "        total += i\n"
        "    return total\n")
    yield "<synthetic-flow>", (
        "def flow(a, b):\n"
        "    try:\n"
        "        r = [x * 2\n"
        "             for x in a\n"
        "             if x]\n"
        "    except (ValueError,\n"
        "            TypeError) as e:\n"
        "        r = None\n"
        "    finally:\n"
        "        b.append(1)\n"
        "    while a:\n"
        "        a = a[1:]\n"
        "        if not b:\n"
        "            break\n"
        "    else:\n"
        "        pass\n"
        "    with open(b) as f, \\\n"
        "         open(a) as g:\n"
        "        return (lambda q:\n"
        "                q + 1)(f)\n"
        "class K:\n"
        "    def m(self):\n"
        "        yield from (i for i in\n"
        "                    range(3))\n")
    yield "<synthetic-far>", "\n" * 70000 + "def far():\n    return 1\n"


def codes(co):
    yield co
    for c in co.co_consts:
        if hasattr(c, "co_code"):
            yield from codes(c)


def main():
    minor = sys.version_info[:2]
    fmt = 1 if minor < (3, 10) else 2 if minor == (3, 10) else 3
    addr2line = ctypes.pythonapi.PyCode_Addr2Line
    addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
    addr2line.restype = ctypes.c_int
    sources = []
    for name in MODULES:
        spec = importlib.util.find_spec(name)
        if spec and spec.origin and spec.origin.endswith(".py"):
            with open(spec.origin, "rb") as f:
                sources.append((spec.origin, f.read()))
    sources = list(synthetic()) + sources
    out = ["V %d" % fmt]
    budget = LIMIT
    for path, src in sources:
        for co in codes(compile(src, path, "exec", dont_inherit=True)):
            n = len(co.co_code)
            if n // 2 + 2 > budget:
                continue
            budget -= n // 2 + 2
            table = co.co_lnotab if fmt == 1 else co.co_linetable
            lines = [addr2line(co, a) for a in [-2, -1] + list(range(0, n, 2))]
            if fmt == 3:
                mx = max([co.co_firstlineno] + [v for p in co.co_positions()
                                                for v in p[:2] if v is not None])
            else:
                mx = max([co.co_firstlineno] + lines)
            out.append("C %d %d %s %s" % (co.co_firstlineno, mx, table.hex() or "-",
                                          " ".join(map(str, lines))))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
