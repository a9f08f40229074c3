#!/usr/bin/env python3
"""check_pylayout.py PRINT_PYLAYOUT PYOFFSETS_C CC - the preload's offset tables against the headers.

For every CPython 3.8-3.13 whose headers (internal ones included) are on this machine - pyenv's
interpreters and Debian's /usr/include/python3.X - compile tests/dev/pyoffsets.c against them,
run it, and compare every offset the frame walker uses with preload/pylayout.c's table for that
version (printed by PRINT_PYLAYOUT). A patch release that moved a field fails here. Exit 0 when
all match, 1 on a mismatch, 77 (skip) when no headers were found.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

# layout field -> pyoffsets names (the first present wins); absent everywhere = -1 in the table.
FIELDS = {
    "rt_finalizing": ["_PyRuntimeState._finalizing", "_PyRuntimeState.finalizing"],
    "rt_tstate_current": ["_PyRuntimeState.gilstate.tstate_current"],
    "rt_tss_key": ["_PyRuntimeState.gilstate.autoTSSkey", "_PyRuntimeState.autoTSSkey"],
    "ts_thread_id": ["PyThreadState.thread_id"],
    "ts_frame": ["PyThreadState.frame"],
    "ts_cframe": ["PyThreadState.cframe"],
    "cf_current_frame": ["_PyCFrame.current_frame"],
    "ts_current_frame": ["PyThreadState.current_frame"],
    "f_back": ["PyFrameObject.f_back"],
    "f_code": ["PyFrameObject.f_code"],
    "f_lasti": ["PyFrameObject.f_lasti"],
    "if_code": ["_PyInterpreterFrame.f_code", "_PyInterpreterFrame.f_executable"],
    "if_previous": ["_PyInterpreterFrame.previous"],
    "if_instr": ["_PyInterpreterFrame.prev_instr", "_PyInterpreterFrame.instr_ptr"],
    "if_owner": ["_PyInterpreterFrame.owner"],
    "if_is_entry": ["_PyInterpreterFrame.is_entry"],
    "co_firstlineno": ["PyCodeObject.co_firstlineno"],
    "co_filename": ["PyCodeObject.co_filename"],
    "co_name": ["PyCodeObject.co_name"],
    "co_qualname": ["PyCodeObject.co_qualname"],
    "co_linetable": ["PyCodeObject.co_linetable", "PyCodeObject.co_lnotab"],
    "co_code_adaptive": ["PyCodeObject.co_code_adaptive"],
    "co_firsttraceable": ["PyCodeObject._co_firsttraceable"],
    "ascii_size": ["sizeof(PyASCIIObject)"],
    "compact_size": ["sizeof(PyCompactUnicodeObject)"],
}
# Fields the walker deliberately does not use in some versions (pylayout.h): 3.10 has a cframe
# (a tracing flag only) and a frame object field f_back in 3.11+ that is not the chain.
UNUSED = {("3.10", "ts_cframe"), ("3.11", "f_back"), ("3.12", "f_back"), ("3.13", "f_back")}


def include_dirs():
    found = []
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    except OSError:
        root = os.path.expanduser("~/.pyenv")
    for inc in sorted(glob.glob(os.path.join(root or "", "versions", "3.*", "include", "python3.*"))):
        found.append(inc)
    found += sorted(glob.glob("/usr/include/python3.*"))
    return [d for d in found if os.path.isdir(os.path.join(d, "internal"))
            and re.search(r"python3\.(8|9|1[0-3])$", d)]


def main(argv):
    printer, source, cc = argv[1], argv[2], argv[3]
    table = {}
    for line in subprocess.run([printer], capture_output=True, text=True, check=True).stdout.split("\n"):
        if line:
            ver, field, value = line.split()
            table.setdefault(ver, {})[field] = int(value)
    dirs = include_dirs()
    if not dirs:
        print("skip: no CPython 3.8-3.13 headers with internal/ found")
        return 77
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for inc in dirs:
            exe = os.path.join(tmp, "pyoff")
            r = subprocess.run([cc, "-std=c11", "-w", "-DPy_BUILD_CORE", "-I" + inc,
                                "-I" + os.path.join(inc, "internal"), source, "-o", exe],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print("FAIL %s: pyoffsets.c does not compile:\n%s" % (inc, r.stderr[-2000:]))
                bad += 1
                continue
            out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
            offs = {}
            for line in out.split("\n"):
                m = re.match(r"(\S+)\s+(-?\d+)$", line)
                if m:
                    offs[m.group(1)] = int(m.group(2))
            ver = re.search(r"python(3\.\d+)$", inc).group(1)
            want = table.get(ver)
            if want is None:
                print("FAIL %s: no table for %s in preload/pylayout.c" % (inc, ver))
                bad += 1
                continue
            for field, names in FIELDS.items():
                got = next((offs[n] for n in names if n in offs), -1)
                if (ver, field) in UNUSED:
                    got = -1
                if got != want[field]:
                    print("FAIL %s: %s is %d in the headers, %d in pylayout.c"
                          % (inc, field, got, want[field]))
                    bad += 1
            print("%s (%s): %d fields checked" % (ver, inc, len(FIELDS)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
