#!/usr/bin/env python3
"""Writes the benchmark page (docs/benchmarks.md, docs/benchmarks.svg) from one run of tools/bench.sh.

    python3 tools/bench_report.py --throughput build-bench/bench.json --memory build-bench/memory.jsonl \\
        [--checked build-bench-checked/bench.json] [--commands build-bench/bench-commands.txt] \\
        [--builddir build-bench] [--out docs/benchmarks.md] [--svg docs/benchmarks.svg] [--quick] \\
        [--source REVISION]

Inputs: bench-alloc's Google Benchmark JSON (medians of interleaved
repetitions; one item = one alloc+free pair, one churn operation, one block
through the ring, or one node retired and reclaimed) and bench-memory's JSON
lines (one object per allocator and scenario). Throughput ratios are sydra's
items/s over the peer's (higher is better); memory ratios are sydra's figure
over the peer's (lower is better). snmalloc is an optional throughput peer
(bench-alloc built with -Dsnmalloc_src): its column appears in the throughput,
container and chart output only when the JSON has Snmalloc results, and the
page says why when it has none.

The "best peer" of a shape is the fastest of mimalloc, jemalloc and snmalloc
(snmalloc when the run has it) on that shape in the same run: the throughput
table's "÷ best peer" column is sydra's items/s over that peer's, and the
issue 17 targets are set against it. For the real programs it is the faster
geometric-mean wall time of mimalloc and jemalloc (snmalloc has no
LD_PRELOAD library here). A target measured without snmalloc says so next
to its verdict.

Each target of issues 8, 9, 14 and 17 is printed with its measured value and PASS
or FAIL, or MISSING when a result is absent. The container workload of issue
10 (BM_Container) has no target: its table gives ns per operation for each
adapter, and the concrete form's ratios to std::allocator and to the erased
form. Benchmarks inform, they do not gate: the script exits 0 whatever the
verdicts, and 1 only when the throughput JSON cannot be read. The page is also printed to stdout. The
charts are drawn by gnuplot (Debian's gnuplot-nox); without it the page says
so and has no chart.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

PEERS = ("Glibc", "Mimalloc", "Jemalloc")
OPTIONAL_PEERS = ("Snmalloc",)  # only in a bench-alloc built with it, so only columns when measured
BEST_PEERS = ("Mimalloc", "Jemalloc", "Snmalloc")  # issue 17's "best peer": the fastest of these on each shape
PEER_NAMES = {"Glibc": "glibc", "Mimalloc": "mimalloc", "Jemalloc": "jemalloc", "Snmalloc": "snmalloc"}
PEER_COLOURS = {"Glibc": "#4477aa", "Mimalloc": "#ee6677", "Jemalloc": "#228833", "Snmalloc": "#ccbb44"}
MEM_ALLOCATORS = ("sydra", "glibc", "mimalloc", "jemalloc")
SYDRA_VARIANTS = ("Sydra", "SydraErased", "SydraNoShard")
VIA = {"Sydra": "handle", "SydraErased": "Allocator", "SydraNoShard": "handle, no shards"}
SIZES = (16, 64, 256)
ALIGNS = (8, 16)
CHURNS = (("16-256", 1), ("16-256", 2), ("8-1024", 1), ("8-1024", 2), ("16-32768:log", 1), ("16-32768:log", 2),
          ("16-256", 8), ("16-256", 64))
LOG_CHURN = "16-32768:log"  # issue 17: sizes log-uniform over 16 B..32 KiB
DECORATIONS = ("iterations:", "repeats:")
RETAINED_BUDGET_KIB = 4096  # trim(): the default retained budget, 4 MiB
LIMITS = (0.95, 1.0, 1.03, 1.1, 1.15, 1.3, 2.0, 2.5, 3.0)  # the targets' thresholds, for fmt_value


# ---- Reading ----------------------------------------------------------------------------

def short_name(name):
    """Drops Google Benchmark's decorations; keeps threads:N, which is part of the shape."""
    return "/".join(p for p in name.split("/")
                    if not p.startswith(DECORATIONS) and p not in ("real_time", "manual_time"))


def load_throughput(path):
    """(context, {name: median items/s}, {name: error message})."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    aggregates, runs, errors = {}, defaultdict(list), {}
    for b in data.get("benchmarks", []):
        name = short_name(b.get("run_name", b["name"]))
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "error")
            continue
        ips = b.get("items_per_second")
        if ips is None:
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                aggregates[name] = ips
        else:
            runs[name].append(ips)
    medians = {n: statistics.median(v) for n, v in runs.items()}
    medians.update(aggregates)
    return data.get("context", {}), medians, errors


def load_memory(path):
    """{(scenario, key, allocator): record}; a record with "error" stands for a failed run."""
    out = {}
    if not path or not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            out[(r.get("scenario"), memory_key(r), r.get("allocator"))] = r
    return out


def memory_key(r):
    """The argument that tells a scenario's runs apart, from the record or from a failed run's args."""
    args = r.get("args", "").split()
    s = r.get("scenario")

    def pick(field, idx):
        if field in r:
            return r[field]
        try:
            return int(args[idx])
        except (IndexError, ValueError):
            return None

    if s == "rss-per-byte":
        return pick("size", 1)
    if s == "phase-shift":
        return (pick("from", 1), pick("to", 2))
    if s in ("churn-peak", "rss-per-byte-range"):
        return (pick("lo", 1), pick("hi", 2))
    if s == "per-thread":
        return pick("threads", 1)
    return None


# ---- Verdicts ---------------------------------------------------------------------------

class Target:
    """One target of an issue: every measurement that falls under it, and the verdict."""

    def __init__(self, issue, text, op, limit, unit=""):
        self.issue, self.text, self.op, self.limit, self.unit = issue, text, op, limit, unit
        self.items = []  # (label, value or None)
        self.note = ""  # printed after the verdict (e.g. that snmalloc was not in the run)

    def ok(self, v):
        return v <= self.limit if self.op == "<=" else v >= self.limit

    def add(self, label, value):
        self.items.append((label, value))
        return None if value is None else self.ok(value)

    def verdict(self):
        if not self.items or any(v is None for _, v in self.items):
            return "MISSING"
        return "PASS" if all(self.ok(v) for _, v in self.items) else "FAIL"

    def worst(self):
        vals = [(v, lbl) for lbl, v in self.items if v is not None]
        if not vals:
            return None, None
        return (min if self.op == ">=" else max)(vals)


def fmt_ratio(v, digits=2):
    return "n/a" if v is None else f"{v:.{digits}f}"


def fmt_value(v):
    """Two decimals, three where two would round onto a limit (0.998 must not read as 1.00 and fail)."""
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return f"{v:.0f}"
    two = f"{v:.2f}"
    return f"{v:.3f}" if float(two) in LIMITS and float(two) != v else two


def mark(v, ok):
    """A ratio cell; a target's cell carries its verdict."""
    if v is None:
        return "n/a"
    return fmt_value(v) + ("" if ok is None else (" ✓" if ok else " ✗ FAIL"))


