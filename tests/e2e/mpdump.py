"""mpdump.py - a small, independent decoder of memprof dumps (docs/FORMAT.md 3.0, and 1.x and 2.x).

A test utility, not a reporter: it exists so that end-to-end tests can cross-check the
`memprof json` report against a second reading of the same bytes, and so that a failing test
can be debugged without the reporter. Python 3 standard library only.

    python3 mpdump.py DUMP            # prints the replayed totals as JSON
    python3 mpdump.py --stacks DUMP   # prints each stack's Python frames: file, name, offset

Python frames (1.1) are kept in the stacks as recorded; python_frames(stack id) lists them as
(file, name, offset) from the PYCODE records (line tables are left to the reporter).
"""

import json
import struct
import sys

MAGIC = b"MEMPROF\0"
CHUNK_MAGIC = b"MPCK"
HEADER_SIZE = 64
MAX_PAYLOAD = 16 << 20

REC_PROCESS, REC_THREAD, REC_EVENTS, REC_STACK = 1, 2, 3, 4
REC_MODULE, REC_SAMPLE, REC_MARKER, REC_TRAILER, REC_LOST = 5, 6, 7, 8, 9
REC_PYCODE, REC_PYTHON, REC_STREAM = 0x0A, 0x0B, 0x0C
FRAME_PYTHON = 1 << 63
EV_ALLOC, EV_FREE, EV_REALLOC_FAIL = 0, 1, 2
MARK_MAIN_END, MARK_EXIT = 1, 2

ALLOCATORS = ["malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign",
              "valloc", "pvalloc", "reallocarray", "free", "pymem_raw", "pymem_mem", "pymem_obj"]


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _crc_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class Corrupt(Exception):
    pass


class _Cursor:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf, pos, end):
        self.buf, self.pos, self.end = buf, pos, end

    def varint(self):
        v = shift = 0
        while True:
            if self.pos >= self.end or shift > 63:
                raise Corrupt("varint runs past its record")
            b = self.buf[self.pos]
            self.pos += 1
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def pvarint(self):
        """A prefix varint (FORMAT.md 2.4): the first byte's trailing zeros give the length."""
        if self.pos >= self.end:
            raise Corrupt("varint runs past its record")
        b = self.buf[self.pos]
        n = ((b & -b).bit_length()) if b else 9
        if self.pos + n > self.end:
            raise Corrupt("varint runs past its record")
        if n == 9:
            v = int.from_bytes(self.buf[self.pos + 1:self.pos + 9], "little")
        else:
            v = int.from_bytes(self.buf[self.pos:self.pos + n], "little") >> n
        self.pos += n
        return v

    def zigzag(self):
        z = self.varint()
        return (z >> 1) ^ -(z & 1)

    def bytes(self):
        n = self.varint()
        if self.pos + n > self.end:
            raise Corrupt("string runs past its record")
        s = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return s

    def pystr(self):
        """A CPython string as FORMAT.md 5.10 copies it: kind, then bytes."""
        kind, data = self.varint(), self.bytes()
        if kind == 0:
            return "?"
        codec = {1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}.get(kind)
        if codec is None or len(data) % kind:
            raise Corrupt("bad string kind %d for %d bytes" % (kind, len(data)))
        # surrogatepass: CPython strings may hold lone surrogates (surrogateescape'd names)
        return data.decode(codec, "surrogatepass")


def split_frame(frame):
    """A Python frame value: (code id, signed byte offset); None for a native frame."""
    if not frame & FRAME_PYTHON:
        return None
    off = frame & 0xFFFFFFFF
    return (frame >> 32) & 0x7FFFFFFF, off - (1 << 32) if off & 0x80000000 else off


