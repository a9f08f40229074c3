"""A small program with a growing cache, a temporary buffer and a leak, for `scripts/demo`."""

_cache = {}


def load_records(n):
    # Builds n small records; the list is returned and kept by the caller.
    return [{"id": i, "name": "record-%d" % i, "tags": ["a", "b"]} for i in range(n)]


def checksum(data):
    # A large temporary: allocated and freed inside this call.
    buf = bytearray(8 * 1024 * 1024)
    for i in range(0, len(buf), 4096):
        buf[i] = data[i % len(data)]["id"] & 0xFF
    return sum(buf[::4096])


def remember(key, value):
    # Never evicted: this is the leak.
    _cache[key] = value * 1000


def main():
    records = load_records(20000)
    total = checksum(records)
    for i in range(200):
        remember(i, "x%d" % i)
    print("checksum", total, "records", len(records), "cached", len(_cache))


if __name__ == "__main__":
    main()