# ---- Throughput -------------------------------------------------------------------------

def shape_rows():
    """(family, shape, label) in page order."""
    rows = []
    for fam, what in (("BM_Pair", "pair"), ("BM_Batch64", "batch of 64")):
        for s in SIZES:
            for a in ALIGNS:
                rows.append((fam, f"{s}/align:{a}", f"{what}, {s} B, align {a}"))
    for rng, t in CHURNS:
        what = "16 B–32 KiB log-uniform" if rng == LOG_CHURN else f"{rng.replace('-', '–')} B"
        rows.append(("BM_Churn", f"{rng}/threads:{t}", f"churn {what}, {t} thread{'s' if t > 1 else ''}"))
    rows.append(("BM_ProducerConsumer", "64", "producer/consumer 64 B"))
    return rows


class Throughput:
    def __init__(self, medians, errors):
        self.m, self.errors = medians, errors

    def ips(self, fam, variant, shape):
        return self.m.get(f"{fam}/{variant}/{shape}")

    def ns(self, name):
        v = self.m.get(name)
        return None if not v else 1e9 / v

    def has_variant(self, variant):
        """Whether any benchmark of this variant ran (a result or an error)."""
        tag = f"/{variant}/"
        return any(tag in n for n in self.m) or any(tag in n for n in self.errors)

    def peers(self):
        """The peer columns of this run: the fixed ones, then each optional peer that was measured."""
        return PEERS + tuple(p for p in OPTIONAL_PEERS if self.has_variant(p))

    def best_peer(self, fam, shape):
        """(items/s, peer) of the fastest of BEST_PEERS on this shape, or (None, None) when none ran."""
        found = [(v, p) for p in BEST_PEERS if (v := self.ips(fam, p, shape))]
        return max(found) if found else (None, None)


def throughput_targets():
    return {
        "glibc": Target(8, "No shape below 1.0× glibc (handle and Allocator; the 8–1024 B churn has its own)",
                        ">=", 1.0, "×"),
        "mimalloc": Target(8, "Every 16–256 B shape on 1 or 2 threads, align 8 or 16, handle or Allocator: "
                              "≥ 1.0× mimalloc", ">=", 1.0, "×"),
        "shards8": Target(8, "16–256 B churn, 8 threads on the default 4 shards: ≥ 1.0× mimalloc", ">=", 1.0, "×"),
        "wide": Target(8, "8–1024 B churn (1 and 2 threads): ≥ 0.95× glibc", ">=", 0.95, "×"),
        "pc": Target(8, "Producer/consumer 64 B (handle): ≥ 1.0× mimalloc", ">=", 1.0, "×"),
        "retire": Target(8, "Retire + reclaim of a 64-B node ≤ 2× an alloc+free pair on the shard path",
                         "<=", 2.0, "×"),
        "ideal": Target(8, "Shard fast pair within 3× the ideal inline loop (cost ratio)", "<=", 3.0, "×"),
        "slabs": Target(9, "A free with 2,000 slabs live ≤ 1.3× a free with 1 slab live", "<=", 1.3, "×"),
        "threads64": Target(14, "16–256 B churn with 64 threads on the 2 cores: ≥ 1.0× mimalloc", ">=", 1.0, "×"),
        "best_small17": Target(17, "Every 16–256 B shape (pairs, batches of 64, churn on 1 and 2 threads; align 8 "
                                   "and 16; handle and Allocator): ≥ 1.0× the best of mimalloc, jemalloc and "
                                   "snmalloc", ">=", 1.0, "×"),
        "best_churn17": Target(17, "Churn 8–1024 B and 16 B–32 KiB log-uniform (1 and 2 threads, handle and "
                                   "Allocator): ≥ 1.0× the best peer", ">=", 1.0, "×"),
        "pc17": Target(17, "Producer/consumer 64 B (handle): ≥ 1.0× snmalloc", ">=", 1.0, "×"),
        "threads64_17": Target(17, "16–256 B churn with 64 threads: ≥ 1.0× the best peer", ">=", 1.0, "×"),
        "ideal17": Target(17, "Shard fast pair within 2.5× the ideal inline loop (cost ratio)", "<=", 2.5, "×"),
        "slabs17": Target(17, "A free with 2,000 slabs live ≤ 1.3× a free with 1 slab live", "<=", 1.3, "×"),
    }


def checks_for(fam, shape, variant):
    """[(peer column, target key)] that a row's ratio cells fall under."""
    if variant not in ("Sydra", "SydraErased"):
        return []
    out = []
    rng, threads = None, None
    if fam == "BM_Churn":
        rng, t = shape.split("/threads:")
        threads = int(t)
    if rng == LOG_CHURN:
        pass  # issue 17's shape: none of issue 8's targets, which predate it
    elif rng == "8-1024":
        out.append(("Glibc", "wide"))
    else:
        out.append(("Glibc", "glibc"))
    small = fam in ("BM_Pair", "BM_Batch64", "BM_ProducerConsumer") or (rng == "16-256" and threads in (1, 2))
    if fam == "BM_ProducerConsumer" and variant == "Sydra":
        out.append(("Mimalloc", "pc"))
    elif small:
        out.append(("Mimalloc", "mimalloc"))
    if rng == "16-256" and threads == 8:
        out.append(("Mimalloc", "shards8"))
    if rng == "16-256" and threads == 64:
        out.append(("Mimalloc", "threads64"))
    # Issue 17: "Best" is the best-peer column, not a peer.
    if fam in ("BM_Pair", "BM_Batch64") or (rng == "16-256" and threads in (1, 2)):
        out.append(("Best", "best_small17"))
    elif rng in ("8-1024", LOG_CHURN) and threads in (1, 2):
        out.append(("Best", "best_churn17"))
    elif rng == "16-256" and threads == 64:
        out.append(("Best", "threads64_17"))
    if fam == "BM_ProducerConsumer" and variant == "Sydra":
        out.append(("Snmalloc", "pc17"))
    return out


