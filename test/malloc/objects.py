# python3 as an allocation-heavy program for the benchmark (test/malloc/programs.sh,
# bench only): run with PYTHONMALLOC=malloc, so that every object, not only
# those above pymalloc's 512 B, is a malloc and a free. Each round builds
# records (dicts of ints, floats, strings of 1 B..4 KiB, lists, tuples), turns
# them into JSON and back, sorts and groups them, and drops everything: the
# sizes and lifetimes of an ordinary data-processing script.
#   python3 objects.py [ROUNDS]      (12 rounds: about 6.5 s under glibc)
import json
import sys

def records(seed, n):
    x = seed * 2654435761 % 4294967296 or 1
    out = []
    for i in range(n):
        x = (x * 1103515245 + 12345) % 2147483648
        width = 1 << (x % 13)  # 1 B .. 4 KiB, every octave alike
        out.append({"id": i, "key": f"r{seed}-{x % 997}", "score": x / 2147483648,
                    "text": "abcdefghij"[x % 10] * width, "tags": [str(t) for t in range(x % 9)],
                    "pair": (i, x % 101)})
    return out

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 12
total = 0
for r in range(rounds):
    rows = records(r, 30000)
    back = json.loads(json.dumps(rows))
    back.sort(key=lambda d: (d["key"], -d["score"]))
    groups = {}
    for d in back:
        groups.setdefault(d["key"], []).append(len(d["text"]) + len(d["tags"]))
    sums = {k: sum(v) for k, v in groups.items()}
    total += len(sums) + max(sums.values()) + sum(len(d["text"]) for d in rows) % 1000003
    del rows, back, groups, sums
print(total)
