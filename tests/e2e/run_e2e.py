#!/usr/bin/env python3
"""run_e2e.py - end-to-end tests: real C programs under libmemprof.so, checked with `memprof json`.

    run_e2e.py --build DIR --case NAME [--keep]
    run_e2e.py --build DIR --list

Each case runs one program from tests/e2e/c/ (built by tests/e2e/e2e.cmake into DIR) in a fresh
temporary directory, under LD_PRELOAD=DIR/libmemprof.so or `DIR/memprof run`, reports its dump
with `DIR/memprof json`, and compares the report with the program's own ledger: every program
counts the heap calls it makes and prints what a correct profiler must report ("expect" and
"leak" lines, tests/e2e/c/e2e.h). So the expected numbers are exact and come from what the
program did, never from an earlier run. Where valgrind is installed, the `valgrind` case also
checks those programs against valgrind's own counts.

Exit status 0 when every check passed, 1 otherwise (each failed check is printed), 2 for bad
usage, 77 when the case was skipped (valgrind not installed). The temporary directory is removed
on success and kept (and named) on failure.
Python 3 standard library only.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import mpdump

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "c")

# Exact totals every case compares between the ledger and `memprof json` (summary keys).
SUMMARY_KEYS = ["total_allocations", "total_frees", "total_bytes", "leaked_bytes",
                "leaked_blocks", "unknown_frees"]


# Exit status of a case whose subject is absent here (ctest's SKIP_RETURN_CODE, e2e.cmake).
SKIPPED = 77


class Failed(Exception):
    pass


class Case:
    """The state of one test case: its directory, its checks and their failures."""

    def __init__(self, build, name, keep):
        self.build = os.path.abspath(build)
        self.name = name
        self.keep = keep
        self.lib = os.path.join(self.build, "libmemprof.so")
        self.memprof = os.path.join(self.build, "memprof")
        self.tmp = tempfile.mkdtemp(prefix="memprof-e2e-%s-" % name)
        self.checks = 0
        self.failures = []

    # ---- checks -------------------------------------------------------------------------------

    def check(self, ok, what):
        self.checks += 1
        if not ok:
            self.failures.append(what)
        return ok

    def eq(self, what, got, want):
        return self.check(got == want, "%s: got %r, expected %r" % (what, got, want))

    def require(self, ok, what):
        """A check whose failure makes the rest of the case meaningless."""
        if not self.check(ok, what):
            raise Failed(what)

    # ---- programs -----------------------------------------------------------------------------

    def exe(self, name):
        path = os.path.join(self.build, "e2e-" + name)
        self.require(os.access(path, os.X_OK),
                     "%s is missing: build the e2e programs first (cmake --build %s)"
                     % (path, self.build))
        return path

    def env(self, **extra):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("MEMPROF_") or k == "LD_PRELOAD":
                del env[k]
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def preload_env(self, output, **extra):
        return self.env(LD_PRELOAD=self.lib, MEMPROF_OUTPUT=output, **extra)

    def run(self, argv, env, timeout=240, expect_rc=0):
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, env=env, cwd=self.tmp, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired:
            # A failure like any other (a bare raise of Failed was not counted: the case passed).
            self.require(False, "%s timed out after %d s" % (" ".join(argv), timeout))
        p.stdout = p.stdout.decode("utf-8", "replace")
        p.stderr = p.stderr.decode("utf-8", "replace")
        p.seconds = time.monotonic() - t0
        if expect_rc is not None:
            self.require(p.returncode == expect_rc,
                         "%s exited with %d (expected %d); stderr:\n%s"
                         % (" ".join(argv), p.returncode, expect_rc, p.stderr[-2000:]))
        return p

    def report(self, dump, expect_warning=False):
        """`memprof json DUMP`: the parsed report. The reporter must exit 0; it prints one
        warning line exactly when the dump is incomplete (expect_warning None: not checked)."""
        p = self.run([self.memprof, "json", dump], self.env(), timeout=240, expect_rc=None)
        self.require(p.returncode == 0, "memprof json %s exited with %d: %s"
                     % (dump, p.returncode, p.stderr.strip()))
        warnings = [l for l in p.stderr.splitlines() if "warning" in l]
        if expect_warning is None:
            pass
        elif expect_warning:
            self.check(len(warnings) == 1 and "incomplete" in warnings[0],
                       "memprof json %s: expected one warning about an incomplete dump, got %r"
                       % (dump, p.stderr))
        else:
            self.check(p.stderr.strip() == "", "memprof json %s printed on stderr: %r"
                       % (dump, p.stderr))
        try:
            return json.loads(p.stdout)
        except ValueError as e:
            raise Failed("memprof json %s: not JSON (%s)" % (dump, e))

    # ---- ledgers ------------------------------------------------------------------------------

    @staticmethod
    def ledger(stdout):
        """The "expect" and "leak" lines a program printed: {pid: {role, totals, leaks}}."""
        procs = {}
        for line in stdout.splitlines():
            words = line.split()
            if not words or words[0] not in ("expect", "leak"):
                continue
            kv = dict(w.split("=", 1) for w in words[1:] if "=" in w)
            pid = int(kv.pop("pid"))
            proc = procs.setdefault(pid, {"leaks": [], "expect": None})
            if words[0] == "leak":
                proc["leaks"].append((kv["function"], int(kv["bytes"]), int(kv["blocks"])))
            else:
                proc["role"] = kv.pop("role")
                proc["expect"] = {k: int(v) for k, v in kv.items()}
        return procs

    def only_process(self, stdout):
        procs = self.ledger(stdout)
        self.require(len(procs) == 1 and all(p["expect"] for p in procs.values()),
                     "expected the ledger of exactly one process, got:\n%s" % stdout)
        pid, proc = next(iter(procs.items()))
        return pid, proc

    def compare(self, label, report, expect, keys=None, adjust=None):
        """summary[key] == ledger[key] for every key of the ledger (or of keys)."""
        s = report["summary"]
        for k in keys or expect:
            want = expect[k] + (adjust or {}).get(k, 0)
            self.eq("%s: summary.%s" % (label, k), s.get(k), want)
        self.eq("%s: summary.overlapping_allocs" % label, s.get("overlapping_allocs"), 0)
        self.eq("%s: process.lost_events" % label, report["process"].get("lost_events"), 0)

    def leak_sites(self, label, report, leaks, source=None):
        """Each ledger leak (function, bytes, blocks) equals the sum of the report's leak
        entries whose stack contains that function; with source, the frame's line must lie in
        that function's body."""
        frames, stacks = report["frames"], report["stacks"]
        spans = function_spans(source) if source else {}
        for fn, nbytes, nblocks in leaks:
            got_bytes = got_blocks = 0
            for leak in report["leaks"]:
                fids = stacks.get(str(leak["stack"]), [])
                hits = [frames[str(f)] for f in fids if frames[str(f)].get("function") == fn]
                if not hits:
                    continue
                got_bytes += leak["bytes"]
                got_blocks += leak["blocks"]
                if fn in spans:
                    lo, hi = spans[fn]
                    fr = hits[0]
                    self.check(os.path.basename(fr.get("file") or "") == os.path.basename(source)
                               and fr.get("line") is not None and lo <= fr["line"] <= hi,
                               "%s: frame of %s is at %s:%s, expected %s lines %d-%d"
                               % (label, fn, fr.get("file"), fr.get("line"),
                                  os.path.basename(source), lo, hi))
            self.eq("%s: bytes leaked under %s()" % (label, fn), got_bytes, nbytes)
            self.eq("%s: blocks leaked under %s()" % (label, fn), got_blocks, nblocks)

    def dumps(self, pattern=r".*\.dump$"):
        return sorted(os.path.join(self.tmp, f) for f in os.listdir(self.tmp)
                      if re.search(pattern, f))

    def finish(self, seconds):
        ok = not self.failures
        for f in self.failures:
            print("FAIL: " + f)
        if ok and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print("files kept in %s" % self.tmp)
        print("%s e2e.%s: %d checks, %d failed, %.1f s"
              % ("PASS" if ok else "FAIL", self.name, self.checks, len(self.failures), seconds))
        return 0 if ok else 1


