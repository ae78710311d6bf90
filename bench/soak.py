"""The whole simulated station under load, faults and bad input, for minutes (issue 10).

    python bench/soak.py [--minutes 30] [--seed 1] [--clients 32] [--kills 3]
    SOAK_MINUTES=30 make soak

What it does and checks: tests/soaklib.py. Prints a table of outcomes per request and of the
checks (nothing lost or doubled, every request answered or closed for a stated reason, RSS flat,
fds back), then the BENCH-JSON line (bench/benchjson.py). Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from benchjson import emit  # noqa: E402
from soaklib import Soak, SoakConfig  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "30")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "1")))
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--kills", type=int, default=3, help="daemon SIGKILLs (first 60 %% of the run)")
    ap.add_argument("--fault-mean-s", type=float, default=8.0, help="mean time between faults")
    # vpcd reader slot 1: a soak of minutes on slot 0 would make every card test on the machine
    # wait (and give up after the slot lock's 150 s); slot 1 is bench/idcard's, run one at a time
    ap.add_argument("--vpcd-port", type=int, default=35964, help="the simulated card's vpcd slot port")
    args = ap.parse_args()
    cfg = SoakConfig(seed=args.seed, duration_s=args.minutes * 60, clients=args.clients, kills=args.kills,
                     fault_mean_s=args.fault_mean_s,
                     part_options={"cccd_card": {"vpcd_port": args.vpcd_port}},
                     log=lambda s: print(s, file=sys.stderr, flush=True))
    result = asyncio.run(Soak(cfg).run())
    print(result.table())
    emit("soak", result.figures())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
