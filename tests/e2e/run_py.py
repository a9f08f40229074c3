#!/usr/bin/env python3
"""run_py.py - end-to-end tests of Python programs: the scripts of tests/e2e/py/ under
libmemprof.so, on every CPython found, checked with `memprof json`.

    run_py.py --build DIR --case NAME [--keep] [--cc CC] [--python PATH]
    run_py.py --build DIR --list

The interpreters are every $(pyenv root)/versions/3.{8..13}.*/bin/python3.X present and
/usr/bin/python3, always the real binary (pyenv's shims are shell scripts that would be profiled
too); each case runs on each of them, and says which are absent. Every script prints its own
ledger (`memprof-ledger <json>`: the line numbers of its `# L:<name>` markers and, per marked
line, what it allocated, freed and kept there, from what the program did: sys.getsizeof of the
objects, literal sizes), so the expected numbers never come from an earlier memprof run. The
case machinery (temporary directory, checks, running, `memprof json`) is run_e2e.py's Case.

Exit status 0 when every check passed on every interpreter present, 1 otherwise (each failed
check is printed, prefixed with its interpreter), 77 (CTest's SKIP_RETURN_CODE) when the case
could run on no interpreter at all, 2 for bad usage. Python 3 standard library only.
"""

import argparse
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run_e2e import Case, Failed, no_preload_warnings  # noqa: E402

PYSRC = os.path.join(HERE, "py")
LINES = os.path.join(PYSRC, "lines.py")
TMWRAP = os.path.join(PYSRC, "tmwrap.py")
CEXT = os.path.join(PYSRC, "cext.py")
MPEXT_C = os.path.join(PYSRC, "mpext.c")
THREADS = os.path.join(PYSRC, "threads.py")
CODEREUSE = os.path.join(PYSRC, "codereuse.py")
DEEPSTACKS = os.path.join(PYSRC, "deepstacks.py")
EMBEDDED = os.path.join(PYSRC, "embedded.py")
FORKTHREAD = os.path.join(PYSRC, "forkthread.py")

SKIP = 77
MINORS = range(8, 14)
SYSTEM_PYTHON = "/usr/bin/python3"
MIB = 1 << 20

# What the harness asks each interpreter once, without the preload.
PROBE = ("import json, platform, sys, sysconfig; print(json.dumps({"
         "'version': platform.python_version(), 'include': sysconfig.get_paths()['include'],"
         "'ext_suffix': sysconfig.get_config_var('EXT_SUFFIX')}))")


# ---- interpreters -------------------------------------------------------------------------------

class Python:
    def __init__(self, origin, path):
        self.origin = origin  # "pyenv 3.11.7" or "/usr/bin/python3"
        self.path = path
        self.version = self.include = self.ext_suffix = None
        self.label = origin

    def probe(self):
        p = subprocess.run([self.path, "-c", PROBE], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, env=clean_env())
        if p.returncode != 0:
            return "%s -c ... exited with %d: %s" % (self.path, p.returncode,
                                                     p.stderr.decode()[-500:])
        info = json.loads(p.stdout.decode())
        self.version, self.include, self.ext_suffix = (info["version"], info["include"],
                                                        info["ext_suffix"])
        self.label = "python %s (%s)" % (self.version, self.path)
        return None


def pyenv_root():
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        try:
            root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, timeout=30).stdout.decode().strip()
        except (OSError, subprocess.SubprocessError):
            root = None
    return root or os.path.expanduser("~/.pyenv")


def find_pythons(only=None):
    """([Python present], [what is absent]): every pyenv 3.8-3.13 build (the versioned binary
    inside versions/, not a shim) and /usr/bin/python3 (resolved to the file it links to)."""
    found, absent = [], []
    root = pyenv_root()
    for minor in MINORS:
        hits = []
        for d in sorted(glob.glob(os.path.join(root, "versions", "3.%d.*" % minor))):
            if not re.match(r"3\.%d\.\d+$" % minor, os.path.basename(d)):
                continue  # free-threaded (3.13.0t), debug or other variant builds
            exe = os.path.join(d, "bin", "python3.%d" % minor)
            if os.access(exe, os.X_OK):
                hits.append(Python("pyenv " + os.path.basename(d), exe))
        if not hits:
            absent.append("3.%d: no %s/versions/3.%d.*/bin/python3.%d" % (minor, root, minor,
                                                                          minor))
        found += hits
    if os.access(SYSTEM_PYTHON, os.X_OK):
        found.append(Python(SYSTEM_PYTHON, os.path.realpath(SYSTEM_PYTHON)))
    else:
        absent.append("%s: not installed" % SYSTEM_PYTHON)
    if only:
        found = [p for p in found if only in (p.path, p.origin, p.origin.split()[-1],
                                              os.path.basename(p.path))
                 or os.path.realpath(only) == p.path]
    return found, absent


