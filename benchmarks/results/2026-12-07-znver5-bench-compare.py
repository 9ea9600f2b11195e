"""Two runs of the old code against two of the new, full suite (2026-12-07-znver5-bench-compare.md):
per benchmark the best new median over the best old one, and each code's own max/min spread.

Reads the runs saved that session as /work/bench/<run>/bench.json (not kept: 630 KB each).
usage: python 2026-12-07-znver5-bench-compare.py ROWS old1,old2,new1,new2
"""
import json
import sys


def fmt(t):
    return f"{t * 1e6:.1f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def main(n_rows, names):
    medians = {}
    for name in names:
        with open(f"/work/bench/{name}/bench.json") as f:
            runs = json.load(f)["benchmarks"]
        medians[name] = {b.get("fullname", b["name"]): float(b["stats"]["median"]) for b in runs}
    common = sorted(set.intersection(*(set(v) for v in medians.values())))
    rows = []
    for bench in common:
        o1, o2, n1, n2 = (medians[name][bench] for name in names)
        ratio, old_spread, new_spread = min(n1, n2) / min(o1, o2), max(o1, o2) / min(o1, o2), max(n1, n2) / min(n1, n2)
        rows.append((ratio, old_spread, new_spread, bench, o1, o2, n1, n2))
    rows.sort(reverse=True)
    spreads = sorted(r[1] for r in rows)
    p90 = spreads[int(0.9 * (len(spreads) - 1))]
    ratios = sorted(r[0] for r in rows)
    print(f"{len(common)} benchmarks in all four runs; runs {','.join(names)}")
    print(f"old-vs-old spread max/min: median {spreads[len(spreads) // 2]:.3f}, p90 {p90:.3f}, max {spreads[-1]:.3f}")
    print(f"best new / best old: median {ratios[len(ratios) // 2]:.3f}, min {ratios[0]:.3f}, max {ratios[-1]:.3f}")
    flagged = [r for r in rows if r[0] > max(r[1], r[2], p90)]
    print(f"slower beyond max(own old spread, own new spread, p90 old spread): {len(flagged)}")
    print("| benchmark | old 1 | old 2 | new 1 | new 2 | best new / best old | old spread | new spread |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows[:n_rows]:
        times = " | ".join(fmt(t) for t in r[4:])
        print(f"| `{r[3]}` | {times} | {r[0]:.3f} | {r[1]:.3f} | {r[2]:.3f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2].split(","))
