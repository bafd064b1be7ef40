#!/usr/bin/env python3
"""Medians and target ratios from bench-alloc's JSON output.

    python3 tools/bench_report.py build-bench/bench.json

Every bench-alloc benchmark counts its items (one item = one alloc+free pair,
one enter+leave pair, or one block through the producer/consumer ring), so the
cost of one item is 1e9 / items_per_second ns, whatever the batch size. Rates
come from CPU time for the single-thread families and from wall time for the
producer/consumer one (UseRealTime). Only medians are used: the
`<name>_median` aggregate when the run had repetitions, else the median of the
plain runs found.

Failures are printed as plain FAIL lines and the script still exits 0:
benchmarks inform, they do not gate. It exits 1 only when the file cannot be
read.
"""

import json
import statistics
import sys
from collections import defaultdict

SIZES = (16, 32, 64, 128, 256)


def load_medians(path):
    """name -> median items_per_second."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    aggregates = {}
    runs = defaultdict(list)
    for b in data.get("benchmarks", []):
        ips = b.get("items_per_second")
        if ips is None or b.get("error_occurred"):
            continue
        run_name = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                aggregates[run_name] = ips
        else:
            runs[run_name].append(ips)
    medians = {name: statistics.median(v) for name, v in runs.items()}
    medians.update(aggregates)
    return data.get("context", {}), medians


FAMILIES = ("BM_Pair_", "BM_Batch64_", "BM_BucketFree_", "BM_ProducerConsumer_", "BM_Epoch_")
VARIANTS = ("ShardFast", "Sydra", "BucketTimed", "BucketPlain", "SmallPoolNoShards", "Glibc", "Mimalloc",
            "IdealInline", "IdealCall", "Slabs/", "SlabsWS255")


def display_order(name):
    """Family, then variant, then numeric arguments (runs may be interleaved)."""
    family = next((i for i, f in enumerate(FAMILIES) if name.startswith(f)), len(FAMILIES))
    base, *args = name.split("/")
    variant = next((i for i, v in enumerate(VARIANTS) if (base + "/").endswith(v) or base.endswith(v)),
                   len(VARIANTS))
    nums = tuple(int(a) if a.isdigit() else 0 for a in args)
    return (family, variant, base, nums)


def short(name):
    """Drops Google Benchmark's decorations (iterations:N, real_time)."""
    return "/".join(p for p in name.split("/") if not p.startswith(("iterations:", "repeats:")) and p != "real_time")


