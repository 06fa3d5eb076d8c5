#!/usr/bin/env bash
# cachier against Python cachier (and the cached crate) on the same workloads,
# in one run: installs Python cachier from PyPI into a throwaway virtual
# environment, measures its pickle and memory cores with 1 to 2,000 entries,
# runs our scaling benchmark to the same sizes, and prints one table with the
# ratio per row (bench/report.py, which also draws bench/scaling.png).
#
#   bench/compare-python.sh            # about five minutes
#   BENCH_ALL=1 bench/compare-python.sh  # also benches/cores.rs and 1,000,000 entries
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/bench/python-venv
mkdir -p target/bench
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "cachier==4.2.0" matplotlib

"$venv/bin/python" bench/python_cachier.py > target/bench/python-cachier.json

if [ -n "${BENCH_ALL:-}" ]; then
  cargo bench --bench cores
  cargo bench --bench scaling
else
  CACHIER_BENCH_MAX_ENTRIES=2000 cargo bench --bench scaling
fi

"$venv/bin/python" bench/report.py