def function_spans(source):
    """{function name: (first line, last line)} of the top-level functions of a C file
    formatted by the repo's .clang-format (return type on its own line, closing brace at
    column 0)."""
    spans, name, start = {}, None, 0
    with open(source) as f:
        for i, line in enumerate(f, 1):
            m = re.match(r"^([A-Za-z_]\w*)\(", line)
            if m and name is None:
                name, start = m.group(1), i
            elif line.startswith("}") and name:
                spans[name] = (start, i)
                name = None
    return spans


def no_preload_warnings(c, label, stderr, dump=None):
    """The library prints one line at exit (unless quiet) and nothing else."""
    lines = [l for l in stderr.splitlines() if l.startswith("memprof:")]
    c.check(all(l.startswith("memprof: wrote ") for l in lines),
            "%s: unexpected messages from the library: %r" % (label, lines))


# ---- cases --------------------------------------------------------------------------------------

def case_allocators(c):
    """Every allocator, under LD_PRELOAD: exact totals, leaks and peak; failing calls
    (realloc that cannot grow, calloc overflow, ...) change nothing."""
    p = c.run([c.exe("allocators")], c.preload_env(os.path.join(c.tmp, "a.%p.dump")))
    pid, proc = c.only_process(p.stdout)
    no_preload_warnings(c, "allocators", p.stderr)
    dump = os.path.join(c.tmp, "a.%d.dump" % pid)
    c.require(os.path.exists(dump), "no dump %s" % dump)
    c.check("memprof: wrote %s" % dump in p.stderr, "the exit line does not name %s: %r"
            % (dump, p.stderr))
    r = c.report(dump)
    c.compare("allocators", r, proc["expect"])
    c.eq("allocators: process.pid", r["process"]["pid"], pid)
    c.eq("allocators: process.incomplete", r["process"]["incomplete"], False)
    c.eq("allocators: summary.leaks_at", r["summary"].get("leaks_at"), "exit")
    # Without native stacks every leak shares stack 0; the list still adds up.
    c.eq("allocators: sum of leaks[].bytes", sum(l["bytes"] for l in r["leaks"]),
         proc["expect"]["leaked_bytes"])
    c.eq("allocators: sum of leaks[].blocks", sum(l["blocks"] for l in r["leaks"]),
         proc["expect"]["leaked_blocks"])
    c.eq("allocators: sum of the ledger's leak lines", sum(b for _f, b, _n in proc["leaks"]),
         proc["expect"]["leaked_bytes"])


