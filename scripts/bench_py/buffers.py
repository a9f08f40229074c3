"""buffers.py SIZE - large buffers, a workload of scripts/bench.

SIZE iterations; each allocates bytes, a bytearray, lists (of one repeated object and of cached
small ints, so that only the list's buffer is new) and a joined bytes of 16 KiB to 2 MiB (sizes
cycle through a fixed sequence), touches them, and keeps the newest 8 of each alive, so that most
allocations go to mmap'd or large heap blocks and are freed a few iterations later.
Deterministic; prints one line (a checksum). The hot functions carry @profile for
`python -m memory_profiler` (identity otherwise).
"""
import sys

try:
    profile  # noqa: B018  (injected into builtins by `python -m memory_profiler`)
except NameError:
    def profile(func):
        return func

SIZES = [16 << 10, 200 << 10, 1 << 20, 64 << 10, 2 << 20, 512 << 10, 32 << 10, 1536 << 10]
KEEP = 8


@profile
def make_buffers(i):
    size = SIZES[i % len(SIZES)]
    blob = bytes([i & 0xFF]) * size
    buf = bytearray(size // 2)
    buf[::4096] = blob[: len(buf[::4096])]
    cells = [i, None] * (size // 16)  # a list buffer of SIZE bytes, no new elements
    small = list(blob[: size // 64])  # cached small ints: again only the list's buffer
    joined = b"".join([blob[:4096]] * (size // 8192 + 1))
    return blob, buf, (cells, small), joined


@profile
def buffers(n):
    kept = [None] * KEEP
    total = 0
    for i in range(n):
        blob, buf, cells, joined = make_buffers(i)
        total += len(blob) + buf[0] + cells[0][-2] + cells[1][-1] + len(joined)
        kept[i % KEEP] = (blob, buf, cells, joined)
    return total


if __name__ == "__main__":
    print(buffers(int(sys.argv[1]) if len(sys.argv) > 1 else 2500))
