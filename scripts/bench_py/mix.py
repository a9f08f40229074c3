"""mix.py SIZE - a realistic mix, a workload of scripts/bench.

SIZE iterations of what ordinary Python programs do: build class instances with attributes,
serialise them to JSON and parse them back, match and substitute regular expressions over log
lines, and format strings; results are aggregated in a dict and a bounded history list.
Deterministic (random with a fixed seed); prints one line (a checksum). The hot functions carry
@profile for `python -m memory_profiler` (identity otherwise).
"""
import json
import random
import re
import sys

try:
    profile  # noqa: B018  (injected into builtins by `python -m memory_profiler`)
except NameError:
    def profile(func):
        return func

LINE = re.compile(r"(?P<ts>\d+\.\d+) (?P<level>[A-Z]+) \[(?P<who>\w+)\] (?P<msg>.*)")
WORD = re.compile(r"\b[a-z]{4,}\b")
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
WORDS = "alpha beta gamma delta request reply timeout socket buffer commit rollback".split()


class Event:
    def __init__(self, ts, level, who, msg):
        self.ts = ts
        self.level = level
        self.who = who
        self.msg = msg
        self.tags = WORD.findall(msg)

    def to_dict(self):
        return {"ts": self.ts, "level": self.level, "who": self.who, "msg": self.msg,
                "tags": self.tags}


@profile
def make_lines(rng, i, count):
    return ["%.3f %s [%s] %s" % (i + k / 100.0, LEVELS[rng.randrange(4)],
                                 "worker%d" % rng.randrange(8),
                                 " ".join(rng.choice(WORDS) for _ in range(6)))
            for k in range(count)]


@profile
def parse(lines):
    events = []
    for line in lines:
        m = LINE.match(line)
        if m:
            events.append(Event(float(m["ts"]), m["level"], m["who"], m["msg"]))
    return events


@profile
def mix(n):
    rng = random.Random(1234)
    counts = {}
    history = []
    total = 0
    for i in range(n):
        events = parse(make_lines(rng, i, 8))
        doc = json.dumps({"batch": i, "events": [e.to_dict() for e in events]})
        back = json.loads(doc)
        for ev in back["events"]:
            key = f"{ev['who']}:{ev['level']}"
            counts[key] = counts.get(key, 0) + len(ev["tags"])
        summary = "batch {:>6} size {:>5} first {}".format(i, len(doc), back["events"][0]["who"])
        total += len(summary) + len(WORD.sub("_", doc[:200]))
        history.append(summary)
        if len(history) > 1000:
            del history[:500]
    return total + sum(counts.values())


if __name__ == "__main__":
    print(mix(int(sys.argv[1]) if len(sys.argv) > 1 else 13000))