def throughput_section(tp, targets, lines, chart_rows, context):
    peers = tp.peers()
    lines.append("Throughput ratios are sydra's items per second over the peer's on the same shape in the same "
                 "run: **higher is better**, 1.00 is parity. \"cost ÷ ideal\" is sydra's time per item over the "
                 "ideal inline free list's (lower is better). ✓/✗ mark the cells a target applies to.")
    lines.append("")
    if "Snmalloc" not in peers:
        why = context.get("snmalloc", "this bench-alloc predates the snmalloc peer")
        if why.startswith("inlined"):
            why = "bench-alloc has it, but this run measured none of its shapes (a --benchmark_filter?)"
        lines.append(f"No snmalloc column: {why}.")
        lines.append("")
    best_of = [PEER_NAMES[p] for p in BEST_PEERS if p in peers]
    best_of = ", ".join(best_of[:-1]) + " and " + best_of[-1]
    lines.append(f"\"÷ best peer\" is sydra's throughput over the fastest of {best_of} on that shape "
                 "(named in the cell): issue 17's yardstick.")
    lines.append("")
    lines.append("| shape | via | sydra (M items/s) | " + " | ".join(f"÷ {PEER_NAMES[p]}" for p in peers)
                 + " | ÷ best peer | cost ÷ ideal |")
    lines.append("|---|---|" + "---:|" * (len(peers) + 3))
    for fam, shape, label in shape_rows():
        for variant in SYDRA_VARIANTS:
            name = f"{fam}/{variant}/{shape}"
            own = tp.ips(fam, variant, shape)
            if own is None and name not in tp.errors:
                continue  # this variant does not exist for this shape
            checks = dict(checks_for(fam, shape, variant))  # peer -> target key (one per peer)
            # A peer cell can fall under two targets (8 threads: glibc and shards8 use different peers).
            multi = checks_for(fam, shape, variant)
            cells, chart = [], []
            for peer in peers:
                p = tp.ips(fam, peer, shape)
                r = own / p if own and p else None
                verdicts = [targets[k].add(f"{label} ({VIA[variant]})", r) for pc, k in multi if pc == peer]
                ok = None if not verdicts or r is None else all(verdicts)
                cells.append(mark(r, ok) if peer in checks else fmt_ratio(r))
                chart.append(r)
            best, best_name = tp.best_peer(fam, shape)
            r = own / best if own and best else None
            where = f" ({PEER_NAMES[best_name]})" if best_name else ""
            verdicts = [targets[k].add(f"{label} ({VIA[variant]}) vs {PEER_NAMES.get(best_name, 'no peer')}", r)
                        for pc, k in multi if pc == "Best"]
            ok = None if not verdicts or r is None else all(verdicts)
            cells.append((mark(r, ok) if verdicts else fmt_ratio(r)) + (where if r is not None else ""))
            ideal = ""
            if fam in ("BM_Pair", "BM_Batch64"):
                i = tp.ips(fam, "IdealInline", shape)
                c = i / own if own and i else None
                ok = None
                if fam == "BM_Pair" and variant == "Sydra":
                    ok = targets["ideal"].add(label, c)
                    ok17 = targets["ideal17"].add(label, c)
                    ok = None if ok is None else ok and ok17
                ideal = mark(c, ok)
            own_s = f"{own / 1e6:.1f}" if own else f"error: {tp.errors.get(name, 'missing')}"
            lines.append(f"| {label} | {VIA[variant]} | {own_s} | {' | '.join(cells)} | {ideal} |")
            if variant != "SydraNoShard":
                chart_rows.append((f"{label}{' (Allocator)' if variant == 'SydraErased' else ''}", chart))
    lines.append("")

    # Retire: the peers have no retire; sydra's own pair is the yardstick.
    pair = tp.ns("BM_Pair/Sydra/64/align:8")
    lines.append("Retire: one writer allocates a 64-B node, publishes it (exchange) and retires the old one, "
                 "collecting every 64 retires, while 2 readers pin, read and unpin in a loop. One item = one node "
                 "allocated, retired and reclaimed, in writer CPU time.")
    lines.append("")
    lines.append("| shape | ns per node | ÷ shard pair 64 B (ns) |")
    lines.append("|---|---:|---:|")
    for w in (1, 2):
        ns = tp.ns(f"BM_Retire/Sydra/64/threads:{w}")
        r = ns / pair if ns and pair else None
        ok = targets["retire"].add(f"retire 64 B, {w} writer{'s' if w > 1 else ''}", r) if w == 1 else None
        lines.append(f"| retire+reclaim 64 B, {w} writer{'s' if w > 1 else ''} | {fmt_ratio(ns)} | "
                     f"{mark(r, ok)} |")
    lines.append("")


def other_section(tp, targets, checked, lines, hardened=None):
    lines.append("| measurement | value | note |")
    lines.append("|---|---:|---|")
    one, many = tp.ns("BM_BucketFree_Slabs/1"), tp.ns("BM_BucketFree_Slabs/2000")
    ws = tp.ns("BM_BucketFree_SlabsWS255/2000")
    r = many / one if one and many else None
    lines.append(f"| bucket free+alloc, 256 B, 1 slab live | {fmt_ratio(one)} ns | |")
    lines.append(f"| bucket free+alloc, 256 B, 2000 slabs live | {fmt_ratio(many)} ns | "
                 f"÷ 1 slab: {mark(r, targets['slabs'].add('2000 slabs / 1 slab', r))} (target ≤ 1.3) |")
    targets["slabs17"].add("2000 slabs / 1 slab", r)
    c = ws / one if ws and one else None
    lines.append(f"| control: 2000 slabs live, 255-block working set | {fmt_ratio(ws)} ns | ÷ 1 slab: "
                 f"{fmt_ratio(c)} (no target: only the slab count differs from /1) |")
    e = tp.ns("BM_Epoch_EnterLeave")
    lines.append(f"| enter_epoch + leave_epoch | {fmt_ratio(e)} ns | no target |")
    for s in SIZES:
        call, inline = tp.ns(f"BM_Pair/IdealCall/{s}/align:8"), tp.ns(f"BM_Pair/IdealInline/{s}/align:8")
        lines.append(f"| ideal free list behind calls, {s} B | {fmt_ratio(call)} ns | inline: {fmt_ratio(inline)} ns |")
    htp = hardened if hardened is not None else tp
    # What an opt-in costs: each variant's time per item over the plain small_pool's, same run.
    for variant, label in (("SydraHardened", "hardened"), ("SydraLean", "without stats and lock timing")):
        for shape in ("Pair", "Batch64"):
            for s in SIZES:
                for al in (8, 16):
                    plain, other = htp.ns(f"BM_{shape}/Sydra/{s}/align:{al}"), htp.ns(f"BM_{shape}/{variant}/{s}/align:{al}")
                    if plain and other:
                        what = "pair" if shape == "Pair" else "batch of 64"
                        lines.append(f"| {label} ÷ plain small_pool, {what} {s} B align {al} (handle) | "
                                     f"{fmt_ratio(other / plain)} | cost per item, same run ({fmt_ratio(other)} vs "
                                     f"{fmt_ratio(plain)} ns); no target |")
    if checked is not None:
        for variant in ("Sydra", "SydraNoShard"):
            name, glibc = f"BM_Pair/{variant}/64/align:8", "BM_Pair/Glibc/64/align:8"
            try:
                cost = (checked[glibc] / checked[name]) / (tp.m[glibc] / tp.m[name])
                v = f"{cost:.2f}"
            except (KeyError, TypeError, ZeroDivisionError):
                v = "n/a"
            lines.append(f"| checked build ÷ release build, {VIA[variant]} pair 64 B | {v} | "
                         f"each normalised by glibc's pair in its own run; no target |")
    lines.append("")


