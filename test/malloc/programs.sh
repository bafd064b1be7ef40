# The real programs that run on libsydra-malloc.so, for the test
# (real_programs.sh) and the benchmark (tools/bench_programs.sh). Sourced:
#   prepare_programs WORK SRC_ROOT CHURN SORT_MB CHURN_ROUNDS [LONG_ROUNDS]
# writes the sort input into WORK and sets `programs` to "name|command" entries.
# malloc-calloc (calloc_big.cpp) is built next to CHURN.
# `long_programs` are for the benchmark only: each runs several seconds per
# malloc (objects.py, LONG_ROUNDS rounds, 12 by default: about 6.5 s under
# glibc), which the test suite, running every program twice, need not pay.
prepare_programs() {
  local work=$1 src=$2 churn=$3 sort_mb=$4 churn_rounds=$5 long_rounds=${6:-12}
  local here
  here=$(dirname "${BASH_SOURCE[0]}")
  awk -v n=$((sort_mb * 1024 * 1024 / 33)) 'BEGIN { srand(1); for (i = 0; i < n; i++) printf "%08x %s %d\n", int(rand() * 4294967295), substr("abcdefghijklmnopqrstuvwxyz", 1 + i % 26), i }' >"$work/lines"
  programs=(
    "python3|/usr/bin/python3 $here/dicts.py"
    "sort|env LC_ALL=C sort $work/lines"
    "git log|git -C $src --no-pager log -p --stat"
    "git fsck|git -C $src fsck --no-progress --no-dangling"
    "churn|$churn 4 $churn_rounds 42"
    "calloc|$(dirname "$churn")/malloc-calloc 640"
  )
  # PYTHONMALLOC=malloc: every Python object is a malloc, not only those above 512 B.
  long_programs=(
    "python3 objects|env PYTHONMALLOC=malloc /usr/bin/python3 $here/objects.py $long_rounds"
  )
}