def case_allocators_native(c):
    """The same program through `memprof run --native`: each leak's stack names the function
    that made it, at a line inside that function."""
    out = os.path.join(c.tmp, "n.%p.dump")
    p = c.run([c.memprof, "run", "--native", "-o", out, "--", c.exe("allocators")], c.env())
    pid, proc = c.only_process(p.stdout)
    dump = os.path.join(c.tmp, "n.%d.dump" % pid)
    c.require(os.path.exists(dump), "memprof run did not write %s" % dump)
    r = c.report(dump)
    c.compare("allocators --native", r, proc["expect"])
    c.eq("allocators --native: process.native_stacks", r["process"].get("native_stacks"), True)
    c.eq("allocators --native: summary.stacks_dropped", r["summary"].get("stacks_dropped"), 0)
    c.require(len(proc["leaks"]) >= 10, "the ledger lists too few leaks: %r" % proc["leaks"])
    c.leak_sites("allocators --native", r, proc["leaks"], os.path.join(CSRC, "allocators.c"))
    # Every leak of the run is attributed to one of the leak_* functions.
    named = {f for f, _b, _n in proc["leaks"]}
    for leak in r["leaks"]:
        fns = [r["frames"][str(f)].get("function") for f in r["stacks"][str(leak["stack"])]]
        c.check(any(f in named for f in fns),
                "allocators --native: a leak of %d bytes from no leak_* function: %r"
                % (leak["bytes"], fns))
    # memprof run printed the same totals in its text summary.
    text = {k: re.search(rx, p.stdout, re.M) for k, rx in
            (("total_allocations", r"^\s*allocations\s+(\d+)"),
             ("total_frees", r"^\s*frees\s+(\d+)"),
             ("leaked_blocks", r"^\s*leaked\s.* in (\d+) blocks?"))}
    for k, m in text.items():
        c.eq("allocators --native: memprof run's text summary, %s" % k,
             int(m.group(1)) if m else None, proc["expect"][k])


