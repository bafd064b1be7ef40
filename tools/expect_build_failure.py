#!/usr/bin/env python3
"""Runs build steps for a negative test.

usage: expect_build_failure.py --expect REGEX [--expect REGEX ...] -- STEP [--then STEP ...]

Every step but the last is a control that must succeed (it proves the test's
set-up builds). The last step must fail, and its output must match every
--expect regex: a failure for any other reason does not count as a pass.
"""
import re
import subprocess
import sys


def main() -> int:
    args = sys.argv[1:]
    expects = []
    while args and args[0] == "--expect":
        expects.append(args[1])
        args = args[2:]
    if not args or args[0] != "--" or not expects:
        print(__doc__, file=sys.stderr)
        return 2
    steps, cur = [], []
    for a in args[1:]:
        if a == "--then":
            steps.append(cur)
            cur = []
        else:
            cur.append(a)
    steps.append(cur)
    for i, step in enumerate(steps):
        proc = subprocess.run(step, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        last = i == len(steps) - 1
        if not last:
            if proc.returncode != 0:
                print(f"control step failed (the test set-up is broken):\n{' '.join(step)}\n{proc.stdout}")
                return 1
            print(f"control ok: {' '.join(step)}")
            continue
        if proc.returncode == 0:
            print(f"expected a failure, but it built:\n{' '.join(step)}")
            return 1
        missing = [e for e in expects if not re.search(e, proc.stdout)]
        if missing:
            print(f"it failed, but not with the expected message {missing}:\n{proc.stdout[-4000:]}")
            return 1
        print(f"failed as expected, matching {expects}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
