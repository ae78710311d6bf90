"""`make bench`: run every `bench/*.py` (each in its own process, one after the other, so they do
not measure each other) and print ONE table of their figures and targets from the `BENCH-JSON`
line each prints last (see bench/benchjson.py).

    python bench/run_all.py [--only rpc,idcard] [--skip soak] [--quiet] [-- ARGS for every bench]

The soak is skipped unless asked for (`make soak`); a bench that fails or prints no BENCH-JSON
line shows as a failed row. Exit status 1 if a bench failed (with --strict also if a figure
misses its target: on a shared machine a miss is worth a look, not always a regression).
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import time
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchjson import parse  # noqa: E402

NOT_BENCHES = {"run_all", "benchjson", "soaklib"}
DEFAULT_SKIP = {"soak"}  # 30 minutes by itself: `make soak`


def benches(only: set[str] | None, skip: set[str]) -> list[pathlib.Path]:
    found = sorted(p for p in HERE.glob("*.py") if p.stem not in NOT_BENCHES)
    if only:
        return [p for p in found if p.stem in only]
    return [p for p in found if p.stem not in skip]


def run(path: pathlib.Path, quiet: bool) -> tuple[dict[str, Any] | None, str, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(path)], cwd=HERE.parent, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if not quiet:
        print(proc.stdout, end="")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return None, f"exit {proc.returncode}: " + " / ".join(tail), wall
    doc = parse(proc.stdout)
    if doc is None:
        return None, "no BENCH-JSON line", wall
    return doc, "", wall


def fmt(value: float) -> str:
    if value != value:  # NaN
        return "nan"
    if abs(value) >= 1000 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated bench names (file stems)")
    ap.add_argument("--skip", default=",".join(sorted(DEFAULT_SKIP)), help="comma-separated stems to skip")
    ap.add_argument("--quiet", action="store_true", help="only the table")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a figure misses its target")
    ns = ap.parse_args(argv)
    only = {s for s in (ns.only or "").split(",") if s} or None
    skip = {s for s in ns.skip.split(",") if s}
    rows: list[tuple[str, str, str, str, str]] = []
    failed = missed = False
    for path in benches(only, skip):
        print(f"== {path.relative_to(HERE.parent)}", flush=True)
        doc, error, wall = run(path, ns.quiet)
        if doc is None:
            rows.append((path.stem, f"(bench failed: {error})", "", "", "FAIL"))
            failed = True
            continue
        for f in doc.get("figures", []):
            ok = f.get("ok")
            verdict = "ok" if ok is True else "MISS" if ok is False else ""
            missed |= ok is False
            value = ("n/a" if f.get("value") is None
                     else f"{fmt(float(f['value']))} {f.get('unit') or ''}".strip())
            rows.append((str(doc.get("bench", path.stem)), str(f["name"]), value,
                         str(f.get("target") or ""), verdict))
        print(f"   ({wall:.0f} s)", flush=True)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(HEADER)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 1 if failed or (ns.strict and missed) else 0


HEADER = ("bench", "figure", "value", "target", "")

if __name__ == "__main__":
    sys.exit(main())