def case_threads(c):
    """8 threads x 1M events, each block freed by another thread: no unknown frees, no
    overlapping allocations, exact totals (minus what the C runtime allocates for the threads,
    measured by a calibration run of the same threads without allocations)."""
    nthreads, events = 8, 1000000
    exe = c.exe("threads")
    cal = c.run([exe, str(nthreads), "0"], c.preload_env(os.path.join(c.tmp, "cal.%p.dump")))
    cpid, cproc = c.only_process(cal.stdout)
    cr = c.report(os.path.join(c.tmp, "cal.%d.dump" % cpid))
    c.eq("calibration: program allocations", cproc["expect"]["total_allocations"], 0)
    # The runtime's own blocks (glibc: one DTV per thread) must all be gone at exit, or the
    # leak totals below would depend on it.
    c.eq("calibration: summary.leaked_bytes", cr["summary"]["leaked_bytes"], 0)
    c.eq("calibration: summary.unknown_frees", cr["summary"]["unknown_frees"], 0)
    runtime = {k: cr["summary"][k] for k in ("total_allocations", "total_frees", "total_bytes")}
    c.check(runtime["total_allocations"] <= 4 * nthreads,
            "calibration: the runtime made %d allocations for %d threads"
            % (runtime["total_allocations"], nthreads))

    for native in (0, 1):
        label = "threads" + (" --native" if native else "")
        env = c.preload_env(os.path.join(c.tmp, "t%d.%%p.dump" % native), MEMPROF_NATIVE=native)
        p = c.run([exe, str(nthreads), str(events)], env)
        pid, proc = c.only_process(p.stdout)
        no_preload_warnings(c, label, p.stderr)
        e = proc["expect"]
        c.eq("%s: program events" % label, e["total_allocations"] + e["total_frees"],
             nthreads * events + e["leaked_blocks"])
        r = c.report(os.path.join(c.tmp, "t%d.%d.dump" % (native, pid)))
        c.compare(label, r, e, keys=SUMMARY_KEYS, adjust=runtime)
        tids = {t["tid"] for t in r["threads"]}
        c.check(len(tids) >= nthreads + 1, "%s: %d threads in the report, expected %d or more"
                % (label, len(tids), nthreads + 1))
        c.eq("%s: leaks[] add up" % label, sum(l["bytes"] for l in r["leaks"]), e["leaked_bytes"])
        if native:
            # Every thread's leaks come from leak_in_thread, whichever thread ran it.
            total = (sum(b for _f, b, _n in proc["leaks"]), sum(n for _f, _b, n in proc["leaks"]))
            c.leak_sites(label, r, [("leak_in_thread",) + total], os.path.join(CSRC, "threads.c"))
            c.eq("%s: summary.stacks_dropped" % label, r["summary"]["stacks_dropped"], 0)


def case_killed(c):
    """SIGKILL after "ready": the dump has no trailer; the reporter says it is incomplete,
    exits 0, and has every event made before "ready"."""
    dump_pat = os.path.join(c.tmp, "k.%p.dump")
    proc = subprocess.Popen([c.exe("killed"), "1000"], cwd=c.tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env=c.preload_env(dump_pat, MEMPROF_INTERVAL_MS=10))
    lines = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            if not line:
                break
            lines.append(line)
            if line.strip() == "ready":
                break
        c.require(lines and lines[-1].strip() == "ready",
                  "killed: no 'ready' line; got %r" % lines)
        time.sleep(0.3)  # > MEMPROF_INTERVAL_MS: the writer has flushed everything
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    c.eq("killed: exit status", proc.returncode, -signal.SIGKILL)
    c.check("memprof: wrote" not in stderr, "killed: the library claims a clean exit: %r" % stderr)
    pid, led = c.only_process("".join(lines))
    dump = os.path.join(c.tmp, "k.%d.dump" % pid)
    c.require(os.path.exists(dump), "killed: no dump %s" % dump)
    r = c.report(dump, expect_warning=True)
    c.eq("killed: process.incomplete", r["process"]["incomplete"], True)
    c.check(bool(r["process"].get("incomplete_reason")), "killed: no incomplete_reason")
    c.compare("killed", r, led["expect"])
    # A second, independent reading of the same bytes (mpdump.py): the file really ends
    # without a trailer, and both readers replay the same totals.
    d = mpdump.Dump(dump)
    c.eq("killed: mpdump: trailer", d.trailer, None)
    totals, _live = d.replay()
    for k in SUMMARY_KEYS:
        c.eq("killed: mpdump vs memprof json, %s" % k, totals[k], r["summary"][k])
    # The text report says so too.
    p = c.run([c.memprof, "report", dump], c.env(), expect_rc=0)
    c.check("incomplete" in p.stderr + p.stdout, "killed: memprof report does not say the dump "
            "is incomplete")

    # Killed while busy: 8 threads allocating and freeing flat out, so the kill lands while
    # chunks are being written. Every complete chunk must still be read (exit 0, a warning).
    proc = subprocess.Popen([c.exe("threads"), "8", "4000000000"], cwd=c.tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=c.preload_env(os.path.join(c.tmp, "busy.%p.dump"),
                                              MEMPROF_INTERVAL_MS=10))
    time.sleep(0.5)
    proc.kill()
    proc.wait(timeout=30)
    proc.stderr.close()
    c.eq("killed while busy: exit status", proc.returncode, -signal.SIGKILL)
    dump = os.path.join(c.tmp, "busy.%d.dump" % proc.pid)
    c.require(os.path.exists(dump), "killed while busy: no dump %s" % dump)
    r = c.report(dump, expect_warning=True)
    c.eq("killed while busy: process.incomplete", r["process"]["incomplete"], True)
    c.check(r["summary"]["total_allocations"] > 10000,
            "killed while busy: only %d allocations read" % r["summary"]["total_allocations"])
    # (No exact totals here: an event whose sequence number was taken before the kill may sit
    # in a chunk that was never written while a later one made it to disk.)