class Dump:
    """Everything in one dump file, decoded. Events are (seq, stream, kind, allocator, ptr,
    size, stack) tuples in file order; replay() merges them by seq."""

    def __init__(self, path):
        with open(path, "rb") as f:
            buf = f.read()
        if len(buf) < HEADER_SIZE or buf[:8] != MAGIC:
            raise Corrupt("not a memprof dump (bad magic or too short)")
        if crc32c(buf[:60]) != struct.unpack_from("<I", buf, 60)[0]:
            raise Corrupt("header crc mismatch")
        (self.major, self.minor, hsize, self.flags, self.ptr_size, self.pid, self.ppid,
         self.start_real_ns, self.start_mono_ns, self.page_size) = struct.unpack_from(
            "<HHIIIQQQQI", buf, 8)
        self.exe = self.cwd = ""
        self.argv = []
        self.threads = {}  # stream -> [tid, ...]
        self.events = []
        self.stream_last = {}  # stream -> (seq, ptr) of its last event (5.12)
        self.stream_stack = {}  # stream -> stack of its last ALLOC or FREE (5.12)
        self.stream_ptr2 = {}  # stream -> the other base of its ptr deltas (5.12, 4.0)
        self.stacks = {}   # id -> [frame, ...] innermost first
        self.prev_stack = []  # the last STACK record's frames (3.0: sharing)
        self.modules = []  # (bias, [(start, end)], path, build_id)
        self.samples = []  # (time_ns, seq, rss)
        self.markers = []  # (kind, seq, time_ns)
        self.trailer = None
        self.lost = 0
        self.pycodes = {}  # id -> dict(firstlineno, table_format, filename, name, qualname,
        #                                linetable)
        self.python = None  # the last PYTHON record: dict(hexversion, hooks, allocator)
        self.chunks = 0
        self.truncated = False
        pos = hsize
        while pos < len(buf):
            if pos + 16 > len(buf):
                self.truncated = True
                break
            if buf[pos:pos + 4] != CHUNK_MAGIC:
                raise Corrupt("bad chunk magic at 0x%x" % pos)
            n, pcrc, hcrc = struct.unpack_from("<III", buf, pos + 4)
            if crc32c(buf[pos:pos + 12]) != hcrc or n > MAX_PAYLOAD:
                raise Corrupt("bad chunk header at 0x%x" % pos)
            if pos + 16 + n > len(buf):
                self.truncated = True
                break
            if crc32c(buf[pos + 16:pos + 16 + n]) != pcrc:
                raise Corrupt("bad chunk payload crc at 0x%x" % pos)
            self._chunk(buf, pos + 16, pos + 16 + n)
            self.chunks += 1
            pos += 16 + n
        self.complete = self.trailer is not None and not self.truncated

    def _chunk(self, buf, pos, end):
        while pos < end:
            tag = buf[pos]
            c = _Cursor(buf, pos + 1, end)
            length = c.varint()
            body_end = c.pos + length
            if body_end > end:
                raise Corrupt("record runs past its chunk")
            c.end = body_end
            self._record(tag, c)
            pos = body_end

    def _events(self, c, stream, seq, ptr, count):
        """Decode count events of an EVENTS record, or (count None) a STREAM record's events to
        its end: those start from the stream's last event and have flags in their head byte."""
        ev = self.events
        cont = count is None
        get = c.pvarint if cont else c.varint
        stack = self.stream_stack.get(stream, 0)
        ptr2 = self.stream_ptr2.get(stream, 0)
        while (c.pos < c.end) if cont else count > 0:
            if c.pos >= c.end:
                raise Corrupt("events run past their record")
            head = c.buf[c.pos]
            c.pos += 1
            alloc = (head >> 3) & 15
            kind = head & 3 if cont else head & 7
            seq1, same = cont and head & 0x80, cont and head & 4
            if (not cont and head & 0x80) or kind > EV_REALLOC_FAIL or (
                    same and kind == EV_REALLOC_FAIL):
                raise Corrupt("bad event head byte 0x%02x" % head)
            if seq1 and self.major >= 4:
                # 4.0 short form: seq + 1; the ptr delta / 16 in 23 bits of 3 bytes, offset by
                # 2^22 (5.0) or zigzagged (4.x) (the 24th: against the other base), an ALLOC's size
                # in 2, the stack in 3 unless bit 2 (little-endian)
                def fixed(n):
                    if c.pos + n > c.end:
                        raise Corrupt("short event runs past its record")
                    c.pos += n
                    return int.from_bytes(c.buf[c.pos - n:c.pos], "little")
                seq = (seq + 1) & 0xFFFFFFFFFFFFFFFF
                z = fixed(3)
                other = z >> 23  # the other base: then the two change places
                z &= 0x7FFFFF
                base = ptr2 if other else ptr
                if other:
                    ptr2 = ptr
                q = z - (1 << 22) if self.major >= 5 else (z >> 1) ^ -(z & 1)
                ptr = (base + 16 * q) & 0xFFFFFFFFFFFFFFFF
                size = fixed(2) if kind == EV_ALLOC else 0
                if kind != EV_REALLOC_FAIL:
                    stack = stack if same else fixed(3)
            else:
                # 2.x, 3.x: bit 7 says seq + 1; 4.0: the long form, after which the previous
                # ptr is the other base
                seq = (seq + (1 if seq1 else get())) & 0xFFFFFFFFFFFFFFFF
                z = get()
                if cont:
                    ptr2 = ptr
                ptr = (ptr + ((z >> 1) ^ -(z & 1))) & 0xFFFFFFFFFFFFFFFF
                size = get() if kind == EV_ALLOC else 0
                if kind != EV_REALLOC_FAIL:
                    stack = stack if same else get()
            ev.append((seq, stream, kind, alloc, ptr, size,
                       stack if kind != EV_REALLOC_FAIL else 0))
            self.stream_last[stream] = (seq, ptr)
            self.stream_stack[stream] = stack
            self.stream_ptr2[stream] = ptr2
            if not cont:
                count -= 1

    def _record(self, tag, c):
        if tag == REC_PROCESS:
            self.exe = c.bytes().decode("utf-8", "replace")
            self.argv = [a.decode("utf-8", "replace") for a in c.bytes().split(b"\0")]
            self.cwd = c.bytes().decode("utf-8", "replace")
        elif tag == REC_THREAD:
            stream, tid = c.varint(), c.varint()
            self.threads.setdefault(stream, []).append(tid)
        elif tag == REC_EVENTS:
            stream, count, seq = c.varint(), c.varint(), c.varint()
            self._events(c, stream, seq, 0, count)
        elif tag == REC_STREAM:
            stream = c.varint()
            seq, ptr = self.stream_last.get(stream, (0, 0))
            self._events(c, stream, seq, ptr, None)
        elif tag == REC_STACK:
            sid, n = c.varint(), c.varint()
            shared = c.varint() if self.major >= 3 else 0  # 3.0: the previous record's outer frames
            if shared > n or shared > len(self.prev_stack):
                raise ValueError("stack %d shares %d frames" % (sid, shared))
            frames, prev = [], 0
            for _ in range(n - shared):
                prev = (prev + c.zigzag()) & 0xFFFFFFFFFFFFFFFF
                frames.append(prev)
            frames += self.prev_stack[len(self.prev_stack) - shared:]
            self.stacks[sid] = self.prev_stack = frames
        elif tag == REC_MODULE:
            bias, nr = c.varint(), c.varint()
            ranges = [(c.varint(), c.varint()) for _ in range(nr)]
            path = c.bytes().decode("utf-8", "replace")
            self.modules.append((bias, ranges, path, c.bytes()))
        elif tag == REC_SAMPLE:
            self.samples.append((c.varint(), c.varint(), c.varint()))
        elif tag == REC_MARKER:
            self.markers.append((c.varint(), c.varint(), c.varint()))
        elif tag == REC_TRAILER:
            keys = ["events", "allocs", "frees", "alloc_bytes", "lost", "end_time_ns",
                    "next_seq", "stacks_dropped"]
            self.trailer = {k: c.varint() for k in keys}
        elif tag == REC_LOST:
            self.lost += c.varint()
        elif tag == REC_PYCODE:
            cid, first, fmt = c.varint(), c.varint(), c.varint()
            code = dict(firstlineno=first, table_format=fmt, filename=c.pystr(), name=c.pystr(),
                        qualname=c.pystr(), linetable=c.bytes())
            self.pycodes.setdefault(cid, code)
        elif tag == REC_PYTHON:
            hexversion, hooks = c.varint(), c.varint()
            self.python = dict(hexversion=hexversion, hooks=hooks,
                               allocator=c.bytes().decode("utf-8", "replace"))

    def python_frames(self, sid):
        """The Python frames of stack sid, innermost first, as (file, name, offset): name is the
        qualname when the code has one. The truncation marker (code id 0) is
        ("<truncated>", "<truncated>", None); a code id without a record gives file None."""
        out = []
        for frame in self.stacks.get(sid, []):
            py = split_frame(frame)
            if py is None:
                continue
            cid, off = py
            if cid == 0:
                out.append(("<truncated>", "<truncated>", None))
                continue
            code = self.pycodes.get(cid)
            if code is None:
                out.append((None, "<python>", off))
            else:
                out.append((code["filename"], code["qualname"] or code["name"], off))
        return out

    def replay(self):
        """Replay the live heap in sequence order up to the exit marker (or the end).
        Returns a dict of totals shaped like the reporter's JSON summary, plus the leaked
        blocks as {ptr: (size, stack)}."""
        events = sorted(self.events)
        end_seq = None
        for kind, seq, _t in self.markers:
            if kind == MARK_EXIT:
                end_seq = seq
        live = {}
        s = dict(total_allocations=0, total_frees=0, total_bytes=0, peak_bytes=0,
                 peak_blocks=0, unknown_frees=0, overlapping_allocs=0, realloc_fails=0)
        cur = 0
        pending = {}  # ptr -> (size, stack) freed by a realloc that may still fail
        for seq, _stream, kind, _alloc, ptr, size, stack in events:
            if end_seq is not None and seq >= end_seq:
                break
            if kind == EV_ALLOC:
                s["total_allocations"] += 1
                s["total_bytes"] += size
                if ptr in live:
                    s["overlapping_allocs"] += 1
                    cur -= live[ptr][0]
                live[ptr] = (size, stack)
                cur += size
                if cur > s["peak_bytes"]:
                    s["peak_bytes"], s["peak_blocks"] = cur, len(live)
            elif kind == EV_FREE:
                blk = live.pop(ptr, None)
                if blk is None:
                    s["unknown_frees"] += 1
                else:
                    s["total_frees"] += 1
                    cur -= blk[0]
                    pending[ptr] = blk
            elif kind == EV_REALLOC_FAIL:
                s["realloc_fails"] += 1
                blk = pending.get(ptr)
                if blk is not None:
                    live[ptr] = blk
                    cur += blk[0]
                    s["total_frees"] -= 1
        s["leaked_bytes"] = sum(b[0] for b in live.values())
        s["leaked_blocks"] = len(live)
        s["incomplete"] = not self.complete
        s["events"] = len(self.events)
        return s, live

    def symbolize(self, addr):
        """(module path, file offset-ish address to give addr2line) for a return address."""
        best = None
        for bias, ranges, path, _bid in self.modules:
            for lo, hi in ranges:
                if lo <= addr < hi:
                    best = (path, addr - bias)
        return best


def main(argv):
    if len(argv) == 3 and argv[1] == "--stacks":
        d = Dump(argv[2])
        for sid in sorted(d.stacks):
            print("stack %d" % sid)
            for f, name, off in d.python_frames(sid):
                line = "  %s %s %s" % (f, name, off)
                # lone surrogates (surrogateescape'd file names) cannot be printed as UTF-8
                print(line.encode("utf-8", "backslashreplace").decode("utf-8"))
        return 0
    if len(argv) != 2:
        print("usage: mpdump.py [--stacks] DUMP", file=sys.stderr)
        return 2
    d = Dump(argv[1])
    s, _live = d.replay()
    s.update(pid=d.pid, ppid=d.ppid, exe=d.exe, argv=d.argv, flags=d.flags, chunks=d.chunks,
             trailer=d.trailer, markers=d.markers, stacks=len(d.stacks),
             modules=len(d.modules), threads=len(d.threads), pycodes=len(d.pycodes),
             python=d.python)
    print(json.dumps(s, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
