#!/usr/bin/env bash
# cachier against Python cachier (and the cached crate) on the same workloads,
# in one run: installs Python cachier from PyPI into a throwaway virtual
# environment, measures its pickle and memory cores with 1 to 2,000 entries,
# runs our scaling benchmark to the same sizes, and prints one table with the
# ratio per row (benches/report.py, which also draws benches/scaling.png).
#
#   benches/compare-python.sh            # about five minutes
#   BENCH_ALL=1 benches/compare-python.sh  # also benches/benches/cores.rs and 1,000,000 entries
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/bench/python-venv
mkdir -p target/bench
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "cachier==4.2.0" matplotlib

"$venv/bin/python" benches/python_cachier.py > target/bench/python-cachier.json

if [ -n "${BENCH_ALL:-}" ]; then
  cargo bench -p cachier-bench --bench cores
  cargo bench -p cachier-bench --bench scaling
else
  CACHIER_BENCH_MAX_ENTRIES=2000 cargo bench -p cachier-bench --bench scaling
fi

"$venv/bin/python" benches/report.py

# The file caches of the benches, each in a directory of its run's own, are
# removed last: for minutes after many files are deleted, ext4 creates files
# more slowly, which would have slowed every file store measured after.
rm -rf target/tmp/bench/cachier-*-*