# ---- Containers (issue 10) --------------------------------------------------------------

CONTAINERS = ("map", "unordered_map", "list")
CONTAINER_VARIANTS = (("Std", "std::allocator"), ("StlErased", "StlAllocator, erased"),
                      ("StlConcrete", "StlAllocator, concrete"), ("PmrErased", "pmr, erased"),
                      ("PmrConcrete", "pmr, concrete"))
CONTAINER_PEER_VARIANTS = (("Snmalloc", "snmalloc"),)  # when the run has it


def container_section(tp, lines):
    """BM_Container/<Variant>/<container>: ns per operation, and the concrete form's ratios (no target)."""
    snmalloc = tp.has_variant("Snmalloc")
    # The peer next to std::allocator, before the sydra adapters.
    variants = CONTAINER_VARIANTS[:1] + (CONTAINER_PEER_VARIANTS if snmalloc else ()) + CONTAINER_VARIANTS[1:]
    lines.append("The same container workload on each allocator adapter: insert 4096 rows (`int` key, 16-B "
                 "value), erase every other one, insert 2048 more, destroy the container; one item = one insert or "
                 "erase (the destruction's frees are timed too). Every sydra variant uses the shared 4-shard "
                 "small_pool handle; std::allocator is glibc's `operator new`. *erased* goes through the "
                 "type-erased `Allocator` (an indirect call per allocation), *concrete* through the handle's type "
                 "(`StlAllocator<T, Handle>`, `BasicMemoryResource<Handle>`: its fast path inlined; pmr still pays "
                 "its own virtual call). Ratios are of items per second, so **higher is better** for the concrete "
                 "form; no target was set."
                 + (" snmalloc is its global allocator inlined behind a minimal std allocator (sized free)."
                    if snmalloc else ""))
    lines.append("")
    lines.append("| container | " + " | ".join(f"{label} (ns/op)" for _, label in variants)
                 + " | concrete ÷ std::allocator |" + (" concrete ÷ snmalloc |" if snmalloc else "")
                 + " concrete ÷ erased | pmr concrete ÷ pmr erased |")
    lines.append("|---|" + "---:|" * (len(variants) + 3 + snmalloc))
    for c in CONTAINERS:
        ips = {v: tp.m.get(f"BM_Container/{v}/{c}") for v, _ in variants}
        cells = []
        for v, _ in variants:
            name = f"BM_Container/{v}/{c}"
            if name in tp.errors:
                cells.append(f"error: {tp.errors[name]}")
            else:
                cells.append(fmt_ratio(1e9 / ips[v] if ips[v] else None))

        def ratio(a, b):
            return ips[a] / ips[b] if ips[a] and ips[b] else None

        lines.append(f"| {c} | " + " | ".join(cells) + f" | {fmt_ratio(ratio('StlConcrete', 'Std'))} | "
                     + (f"{fmt_ratio(ratio('StlConcrete', 'Snmalloc'))} | " if snmalloc else "")
                     + f"{fmt_ratio(ratio('StlConcrete', 'StlErased'))} | "
                     f"{fmt_ratio(ratio('PmrConcrete', 'PmrErased'))} |")
    lines.append("")


# ---- Memory -----------------------------------------------------------------------------

def mem_value(mem, scenario, key, allocator, field):
    r = mem.get((scenario, key, allocator))
    if r is None or "error" in r:
        return None
    return r.get(field)


def mem_errors(mem):
    return [(k, r["error"]) for k, r in sorted(mem.items(), key=lambda kv: str(kv[0])) if "error" in r]


def ratio_cells(vals):
    """sydra / each peer; n/a where either is missing or the peer's figure is not positive."""
    s = vals.get("sydra")
    out = []
    for a in MEM_ALLOCATORS[1:]:
        p = vals.get(a)
        out.append(f"{s / p:.2f}" if s is not None and p is not None and p > 0 else "n/a")
    return out


def num(v, digits=2):
    return "n/a" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else f"{v}")