def case_forkexec(c):
    """fork (exit, _exit, abort), fork+exec and posix_spawn: one complete dump per process,
    each with exactly that process's own leaks."""
    p = c.run([c.exe("forkexec")], c.preload_env(os.path.join(c.tmp, "f.%p.dump")))
    procs = c.ledger(p.stdout)
    roles = {proc.get("role"): pid for pid, proc in procs.items()}
    c.require(sorted(roles) == sorted(["parent", "fork-exit", "fork-_exit", "fork-abort", "exec",
                                       "spawn"]),
              "forkexec: unexpected processes %r\n%s" % (roles, p.stdout))
    parent = roles["parent"]
    dumps = {}
    for path in c.dumps(r"\.dump"):
        # The process image before an exec leaves "<name>.exec<k>" beside the final one.
        r = c.report(path, expect_warning=None)
        dumps[path] = r
    for role, pid in sorted(roles.items()):
        label = "forkexec %s" % role
        path = os.path.join(c.tmp, "f.%d.dump" % pid)
        if not c.check(path in dumps, "%s: no dump %s (have %s)" % (label, path,
                                                                   sorted(dumps))):
            continue
        r = dumps[path]
        c.eq("%s: process.pid" % label, r["process"]["pid"], pid)
        c.eq("%s: process.incomplete" % label, r["process"]["incomplete"], False)
        if role != "parent":
            c.eq("%s: process.ppid" % label, r["process"]["ppid"], parent)
        c.eq("%s: process.forked" % label, r["process"].get("forked"), role.startswith("fork"))
        want_argv = ["exec-child", role] if role in ("exec", "spawn") else []
        c.eq("%s: process.argv[1:]" % label, r["process"]["argv"][1:], want_argv)
        c.compare(label, r, procs[pid]["expect"])
        totals, _live = mpdump.Dump(path).replay()
        for k in SUMMARY_KEYS:
            c.eq("%s: mpdump vs memprof json, %s" % (label, k), totals[k], r["summary"][k])
    # Dumps left by a process image that exec'd (the fork child before execv): finished by the
    # exec hook (complete, with a trailer), and with none of the program's events.
    execs = 0
    for path, r in dumps.items():
        if re.search(r"\.exec\d+$", path):
            execs += 1
            c.eq("forkexec %s: allocations before exec" % os.path.basename(path),
                 r["summary"]["total_allocations"], 0)
            c.eq("forkexec %s: incomplete" % os.path.basename(path),
                 r["process"]["incomplete"], False)
    c.eq("forkexec: dumps of exec'd images", execs, 1)
    c.eq("forkexec: dumps", len([d for d in dumps if d.endswith(".dump")]), len(roles))
    no_preload_warnings(c, "forkexec", p.stderr)