class Report:
    def __init__(self, medians):
        self.m = {short(k): v for k, v in medians.items()}
        self.passed = self.failed = self.missing = 0

    def ns(self, name):
        ips = self.m.get(name)
        return None if not ips else 1e9 / ips

    def ips(self, name):
        return self.m.get(name)

    def ratio(self, label, num, den, op, target, value_of):
        a, b = value_of(num), value_of(den)
        if a is None or b is None:
            gone = ", ".join(n for n, v in ((num, a), (den, b)) if v is None)
            print(f"  MISSING {label:<52} (no result for {gone})")
            self.missing += 1
            return
        r = a / b
        ok = r <= target if op == "<=" else r >= target
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        verdict = "PASS" if ok else "FAIL"
        print(f"  {verdict:<7} {label:<52} {r:7.3f}  (target {op} {target:g}; {a:.4g} / {b:.4g})")

    def info(self, label, num, den, value_of):
        """A ratio without a target, to help read one that has one."""
        a, b = value_of(num), value_of(den)
        if a is None or b is None:
            print(f"  INFO    {label:<52}   n/a")
            return
        print(f"  INFO    {label:<52} {a / b:7.3f}  (no target; {a:.4g} / {b:.4g})")


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[0])
        print(f"usage: {argv[0]} BENCH.json [CHECKED-BENCH.json]")
        return 1
    try:
        context, medians = load_medians(argv[1])
    except (OSError, ValueError, KeyError) as e:
        print(f"bench_report: cannot read {argv[1]}: {e}")
        return 1

    rep = Report(medians)
    print(f"bench-alloc medians ({context.get('date', '?')}, {context.get('num_cpus', '?')} CPUs, "
          f"Google Benchmark itself built as {context.get('library_build_type', '?')})")
    print()
    print(f"  {'benchmark':<44} {'median':>14}")
    for name in sorted(rep.m, key=display_order):
        if name.startswith("BM_ProducerConsumer"):
            print(f"  {name:<44} {rep.ips(name) / 1e6:10.2f} M/s   (items through the ring, wall time)")
        else:
            unit = "per enter+leave" if name.startswith("BM_Epoch") else "per pair"
            print(f"  {name:<44} {rep.ns(name):10.2f} ns    ({unit})")
    print()

    print("Ratios (medians; ns per pair unless noted)")
    print(" TimedLock bucket pair / PlainLock bucket pair")
    for s in SIZES:
        rep.ratio(f"timed/plain bucket pair {s} B", f"BM_Pair_BucketTimed/{s}", f"BM_Pair_BucketPlain/{s}",
                  "<=", 1.15, rep.ns)
    print(" Bucket free+alloc with 2000 slabs live / with 1 slab live (256 B)")
    rep.ratio("free 2000 slabs / 1 slab", "BM_BucketFree_Slabs/2000", "BM_BucketFree_Slabs/1", "<=", 1.3, rep.ns)
    rep.info("control: 2000 slabs, 255-block working set / 1 slab", "BM_BucketFree_SlabsWS255/2000",
             "BM_BucketFree_Slabs/1", rep.ns)
    print(" Bucket pair (TimedLock) / glibc pair")
    for s in SIZES:
        rep.ratio(f"bucket/glibc pair {s} B", f"BM_Pair_BucketTimed/{s}", f"BM_Pair_Glibc/{s}", "<=", 1.5, rep.ns)
    print(" Shard fast-path pair / mimalloc pair")
    for s in SIZES:
        rep.ratio(f"shard/mimalloc pair {s} B", f"BM_Pair_ShardFast/{s}", f"BM_Pair_Mimalloc/{s}", "<=", 1.0, rep.ns)
    for s in SIZES:
        rep.ratio(f"shard/mimalloc batch-64 pair {s} B", f"BM_Batch64_ShardFast/{s}", f"BM_Batch64_Mimalloc/{s}",
                  "<=", 1.0, rep.ns)
    print(" Shard fast-path pair / ideal inline free-list pop+push")
    for s in SIZES:
        rep.ratio(f"shard/ideal-inline pair {s} B", f"BM_Pair_ShardFast/{s}", f"BM_Pair_IdealInline/{s}", "<=", 4.0,
                  rep.ns)
    print(" Producer/consumer throughput (items/s), sydra / mimalloc")
    rep.ratio("producer/consumer sydra/mimalloc", "BM_ProducerConsumer_Sydra", "BM_ProducerConsumer_Mimalloc", ">=",
              0.7, rep.ips)
    print(" Epoch enter+leave (no target)")
    e = rep.ns("BM_Epoch_EnterLeave")
    print(f"  INFO    {'epoch enter+leave':<52} " + (f"{e:7.2f} ns" if e is not None else "    n/a"))
    if len(argv) == 3:
        try:
            _, checked = load_medians(argv[2])
        except (OSError, ValueError, KeyError) as e:
            checked = {}
            print(f"  (checked build results unreadable: {e})")
        print(" Misuse checks: checked build / release build, 64 B pair, each normalised by glibc's pair in its run")
        for variant in ("ShardFast", "BucketTimed"):
            name, glibc = f"BM_Pair_{variant}/64", "BM_Pair_Glibc/64"
            try:
                cost = (1e9 / checked[name] / (1e9 / checked[glibc])) / (rep.ns(name) / rep.ns(glibc))
                print(f"  INFO    {'checked/release ' + variant + ' pair':<52} {cost:7.3f}  (no target; the release"
                      f" build compiles the checks out)")
            except (KeyError, TypeError, ZeroDivisionError):
                print(f"  INFO    {'checked/release ' + variant + ' pair':<52}   n/a")
    print()
    print(f"{rep.passed} PASS, {rep.failed} FAIL, {rep.missing} MISSING"
          + ("" if rep.failed == 0 and rep.missing == 0 else "  (benchmarks inform, they do not gate: exit 0)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