def memory_section(mem, lines, chart_rows, quick):
    t = {
        "rss": Target(9, "RSS per requested byte ≤ 1.03 with 1 M live blocks (16, 64 and 256 B)", "<=", 1.03),
        "phase": Target(9, "Phase shift: peak RSS ≤ 1.1× the first phase's (16→128 B, 64→256 B)", "<=", 1.1),
        "trim": Target(9, f"After freeing everything and trim(): RSS within the retained budget "
                          f"({RETAINED_BUDGET_KIB // 1024} MiB) of where it started", "<=", RETAINED_BUDGET_KIB, " KiB"),
        "churn": Target(9, "Peak RSS of the larson-like churn ≤ 1.1× min(glibc, mimalloc)", "<=", 1.1, "×"),
        "live": Target(14, "1024 threads, blocks live: RSS per thread ≤ glibc's + 16 KiB", "<=", 16, " KiB"),
        "idle": Target(14, "1024 threads, freed and idle: RSS per thread ≤ glibc's + 8 KiB", "<=", 8, " KiB"),
        "exited": Target(14, "1024 threads, after exit: RSS per thread ≤ glibc's + 4 KiB", "<=", 4, " KiB"),
        "rss17": Target(17, "RSS per requested byte ≤ 1.03 with 1 M live blocks (16, 64 and 256 B)", "<=", 1.03),
        "rss_range17": Target(17, "RSS per requested byte ≤ 1.15 with live blocks log-uniform over 1–64 KiB",
                              "<=", 1.15),
        "phase17": Target(17, "Phase shift: peak RSS ≤ 1.1× the first phase's (16→128 B, 64→256 B)", "<=", 1.1),
        "live17": Target(17, "1024 threads, blocks live: RSS per thread ≤ glibc's + 16 KiB", "<=", 16, " KiB"),
        "idle17": Target(17, "1024 threads, freed and idle: RSS per thread ≤ glibc's + 8 KiB", "<=", 8, " KiB"),
        "exited17": Target(17, "1024 threads, after exit: RSS per thread ≤ glibc's + 4 KiB", "<=", 4, " KiB"),
    }
    head = "| | sydra | glibc | mimalloc | jemalloc | sydra ÷ glibc | sydra ÷ mimalloc | sydra ÷ jemalloc |"
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|"
    blocks = None
    for s in SIZES:
        r = mem.get(("rss-per-byte", s, "sydra")) or mem.get(("rss-per-byte", s, "glibc")) or {}
        blocks = blocks or r.get("blocks")

    lines.append(f"Memory ratios are sydra's figure over the peer's: **lower is better**. Every figure comes from "
                 f"VmRSS/VmHWM of a process that ran one scenario with one allocator"
                 f"{' (quick run: smaller sizes than the targets name)' if quick else ''}.")
    lines.append("")
    lines.append(f"**RSS per requested byte**, {blocks or '?'} live blocks, (RSS with the blocks live − RSS before) ÷ "
                 f"requested bytes:")
    lines.append("")
    lines.append(head.replace("| |", "| block size |"))
    lines.append(rule)
    for s in SIZES:
        vals = {a: mem_value(mem, "rss-per-byte", s, a, "rss_per_byte") for a in MEM_ALLOCATORS}
        ok = t["rss"].add(f"{s} B", vals["sydra"])
        t["rss17"].add(f"{s} B", vals["sydra"])
        lines.append(f"| {s} B | {mark(vals['sydra'], ok)} | "
                     + " | ".join(num(vals[a]) for a in MEM_ALLOCATORS[1:]) + " | " + " | ".join(ratio_cells(vals))
                     + " |")
        chart_rows.append((f"RSS per byte, {s} B", ratio_list(vals)))
    lines.append("")

    # Issue 17: the pooled range above 1 KiB, sizes log-uniform (rss-per-byte-range).
    lo, hi = 1024, 65536
    r = next((mem[(sc, k, a)] for (sc, k, a) in mem if sc == "rss-per-byte-range" and k == (lo, hi)
              and "error" not in mem[(sc, k, a)]), {})
    req = r.get("requested_bytes")
    lines.append(f"**RSS per requested byte, 1–64 KiB**: {r.get('blocks', '?')} live blocks of sizes log-uniform over "
                 f"{lo}..{hi} B ({f'{req / 2**20:.0f} MiB' if req else '?'} requested, the same sizes for every "
                 f"allocator), (RSS with the blocks live − RSS before) ÷ requested bytes:")
    lines.append("")
    lines.append(head.replace("| |", "| block sizes |"))
    lines.append(rule)
    vals = {a: mem_value(mem, "rss-per-byte-range", (lo, hi), a, "rss_per_byte") for a in MEM_ALLOCATORS}
    ok = t["rss_range17"].add("1–64 KiB", vals["sydra"])
    lines.append(f"| 1–64 KiB | {mark(vals['sydra'], ok)} | "
                 + " | ".join(num(vals[a]) for a in MEM_ALLOCATORS[1:]) + " | " + " | ".join(ratio_cells(vals)) + " |")
    chart_rows.append(("RSS per byte, 1–64 KiB", ratio_list(vals)))
    lines.append("")

    lines.append("**Free everything, then trim** (16, 64 and 256 B blocks in turn; KiB of RSS above the start; "
                 "each allocator's own trim: glibc `malloc_trim(0)`, mimalloc `mi_collect(true)`, jemalloc "
                 "`thread.tcache.flush` + `arena.<all>.purge`, sydra `trim()`):")
    lines.append("")
    lines.append(head.replace("| |", "| KiB above start |"))
    lines.append(rule)
    for label, field in (("blocks live", None), ("after freeing all", "freed_delta_kib"),
                         ("after trim", "trimmed_delta_kib")):
        vals = {}
        for a in MEM_ALLOCATORS:
            if field is None:
                full, start = (mem_value(mem, "free-all-trim", None, a, f) for f in ("rss_full_kib", "rss_start_kib"))
                vals[a] = None if full is None or start is None else full - start
            else:
                vals[a] = mem_value(mem, "free-all-trim", None, a, field)
        cell = num(vals["sydra"])
        if field == "trimmed_delta_kib":
            ok = t["trim"].add("after trim", vals["sydra"])
            cell = num(vals["sydra"]) + ("" if ok is None else (" ✓" if ok else " ✗ FAIL"))
        lines.append(f"| {label} | {cell} | " + " | ".join(num(vals[a]) for a in MEM_ALLOCATORS[1:]) + " | "
                     + " | ".join(ratio_cells(vals)) + " |")
    trim_flag = mem_value(mem, "free-all-trim", None, "sydra", "trim")
    if trim_flag is False:
        lines.append("")
        lines.append("sydra's handle has no `trim()` yet: its after-trim figure is measured without one.")
    lines.append("")

    lines.append("**Phase shift**: fill the bytes with one class, free all, fill the same bytes with another; "
                 "peak RSS after phase 2 ÷ peak RSS after phase 1 (both above the start):")
    lines.append("")
    lines.append(head.replace("| |", "| shift |"))
    lines.append(rule)
    for a_from, a_to in ((16, 128), (64, 256)):
        vals = {a: mem_value(mem, "phase-shift", (a_from, a_to), a, "peak_ratio") for a in MEM_ALLOCATORS}
        ok = t["phase"].add(f"{a_from}→{a_to} B", vals["sydra"])
        t["phase17"].add(f"{a_from}→{a_to} B", vals["sydra"])
        lines.append(f"| {a_from} → {a_to} B | {mark(vals['sydra'], ok)} | "
                     + " | ".join(num(vals[a]) for a in MEM_ALLOCATORS[1:]) + " | " + " | ".join(ratio_cells(vals))
                     + " |")
        chart_rows.append((f"phase shift {a_from}→{a_to} B", ratio_list(vals)))
    lines.append("")

    r0 = next((r for k, r in mem.items() if k[0] == "churn-peak" and "error" not in r), {})
    lines.append(f"**Peak RSS of the larson-like churn** ({r0.get('threads', '?')} threads, {r0.get('slots', '?')} "
                 f"live blocks, {r0.get('ops_per_thread', '?')} operations per thread; KiB of VmHWM above the RSS "
                 f"before the fill):")
    lines.append("")
    lines.append(head.replace("| |", "| sizes |"))
    lines.append(rule)
    for lo, hi in ((16, 256), (8, 1024)):
        vals = {a: mem_value(mem, "churn-peak", (lo, hi), a, "peak_delta_kib") for a in MEM_ALLOCATORS}
        best = [vals[a] for a in ("glibc", "mimalloc") if vals[a]]
        r = vals["sydra"] / min(best) if vals["sydra"] is not None and len(best) == 2 else None
        ok = t["churn"].add(f"{lo}–{hi} B", r)
        lines.append(f"| {lo}–{hi} B | {num(vals['sydra'])} (÷ min(glibc, mimalloc): {mark(r, ok)}) | "
                     + " | ".join(num(vals[a]) for a in MEM_ALLOCATORS[1:]) + " | " + " | ".join(ratio_cells(vals))
                     + " |")
        chart_rows.append((f"churn peak {lo}–{hi} B", ratio_list(vals)))
    lines.append("")

    lines.append("**Memory per thread** (issue 14): N threads with 64 KiB stacks each hold 4 blocks of each of 11 "
                 "classes (16–1024 B, 9.3 KiB requested), free them and stay alive, then exit; KiB of RSS per "
                 "thread above the RSS before any thread was created (stacks included, for every allocator alike). "
                 "\"sydra − glibc\" is the difference the targets name.")
    lines.append("")
    lines.append("| N, phase | sydra | glibc | mimalloc | jemalloc | sydra − glibc (KiB) | sydra ÷ mimalloc | "
                 "sydra ÷ jemalloc |")
    lines.append(rule)
    for n in (16, 256, 1024):
        for phase, field, key in (("blocks live", "live_kib_per_thread", "live"),
                                  ("freed, idle", "idle_kib_per_thread", "idle"),
                                  ("after exit", "exited_kib_per_thread", "exited")):
            vals = {a: mem_value(mem, "per-thread", n, a, field) for a in MEM_ALLOCATORS}
            d = vals["sydra"] - vals["glibc"] if vals["sydra"] is not None and vals["glibc"] is not None else None
            cell = f"{d:+.2f}" if d is not None else "n/a"
            if n == 1024:
                ok = t[key].add(f"N=1024, {phase}", d)
                t[key + "17"].add(f"N=1024, {phase}", d)
                cell = "n/a" if d is None else f"{d:+.2f}" + (" ✓" if ok else " ✗ FAIL")
                chart_rows.append((f"per thread, 1024 threads, {phase}", ratio_list(vals)))
            lines.append(f"| {n}, {phase} | " + " | ".join(num(vals[a]) for a in MEM_ALLOCATORS) + f" | {cell} | "
                         + " | ".join(ratio_cells(vals)[1:]) + " |")
    lines.append("")
    errs = mem_errors(mem)
    if errs:
        lines.append("Memory runs that failed:")
        lines.append("")
        for (scenario, key, allocator), msg in errs:
            lines.append(f"- {allocator} {scenario} {key if key is not None else ''}: {msg}")
        lines.append("")
    return t


