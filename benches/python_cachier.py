"""Python cachier on the workloads of benches/benches/scaling.rs: hit and store cost of
its pickle and memory cores with 1 to 2,000 entries stored. Prints JSON:
{"pickle/hit/2000": nanoseconds per call, ...}."""

import json
import sys
import tempfile
import time

from cachier import cachier

SIZES = [1, 500, 1000, 2000]


def per_call_ns(fn, args, repeat):
    start = time.perf_counter_ns()
    for i in range(repeat):
        fn(*args(i))
    return (time.perf_counter_ns() - start) / repeat


def measure(backend):
    results = {}
    cache_dir = tempfile.mkdtemp(prefix=f"cachier-{backend}-")

    @cachier(backend=backend, cache_dir=cache_dir)
    def add(a, b):
        return a + b

    for size in SIZES:
        add.clear_cache()
        for i in range(size):
            add(i, 0)
        # The same calls as the Rust benchmark: hits spread over the stored
        # keys, stores of keys never seen.
        results[f"{backend}/hit/{size}"] = per_call_ns(add, lambda i: ((i * 7919) % size, 0), 200)
        fresh = iter(range(10**9, 10**10))
        results[f"{backend}/store/{size}"] = per_call_ns(add, lambda i: (next(fresh), 1), 50)
        print(f"python cachier {backend}: {size} entries measured", file=sys.stderr)
    return results


if __name__ == "__main__":
    results = {}
    for backend in ("pickle", "memory"):
        results.update(measure(backend))
    json.dump(results, sys.stdout, indent=1)
