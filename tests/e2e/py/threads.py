"""threads.py - allocations across threads and processes (run_py.py: py_threads).

    python3 threads.py LIBPYTHREAD            # everything below
    python3 threads.py LIBPYTHREAD native     # only the native pthread (for a native-stack run)

LIBPYTHREAD is the ctypes helper library (mpthread.c). In this order: multiprocessing children
(fork, then spawn), before any thread exists; 4 producer threads whose buffers are freed by 4
consumer threads (one queue per pair); a thread pool; asyncio tasks; a native pthread started
through ctypes. Every process prints its ledger, one line `memprof-ledger <json>`: its pid and
role, its marked lines (marker comments `# L:<name>`) and, per marked line, what it allocated,
freed and kept there, from what the program did.
"""
import ctypes
import json
import os
import re
import sys

# multiprocessing, threading, queue, concurrent.futures and asyncio are imported where they are
# used: the native-only run stays small (its report symbolizes every leaked native stack).

PRODUCERS = 4  # and as many consumers
PER_PRODUCER = 50
POOL_TASKS = 16
ASYNC_TASKS = 16
CHILD_ALLOCS = 5
NATIVE_BYTES = 777773

child_keep = [None] * CHILD_ALLOCS
pool_keep = [None] * POOL_TASKS
async_keep = [None] * ASYNC_TASKS


def marks():
    found = {}
    with open(__file__) as f:
        for number, text in enumerate(f, 1):
            m = re.search(r"# L:(\w+)\s*$", text)
            if m:
                found[m.group(1)] = number
    return found


def say(role, lines):
    """lines: {mark: {"function", "allocations", "alloc_bytes", "freed_bytes", "kept_bytes",
    "kept_blocks"}}: every event of that line in this process (exact), and what is still live
    from it when the process ends its main code (or exits, for the fork child)."""
    print("memprof-ledger " + json.dumps({"pid": os.getpid(), "ppid": os.getppid(),
                                          "role": role, "file": os.path.abspath(__file__),
                                          "marks": marks(), "lines": lines}), flush=True)


def line(function, n, size, kept=0, freed=0):
    return {"function": function, "allocations": n, "alloc_bytes": n * size,
            "freed_bytes": freed * size, "kept_bytes": kept * size, "kept_blocks": kept}


# ---- processes ---------------------------------------------------------------------------------

def parent_dump_fds():
    """Descriptors of this process open on its parent's dump (MEMPROF_OUTPUT with the parent's
    pid): a fork child's copy of the parent's is memprof's to close."""
    name = os.environ.get("MEMPROF_OUTPUT", "").replace("%p", str(os.getppid()))
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink("/proc/self/fd/" + fd) == name
        except OSError:
            pass  # the directory's own descriptor, closed by now
    return n


def child(role):
    for i in range(CHILD_ALLOCS):
        child_keep[i] = b"\0" * 60013  # L:child
    size = sys.getsizeof(child_keep[0])
    fds = parent_dump_fds()
    say(role, {"child": line("child", CHILD_ALLOCS, size, kept=CHILD_ALLOCS)})
    print("memprof-fds " + json.dumps({"role": role, "parent_dump_fds": fds}), flush=True)


def processes():
    import multiprocessing

    for method in ("fork", "spawn"):
        p = multiprocessing.get_context(method).Process(target=child, args=(method,))
        p.start()
        p.join()
        if p.exitcode != 0:
            sys.exit("threads.py: the %s child exited with %s" % (method, p.exitcode))


# ---- threads -----------------------------------------------------------------------------------

def producer(q):
    for _ in range(PER_PRODUCER):
        buf = b"\0" * 100003  # L:produce
        q.put(buf)
        del buf
    q.put(None)  # after the last `del buf`: the consumer holds the only references


def consumer(q):
    got = [None] * PER_PRODUCER
    for i in range(PER_PRODUCER):
        got[i] = q.get()
    assert q.get() is None
    for i in range(PER_PRODUCER):
        got[i] = None  # L:consume


def pool_work(i):
    pool_keep[i] = b"\0" * 200003  # L:pool_keep
    b"\0" * 300007  # L:pool_tmp


async def async_work(i):
    import asyncio

    await asyncio.sleep(0)
    async_keep[i] = b"\0" * 150001  # L:async_keep


async def async_main():
    import asyncio

    await asyncio.gather(*(async_work(i) for i in range(ASYNC_TASKS)))


def native_thread(lib):
    lib.mpthread_malloc_in_thread(NATIVE_BYTES)  # L:native_thread


def threads():
    import asyncio
    import concurrent.futures
    import queue
    import threading

    queues = [queue.Queue() for _ in range(PRODUCERS)]
    ts = [threading.Thread(target=f, args=(q,)) for q in queues for f in (producer, consumer)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        list(ex.map(pool_work, range(POOL_TASKS)))
    asyncio.run(async_main())


def main():
    lib = ctypes.CDLL(sys.argv[1])
    lib.mpthread_malloc_in_thread.argtypes = [ctypes.c_size_t]
    native = {"native_thread": {"function": "native_thread", "native_bytes": NATIVE_BYTES,
                                "native_function": "mpthread_body"}}
    if sys.argv[2:] == ["native"]:
        native_thread(lib)
        say("native", native)
        return
    processes()
    threads()
    native_thread(lib)
    size = sys.getsizeof
    buffers = PRODUCERS * PER_PRODUCER
    lines = {
        "produce": line("producer", buffers, size(bytes(100003))),
        "consume": line("consumer", 0, size(bytes(100003)), freed=buffers),
        "pool_keep": line("pool_work", POOL_TASKS, size(pool_keep[0]), kept=POOL_TASKS),
        "pool_tmp": line("pool_work", POOL_TASKS, size(bytes(300007)), freed=POOL_TASKS),
        "async_keep": line("async_work", ASYNC_TASKS, size(async_keep[0]), kept=ASYNC_TASKS),
        "child": line("child", 0, 0),  # the children's allocations are in their own dumps
    }
    # malloc in a native thread: at least these bytes, charged to the line that started it
    lines.update(native)
    say("parent", lines)


if __name__ == "__main__":
    main()