def clean_env():
    """The caller's environment without the preload's settings or PYTHON* variables."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("MEMPROF_", "PYTHON")) or k == "LD_PRELOAD":
            del env[k]
    return env


# ---- the case state -----------------------------------------------------------------------------

class PyCase(Case):
    """run_e2e.Case, with every check prefixed by the interpreter it ran on."""

    def __init__(self, build, name, keep, cc, only):
        super().__init__(build, name, keep)
        self.cc = cc
        self.only = only
        self.prefix = ""
        self.verbose = False
        self.seed = random.randrange(1, 1 << 32)

    def check(self, ok, what):
        return super().check(ok, self.prefix + what)

    def run(self, argv, env, timeout=240, expect_rc=0):
        p = super().run(argv, env, timeout=timeout, expect_rc=expect_rc)
        if self.verbose:
            print("  %5.2f s  %s" % (p.seconds, " ".join(argv)))
        return p

    def py_env(self, output=None, **extra):
        """Case.env (no MEMPROF_* or LD_PRELOAD of the caller) without the caller's PYTHON*
        variables either; with output, under the preload."""
        env = self.preload_env(output, **extra) if output else self.env(**extra)
        for k in list(env):
            if k.startswith("PYTHON") and k not in extra:
                del env[k]
        # Hash randomization changes the heap layout from run to run; a failure names its seed
        # (--seed reproduces it).
        env["PYTHONHASHSEED"] = str(self.seed)
        return env

    def outdir(self, py, sub):
        d = os.path.join(self.tmp, re.sub(r"[^\w.]+", "_", py.origin), sub)
        os.makedirs(d, exist_ok=True)
        return d

    def pythonrun(self, argv, env, what):
        """Run a script; it must exit 0 without a traceback."""
        p = self.run(argv, env)
        self.check("Traceback" not in p.stderr, "%s: a traceback on stderr:\n%s"
                   % (what, p.stderr[-3000:]))
        return p

    def only_ledger(self, stdout, what):
        leds = ledgers(stdout)
        self.require(len(leds) == 1, "%s: expected one ledger line, got:\n%s" % (what, stdout))
        return leds[0]

    def dump_of(self, outdir, stem, pid):
        path = os.path.join(outdir, "%s.%d.dump" % (stem, pid))
        self.require(os.path.exists(path), "no dump %s (have %s)"
                     % (path, sorted(os.listdir(outdir))))
        return path


def ledgers(stdout, tag="memprof-ledger"):
    return [json.loads(l[len(tag) + 1:]) for l in stdout.splitlines()
            if l.startswith(tag + " ")]


def same_file(a, b):
    return bool(a) and (a == b or (os.path.basename(a) == os.path.basename(b)
                                   and os.path.realpath(a) == os.path.realpath(b)))


def at_line(entries, path, line):
    """The entries of a by-line list (leaks_by_line, peak_by_line, lines) at path:line."""
    return [e for e in entries if e.get("line") == line and same_file(e.get("file"), path)]


def bytes_blocks(entries, path, line):
    hits = at_line(entries, path, line)
    return [sum(e["bytes"] for e in hits), sum(e["blocks"] for e in hits)]


def stack_frames(r, stack):
    return [r["frames"][str(f)] for f in r["stacks"].get(str(stack), [])]


def common_process_checks(c, what, r, py, leaks_at="main_end"):
    p, s = r["process"], r["summary"]
    c.eq("%s: process.python" % what, p.get("python"), py.version)
    c.eq("%s: process.python_stacks" % what, p.get("python_stacks"), True)
    c.eq("%s: process.incomplete" % what, p.get("incomplete"), False)
    c.eq("%s: process.lost_events" % what, p.get("lost_events"), 0)
    c.eq("%s: summary.overlapping_allocs" % what, s.get("overlapping_allocs"), 0)
    c.eq("%s: summary.stacks_dropped" % what, s.get("stacks_dropped"), 0)
    if leaks_at:
        c.eq("%s: summary.leaks_at" % what, s.get("leaks_at"), leaks_at)


def check_row(c, what, r, path, line, want, function, first_line=None, source=None):
    """The one `lines` row of path:line equals want (exact), increment = alloc - freed."""
    rows = at_line(r["lines"], path, line)
    if not c.check(len(rows) == 1, "%s: expected one `lines` row for %s:%d, got %r"
                   % (what, os.path.basename(path), line, rows)):
        return None
    row = rows[0]
    c.eq("%s: row %d {%s}" % (what, line, ", ".join(sorted(want))),
         {k: row.get(k) for k in want}, want)
    if "alloc_bytes" in want and "freed_bytes" in want:
        c.eq("%s: row %d increment" % (what, line), row.get("increment"),
             want["alloc_bytes"] - want["freed_bytes"])
    c.eq("%s: row %d function" % (what, line), row.get("function"), function)
    if first_line is not None:
        c.eq("%s: row %d first_line" % (what, line), row.get("first_line"), first_line)
    if source is not None:
        c.eq("%s: row %d content" % (what, line), (row.get("content") or "").strip(),
             source[line - 1].strip())
    c.check(row.get("mem_usage", -1) <= r["summary"]["peak_bytes"],
            "%s: row %d mem_usage %r above peak_bytes %d"
            % (what, line, row.get("mem_usage"), r["summary"]["peak_bytes"]))
    return row


def for_each_python(c, per_python):
    """Run per_python(c, py) on every interpreter present; the case is a skip when it ran on
    none. per_python may return a reason to skip that interpreter."""
    pythons, absent = find_pythons(c.only)
    print("PYTHONHASHSEED=%d for every run (run_py.py --seed %d repeats them)" % (c.seed, c.seed))
    for what in absent:
        print("SKIP %s" % what)
    ran = 0
    for py in pythons:
        t0, checks, failures = time.monotonic(), c.checks, len(c.failures)
        c.prefix = py.origin + ": "
        skipped = None
        try:
            err = py.probe()
            c.require(err is None, "cannot ask the interpreter: %s" % err)
            c.prefix = "%s, PYTHONHASHSEED=%d: " % (py.label, c.seed)
            skipped = per_python(c, py)
        except Failed:
            pass  # recorded in c.failures
        except (subprocess.SubprocessError, OSError, ValueError, KeyError) as e:
            c.check(False, "%s: %s" % (type(e).__name__, e))
        c.prefix = ""
        if skipped and len(c.failures) == failures:
            print("SKIP %s: %s" % (py.label, skipped))
            continue
        ran += 1
        print("%s %s: %d checks, %d failed, %.1f s"
              % ("ok  " if len(c.failures) == failures else "FAIL", py.label, c.checks - checks,
                 len(c.failures) - failures, time.monotonic() - t0))
        sys.stdout.flush()
    if not ran and not c.failures:
        return "no interpreter to run on"
    return None


# ---- py_lines, py_allocators --------------------------------------------------------------------

def check_lines_report(c, what, r, led, py):
    """lines.py's ledger against memprof's report: exact leaks and peak by innermost line for
    the kept lines, exact per-line rows (inclusive on the call lines)."""
    common_process_checks(c, what, r, py)
    path, marks, funcs = led["file"], led["marks"], led["functions"]
    with open(path) as f:
        source = f.read().splitlines()
    for name, want in sorted(led["kept"].items()):
        hits = at_line(r["leaks_by_line"], path, marks[name])
        c.eq("%s: leaks_by_line %s (line %d) [bytes, blocks]" % (what, name, marks[name]),
             bytes_blocks(r["leaks_by_line"], path, marks[name]), want)
        c.check(all(h.get("function") == funcs[name] for h in hits),
                "%s: leaks_by_line %s: function %r, expected %r"
                % (what, name, [h.get("function") for h in hits], funcs[name]))
    for name, want in sorted(led["peak"].items()):
        c.eq("%s: peak_by_line %s (line %d) [bytes, blocks]" % (what, name, marks[name]),
             bytes_blocks(r["peak_by_line"], path, marks[name]), want)
    rows = {}
    for name, want in sorted(list(led["rows"].items()) + list(led["calls"].items())):
        first = marks["def_build"] if funcs[name] == "build" else 1
        rows[name] = check_row(c, "%s: %s" % (what, name), r, path, marks[name], want,
                               funcs[name], first, source)
    if None in rows.values():
        return
    # Inclusive attribution: the two call lines carry all that build()'s lines did.
    calls = [rows[n] for n in led["calls"]]
    body = [rows[n] for n in led["rows"] if funcs[n] == "build"]
    for k in ("alloc_bytes", "freed_bytes", "occurrences", "increment"):
        c.eq("%s: %s of the call lines vs of build()'s lines" % (what, k),
             sum(x[k] for x in calls), sum(x[k] for x in body))
    # functions[]: build() as a whole, each of its events once.
    fns = [f for f in r.get("functions", []) if same_file(f.get("file"), path)
           and f.get("function") == "build"]
    if c.check(len(fns) == 1, "%s: expected one `functions` entry for build(), got %r"
               % (what, fns)):
        f = fns[0]
        c.eq("%s: functions[build] first_line" % what, f.get("first_line"), marks["def_build"])
        c.check((f.get("last_line") or 0) >= marks["build_del"],
                "%s: functions[build] last_line %r < %d" % (what, f.get("last_line"),
                                                             marks["build_del"]))
        for k, rk in (("alloc_bytes", "alloc_bytes"), ("freed_bytes", "freed_bytes"),
                      ("allocations", "occurrences")):
            c.eq("%s: functions[build] %s vs its lines" % (what, k), f.get(k),
                 sum(x[rk] for x in body))
    # mem_usage: the second call's peak has everything kept plus both temporaries live.
    live = sum(b for b, _n in led["peak"].values())
    for name in ("call_2", "build_same"):
        c.check(rows[name]["mem_usage"] >= live, "%s: row %s mem_usage %d < %d live then"
                % (what, name, rows[name]["mem_usage"], live))
    c.check(r["summary"]["peak_bytes"] >= live, "%s: summary.peak_bytes %d < %d"
            % (what, r["summary"]["peak_bytes"], live))


def run_lines(c, py, out, stem, argv_extra=(), **env):
    outdir = c.outdir(py, out)
    p = c.pythonrun([py.path] + list(argv_extra) + [LINES],
                    c.py_env(os.path.join(outdir, stem + ".%p.dump"), **env),
                    "lines.py " + " ".join(list(argv_extra) + ["%s=%s" % kv for kv in
                                                               env.items()]))
    no_preload_warnings(c, stem, p.stderr)
    led = c.only_ledger(p.stdout, stem)
    return led, c.report(c.dump_of(outdir, stem, led["pid"]))


def py_lines(c, py):
    """lines.py: exact leaks, peak and per-line rows by line; memprof vs tracemalloc within 1%."""
    led, r = run_lines(c, py, "lines", "lines")
    check_lines_report(c, "lines.py", r, led, py)

    # A script that ends right after start-up still gets its end-of-main marker (leaks measured
    # there): the pending call that registers it is scheduled by the first miss after start-up,
    # not left to the writer's next pass (which came too late in some 15% of these runs).
    outdir = c.outdir(py, "short")
    for i in range(5):
        stem = "short%d" % i
        p = c.pythonrun([py.path, "-c", "x = [1]; print('pid', __import__('os').getpid())"],
                        c.py_env(os.path.join(outdir, stem + ".%p.dump")), "short script")
        pid = int(p.stdout.split()[-1])
        rs = c.report(c.dump_of(outdir, stem, pid))
        c.eq("short script, run %d: summary.leaks_at" % (i + 1), rs["summary"]["leaks_at"],
             "main_end")

    # The same script under tracemalloc (no preload), snapshot at the end of the main code.
    p = c.pythonrun([py.path, "-X", "tracemalloc=1", TMWRAP, LINES], c.py_env(),
                    "tracemalloc run")
    tled = c.only_ledger(p.stdout, "tracemalloc run")
    tms = ledgers(p.stdout, "memprof-tracemalloc")
    c.require(len(tms) == 1, "tracemalloc run: no statistics in:\n%s" % p.stdout)
    tm = {e["line"]: e for e in tms[0]}
    # tracemalloc counts heap blocks exactly: it confirms the ledger's sizes (sys.getsizeof) and
    # block counts on this version, independently of memprof.
    for name, want in sorted(tled["kept"].items()):
        e = tm.get(tled["marks"][name], {})
        c.eq("tracemalloc vs the ledger: %s [size, count]" % name,
             [e.get("size"), e.get("count")], want)
    # memprof vs tracemalloc: every line with 1 MiB or more live in either is within 1%.
    path = led["file"]
    mp = {}
    for e in r["leaks_by_line"]:
        if same_file(e.get("file"), path):
            mp[e["line"]] = mp.get(e["line"], 0) + e["bytes"]
    big = sorted({l for l, b in mp.items() if b >= MIB}
                 | {l for l, e in tm.items() if e["size"] >= MIB})
    c.check(len(big) >= len(led["kept"]), "only lines %r hold 1 MiB or more" % big)
    for line in big:
        a, b = mp.get(line, 0), tm.get(line, {}).get("size", 0)
        c.check(abs(a - b) <= 0.01 * max(a, b),
                "line %d: memprof leaks_by_line %d bytes, tracemalloc %d bytes (more than 1%% "
                "apart)" % (line, a, b))


ALLOCATOR_MODES = [
    # (label, interpreter options, environment, process.python_allocator)
    ("PYTHONMALLOC=malloc", [], {"PYTHONMALLOC": "malloc"}, "malloc"),
    ("PYTHONMALLOC=pymalloc_debug", [], {"PYTHONMALLOC": "pymalloc_debug"}, "pymalloc_debug"),
    ("-X dev", ["-X", "dev"], {}, None),
]


def py_allocators(c, py):
    """lines.py under PYTHONMALLOC=malloc, pymalloc_debug and -X dev: the same exact numbers."""
    for i, (label, opts, env, allocator) in enumerate(ALLOCATOR_MODES):
        led, r = run_lines(c, py, "alloc%d" % i, "alloc%d" % i, opts, **env)
        check_lines_report(c, "lines.py " + label, r, led, py)
        got = r["process"].get("python_allocator")
        if allocator:
            c.eq("%s: process.python_allocator" % label, got, allocator)
        else:
            c.check(got != "default" and "dev" in str(got),
                    "%s: process.python_allocator %r does not name -X dev" % (label, got))


# ---- py_cext ------------------------------------------------------------------------------------

def py_cext(c, py):
    """A C extension leaks (malloc, PyMem_RawMalloc): one stack, C function and Python line."""
    if not os.path.exists(os.path.join(py.include, "Python.h")):
        return "no Python.h in %s (headers not installed)" % py.include
    outdir = c.outdir(py, "cext")
    ext = os.path.join(outdir, "mpext" + py.ext_suffix)
    c.run([c.cc, "-shared", "-fPIC", "-O0", "-g", "-fno-omit-frame-pointer", "-I", py.include,
           "-o", ext, MPEXT_C], c.env(), timeout=120)
    # -S (no site): the report symbolizes every native stack live at the end, and site's
    # imports would multiply them.
    p = c.pythonrun([py.path, "-S", CEXT, outdir],
                    c.py_env(os.path.join(outdir, "cext.%p.dump"), MEMPROF_NATIVE=1), "cext.py")
    no_preload_warnings(c, "cext", p.stderr)
    led = c.only_ledger(p.stdout, "cext.py")
    r = c.report(c.dump_of(outdir, "cext", led["pid"]))
    common_process_checks(c, "cext.py", r, py)
    c.eq("cext.py: process.native_stacks", r["process"].get("native_stacks"), True)
    path = led["file"]
    for name, (fn, nbytes, nblocks) in sorted(led["leaks"].items()):
        line = led["marks"][name]
        what = "cext.py %s (%s:%d -> %s)" % (name, os.path.basename(path), line, fn)
        got = [0, 0]
        for leak in r["leaks"]:
            frames = stack_frames(r, leak["stack"])
            at = [i for i, f in enumerate(frames)
                  if f.get("kind") == "native" and f.get("function") == fn]
            if not at:
                continue
            got[0] += leak["bytes"]
            got[1] += leak["blocks"]
            nat = frames[at[0]]
            c.check(os.path.basename(nat.get("file") or "") == "mpext.c"
                    and (nat.get("module") or "").startswith("mpext"),
                    "%s: native frame %r is not in mpext.c / the mpext module" % (what, nat))
            c.check(all(f.get("kind") == "native" for f in frames[:at[0]]),
                    "%s: Python frames inside the C function: %r" % (what, frames[:at[0]]))
            pys = [f for f in frames[at[0] + 1:] if f.get("kind") == "python"]
            c.check(bool(pys) and same_file(pys[0].get("file"), path)
                    and pys[0].get("line") == line and pys[0].get("function") == "<module>",
                    "%s: the Python frame outside the C function is %r, expected %s:%d in "
                    "<module>" % (what, pys[:1], path, line))
        c.eq("%s: leaks whose stack holds %s() [bytes, blocks]" % (what, fn), got,
             [nbytes, nblocks])
        c.eq("%s: leaks_by_line [bytes, blocks]" % what,
             bytes_blocks(r["leaks_by_line"], path, line), [nbytes, nblocks])


# ---- py_threads ---------------------------------------------------------------------------------

def pid_running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for_dumps(c, outdir, pattern, seconds=30):
    """Processes started by the script may outlive it (multiprocessing's resource tracker ends
    when its parent has gone): wait until no process that names a dump here runs."""
    deadline = time.monotonic() + seconds
    while True:
        pids = [int(m.group(1)) for m in (re.match(pattern, f) for f in os.listdir(outdir)) if m]
        running = [p for p in pids if pid_running(p)]
        if not running:
            return
        c.require(time.monotonic() < deadline, "processes %r still running after %d s"
                  % (running, seconds))
        time.sleep(0.05)


def check_thread_lines(c, what, r, led):
    path, marks = led["file"], led["marks"]
    for name, want in sorted(led["lines"].items()):
        line = marks[name]
        label = "%s %s (line %d)" % (what, name, line)
        if "native_bytes" in want:  # only a lower bound here: see the native run
            nb, nblk = bytes_blocks(r["leaks_by_line"], path, line)
            c.check(want["native_bytes"] <= nb <= want["native_bytes"] + 65536 and nblk >= 1,
                    "%s: leaks_by_line %d bytes in %d blocks, expected the thread's %d bytes "
                    "(and at most 64 KiB more)" % (label, nb, nblk, want["native_bytes"]))
            continue
        if want["allocations"] or want["freed_bytes"]:
            check_row(c, label, r, path, line,
                      {"occurrences": want["allocations"], "alloc_bytes": want["alloc_bytes"],
                       "freed_bytes": want["freed_bytes"]}, want["function"])
        else:
            c.eq("%s: `lines` rows" % label, at_line(r["lines"], path, line), [])
        c.eq("%s: leaks_by_line [bytes, blocks]" % label,
             bytes_blocks(r["leaks_by_line"], path, line),
             [want["kept_bytes"], want["kept_blocks"]])


def py_threads(c, py):
    """Threads, a pool, asyncio, a native pthread, fork and spawn children: lines per process."""
    lib = os.path.join(c.build, "libe2e-pythread.so")
    c.require(os.path.exists(lib), "%s is missing: build the e2e programs first" % lib)
    outdir = c.outdir(py, "threads")
    p = c.pythonrun([py.path, THREADS, lib],
                    c.py_env(os.path.join(outdir, "t.%p.dump")), "threads.py")
    no_preload_warnings(c, "threads.py", p.stderr)
    wait_for_dumps(c, outdir, r"t\.(\d+)\.dump")
    leds = {l["role"]: l for l in ledgers(p.stdout)}
    c.require(sorted(leds) == ["fork", "parent", "spawn"],
              "threads.py: expected the ledgers of parent, fork and spawn, got:\n%s" % p.stdout)
    parent = leds["parent"]["pid"]
    # The children hold no descriptor of the parent's dump (a fork child's copy is closed).
    fds = {f["role"]: f["parent_dump_fds"] for f in ledgers(p.stdout, "memprof-fds")}
    c.eq("threads.py: children's descriptors of the parent's dump", fds, {"fork": 0, "spawn": 0})

    # Every process wrote a complete dump with Python lines in it; the image of a fork child
    # that exec'd leaves "<name>.exec<k>", readable and without events.
    reports = {}
    for name in sorted(os.listdir(outdir)):
        path = os.path.join(outdir, name)
        if re.match(r"t\.\d+\.dump$", name):
            r = reports[int(name.split(".")[1])] = c.report(path)
            common_process_checks(c, name, r, py, leaks_at=None)
            c.check(any(row.get("file", "").endswith(".py") for row in r["lines"]),
                    "%s: no Python line in `lines`" % name)
        elif re.match(r"t\.\d+\.dump\.exec\d+$", name):
            r = c.report(path, expect_warning=None)
            c.eq("%s: allocations before exec" % name, r["summary"]["total_allocations"], 0)
        else:
            c.check(False, "an unexpected file %s" % name)
    c.check(len(reports) >= 4, "threads.py: %d dumps, expected parent, fork and spawn children "
            "and multiprocessing's resource tracker" % len(reports))
    for role, led in sorted(leds.items()):
        what = "threads.py %s (pid %d)" % (role, led["pid"])
        if not c.check(led["pid"] in reports, "%s: no dump" % what):
            continue
        r = reports[led["pid"]]
        c.eq("%s: process.forked" % what, r["process"].get("forked"), role == "fork")
        if role != "parent":
            c.eq("%s: process.ppid" % what, r["process"].get("ppid"), parent)
        # The fork child ends with os._exit(): no end of main code, leaks at exit.
        c.eq("%s: summary.leaks_at" % what, r["summary"].get("leaks_at"),
             "exit" if role == "fork" else "main_end")
        check_thread_lines(c, what, r, led)
    r = reports.get(parent)
    if r:
        tids = {t["tid"] for t in r["threads"]}
        c.check(len(tids) >= 10, "threads.py: %d threads in the parent's report, expected 10 or "
                "more (main, 8 producers and consumers, the pool, the native one)" % len(tids))

    # The native pthread again, with native stacks: exactly its block, under mpthread_body, whose
    # nearest Python frame is the line that started the thread.
    p = c.pythonrun([py.path, "-S", THREADS, lib, "native"],  # -S: see py_cext
                    c.py_env(os.path.join(outdir, "n.%p.dump"), MEMPROF_NATIVE=1),
                    "threads.py native")
    led = c.only_ledger(p.stdout, "threads.py native")
    r = c.report(c.dump_of(outdir, "n", led["pid"]))
    common_process_checks(c, "threads.py native", r, py)
    want = led["lines"]["native_thread"]
    line, fn = led["marks"]["native_thread"], want["native_function"]
    got = [0, 0]
    for leak in r["leaks"]:
        frames = stack_frames(r, leak["stack"])
        at = [i for i, f in enumerate(frames) if f.get("function") == fn]
        if not at:
            continue
        got[0] += leak["bytes"]
        got[1] += leak["blocks"]
        pys = [f for f in frames[at[0] + 1:] if f.get("kind") == "python"]
        c.check(bool(pys) and same_file(pys[0].get("file"), led["file"])
                and pys[0].get("line") == line and pys[0].get("function") == want["function"],
                "threads.py native: the Python frame of the thread's stack is %r, expected "
                "%s:%d in %s" % (pys[:1], led["file"], line, want["function"]))
    c.eq("threads.py native: leaks under %s() [bytes, blocks]" % fn, got,
         [want["native_bytes"], 1])


# ---- py_codereuse --------------------------------------------------------------------------------

def run_ledgered(c, py, script, stem):
    """Run script under memprof, in a directory of its own: its one ledger, and the report of
    the dump of the process that printed it, with common_process_checks done."""
    name = os.path.basename(script)
    outdir = c.outdir(py, stem)
    p = c.pythonrun([py.path, script], c.py_env(os.path.join(outdir, stem + ".%p.dump")), name)
    led = c.only_ledger(p.stdout, name)
    r = c.report(c.dump_of(outdir, stem, led["pid"]))
    common_process_checks(c, name, r, py)
    return led, r


def py_codereuse(c, py):
    """codereuse.py: lists charged to their own generated files while code addresses repeat."""
    led, r = run_ledgered(c, py, CODEREUSE, "cr")
    # Without reuse the case would prove nothing: pymalloc hands a freed code object's block
    # to the next one of its size class, so nearly every round reuses one.
    c.check(led["reused"] >= len(led["sizes"]) // 4,
            "codereuse.py: only %d of %d rounds made a code object at an earlier one's address"
            % (led["reused"], len(led["sizes"])))
    got = {}
    for e in r["leaks_by_line"]:
        name = os.path.basename(e.get("file") or "")
        if name.startswith("gen_"):
            got[name] = got.get(name, 0) + e["bytes"]
            c.check(e.get("line") == 2, "codereuse.py: a leak at %s:%r" % (name, e.get("line")))
    wrong = sorted((n for n in set(got) | set(led["sizes"]) if got.get(n) != led["sizes"].get(n)),
                   key=lambda n: int(re.sub(r"\D", "", n)))
    c.check(not wrong, "codereuse.py: %d of %d generated files leak other than their own bytes, "
            "e.g. %s" % (len(wrong), len(led["sizes"]),
                         ", ".join("%s: %r, want %r" % (n, got.get(n), led["sizes"].get(n))
                                   for n in wrong[:4])))


def py_deep(c, py):
    """deepstacks.py: every pattern's objects on the one stack of its own calls, 40-135 deep."""
    led, r = run_ledgered(c, py, DEEPSTACKS, "deep")
    path, marks = led["file"], led["marks"]
    call = {marks["a"]: "A", marks["b"]: "B"}
    got, bad = {}, []
    for site in r["leaks"]:
        frames = stack_frames(r, site["stack"])
        if not (frames and same_file(frames[0].get("file"), path)
                and frames[0].get("line") == marks["alloc"]):
            continue
        # innermost first: the allocation, one down() frame per call (the outermost call's
        # frame last), then <module>; or, 135 deep, the innermost frames up to the depth limit
        # (MP_PY_DEPTH, 128) and its marker
        calls = frames[1:-1]
        name = "".join(call.get(f.get("line"), "?") for f in reversed(calls))
        cut = frames[-1].get("function") == "<truncated>"
        if cut:
            name = "..." + name
        if (frames[-1].get("function") not in ("<module>", "<truncated>")
                or any(f.get("function") != "down" or not same_file(f.get("file"), path)
                       for f in frames[:-1])):
            bad.append("stack %d: %r" % (site["stack"], [(f.get("function"), f.get("line"))
                                                         for f in frames]))
            continue
        b, n = got.get(name, (0, 0))
        got[name] = (b + site["bytes"], n + site["blocks"])
    c.check(not bad, "deepstacks.py: %d stacks at the allocation line are not down() calls "
            "from <module>, e.g. %s" % (len(bad), "; ".join(bad[:2])))
    # Cut stacks keep the innermost calls that fit under the limit: as many in every one.
    kept = max([len(n) - 3 for n in got if n.startswith("...")] or [0])
    want = {}
    for name, (size, count) in led["patterns"].items():
        if len(name) > 128:
            name = "..." + name[len(name) - kept:]
        b, n = want.get(name, (0, 0))
        want[name] = (b + size * count, n + count)
    wrong = sorted(n for n in set(got) | set(want) if got.get(n) != want.get(n))
    c.check(not wrong, "deepstacks.py: %d of %d patterns have other [bytes, blocks] than their "
            "own objects, e.g. %s" % (len(wrong), len(want), "; ".join(
                "%d-deep %s...: %r, want %r" % (len(n), n[:12], got.get(n), want.get(n))
                for n in wrong[:3])))


