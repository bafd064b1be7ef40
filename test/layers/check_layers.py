#!/usr/bin/env python3
"""No header includes a layer above its own.

The layers are the table under "## Layers" in docs/architecture.md, lowest
first: each row names a layer and its headers (paths under
include/sydra/alloc/, or alloc.hpp for include/sydra/alloc.hpp). Every
header must be in the table, and each of its #include <sydra/...> lines
must name a header of its own layer or of one below.

    check_layers.py SOURCE_ROOT
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
doc = (root / "docs" / "architecture.md").read_text()
section = doc.split("## Layers", 1)[1].split("\n## ", 1)[0]

layer_of = {}  # header path (relative to include/sydra/alloc, or "alloc.hpp") -> (index, layer name)
names = []
for line in section.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 3 or cells[0] in ("layer", "") or set(cells[0]) <= set("-"):
        continue
    names.append(cells[0])
    for f in re.findall(r"`([^`]+\.hpp)`", cells[1]):
        layer_of[f] = (len(names) - 1, cells[0])

inc = root / "include" / "sydra"
headers = {str(p.relative_to(inc / "alloc")): p for p in (inc / "alloc").rglob("*.hpp")}
headers["alloc.hpp"] = inc / "alloc.hpp"

problems = []
for rel, path in sorted(headers.items()):
    if rel not in layer_of:
        problems.append(f"{rel}: in no layer of docs/architecture.md's table")
        continue
    mine, my_name = layer_of[rel]
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r'\s*#\s*include\s*[<"]sydra/(alloc/)?([^>"]+)[>"]', line)
        if not m:
            continue
        target = m.group(2) if m.group(1) else m.group(2)
        if target not in layer_of:
            problems.append(f"{rel}:{n}: includes {target}, which is in no layer")
            continue
        theirs, their_name = layer_of[target]
        if theirs > mine:
            problems.append(f"{rel}:{n}: the {my_name} layer includes {target} of the {their_name} layer above it")

if problems:
    print("\n".join("FAIL " + p for p in problems))
    sys.exit(1)
print(f"ok: {len(headers)} headers in {len(names)} layers; no header includes a layer above its own")
