"""Tables and a plot from one benchmark run.

Reads criterion's results (target/criterion/**/new/) and Python cachier's
(target/bench/python-cachier.json, from benches/python_cachier.py); prints the
Markdown tables of BENCHMARKS.md and draws benches/scaling.png (with matplotlib,
if it is installed). Every number comes from files this run wrote.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"
PYTHON = ROOT / "target" / "bench" / "python-cachier.json"


def criterion_results():
    """{full_id: mean nanoseconds} of every benchmark criterion measured."""
    results = {}
    for meta in CRITERION.glob("**/new/benchmark.json"):
        full_id = json.loads(meta.read_text())["full_id"]
        estimates = json.loads((meta.parent / "estimates.json").read_text())
        results[full_id] = estimates["mean"]["point_estimate"]
    return results


def human(ns):
    if ns is None:
        return "n/a"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def ratio(theirs, ours):
    """How many times faster ours is (below 1: slower)."""
    if theirs is None or ours is None:
        return "n/a"
    return f"{theirs / ours:.2f}x"


def side_by_side(results):
    lines = [
        "| workload | cachier/memory | cached/memory | speed-up | cachier/file | cachier/segments | cached/redb "
        "| speed-up (file) | speed-up (segments) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for workload in ("hit_u64_pair", "hit_str_map", "miss_and_store", "two_threads_hot_key", "sixteen_threads_cold_key"):
        get = lambda lib: results.get(f"{workload}/{lib}")
        mem, cmem, redb = get("cachier/memory"), get("cached/memory"), get("cached/redb")
        file, packed = get("cachier/file"), get("cachier/segments")
        lines.append(
            f"| {workload} | {human(mem)} | {human(cmem)} | {ratio(cmem, mem)} "
            f"| {human(file)} | {human(packed)} | {human(redb)} | {ratio(redb, file)} | {ratio(redb, packed)} |"
        )
    return "\n".join(lines)


LIBRARIES = ("cachier/memory", "cachier/file", "cachier/segments", "cached/memory", "cached/redb")


def scaling_points(results):
    """{(library, op): [(entries, ns), ...]} from the scaling benchmark."""
    points = {}
    for full_id, ns in results.items():
        if not full_id.startswith("scaling/"):
            continue
        library, op, size = full_id[len("scaling/"):].rsplit("/", 2)
        points.setdefault((library, op), []).append((int(size), ns))
    return {k: sorted(v) for k, v in points.items()}


def scaling_table(points):
    sizes = sorted({size for series in points.values() for size, _ in series})
    header = "| entries | " + " | ".join(f"{lib} {op}" for lib in LIBRARIES for op in ("hit", "store")) + " |"
    lines = [header, "|---" * (1 + 2 * len(LIBRARIES)) + "|"]
    for size in sizes:
        cells = []
        for lib in LIBRARIES:
            for op in ("hit", "store"):
                cells.append(human(dict(points.get((lib, op), [])).get(size)))
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def two_threads_table(points):
    """The largest size's hits on one thread and on two, for each library."""
    lines = [
        "| library | entries | hit, one thread | hit, two threads (a call each) | calls a second, two threads / one |",
        "|---|---|---|---|---|",
    ]
    for lib in LIBRARIES:
        series = points.get((lib, "hit_two_threads"))
        if not series:
            continue
        size, pair = series[-1]
        one = dict(points.get((lib, "hit"), [])).get(size)
        lines.append(f"| {lib} | {size:,} | {human(one)} | {human(pair)} | {ratio(one, pair / 2)} |")
    return "\n".join(lines)


def python_table(points, python):
    lines = [
        "| workload | entries | Python cachier | cachier | speed-up |",
        "|---|---|---|---|---|",
    ]
    pairs = (("pickle", "cachier/file"), ("pickle", "cachier/segments"), ("memory", "cachier/memory"))
    for py_core, ours in pairs:
        for op in ("hit", "store"):
            for size in (1, 2000):
                theirs = python.get(f"{py_core}/{op}/{size}")
                mine = dict(points.get((ours, op), [])).get(size)
                lines.append(
                    f"| {op}: {py_core} core vs {ours} | {size:,} | {human(theirs)} | {human(mine)} "
                    f"| {ratio(theirs, mine)} |"
                )
    return "\n".join(lines)


def plot(points, python, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot)", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, op in zip(axes, ("hit", "store")):
        for lib in LIBRARIES:
            series = points.get((lib, op))
            if series:
                ax.plot(*zip(*series), marker="o", label=lib)
        for py_core in ("pickle", "memory"):
            series = sorted(
                (int(k.rsplit("/", 1)[1]), v) for k, v in python.items() if k.startswith(f"{py_core}/{op}/")
            )
            if series:
                ax.plot(*zip(*series), marker="s", linestyle="--", label=f"python cachier/{py_core}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("entries already stored")
        ax.set_title(f"cost of one {op}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("nanoseconds per call")
    axes[1].legend(fontsize="small")
    fig.suptitle("cachier, the cached crate and Python cachier: cost against cache size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


def main():
    results = criterion_results()
    python = json.loads(PYTHON.read_text()) if PYTHON.exists() else {}
    points = scaling_points(results)
    print("### cachier and the cached crate, side by side\n")
    print(side_by_side(results))
    print("\n### Cost against the number of entries stored\n")
    print(scaling_table(points))
    print("\n### Two threads hitting keys spread over the largest cache\n")
    print(two_threads_table(points))
    if python:
        print("\n### cachier and Python cachier\n")
        print(python_table(points, python))
    plot(points, python, ROOT / "benches" / "scaling.png")


if __name__ == "__main__":
    main()
