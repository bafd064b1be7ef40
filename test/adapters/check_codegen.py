#!/usr/bin/env python3
"""Reads the generated code of test/adapters/codegen_probe.cpp and checks the concrete adapters' claim.

    check_codegen.py OBJDUMP CPU_FAMILY LIBRARY_OR_OBJECT

The probe's functions are found by name in `objdump -d -r -C` output:

- clean: every `sydra_probe_*` function that is not a control, and
  BasicMemoryResource<BasicAllocatorHandle<...>>::do_allocate / do_deallocate,
  must contain no indirect call or jump (x86-64: `call *`, `jmp *`; AArch64:
  `blr`, `br`), and neither may any function of the object they reach by
  direct calls, short of the handle's out-of-line slow paths and the throw
  helpers (SLOW below: they sit behind the fast path's branches, and some do
  call through tables, e.g. a shard's hooks). A compiler that keeps
  `allocator_traits::allocate` out of line (Clang at -O2) is followed into it.
  Direct calls are listed; those that leave the object (libstdc++'s list
  hooks, malloc) are named, not followed.
- controls: `sydra_probe_control_*` and the erased MemoryResource's
  do_allocate must contain at least one indirect call or jump, or the check
  could not see one and proves nothing.

Exit 0 when every rule holds, 1 otherwise; the verdict for each function is
printed either way.
"""

import re
import subprocess
import sys

# The handle's slow paths (SYDRA_SLOW_PATH, or reached only when a request is
# not pooled or a thread is new), the idle registry's poll once something is
# pending (SYDRA_SLOW_PATH: it decommits other pools' slabs through their
# run() hooks), and the adapters' throw helpers.
SLOW = re.compile(r"::(alloc_slow|alloc_fallback|free_pooled|free_fallback|free_slow|check_claims|misuse)\(|"
                  r"detail::(bind_thread|throw_bad_alloc|throw_bad_array_new_length|BlockRegistry::|idle_poll_pending)|"
                  r"report_misuse")

FUNC = re.compile(r"^[0-9a-f]+ <(.+)>:$")
INSN = re.compile(r"^\s*[0-9a-f]+:\s+(.*)$")
RELOC = re.compile(r"^\s*[0-9a-f]+: (R_\S+)\s+(.*)$")


def is_indirect(cpu, insn):
    words = insn.split()
    # Prefixes that may come before the mnemonic (CET's notrack, MPX's bnd, ...).
    while words and words[0] in ("notrack", "bnd", "rex", "rex.W", "cs", "ds", "data16"):
        words = words[1:]
    if not words:
        return False
    op, rest = words[0], " ".join(words[1:])
    if cpu == "x86_64":
        return op.startswith(("call", "jmp")) and rest.startswith("*")
    if cpu == "aarch64":
        return op in ("blr", "br", "blraa", "blrab", "braa", "brab")
    return False


def direct_target(cpu, insn, target):
    """The symbol a direct call or tail jump leaves for, or None (jumps within the function, its cold
    part included, are not listed)."""
    words = insn.split()
    op = words[0] if words else ""
    if is_indirect(cpu, insn):
        return None
    if target is None:  # a call within the section, resolved by the assembler: "call 4f0 <name+0x10>"
        m = re.search(r"<(.+)>", insn)
        target = m.group(1) if m else None
    if cpu == "x86_64":
        if op.startswith("call"):
            return target or " ".join(words[1:])
        if op.startswith("jmp") and target and not target.startswith(".text"):
            return target  # a tail call
        return None
    if op == "bl" or (op == "b" and target and not target.startswith(".text")):
        return target or " ".join(words[1:])
    return None


