"""tmwrap.py - run a script under tracemalloc and print what is live at the end of its main code.

    python3 -X tracemalloc=1 tmwrap.py SCRIPT [ARGS...]

Runs SCRIPT as __main__ (its own file name in its frames) and, from an atexit handler registered
before it (so it runs after the script's own handlers, where memprof records the end of the main
code), prints one line `memprof-tracemalloc <json>`: tracemalloc's statistics('lineno') for the
traces whose innermost frame is in SCRIPT, as [{"line", "size", "count"}].
"""
import atexit
import json
import os
import sys
import tracemalloc


def main():
    path = os.path.abspath(sys.argv[1])
    if not tracemalloc.is_tracing():
        sys.exit("tmwrap.py: run me with -X tracemalloc=1")

    def report():
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, path)])
        stats = [{"line": s.traceback[0].lineno, "size": s.size, "count": s.count}
                 for s in snap.statistics("lineno")]
        print("memprof-tracemalloc " + json.dumps(stats), flush=True)

    atexit.register(report)
    with open(path) as f:
        code = compile(f.read(), path, "exec")
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(path)
    # The script's globals stay referenced from here, so what it keeps is live at exit.
    main.globals = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    exec(code, main.globals)


main()