def py_embed(c, py):
    """A program that dlopens libpython after start-up runs normally; what it allocates is
    recorded (without Python stacks: python-frames.md 12)."""
    p = c.run([py.path, "-c", "import os, sysconfig; v = sysconfig.get_config_var; "
               "print(os.path.join(v('LIBDIR'), v('LDLIBRARY')))"], c.py_env())
    lib = p.stdout.strip()
    if not lib.endswith(".so") and ".so." not in lib or not os.path.exists(lib):
        return "no shared libpython (%s)" % lib
    outdir = c.outdir(py, "embed")
    exe = os.path.join(c.build, "e2e-pyembed")  # tests/e2e/py/mpembed.c, built by CMake
    c.require(os.path.exists(exe), "%s is missing (build the project first)" % exe)
    env = c.py_env(os.path.join(outdir, "embed.%p.dump"))
    env["PYTHONHOME"] = os.path.dirname(os.path.dirname(py.path))
    p = c.run([exe, lib, EMBEDDED], env)
    no_preload_warnings(c, "embed", p.stderr)
    c.eq("embed: stdout", p.stdout.strip(), "memprof-embed ok")
    dumps = [d for d in os.listdir(outdir) if d.startswith("embed.") and d.endswith(".dump")]
    c.require(len(dumps) == 1, "embed: expected one dump, got %r" % dumps)
    r = c.report(os.path.join(outdir, dumps[0]))
    p_, s = r["process"], r["summary"]
    c.eq("embed: process.incomplete", p_.get("incomplete"), False)
    c.eq("embed: process.lost_events", p_.get("lost_events"), 0)
    c.eq("embed: summary.overlapping_allocs", s.get("overlapping_allocs"), 0)
    # The three buffers were live together: the malloc-level events are all there.
    c.check(s.get("peak_bytes", 0) >= 3000000, "embed: summary.peak_bytes %r < 3 x 1 MB"
            % s.get("peak_bytes"))


