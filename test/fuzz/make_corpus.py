#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_handle.cpp (test/fuzz/corpus/) in its input format.

    python3 test/fuzz/make_corpus.py [out_dir]    # default: test/fuzz/corpus next to this file

Each seed is a short script of operations; together they reach every opcode
and every rule the model checks (see the table in run_one). The encoder below
mirrors the harness's Reader: opcode byte (% 24), then the argument bytes.
Indexes name live blocks by their position in the model's list, which the
encoder tracks (a free or retire moves the last block into the hole).
Regenerate after changing the input format; the output is deterministic.
"""
import os
import random
import sys

SIZES = [16, 24, 32, 48, 64, 96, 128, 192, 256]  # the seed's classes (SmallPoolPolicy)
ALIGNS = {0: 0, 1: 1, 2: 2, 4: 3, 8: 4, 16: 5, 64: 6, 4096: 7}
ODD_ALIGNS = {3: 0, 5: 1, 6: 2, 7: 3, 12: 4, 24: 5, 48: 6, 4097: 7}  # not powers of two
TRIM_KEEP = {0: 0, 1: 1, 65535: 2, 65536: 3, 131072: 4, 196608: 5, 1048576: 6, None: 7}
PTRDIFF_MAX = 2**63 - 1


class Script:
    def __init__(self):
        self.out = bytearray()
        self.live = 0  # blocks in the model's live list

    # ---- argument encodings -------------------------------------------------
    def _align(self, align):
        if align in ALIGNS:
            return bytes([ALIGNS[align]])
        return bytes([248 + ODD_ALIGNS[align]])

    @staticmethod
    def _len(n):
        """draw_len: a length in 1..10000, 0, or 'huge' (an invalid request)."""
        if n == 0:
            return bytes([216, 0, 0])
        if n == "huge":
            return bytes([248, 0, 0])  # SIZE_MAX
        if 1 <= n <= 300:
            v = n - 1
            return bytes([0, v & 0xFF, v >> 8])
        assert 300 <= n <= 10000
        v = n - 300
        return bytes([176, v & 0xFF, v >> 8])

    @staticmethod
    def _valid(n, align):
        return n != "huge" and n != 0 and align in ALIGNS

    # ---- operations ---------------------------------------------------------
    def alloc(self, n, align=0):
        self.out += bytes([0]) + self._align(align) + self._len(n)
        if self._valid(n, align):
            self.live += 1
        return self

    def alloc_at_cap(self, n, align=0):
        """An alloc op with 64 blocks live: the harness frees one instead."""
        assert self.live == 64
        self.out += bytes([0]) + self._align(align) + self._len(n)
        self.live -= 1
        return self

    def alloc16(self, n):
        assert 1 <= n <= 256
        if n <= 48:
            self.out += bytes([20, n - 1])
        else:
            self.out += bytes([20, 200, n - 1])
        self.live += 1
        return self

    def burst(self, count, n, align=0):
        assert 1 <= count <= 32
        self.out += bytes([22, count - 1]) + self._align(align) + self._len(n)
        if self._valid(n, align):
            self.live = min(64, self.live + count)  # a burst stops at the harness's cap
        return self

    def free(self, i):
        assert 0 <= i < self.live
        self.out += bytes([6, i])
        self.live -= 1
        return self

    def _new_len(self, delta=None, n=None):
        if delta is not None:
            assert -24 <= delta <= 24
            return bytes([0, delta + 24])
        return bytes([96]) + self._len(n)

    def resize(self, i, delta=None, n=None):
        self.out += bytes([9, i]) + self._new_len(delta, n)
        return self

    def remap(self, i, delta=None, n=None):
        self.out += bytes([11, i]) + self._new_len(delta, n)
        return self

    def retire(self, i):
        assert 0 <= i < self.live
        self.out += bytes([14, i])
        self.live -= 1
        return self

    def retire_burst(self, count):
        assert 1 <= count <= 64
        self.out += bytes([23, count - 1])
        self.live -= min(count, self.live)
        return self

    def enter(self, guard=False, nested=False):
        self.out += bytes([16, (6 if nested else 0) | (1 if guard else 0)])
        return self

    def leave(self, release=False):
        self.out += bytes([16, 8 if release else 0])
        return self

    def collect(self):
        self.out += bytes([17])
        return self

    def advance(self):
        self.out += bytes([18])
        return self

    def stats(self):
        self.out += bytes([19])
        return self

    def trim(self, keep=None):
        self.out += bytes([21, TRIM_KEEP[keep]])
        return self


def small_classes():
    s = Script()
    for size in SIZES:
        for n, a in ((size - 1, 0), (size, 8), (size + 1, 4)):
            if n <= 256:
                s.alloc(n, a)
    s.alloc(1, 1).alloc(2, 2).alloc(256, 8)
    while s.live > 0:
        s.free(s.live // 2)
    return s


def align16():
    s = Script()
    for n in (1, 16, 17, 20, 24, 25, 32, 33, 40, 48, 100, 200, 256):
        s.alloc16(n)
    s.alloc(24, 16).alloc(20, 8)  # through the generic alloc: 24 at 16 -> 32, 20 at 8 -> 24
    s.resize(3, delta=+8)   # 20 @16 -> 28: still class 32
    s.resize(3, delta=-10)  # 28 -> 18: still class 32 (24 is skipped)
    s.resize(4, delta=+10)  # 24 @16 -> 34: class 48, refused
    s.remap(4, delta=+10)   # moves to class 48
    s.remap(2, delta=-10)   # 17 @16 -> 7: class 16
    s.remap(10, n=300)      # out of the pools: the fallback
    s.remap(10, n=20)       # back in, at 16 -> class 32
    s.stats()
    while s.live > 0:
        s.free(0)
    return s


def fallback_aligned():
    s = Script()
    s.alloc(300, 64).alloc(1000, 4096).alloc(5000, 8).alloc(12, 64).alloc(300, 16)
    s.resize(0, delta=+1)    # past the chunk? in place iff usable
    s.resize(2, n=100)       # a fallback block shrinks into the pooled range
    s.resize(2, delta=+8)
    s.remap(2, delta=+4)     # poolable: moves into the shard
    s.resize(4, n=40)        # 300 @16 -> 40, still the fallback's
    s.remap(4, n=2000)       # stays in the fallback (realloc)
    s.remap(1, n=8000)       # over-aligned and too big for the chunk: nullptr
    s.remap(3, n=20)         # 12 @64 -> 20 @64: not poolable, stays
    s.free(2).free(0)
    s.alloc(9000, 0).remap(s.live - 1, n=64)
    return s


def invalid_requests():
    s = Script()
    s.alloc(0, 0).alloc("huge", 8).alloc(10, 3).alloc(100, 24).alloc(300, 4097)
    s.alloc(64, 8).alloc(500, 16)
    s.resize(0, n=0).resize(0, n="huge").remap(1, n=0).remap(1, n="huge")
    s.free(1).free(0)
    return s


def remap_cross():
    s = Script()
    s.alloc(20, 0).alloc(100, 8).alloc(200, 2)
    s.remap(0, delta=+23)   # 24 class -> 48
    s.remap(0, n=300)       # -> fallback
    s.remap(0, n=10)        # -> 16 class
    s.remap(1, delta=-20)   # 100 -> 80: 128 -> 96
    s.remap(2, delta=+24)   # 200 -> 224: same class, in place
    s.remap(2, n=5000)
    s.remap(2, n=150)
    s.collect()
    return s


def resize_in_class():
    s = Script()
    s.alloc(20, 0).alloc(33, 8).alloc(97, 4)
    s.resize(0, delta=+4).resize(0, delta=+1).resize(0, delta=-20)
    s.resize(1, delta=+15).resize(1, delta=+16)
    s.resize(2, delta=+24).resize(2, delta=-2)
    s.free(1)
    return s


def retire_epoch():
    s = Script()
    s.alloc(48, 0).alloc(1000, 8).alloc(16, 16).alloc(200, 64)
    s.retire(0).collect()             # unpinned: reclaimed at once
    s.enter().retire(0).retire(0)     # retired under our pin
    s.collect().collect().advance()   # held back
    s.alloc(1000, 8).alloc(16, 16)
    s.enter(guard=True, nested=True).advance().leave(release=True)
    s.leave().collect()               # now reclaimed
    s.enter(guard=True).advance().retire(0).leave().advance().collect()
    return s


def pinned_reuse():
    s = Script()
    s.burst(8, 64, 0).burst(8, 2000, 8)
    s.enter()
    s.retire_burst(12)
    s.burst(12, 64, 0).burst(4, 2000, 8)  # must not get the retired blocks back
    s.enter(nested=True).advance().collect().stats()  # a nested pin keeps the outer epoch
    s.leave().collect().stats()
    s.leave().collect()
    s.burst(8, 64, 0)
    return s


def full_bag():
    s = Script()
    # More than a bag (64) of retires: the 65th seals the bag (epoch advance
    # and reclaim) inside retire(). Once unpinned, once under a pin.
    for _ in range(3):
        s.burst(32, 40, 0).retire_burst(32)
    s.stats().collect()
    s.enter()
    for _ in range(3):
        s.burst(24, 100, 16).retire_burst(24)
    s.advance()
    s.burst(32, 300, 8).retire_burst(32)
    s.collect().leave().collect()
    return s


def trim_pool():
    s = Script()
    s.burst(32, 16, 0).burst(32, 256, 0)
    for _ in range(32):
        s.free(s.live - 1)     # every 256-byte block: its slab empties once the head is given back
    s.trim(0)                  # heads back to their slabs, empty slabs decommitted
    s.burst(16, 96, 8)
    for _ in range(16):
        s.free(s.live - 1)
    s.trim(65536).trim(None)
    s.burst(32, 256, 0)        # a decommitted slab comes back (zeroed)
    s.alloc_at_cap(48).alloc(3000).alloc_at_cap(20)  # 64 live: an alloc op frees instead
    s.trim(131072).trim(1048576).trim(1).trim(65535)
    s.enter().retire_burst(40).trim(0).leave().collect().trim(0)
    return s


def random_mix():
    rng = random.Random(20261125)
    return bytes(rng.randrange(256) for _ in range(512))


SEEDS = {
    "small-classes": small_classes,
    "align16": align16,
    "fallback-aligned": fallback_aligned,
    "invalid-requests": invalid_requests,
    "remap-cross": remap_cross,
    "resize-in-class": resize_in_class,
    "retire-epoch": retire_epoch,
    "pinned-reuse": pinned_reuse,
    "full-bag": full_bag,
    "trim": trim_pool,
    "random-mix": random_mix,
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, make in SEEDS.items():
        seed = make()
        data = bytes(seed.out) if isinstance(seed, Script) else seed
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
