#!/usr/bin/env python3
"""Callgrind driver for the batch workloads of issue 13: every allocator in one run.

Counts the instructions per object (allocation + free) of the page batches and
slab batches, for memkern (single calls and bulk APIs) and every peer, and prints
two markdown tables with the ratio of memkern to the best peer. Instruction
counts do not vary between runs, so the tables are reproducible.

Per object = (Ir(2N rounds) - Ir(N rounds)) / (N * B): process start, set-up and
the first round (which splits the blocks the caches then hold) cancel out.

    make bench-callgrind          # or: python3 mm/benches/callgrind_batches.py
    python3 mm/benches/callgrind_batches.py --quick   # B <= 1,024 and 10,000 only

Needs valgrind. Runs as many valgrind processes as there are CPUs (--jobs N).
A peer that does not finish within --timeout seconds is shown as "t/o", one
whose run fails (a panic, an exhausted arena) as "fail", with its error on stderr.
"""

import argparse
import concurrent.futures as cf
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
EXAMPLES = os.path.join(TARGET, "release", "examples")

PAGE_PEERS = ["bsa-heap", "rlsf", "talc", "bsa-frame"]
SLAB_PEERS = ["talc", "rlsf", "linked_list", "buddy_system", "slabmalloc"]


FAILED = float("nan")


def ir(cmd, timeout):
    """Instructions executed by `cmd` under callgrind, or None on timeout."""
    try:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None
    m = re.search(r"refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or not m:
        tail = "\n".join([l for l in out.stderr.splitlines() if not l.startswith("==")][-5:])
        print(f"\nfailed: {' '.join(cmd)}\n{tail}", file=sys.stderr)
        return FAILED
    return int(m.group(1).replace(",", ""))


def per_object(make_cmd, lo, objects, timeout):
    """(Ir(2 lo) - Ir(lo)) / (lo * objects), or None."""
    a = ir(make_cmd(lo), timeout)
    b = ir(make_cmd(2 * lo), timeout) if a is not None else None
    if a is None or b is None:
        return None
    return (b - a) / (lo * objects)  # NaN if a run failed


def rounds_for(objects):
    """Rounds per run: about 30,000 objects, at least one round."""
    return max(1, 30720 // objects)


def page_jobs(sizes):
    bw = os.path.join(EXAMPLES, "buddy_work")
    jobs = {}
    for order in (0, 3):
        for b in sizes:
            for free in ("seq", "rev", "rand"):
                row = (order, b, free)
                lo = rounds_for(b)
                for who in ["memkern"] + PAGE_PEERS:
                    jobs[row, who] = (
                        lambda n, who=who, order=order, b=b, free=free: [
                            bw, who, str(order), str(n), "batch", str(b), free
                        ],
                        lo,
                        b,
                    )
                if order == 0:
                    jobs[row, "bulk"] = (
                        lambda n, b=b, free=free: [
                            bw, "memkern", "0", str(n), "bulk", str(b), free
                        ],
                        lo,
                        b,
                    )
    return jobs


def slab_jobs(sizes):
    sw = os.path.join(EXAMPLES, "slab_work")
    jobs = {}
    for size in (64, 1024, 0):
        for b in sizes:
            row = (size, b)
            lo = rounds_for(b)
            for who in ["memkern"] + SLAB_PEERS:
                jobs[row, who] = (
                    lambda n, who=who, size=size, b=b: [sw, who, f"batch:{b}:{size}", str(n)],
                    lo,
                    b,
                )
            if size != 0:
                jobs[row, "bulk"] = (
                    lambda n, size=size, b=b: [sw, "memkern", f"bulk:{b}:{size}", str(n)],
                    lo,
                    b,
                )
    return jobs


def fmt(x):
    if x is None:
        return "t/o"
    return "fail" if x != x else f"{x:.1f}"


def ratio(x, best):
    return "–" if x is None or best is None or x != x else f"{x / best:.3f}"


def table(rows, label, peers, res, title):
    print(f"\n{title}\n")
    head = label + ["memkern", "bulk API"] + peers + ["best peer", "ratio (single / bulk)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        vals = {who: res.get((row, who)) for who in ["memkern", "bulk"] + peers}
        got = [(vals[p], p) for p in peers if vals[p] is not None and vals[p] == vals[p]]
        best, best_who = min(got) if got else (None, "–")
        cells = [f"{x:,}" if isinstance(x, int) and x > 999 else str(x) for x in row]
        cells += [fmt(vals["memkern"]), "–" if (row, "bulk") not in res else fmt(vals["bulk"])]
        cells += [fmt(vals[p]) for p in peers]
        cells += [f"{fmt(best)} ({best_who})", f"{ratio(vals['memkern'], best)} / {ratio(vals['bulk'], best)}"]
        print("| " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small batches only")
    ap.add_argument("--only", choices=["pages", "slab"], help="one table only")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per valgrind run")
    ap.add_argument("--no-build", action="store_true", help="use the examples as built")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(
            ["cargo", "build", "--release", "-q", "-p", "mm", "--example", "buddy_work", "--example", "slab_work"],
            cwd=ROOT,
            check=True,
        )
    page_sizes = (64, 1024) if args.quick else (64, 1024, 65536)
    slab_sizes = (10000,) if args.quick else (10000, 100000)
    jobs = {}
    if args.only != "slab":
        jobs.update(page_jobs(page_sizes))
    if args.only != "pages":
        jobs.update(slab_jobs(slab_sizes))
    res = {}
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futs = {ex.submit(per_object, cmd, lo, b, args.timeout): key for key, (cmd, lo, b) in jobs.items()}
        for i, f in enumerate(cf.as_completed(futs)):
            res[futs[f]] = f.result()
            print(f"\r{i + 1}/{len(jobs)} runs", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print("Instructions per object (allocation + free), callgrind; ratio = memkern / best peer.")
    if args.only != "slab":
        rows = sorted({k[0] for k in jobs if len(k[0]) == 3}, key=lambda r: (r[0], r[1], ["seq", "rev", "rand"].index(r[2])))
        table(rows, ["order", "B", "free"], PAGE_PEERS, res, "Page batches: B blocks allocated, then freed in allocation (seq), reverse (rev) or random (rand) order.")
    if args.only != "pages":
        rows = sorted({k[0] for k in jobs if len(k[0]) == 2}, key=lambda r: (r[0] == 0, r[0], r[1]))
        table(rows, ["size (0 = W2 mix)", "B"], SLAB_PEERS, res, "Slab batches: B kmalloc'ed objects, then all kfree'd in allocation order.")


if __name__ == "__main__":
    main()
