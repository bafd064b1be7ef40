#!/usr/bin/env python3
"""Validates sydra-alloc's to_json() output against docs/stats.schema.json.

    validate.py SCHEMA PROGRAM [ARGS...]   run PROGRAM, validate each line it prints
    validate.py SCHEMA --json FILE         validate each line of FILE (one JSON document a line)
    validate.py SCHEMA --self-test PROGRAM run PROGRAM, then check that broken copies
                                           of its output are rejected

Each document must match the schema (every field present, no other field,
types and minimums) and the rules across fields that a schema cannot state
(docs/stats.md, "Semantics of counters"); these hold for any snapshot, taken
while threads run or not. Exit status 0 when every document passes, 1 when one
fails (each failure is printed), 2 on a usage or environment error.
"""

import copy
import json
import subprocess
import sys

try:
    import jsonschema
except ImportError:  # Debian: apt-get install python3-jsonschema (tools/deps.sh test)
    print("validate.py: the jsonschema module is missing (Debian: python3-jsonschema)", file=sys.stderr)
    sys.exit(2)

SLAB_BYTES = 65536  # slab_bytes in slab/size_classes.hpp


def semantic_errors(doc):
    """The rules across fields. Returns a list of messages."""
    errs = []

    def need(cond, msg):
        if not cond:
            errs.append(msg)

    classes = doc["classes"]
    need(all(a < b for a, b in zip(classes, classes[1:])), "classes are not strictly ascending")

    # Buckets: one per class when the layer keeps stats, none otherwise.
    buckets = doc["buckets"]
    if doc["has_buckets"]:
        need(len(buckets) == len(classes), f"buckets has {len(buckets)} entries for {len(classes)} classes")
    else:
        need(buckets == [], "buckets is not empty although has_buckets is false")
    for i, b in enumerate(buckets):
        where = f"buckets[{i}]"
        if i < len(classes):
            need(b["size"] == classes[i], f"{where}.size {b['size']} is not classes[{i}] {classes[i]}")
        need(b["block_size"] >= b["size"], f"{where}.block_size is below size")
        need(b["in_use"] == b["allocations"] - b["frees"],
             f"{where}.in_use {b['in_use']} != allocations {b['allocations']} - frees {b['frees']}")
        need(b["high_water"] >= b["in_use"], f"{where}.high_water {b['high_water']} is below in_use {b['in_use']}")
        capacity = b["slabs"] * (SLAB_BYTES // b["block_size"])
        need(b["free_blocks"] == max(capacity - b["in_use"], 0),
             f"{where}.free_blocks {b['free_blocks']} != slabs x blocks per slab - in_use ({capacity} - {b['in_use']})")
        lock = b["lock"]
        need(lock["contended"] <= lock["acquisitions"], f"{where}.lock.contended exceeds acquisitions")
        need(lock["hold_samples"] <= lock["acquisitions"], f"{where}.lock.hold_samples exceeds acquisitions")
        need(lock["max_wait_ns"] <= lock["wait_ns"], f"{where}.lock.max_wait_ns exceeds wait_ns")
        need(b["refills"] + b["flushes"] <= lock["acquisitions"] or lock["acquisitions"] == 0,
             f"{where}: refills + flushes exceed lock.acquisitions (each takes the lock once; 0 = an untimed lock)")

    # Fallback: allocations are the sum of the bins; one more bin than bounds.
    f = doc["fallback"]
    need(len(f["sizes"]) == len(f["size_bounds"]) + 1,
         f"fallback.sizes has {len(f['sizes'])} bins for {len(f['size_bounds'])} bounds (want bounds + 1)")
    need(all(a < b for a, b in zip(f["size_bounds"], f["size_bounds"][1:])), "fallback.size_bounds not ascending")
    need(f["allocs"] == sum(f["sizes"]), f"fallback.allocs {f['allocs']} != sum(sizes) {sum(f['sizes'])}")
    if not f["counts_underflow"]:
        need(f["blocks_live"] == f["allocs"] - f["frees"],
             f"fallback.blocks_live {f['blocks_live']} != allocs - frees ({f['allocs']} - {f['frees']})")
    if not doc["has_fallback"]:
        need(f["allocs"] == f["frees"] == f["resizes"] == f["remaps"] == f["blocks_live"] == f["bytes_live"] == 0
             and not f["counts_underflow"], "fallback is not zero although has_fallback is false")

    # Shards: the summary is the sum of the shards, the shards of their classes.
    s = doc["shards"]
    per = s["per_shard"]
    need(s["retired_pending"] <= s["retired"], f"shards.retired_pending {s['retired_pending']} > retired {s['retired']}")
    need(s["reclaimed_total"] <= s["deferred_total"], "shards.reclaimed_total exceeds deferred_total")
    if doc["has_shards"]:
        need(len(per) == s["shard_count"], f"per_shard has {len(per)} entries for shard_count {s['shard_count']}")
    else:
        need(per == [], "per_shard is not empty although has_shards is false")
        need(s["alloc_hits"] == s["deferred_total"] == s["reclaimed_total"] == s["backlog"] == s["in_transit"] == 0,
             "shard counters are not zero although has_shards is false")
    if doc["has_shards"] and doc["has_buckets"]:
        need(s["alloc_misses"] == sum(b["allocations"] for b in buckets),
             f"shards.alloc_misses {s['alloc_misses']} != the buckets' allocations")
    hits = deferred = reclaimed = backlog = 0
    for i, sh in enumerate(per):
        where = f"per_shard[{i}]"
        need(sh["index"] == i, f"{where}.index is {sh['index']}")
        need(len(sh["classes"]) == len(classes) or sh["classes"] == [],
             f"{where}.classes has {len(sh['classes'])} entries for {len(classes)} classes")
        s_hits = s_backlog = s_slabs = 0
        for c, k in enumerate(sh["classes"]):
            kw = f"{where}.classes[{c}]"
            if c < len(classes):
                need(k["size"] == classes[c], f"{kw}.size is not classes[{c}]")
            need(k["in_use"] == max(k["allocations"] - k["frees"] - k["deferred"], 0),
                 f"{kw}.in_use {k['in_use']} != allocations - frees - deferred")
            need(k["reclaimed"] <= k["deferred"], f"{kw}.reclaimed exceeds deferred")
            s_hits += k["allocations"]
            s_backlog += k["deferred"] - k["reclaimed"]
            s_slabs += k["slabs"]
            deferred += k["deferred"]
            reclaimed += k["reclaimed"]
        need(sh["alloc_hits"] == s_hits, f"{where}.alloc_hits != the sum of its classes' allocations")
        need(sh["backlog"] == s_backlog, f"{where}.backlog != the sum of its classes' deferred - reclaimed")
        need(sh["reserved_bytes"] == s_slabs * SLAB_BYTES, f"{where}.reserved_bytes != its slabs x {SLAB_BYTES}")
        hits += sh["alloc_hits"]
        backlog += sh["backlog"]
    if per:
        need(s["alloc_hits"] == hits, "shards.alloc_hits != the sum of per_shard alloc_hits")
        need(s["deferred_total"] == deferred, "shards.deferred_total != the sum of the classes' deferred")
        need(s["reclaimed_total"] == reclaimed, "shards.reclaimed_total != the sum of the classes' reclaimed")
        need(s["backlog"] == backlog, "shards.backlog != the sum of per_shard backlog")
    need(s["backlog"] == s["deferred_total"] - s["reclaimed_total"], "shards.backlog != deferred_total - reclaimed_total")

    # Memory: read under the pool's lock, so consistent with itself.
    m = doc["memory"]
    need(m["committed_bytes"] == m["in_use_bytes"] + m["retained_bytes"],
         "memory.committed_bytes != in_use_bytes + retained_bytes")
    need(m["in_use_bytes"] + m["retained_bytes"] + m["decommitted_bytes"] <= m["reserved_bytes"],
         "memory: in use + retained + decommitted exceeds reserved")
    need(m["chunks_released"] <= m["chunks"], "memory: more chunks released than reserved")
    for k in ("reserved_bytes", "in_use_bytes", "retained_bytes", "decommitted_bytes"):
        need(m[k] % SLAB_BYTES == 0, f"memory.{k} is not a whole number of slabs")
    if not doc["has_memory"]:
        need(all(v == 0 for v in m.values()), "memory is not zero although has_memory is false")
    need(not doc["has_epochs"] or doc["has_shards"], "has_epochs without has_shards")
    if not doc["has_epochs"]:
        need(all(s[k] == 0 for k in ("current_epoch", "min_pinned_epoch", "pinned_threads", "retired", "retired_pending")),
             "epoch fields are not zero although has_epochs is false")
    return errs


def check(validator, docs):
    """docs: list of (label, text). Returns the number of failing documents."""
    failed = 0
    for label, text in docs:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            print(f"{label}: not JSON: {e}")
            failed += 1
            continue
        errors = [f"schema: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                  for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
        if not errors:  # the rules assume the shape is right
            errors = [f"rule: {m}" for m in semantic_errors(doc)]
        if errors:
            failed += 1
            for e in errors[:20]:
                print(f"{label}: {e}")
        else:
            print(f"{label}: ok (mode {doc['mode']}, has_buckets {doc['has_buckets']}, "
                  f"has_shards {doc['has_shards']}, has_memory {doc['has_memory']})")
    return failed


def run(program):
    try:
        r = subprocess.run(program, stdout=subprocess.PIPE, text=True, timeout=300)
    except OSError as e:
        print(f"validate.py: cannot run {' '.join(program)}: {e}")
        sys.exit(2)
    if r.returncode != 0:
        print(f"validate.py: {' '.join(program)} exited with {r.returncode}")
        sys.exit(1)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    if not lines:
        print(f"validate.py: {' '.join(program)} printed nothing")
        sys.exit(1)
    return lines


# Broken copies of a real document: each must be rejected.
def mutations(doc):
    def edit(name, f):
        d = copy.deepcopy(doc)
        f(d)
        return name, d

    def rename(d, obj, old, new):
        obj[new] = obj.pop(old)

    busiest = max(range(len(doc["buckets"])), key=lambda i: doc["buckets"][i]["allocations"])

    yield edit("field renamed (fallback.allocs -> fallback.alloc)", lambda d: rename(d, d["fallback"], "allocs", "alloc"))
    yield edit("field missing (memory.decommits)", lambda d: d["memory"].pop("decommits"))
    yield edit("extra field (shards.extra)", lambda d: d["shards"].__setitem__("extra", 1))
    yield edit("negative counter (a bucket's frees)", lambda d: d["buckets"][busiest].__setitem__("frees", -1))
    yield edit("string for a number (memory.chunks)", lambda d: d["memory"].__setitem__("chunks", "3"))
    yield edit("fraction for a counter (fallback.frees)", lambda d: d["fallback"].__setitem__("frees", 1.5))
    yield edit("wrong version", lambda d: d.__setitem__("version", 1))
    yield edit("lock field renamed (lock.acquisitions -> lock.acq)",
               lambda d: rename(d, d["buckets"][busiest]["lock"], "acquisitions", "acq"))
    yield edit("shard class field missing", lambda d: d["shards"]["per_shard"][0]["classes"][0].pop("cached"))
    yield edit("bucket in_use torn (in_use != allocations - frees)",
               lambda d: d["buckets"][busiest].__setitem__("in_use", d["buckets"][busiest]["in_use"] + 1))
    yield edit("retired_pending above retired",
               lambda d: d["shards"].__setitem__("retired_pending", d["shards"]["retired"] + 1))
    yield edit("fallback allocs not the sum of sizes",
               lambda d: d["fallback"].__setitem__("allocs", d["fallback"]["allocs"] + 1))
    yield edit("a fallback bin missing", lambda d: d["fallback"]["sizes"].pop())
    yield edit("a bucket missing", lambda d: d["buckets"].pop())
    yield edit("a shard missing", lambda d: d["shards"]["per_shard"].pop())
    yield edit("shard in_use torn", lambda d: d["shards"]["per_shard"][0]["classes"][0].__setitem__(
        "in_use", d["shards"]["per_shard"][0]["classes"][0]["in_use"] + 1))
    yield edit("backlog not deferred_total - reclaimed_total",
               lambda d: d["shards"].__setitem__("backlog", d["shards"]["backlog"] + 1))
    yield edit("committed_bytes not in_use_bytes + retained_bytes",
               lambda d: d["memory"].__setitem__("committed_bytes", d["memory"]["committed_bytes"] + 65536))


def self_test(validator, lines):
    # The richest document: has buckets, shards with per-shard classes.
    docs = [json.loads(l) for l in lines]
    base = next((d for d in docs if d["has_shards"] and d["has_buckets"] and d["shards"]["per_shard"]), None)
    if base is None:
        print("validate.py: no document with shards and buckets to break")
        return 1
    if check(validator, [("unbroken", json.dumps(base))]) != 0:
        return 1
    missed = 0
    for name, broken in mutations(base):
        rejected = check(validator, [(f"broken: {name}", json.dumps(broken))]) != 0
        if not rejected:
            print(f"NOT REJECTED: {name}")
            missed += 1
    rejected = check(validator, [("broken: not JSON", lines[0][:-1])]) != 0
    missed += 0 if rejected else 1
    print(f"self-test: {missed} broken document(s) accepted" if missed else "self-test: every broken document rejected")
    return 1 if missed else 0


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    if argv[2] == "--json":
        if len(argv) != 4:
            print(__doc__, file=sys.stderr)
            return 2
        with open(argv[3]) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        if not lines:
            print(f"validate.py: {argv[3]} holds no document")
            return 1
        failed = check(validator, [(f"{argv[3]}:{i + 1}", l) for i, l in enumerate(lines)])
    elif argv[2] == "--self-test":
        return self_test(validator, run(argv[3:]))
    else:
        lines = run(argv[2:])
        failed = check(validator, [(f"document {i + 1}", l) for i, l in enumerate(lines)])
    print(f"{len(lines) - failed} of {len(lines)} document(s) valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