def case_badenv(c):
    """A bad MEMPROF_* value gives exactly one warning line; the program runs and exits
    normally (and, unless the dump cannot be created, is still profiled with the default)."""
    exe = c.exe("allocators")
    bad = [
        ("MEMPROF_DEPTH", "banana", True),
        ("MEMPROF_OUTPUT", "/nonexistent/dir/x", False),
        ("MEMPROF_NATIVE", "maybe", True),
        ("MEMPROF_INTERVAL_MS", "0", True),
        ("MEMPROF_DEPTH", "99999999999999999999", True),
    ]
    for var, value, profiled in bad:
        label = "%s=%s" % (var, value)
        env = c.preload_env(os.path.join(c.tmp, "b.%p.dump"), MEMPROF_QUIET=1,
                            MEMPROF_NATIVE=1)
        env[var] = value
        before = set(c.dumps())
        p = c.run([exe], env)
        pid, proc = c.only_process(p.stdout)
        lines = p.stderr.splitlines()
        c.check(len(lines) == 1 and lines[0].startswith("memprof: ")
                and (var in lines[0] or value in lines[0]),
                "%s: expected exactly one warning line naming %s or its value, got %r"
                % (label, var, lines))
        new = sorted(set(c.dumps()) - before)
        if not profiled:
            c.eq("%s: dumps written" % label, new, [])
            continue
        c.require(len(new) == 1, "%s: expected one dump, got %r" % (label, new))
        r = c.report(new[0])
        c.compare(label, r, proc["expect"])
        os.unlink(new[0])


