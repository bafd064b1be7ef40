# python3 on a real malloc workload (test/malloc/programs.sh): four threads build and
# drop large dicts, lists and strings; the output does not depend on the malloc.
import threading
def work(seed, out):
    total = 0
    for r in range(8):
        d = {f"k{seed}-{i}": [i, str(i) * (i % 7), (i, seed)] for i in range(20000)}
        s = "".join(v[1] for v in d.values())
        lst = sorted(d.keys(), key=lambda k: (len(k), k))
        total += len(d) + len(s) + len(lst[-1])
        del d, s, lst
    out[seed] = total
out = {}
ts = [threading.Thread(target=work, args=(i, out)) for i in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print(sorted(out.items()))