def functions(objdump, path):
    """{demangled name: [(instruction, relocation target or None)]}."""
    out = subprocess.run([objdump, "-d", "-r", "-C", "--no-show-raw-insn", path], capture_output=True,
                         text=True, check=True).stdout
    funcs, cur = {}, None
    for line in out.splitlines():
        m = FUNC.match(line)
        if m:
            # A function's cold part (GCC's "f.cold", split out by
            # -freorder-blocks-and-partition) counts as the function.
            cur = funcs.setdefault(re.sub(r"\.cold(\.\d+)?$", "", m.group(1)), [])
            continue
        if cur is None:
            continue
        r = RELOC.match(line)
        if r and cur:
            insn, _ = cur[-1]
            cur[-1] = (insn, r.group(2))
            continue
        i = INSN.match(line)
        if i:
            cur.append((i.group(1).split("#")[0].strip(), None))
    return funcs


def main(argv):
    if len(argv) != 4:
        print(__doc__)
        return 2
    objdump, cpu, path = argv[1], argv[2], argv[3]
    funcs = functions(objdump, path)

    clean, controls = {}, {}
    for name, body in funcs.items():
        if name.startswith("sydra_probe_control_"):
            controls[name] = body
        elif name.startswith("sydra_probe_"):
            clean[name] = body
        elif "BasicMemoryResource<" in name and ("::do_allocate(" in name or "::do_deallocate(" in name):
            # Whatever the inline (ABI) namespace is called.
            if re.search(r"BasicMemoryResource<sydra::alloc::(\w+::)?Allocator>", name):
                if "::do_allocate(" in name:
                    controls[name] = body
            elif "BasicAllocatorHandle<" in name:
                clean[name] = body

    failures = []
    expected_clean = ("sydra_probe_stl_concrete_allocate", "sydra_probe_stl_concrete_deallocate",
                      "sydra_probe_list_push_back", "sydra_probe_list_pop_front")
    for name in expected_clean:
        if name not in clean:
            failures.append(f"{name}: not found in {path}")
    if not any("do_allocate" in n for n in clean) or not any("do_deallocate" in n for n in clean):
        failures.append("the concrete BasicMemoryResource's do_allocate/do_deallocate: not found")
    if len(controls) < 3:
        failures.append(f"controls: found {len(controls)} of 3")

    def callees(body):
        return sorted({re.sub(r"[-+]0x[0-9a-f]+$", "", t) for t in
                       (direct_target(cpu, insn, target) for insn, target in body) if t})

    for root in sorted(clean):
        # The root and every function of the object it reaches, short of SLOW.
        seen, queue, report = {root}, [root], []
        while queue:
            name = queue.pop(0)
            body = funcs[name]
            indirect = [insn for insn, _ in body if is_indirect(cpu, insn)]
            report.append((name, len(body), indirect))
            for c in callees(body):
                if c in funcs and c not in seen and not SLOW.search(c):
                    seen.add(c)
                    queue.append(c)
        bad = [(n, ind) for n, _, ind in report if ind]
        print(f"[{'FAIL' if bad else 'ok'}] no indirect call: {root}")
        for name, count, indirect in report:
            print(f"         {'reached ' if name != root else ''}{name} ({count} instructions)"
                  + ("" if not indirect else f": indirect {'; '.join(indirect)}"))
        outside = sorted({c for n in seen for c in callees(funcs[n]) if c not in seen})
        for c in outside:
            print(f"         calls, not followed: {c}{' (slow path)' if SLOW.search(c) else ''}")
        for name, indirect in bad:
            failures.append(f"{root}: {name}: {len(indirect)} indirect call(s) or jump(s)")
    for name, body in sorted(controls.items()):
        indirect = [insn for insn, _ in body if is_indirect(cpu, insn)]
        verdict = "ok" if indirect else "FAIL"
        print(f"[{verdict}] control, indirect call expected: {name}: {'; '.join(indirect) or 'none found'}")
        if not indirect:
            failures.append(f"control {name}: no indirect call seen (the check would be blind)")

    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"\nok: {len(clean)} functions without an indirect call, {len(controls)} controls with one")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