def read_fifo_while(proc, fd, timeout=120):
    """All bytes written into the FIFO opened (non-blocking, for reading) as fd, until proc has
    ended and the FIFO is drained. Before its writer opens it, a read says end of file too.
    A process still running after timeout seconds is killed (opening the FIFO to read the
    header of what it thought was an old dump, it once waited for a writer forever)."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline and proc.poll() is None:
            proc.kill()
        done = proc.poll() is not None
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            chunk = None
        if chunk:
            data += chunk
        elif done:
            return bytes(data)
        else:
            time.sleep(0.005)


def run_into_fifo(c, label, argv, fifo):
    """Run argv with its dump going into a new FIFO at fifo, read as it runs: (stdout, stderr,
    the bytes that came through). The program must exit with 0."""
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        proc = subprocess.Popen(argv, env=c.preload_env(fifo, MEMPROF_QUIET=1), cwd=c.tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        data = read_fifo_while(proc, fd)
        out, err = proc.communicate(timeout=240)
    finally:
        os.close(fd)
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    c.require(proc.returncode == 0, "%s: the program exited with %d: %s"
              % (label, proc.returncode, err[-2000:]))
    return out, err, data


def case_outputs(c):
    """MEMPROF_OUTPUT naming something that is not a regular file: /dev/null and a FIFO with a
    reader are written as they are (no "<name>.<pid>" file beside them); a FIFO with no reader
    and a directory each give one warning line, and the program still runs normally; a FIFO
    that several processes name carries the first one's dump only."""
    exe = c.exe("allocators")
    # /dev/null: no message, exit 0, and nothing created next to it.
    before = set(os.listdir("/dev"))
    p = c.run([exe], c.preload_env("/dev/null"))
    c.only_process(p.stdout)
    no_preload_warnings(c, "/dev/null", p.stderr)
    created = sorted(set(os.listdir("/dev")) - before)
    for name in created:
        if name.startswith("null."):
            os.unlink(os.path.join("/dev", name))
    c.eq("/dev/null: files created in /dev", created, [])
    # memprof run -o /dev/null: the program's status, and one line instead of a report.
    p = c.run([c.memprof, "run", "-o", "/dev/null", "--", exe], c.env())
    c.only_process(p.stdout)
    c.eq("memprof run -o /dev/null: messages", p.stderr.splitlines(),
         ["memprof: the dump went to /dev/null, which is not a regular file: no report"])
    # A FIFO with a reader: the bytes that came through are the whole dump.
    fifo = os.path.join(c.tmp, "dump.fifo")
    out, err, data = run_into_fifo(c, "FIFO", [exe], fifo)
    c.eq("FIFO: messages", err, "")
    _pid, expect = c.only_process(out)
    c.eq("FIFO: files beside it", sorted(os.listdir(c.tmp)), ["dump.fifo"])
    copy = os.path.join(c.tmp, "from-fifo.dump")
    with open(copy, "wb") as f:
        f.write(data)
    r = c.report(copy)
    c.compare("FIFO", r, expect["expect"])
    c.eq("FIFO: process.incomplete", r["process"]["incomplete"], False)
    # No reader, and a directory: one line each, no dump, the program unaffected.
    os.mkdir(os.path.join(c.tmp, "adir"))
    for label, path, why in (("FIFO with no reader", fifo, "no reader"),
                             ("a directory", os.path.join(c.tmp, "adir"), "directory")):
        before = sorted(os.listdir(c.tmp))
        p = c.run([exe], c.preload_env(path))
        c.only_process(p.stdout)
        lines = p.stderr.splitlines()
        c.check(len(lines) == 1 and lines[0].startswith("memprof: ") and why in lines[0]
                and path in lines[0], "%s: expected one line naming %s and %r, got %r"
                % (label, path, why, lines))
        c.eq("%s: files written" % label, sorted(os.listdir(c.tmp)), before)
    # One FIFO named by every process of forkexec (no %p): the parent, which opens it first,
    # streams its dump whole; each other process image (three fork children, the fork child
    # that execs and the program it becomes, the spawned one) prints one line and does not track.
    shared = os.path.join(c.tmp, "shared.fifo")
    out, err, data = run_into_fifo(c, "shared FIFO", [c.exe("forkexec")], shared)
    lines = err.splitlines()
    c.check(len(lines) == 6 and all(
        l.startswith("memprof: another process streams into this FIFO already") and shared in l
        for l in lines), "shared FIFO: expected 6 lines saying another process streams into %s, "
        "got %r" % (shared, lines))
    procs = c.ledger(out)
    parent = [pid for pid, pr in procs.items() if pr.get("role") == "parent"]
    c.require(len(parent) == 1, "shared FIFO: no single parent ledger in %r" % procs)
    copy = os.path.join(c.tmp, "from-shared-fifo.dump")
    with open(copy, "wb") as f:
        f.write(data)
    r = c.report(copy)
    c.eq("shared FIFO: process.pid", r["process"]["pid"], parent[0])
    c.eq("shared FIFO: process.incomplete", r["process"]["incomplete"], False)
    c.compare("shared FIFO", r, procs[parent[0]]["expect"])
    # A stale file at the name (a dump whose process is gone, or not a dump) is replaced by the
    # new dump, renamed aside and removed by the writer rather than truncated in place: a hard
    # link to it keeps its bytes, and nothing is left beside it. A symlink is written through.
    sdir = os.path.join(c.tmp, "stale")
    os.mkdir(sdir)
    stale, link = os.path.join(sdir, "x.dump"), os.path.join(sdir, "old")
    c.run([exe], c.preload_env(stale))
    with open(stale, "rb") as f:
        old = f.read()
    os.link(stale, link)
    target, sym = os.path.join(sdir, "target"), os.path.join(sdir, "sym.dump")
    with open(target, "w") as f:
        f.write("not a dump, and longer than a dump's header\n" * 4)
    os.symlink("target", sym)
    for label, path in (("stale dump", stale), ("symlink to a non-dump", sym)):
        p = c.run([exe], c.preload_env(path))
        no_preload_warnings(c, label, p.stderr)
        pid, expect = c.only_process(p.stdout)
        r = c.report(path)
        c.eq("%s: process.pid" % label, r["process"]["pid"], pid)
        c.compare(label, r, expect["expect"])
    with open(link, "rb") as f:
        c.check(f.read() == old, "stale dump: truncated in place (its hard link changed)")
    c.check(os.path.islink(sym), "symlink: replaced by a file")
    c.eq("stale: files", sorted(os.listdir(sdir)), ["old", "sym.dump", "target", "x.dump"])


def case_lastthread(c):
    """Processes whose last thread ends by itself end as they do without the library, their dumps
    complete: main() calling pthread_exit, and a child forked from a thread, where that thread
    ends (CPython's thread bootstrap does; test_threading hung on it). The writer thread kept
    such a process alive, blocking every signal."""
    exe = c.exe("lastthread")
    src = os.path.join(CSRC, "lastthread.c")
    for mode, nprocs in (("main", 1), ("fork", 2)):
        env = c.preload_env(os.path.join(c.tmp, mode + ".%p.dump"), MEMPROF_NATIVE=1)
        p = c.run([exe, mode], env, timeout=60)
        no_preload_warnings(c, mode, p.stderr)
        dumps = c.dumps(r"^%s\.\d+\.dump$" % mode)
        c.require(len(dumps) == nprocs, "%s: expected %d dumps, got %r" % (mode, nprocs, dumps))
        reports = [c.report(d) for d in dumps]
        for r in reports:
            what = "%s, pid %d" % (mode, r["process"]["pid"])
            c.eq("%s: process.incomplete" % what, r["process"]["incomplete"], False)
            c.eq("%s: summary.leaks_at" % what, r["summary"]["leaks_at"], "exit")
        # The process whose last thread ended: the only one, or the child.
        pids = {r["process"]["pid"] for r in reports}
        last = [r for r in reports if r["process"]["ppid"] in pids] if mode == "fork" else reports
        c.require(len(last) == 1, "%s: no single child among %r" % (mode, sorted(pids)))
        c.leak_sites(mode, last[0], [("leaker", 12345, 1)], src)