def py_forkthread(c, py):
    """A child forked from a worker thread ends when that thread does (test_threading hung on
    it): both processes exit 0 with complete dumps; the child's has its thread's buffer."""
    outdir = c.outdir(py, "forkthread")
    p = c.pythonrun([py.path, FORKTHREAD], c.py_env(os.path.join(outdir, "ft.%p.dump")),
                    "forkthread.py")
    no_preload_warnings(c, "forkthread", p.stderr)
    led = [l.split() for l in p.stdout.splitlines() if l.startswith("memprof-forkthread ")]
    c.require(len(led) == 1, "forkthread.py: no pids in %r" % p.stdout)
    parent, child = int(led[0][1]), int(led[0][2])
    reports = {pid: c.report(c.dump_of(outdir, "ft", pid)) for pid in (parent, child)}
    for pid, r in reports.items():
        c.eq("forkthread pid %d: process.incomplete" % pid, r["process"]["incomplete"], False)
    got = sum(e["bytes"] for e in reports[child]["leaks_by_line"]
              if same_file(e.get("file"), FORKTHREAD) and e.get("function") == "child_work")
    c.check(got >= 123457, "forkthread child: %d bytes leaked in child_work, expected the "
            "bytearray's 123457 or more" % got)


CASES = {
    "py_lines": py_lines,
    "py_allocators": py_allocators,
    "py_cext": py_cext,
    "py_threads": py_threads,
    "py_codereuse": py_codereuse,
    "py_deep": py_deep,
    "py_embed": py_embed,
    "py_forkthread": py_forkthread,
}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", required=True, help="the CMake build directory")
    ap.add_argument("--case", choices=sorted(CASES), help="the case to run")
    ap.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--cc", default=os.environ.get("CC") or "cc",
                    help="the C compiler for the test extension (default: $CC or cc)")
    ap.add_argument("--python", help="run on this interpreter only (a path or a pyenv version)")
    ap.add_argument("--verbose", action="store_true", help="print each command and its time")
    ap.add_argument("--seed", type=int, help="PYTHONHASHSEED for every run (default: random)")
    args = ap.parse_args(argv)
    if args.list:
        for name in sorted(CASES):
            print("%-14s %s" % (name, CASES[name].__doc__ or ""))
        return 0
    if not args.case:
        ap.error("--case is required")
    for name in ("libmemprof.so", "memprof"):
        path = os.path.join(args.build, name)
        if not os.path.exists(path):
            print("FAIL e2e.%s: %s is missing (build the project first)" % (args.case, path))
            return 1
    if args.case == "py_cext" and not shutil.which(args.cc):
        print("SKIP e2e.%s: no C compiler %r" % (args.case, args.cc))
        return SKIP
    c = PyCase(args.build, args.case, args.keep, args.cc, args.python)
    c.verbose = args.verbose
    if args.seed is not None:
        c.seed = args.seed
    t0 = time.monotonic()
    skipped = None
    try:
        skipped = for_each_python(c, CASES[args.case])
    except Failed:
        pass
    if skipped and not c.failures:
        shutil.rmtree(c.tmp, ignore_errors=True)
        print("SKIP e2e.%s: %s" % (args.case, skipped))
        return SKIP
    return c.finish(time.monotonic() - t0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