def ratio_list(vals):
    s = vals.get("sydra")
    return [s / vals[a] if s is not None and vals.get(a) else None for a in MEM_ALLOCATORS[1:]]


# ---- Page -------------------------------------------------------------------------------

def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine(builddir, context, source):
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        pass
    lscpu = run(["lscpu"])
    fam = re.search(r"CPU family:\s*(\S+)", lscpu)
    model = re.search(r"^Model:\s*(\S+)", lscpu, re.M)
    hyper = re.search(r"Hypervisor vendor:\s*(.+)", lscpu)
    if fam and model:
        cpu += f" (family {fam.group(1)}, model {model.group(1)})"
    if hyper:
        cpu += f", {hyper.group(1).strip()} guest"
    compiler = "?"
    try:
        with open(os.path.join(builddir, "meson-info", "intro-targets.json"), encoding="utf-8") as f:
            targets = json.load(f)
        t = next(x for x in targets if x["name"] == "bench-alloc")
        src = t["target_sources"][0]
        compiler = run(src["compiler"] + ["--version"]).splitlines()[0]
        flags = " ".join(p for p in src["parameters"] if p.startswith(("-O", "-std", "-DSYDRA_ALLOC_MODE")))
        compiler += f"; {flags}"
    except (OSError, ValueError, KeyError, StopIteration, IndexError):
        pass
    build = "?"
    try:
        with open(os.path.join(builddir, "meson-info", "intro-buildoptions.json"), encoding="utf-8") as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
        build = f"meson buildtype={opts.get('buildtype')}, checked={opts.get('checked')}, " \
                f"allocator_shards={opts.get('allocator_shards')}, stats={opts.get('stats')}, " \
                f"lock_timing={opts.get('lock_timing')}"
    except (OSError, ValueError, KeyError):
        pass
    glibc = (run(["ldd", "--version"]).splitlines() or ["?"])[0]
    pkgs = run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "libmimalloc2.0", "libjemalloc2",
                "libbenchmark1debian"]).replace("\n", ", ")
    return [
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("kernel", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("C library", glibc),
        ("compiler", compiler),
        ("build", build),
        ("peers, Debian packages", pkgs or "?"),
        ("sydra-alloc source", source),
        ("sydra", context.get("sydra", "?")),
        ("bench-alloc's malloc", context.get("process_malloc", "?")),
        ("mimalloc (dlopen RTLD_LOCAL)", context.get("mimalloc", "?")),
        ("jemalloc (dlopen RTLD_LOCAL)", context.get("jemalloc", "?")),
        ("snmalloc", context.get("snmalloc", "not built (this bench-alloc predates the snmalloc peer)")),
        ("run started", context.get("date", "?")),
        ("page written", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
    ]


def targets_table(all_targets, lines):
    lines.append("| issue | target | measured (worst case) | verdict |")
    lines.append("|---|---|---|---|")
    counts = defaultdict(int)
    for tg in all_targets:
        v = tg.verdict()
        counts[v] += 1
        worst, where = tg.worst()
        n_ok = sum(1 for _, x in tg.items if x is not None and tg.ok(x))
        n = len(tg.items)
        if worst is None:
            measured = "no result"
        else:
            unit = tg.unit if tg.unit != "×" else ""
            measured = f"{fmt_value(worst)}{unit} ({where})" + (f"; {n_ok} of {n} met" if n > 1 else "")
        lines.append(f"| #{tg.issue} | {tg.text} | {measured} | **{v}**{f' ({tg.note})' if tg.note else ''} |")
    lines.append("")
    return counts


def gnuplot_chart(rows, svg, title, ylabel, higher_better, workdir, series=PEERS):
    """A clustered bar chart (one cluster per shape, one bar per peer of series), log scale, a line at 1.0."""
    if not shutil.which("gnuplot"):
        return "gnuplot not found (apt-get install gnuplot-nox): no chart"
    rows = [(label, vals) for label, vals in rows if any(v for v in vals)]
    if not rows:
        return "no data for the chart"
    os.makedirs(workdir, exist_ok=True)
    base = os.path.splitext(os.path.basename(svg))[0]
    data = os.path.abspath(os.path.join(workdir, base + ".dat"))
    with open(data, "w", encoding="utf-8") as f:
        for label, vals in rows:
            f.write(label.replace("\t", " ") + "\t" + "\t".join("NaN" if not v else f"{v:.4f}" for v in vals) + "\n")
    vals = [v for _, vs in rows for v in vs if v]
    lo = min(min(vals), 1.0) / 1.5
    hi = max(max(vals), 1.0) * 1.5
    width = max(900, 40 * len(rows) + 200)
    script = os.path.join(workdir, base + ".gp")
    with open(script, "w", encoding="utf-8") as f:
        f.write(f"""set terminal svg size {width},620 dynamic font 'sans,11' background rgb 'white'
set output '{svg}'
set title "{title}"
set datafile separator '\\t'
set datafile missing 'NaN'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 2
set yrange [{lo:.4f}:{hi:.4f}]
set ylabel "{ylabel}"
set xtics rotate by -50 left font 'sans,9' nomirror
set grid ytics
set key top left opaque
set bmargin 14
set rmargin 14
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb 'black' front
""")
        # Column i + 2 of the data holds the ratio to series[i]; the first plot names the file and the labels.
        plots = []
        for i, peer in enumerate(series):
            source = f"'{data}' using 2:xtic(1)" if i == 0 else f"'' using {i + 2}"
            plots.append(f"{source} title 'vs {PEER_NAMES[peer]}' lc rgb '{PEER_COLOURS[peer]}'")
        f.write("plot " + ", \\\n     ".join(plots) + "\n")
    res = subprocess.run(["gnuplot", script], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return f"gnuplot failed: {res.stderr.strip()[:300]}"
    return None


def load_programs(path):
    """The runs of tools/bench_programs.sh: one dict per program, allocator and repetition."""
    if not path or not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def profiling_section(tp, programs_path, lines):
    """Issue 19: what the heap profiler costs when on (512 KiB mean), as the time ratio of the profiled
    handle (SydraProfiled) over the same policy without it (Sydra), and of libsydra-malloc.so with
    SYDRA_ALLOC_PROF over without. Returns the two targets."""
    shapes_t = Target(19, "Profiling on at the 512 KiB mean: every pair and churn shape ≤ 1.03× the time of the "
                          "same handle without it", "<=", 1.03, "×")
    prog_t = Target(19, "Profiling on in libsydra-malloc.so (SYDRA_ALLOC_PROF): geometric mean of the real "
                        "programs' wall time ≤ 1.03× without it", "<=", 1.03, "×")
    lines += ["Time with the heap profiler on (mean interval 512 KiB) over time without it, on the same policy "
              "(`SmallPoolPolicy` with `using Profiling = HeapProfiling;`). Batches are shown, not targeted (the "
              "issue names pairs and churn). Target: ≤ 1.03 (issue 19).", "",
              "| shape | without, M items/s | with, M items/s | with ÷ without, time |", "|---|---:|---:|---:|"]
    for fam, shape, label in shape_rows():
        off, on = tp.ips(fam, "Sydra", shape), tp.ips(fam, "SydraProfiled", shape)
        if fam == "BM_ProducerConsumer" or (off is None and on is None):
            continue
        r = off / on if off and on else None
        ok = None
        if fam != "BM_Batch64":
            ok = shapes_t.add(label, r)
        lines.append(f"| {label} | {num(off / 1e6 if off else None)} | {num(on / 1e6 if on else None)} | "
                     f"{mark(r, ok)} |")
    runs = load_programs(programs_path)
    walls = defaultdict(list)
    for r in runs:
        if r["allocator"] in ("sydra", "sydra-prof") and r.get("rc", 0) == 0:
            walls[(r["program"], r["allocator"])].append(r["wall_s"])
    progs = [p for p in dict.fromkeys(r["program"] for r in runs)
             if walls.get((p, "sydra")) and walls.get((p, "sydra-prof"))]
    lines += ["", "Real programs under libsydra-malloc.so, with `SYDRA_ALLOC_PROF=PATH` (default mean; the profile "
              "written at each exit) and without, interleaved (`tools/bench_programs.sh`; medians):", "",
              "| program | without, s | with, s | with ÷ without |", "|---|---:|---:|---:|"]
    for p in progs:
        a, b = statistics.median(walls[(p, "sydra")]), statistics.median(walls[(p, "sydra-prof")])
        lines.append(f"| {p} | {a:.2f} | {b:.2f} | {fmt_ratio(b / a)} |")
    if progs:
        gm = math.exp(sum(math.log(statistics.median(walls[(p, "sydra-prof")]) /
                                   statistics.median(walls[(p, "sydra")])) for p in progs) / len(progs))
        ok = prog_t.add(f"{len(progs)} programs", gm)
        lines += ["", f"Geometric mean, with ÷ without: {mark(gm, ok)}."]
    else:
        prog_t.add("programs", None)
        lines += ["", "(no profiled program runs in this page's data)"]
    lines.append("")
    return shapes_t, prog_t


def programs_section(path, lines, target=None):
    """Issue 11: wall time and peak RSS of real programs under each malloc (medians), as ratios.

    Issue 17 (target): the geometric mean of sydra's wall times over the programs every allocator ran, over
    the best peer's (the lower geometric mean of mimalloc and jemalloc)."""
    runs = load_programs(path)
    if not runs:
        lines += ["(not measured)", ""]
        return
    allocs = ["glibc", "sydra", "mimalloc", "jemalloc"]
    progs = list(dict.fromkeys(r["program"] for r in runs))
    med = {}
    for p in progs:
        for a in allocs:
            rs = [r for r in runs if r["program"] == p and r["allocator"] == a]
            if rs:
                med[(p, a)] = (statistics.median(r["wall_s"] for r in rs), statistics.median(r["maxrss_kb"] for r in rs),
                               max(r["rc"] for r in rs), len(rs))
    lines += ["Each program under each malloc through `LD_PRELOAD` (glibc: none), repetitions interleaved; medians "
              "of wall time and of the child's peak RSS (`tools/bench_programs.sh`). Targets: wall time <= 1.0x "
              "glibc on every program and geometric mean <= 1.0x mimalloc; peak RSS <= 1.1x glibc.", "",
              "| program | runs | glibc s | sydra s | sydra/glibc time | sydra/mimalloc time | sydra/jemalloc time "
              "| glibc MiB | sydra MiB | sydra/glibc RSS | sydra/mimalloc RSS |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    vs_mi = []
    for p in progs:
        if (p, "sydra") not in med or (p, "glibc") not in med:
            continue
        g, s = med[(p, "glibc")], med[(p, "sydra")]
        mi, je = med.get((p, "mimalloc")), med.get((p, "jemalloc"))
        if mi:
            vs_mi.append(s[0] / mi[0])
        rc = "" if s[2] == 0 else f" (exit {s[2]})"
        lines.append(f"| {p}{rc} | {s[3]} | {g[0]:.2f} | {s[0]:.2f} | {mark(s[0] / g[0], s[0] / g[0] <= 1.0)} | "
                     f"{fmt_ratio(s[0] / mi[0]) if mi else '-'} | {fmt_ratio(s[0] / je[0]) if je else '-'} | "
                     f"{g[1] / 1024:.0f} | {s[1] / 1024:.0f} | {mark(s[1] / g[1], s[1] / g[1] <= 1.1)} | "
                     f"{fmt_ratio(s[1] / mi[1]) if mi else '-'} |")
    if vs_mi:
        gm = math.exp(sum(math.log(v) for v in vs_mi) / len(vs_mi))
        lines += ["", f"Geometric mean of sydra/mimalloc wall time: {mark(gm, gm <= 1.0)}."]
    if target is not None:
        target.note = "best of mimalloc and jemalloc: snmalloc has no LD_PRELOAD library here"
        common = [p for p in progs if all((p, a) in med for a in allocs)]
        gms = {a: math.exp(sum(math.log(med[(p, a)][0]) for p in common) / len(common)) for a in allocs} \
            if common else {}
        peers = [a for a in ("mimalloc", "jemalloc") if a in gms]
        if gms and peers:
            best = min(peers, key=gms.get)
            r = gms["sydra"] / gms[best]
            ok = target.add(f"{len(common)} programs, vs {best}", r)
            lines += ["", "Geometric mean of wall time over the " + str(len(common)) + " programs: "
                      + ", ".join(f"{a} {gms[a]:.2f} s" for a in allocs)
                      + f"; sydra ÷ best peer ({best}): {mark(r, ok)} (issue 17)."]
        else:
            target.add("programs", None)
    lines.append("")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--throughput", required=True)
    ap.add_argument("--memory")
    ap.add_argument("--checked")
    ap.add_argument("--programs")
    ap.add_argument("--hardened", help="a bench-alloc JSON of Sydra and SydraHardened pairs and batches")
    ap.add_argument("--commands")
    ap.add_argument("--builddir", default="build-bench")
    ap.add_argument("--out", default="docs/benchmarks.md")
    ap.add_argument("--svg", default="docs/benchmarks.svg")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--source", default="?", help="the measured sources' revision")
    args = ap.parse_args(argv[1:])

    try:
        context, medians, errors = load_throughput(args.throughput)
    except (OSError, ValueError, KeyError) as e:
        print(f"bench_report: cannot read {args.throughput}: {e}")
        return 1
    checked = None
    if args.checked:
        try:
            checked = load_throughput(args.checked)[1]
        except (OSError, ValueError, KeyError):
            checked = {}
    mem = load_memory(args.memory)
    tp = Throughput(medians, errors)
    targets = throughput_targets()
    mem_svg = re.sub(r"\.svg$", "", args.svg) + "-memory.svg"

    body, chart_rows, mem_chart_rows = [], [], []
    throughput_section(tp, targets, body, chart_rows, context)
    other = []
    hardened = None
    if args.hardened:
        try:
            hardened = Throughput(load_throughput(args.hardened)[1], {})
        except (OSError, ValueError, KeyError):
            hardened = None
    other_section(tp, targets, checked, other, hardened)
    memory_lines = []
    mem_targets = memory_section(mem, memory_lines, mem_chart_rows, args.quick)
    prog_target = Target(17, "Real programs under libsydra-malloc.so: geometric mean of wall time ≤ the best "
                             "peer's", "<=", 1.0, "×")
    prog_lines = []
    programs_section(args.programs, prog_lines, prog_target)
    prof_lines = []
    prof_targets = profiling_section(tp, args.programs, prof_lines)
    if "Snmalloc" not in tp.peers():
        for k in ("best_small17", "best_churn17", "threads64_17"):
            targets[k].note = "no snmalloc in this run: best of mimalloc and jemalloc"
        targets["pc17"].note = "no snmalloc in this run: SNMALLOC_SRC unset"

    lines = ["# sydra-alloc benchmarks", ""]
    if args.quick:
        lines += ["> **Quick smoke run** (BENCH_QUICK=1): tiny samples and sizes. The numbers show the format, "
                  "not the performance.", ""]
    lines += ["Written by `tools/bench.sh` (`tools/bench_report.py`) from one run: every throughput shape in one "
              "bench-alloc process (Google Benchmark, interleaved repetitions, medians), every memory scenario in "
              "its own bench-memory process per allocator. How each shape works: `bench/README.md`.", ""]
    lines += ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in machine(args.builddir, context, args.source)]
    lines.append("")

    all_targets = [targets[k] for k in ("glibc", "mimalloc", "shards8", "wide", "pc", "retire", "ideal")]
    all_targets += [mem_targets[k] for k in ("rss", "phase", "trim", "churn")] + [targets["slabs"]]
    all_targets += [targets["threads64"]] + [mem_targets[k] for k in ("live", "idle", "exited")]
    all_targets += [targets[k] for k in ("best_small17", "best_churn17", "pc17", "threads64_17")]
    all_targets += [mem_targets[k] for k in ("live17", "idle17", "exited17")]
    all_targets += [targets[k] for k in ("ideal17", "slabs17")]
    all_targets += [mem_targets[k] for k in ("rss17", "rss_range17", "phase17")] + [prog_target]
    all_targets += list(prof_targets)
    lines += ["## Targets", ""]
    counts = targets_table(all_targets, lines)
    lines += [f"{counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['MISSING']} MISSING. Benchmarks inform, they do "
              "not gate.", ""]

    lines += ["## Issues 8 and 17: throughput", ""]
    svg_note = gnuplot_chart(chart_rows, os.path.abspath(args.svg),
                             "sydra throughput / peer throughput, per shape (higher is better)",
                             "ratio (log scale)", True, os.path.join(args.builddir, "charts"), tp.peers())
    if svg_note is None:
        lines += [f"![sydra's throughput ratios]({os.path.basename(args.svg)})", ""]
    else:
        lines += [f"(chart: {svg_note})", ""]
    lines += body
    lines += ["## Container workload (issue 10)", ""]
    container_section(tp, lines)
    lines += ["## Issues 9, 14 and 17: memory", ""]
    mem_note = gnuplot_chart(mem_chart_rows, os.path.abspath(mem_svg),
                             "sydra / peer, memory (lower is better)", "ratio (log scale)", False,
                             os.path.join(args.builddir, "charts"))
    if mem_note is None:
        lines += [f"![sydra's memory ratios]({os.path.basename(mem_svg)})", ""]
    else:
        lines += [f"(chart: {mem_note})", ""]
    lines += memory_lines
    lines += ["## Issue 11: real programs on libsydra-malloc.so", ""]
    lines += prog_lines
    lines += ["## Issue 19: what the heap profiler costs", ""] + prof_lines
    lines += ["## Other families (sydra only)", ""] + other

    lines += ["## Commands", "", "```"]
    if args.commands and os.path.exists(args.commands):
        with open(args.commands, encoding="utf-8") as f:
            lines += [ln.rstrip("\n") for ln in f]
    else:
        lines.append("(not recorded)")
    lines += ["```", ""]

    lines += ["## Raw medians (bench-alloc)", "",
              "items per second (one item: see `bench/README.md`), and its inverse in ns.", "",
              "| benchmark | M items/s | ns per item |", "|---|---:|---:|"]
    for name in sorted(set(medians) | set(errors), key=sort_key):
        if name in errors:
            lines.append(f"| {name} | error: {errors[name]} | |")
        else:
            lines.append(f"| {name} | {medians[name] / 1e6:.2f} | {1e9 / medians[name]:.2f} |")
    lines.append("")

    page = "\n".join(lines)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(page)
    print(page)
    return 0


def sort_key(name):
    parts = name.split("/")
    return [(0, int(p)) if p.isdigit() else (1, p) for p in parts]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
