"""gen_pycode.py - the code objects of one source file, as a memprof PYCODE record needs them.

Run by tests/unit/test_perline.c under each CPython found, to build synthetic dumps whose line
tables are real. Prints

    P <sys.hexversion> <platform.python_version()>
    C <name> <firstlineno> <format> <table hex or ->        per code object, then
    L <line> <offset> <offset> ...                          per line: every even byte offset
                                                            that CPython's PyCode_Addr2Line
                                                            maps to it

Usage: python3 gen_pycode.py SOURCE.py. Standard library only.
"""

import ctypes
import platform
import sys


def codes(co):
    yield co
    for c in co.co_consts:
        if hasattr(c, "co_code"):
            yield from codes(c)


def main():
    path = sys.argv[1]
    fmt = 1 if sys.version_info < (3, 10) else 2 if sys.version_info < (3, 11) else 3
    addr2line = ctypes.pythonapi.PyCode_Addr2Line
    addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
    addr2line.restype = ctypes.c_int
    with open(path) as f:
        top = compile(f.read(), path, "exec", dont_inherit=True)
    print("P %d %s" % (sys.hexversion, platform.python_version()))
    for co in codes(top):
        table = co.co_lnotab if fmt == 1 else co.co_linetable
        print("C %s %d %d %s" % (co.co_name, co.co_firstlineno, fmt, table.hex() or "-"))
        by_line = {}
        for off in range(0, len(co.co_code), 2):
            by_line.setdefault(addr2line(co, off), []).append(off)
        for line in sorted(by_line):
            print("L %d %s" % (line, " ".join(map(str, by_line[line]))))


if __name__ == "__main__":
    main()
