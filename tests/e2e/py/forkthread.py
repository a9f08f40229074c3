"""forkthread.py - a fork from a worker thread (run_py.py: py_forkthread), as test_threading's
ThreadJoinOnShutdown does: in the child, that thread is the only one; it starts another, joins
it and ends, and with it the child (CPython's thread bootstrap ends with pthread_exit). The
parent exits with the child's status. Prints "memprof-forkthread <parent pid> <child pid>"."""
import os
import sys
import threading

keep = []


def child_work():
    keep.append(bytearray(123457))


def worker():
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        print("memprof-forkthread %d %d" % (os.getpid(), pid))
        sys.stdout.flush()
        os._exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode")
                 else status >> 8)
    t = threading.Thread(target=child_work)
    t.start()
    t.join()


threading.Thread(target=worker).start()