VALGRIND_RE = {
    "in_use": re.compile(r"in use at exit: ([\d,]+) bytes in ([\d,]+) blocks"),
    "usage": re.compile(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes"),
}


def valgrind_counts(c, argv):
    p = c.run(["valgrind", "--leak-check=full", "--error-exitcode=0"] + argv, c.env(),
              timeout=240)
    num = lambda s: int(s.replace(",", ""))
    m1, m2 = VALGRIND_RE["in_use"].search(p.stderr), VALGRIND_RE["usage"].search(p.stderr)
    c.require(m1 and m2, "valgrind %s: no heap summary in:\n%s" % (argv, p.stderr[-3000:]))
    return p, {"leaked_bytes": num(m1.group(1)), "leaked_blocks": num(m1.group(2)),
               "total_allocations": num(m2.group(1)), "total_frees": num(m2.group(2)),
               "total_bytes": num(m2.group(3))}


def case_valgrind(c):
    """The same programs under valgrind (no preload): its heap summary equals our report."""
    if not shutil.which("valgrind"):
        print("SKIP valgrind: not installed")
        return "valgrind is not installed"
    runs = [
        ("allocators", [c.exe("allocators"), "--valgrind"], SUMMARY_KEYS[:5]),
        # Thread-created DTVs differ in size between the two runs (libmemprof.so adds TLS
        # modules), so total_bytes is not compared for threads.
        ("threads", [c.exe("threads"), "4", "250000"], SUMMARY_KEYS[:2] + SUMMARY_KEYS[3:5]),
    ]
    for label, argv, keys in runs:
        vp, vg = valgrind_counts(c, argv)
        _vpid, vproc = c.only_process(vp.stdout)
        p = c.run(argv, c.preload_env(os.path.join(c.tmp, label + ".%p.dump")))
        pid, proc = c.only_process(p.stdout)
        r = c.report(os.path.join(c.tmp, "%s.%d.dump" % (label, pid)))
        for k in keys:
            c.eq("%s: memprof summary.%s vs valgrind" % (label, k), r["summary"][k], vg[k])
        # And valgrind agrees with the program's ledger on what the program itself leaked.
        for k in ("leaked_bytes", "leaked_blocks"):
            c.eq("%s: valgrind %s vs the ledger" % (label, k), vg[k], vproc["expect"][k])


CASES = {
    "allocators": case_allocators,
    "allocators_native": case_allocators_native,
    "threads": case_threads,
    "killed": case_killed,
    "forkexec": case_forkexec,
    "badenv": case_badenv,
    "outputs": case_outputs,
    "lastthread": case_lastthread,
    "valgrind": case_valgrind,
}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", required=True, help="the CMake build directory")
    ap.add_argument("--case", choices=sorted(CASES), help="the case to run")
    ap.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    if args.list:
        for name in sorted(CASES):
            print("%-18s %s" % (name, CASES[name].__doc__.split("\n")[0]))
        return 0
    if not args.case:
        ap.error("--case is required")
    for name in ("libmemprof.so", "memprof"):
        path = os.path.join(args.build, name)
        if not os.path.exists(path):
            print("FAIL e2e.%s: %s is missing (build the project first)" % (args.case, path))
            return 1
    c = Case(args.build, args.case, args.keep)
    t0 = time.monotonic()
    skipped = None
    try:
        skipped = CASES[args.case](c)
    except Failed:
        pass  # recorded in c.failures
    if skipped and not c.failures:
        shutil.rmtree(c.tmp, ignore_errors=True)
        print("SKIP e2e.%s: %s" % (args.case, skipped))
        return SKIPPED
    return c.finish(time.monotonic() - t0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
