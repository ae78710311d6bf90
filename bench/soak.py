"""The whole simulated station under load, faults and bad input, for minutes (issue 10).

    python bench/soak.py [--minutes 30] [--seed 1] [--clients 32] [--kills 3]
    SOAK_MINUTES=30 make soak

What it does and checks: tests/soaklib.py. Prints a table of outcomes per request and of the
checks (nothing lost or doubled, every request answered or closed for a stated reason, RSS flat,
fds back), then the BENCH-JSON line (bench/benchjson.py). Exit status 1 if a check fails.

The simulated card needs a vpcd reader slot, and pcscd has two, which every card test on the
machine queues for (150 s at most). A soak of minutes must not hold one: as root it runs in a
private mount namespace (unshare -m) with its own pcscd — its own /run/pcscd and vpcd ports
35973/35974 — so the machine's pcscd and its slots stay free. `--shared-pcscd` uses the
machine's pcscd on vpcd slot 1 instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from benchjson import emit  # noqa: E402
from soaklib import Soak, SoakConfig  # noqa: E402

PRIVATE_VPCD_PORT = 35973  # 0x8C85: clear of the machine's pcscd (35963/35964)
NS_FLAG = "HALSVC_SOAK_PRIVATE_PCSCD"
VPCD_CONF = """FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x{port:04X}
LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so
CHANNELID    0x{port:04X}
"""


def private_pcscd(tmp: pathlib.Path) -> subprocess.Popen[bytes]:
    """Inside our mount namespace: a private /run/pcscd and a pcscd serving vpcd on our ports."""
    run_dir, conf_dir = tmp / "run", tmp / "reader.conf.d"
    run_dir.mkdir()
    conf_dir.mkdir()
    (conf_dir / "vpcd").write_text(VPCD_CONF.format(port=PRIVATE_VPCD_PORT))
    subprocess.run(["mount", "--bind", str(run_dir), "/run/pcscd"], check=True)
    proc = subprocess.Popen(["pcscd", "-f", "-c", str(conf_dir)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "pcscd.log", "wb"))
    deadline = time.monotonic() + 30
    while True:  # pcscd has no readiness notification: its socket accepting is the sign
        with socket.socket(socket.AF_UNIX) as s, contextlib.suppress(OSError):
            s.connect("/run/pcscd/pcscd.comm")
            return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"private pcscd did not start: {(tmp / 'pcscd.log').read_text()}")
        time.sleep(0.1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "30")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "1")))
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--kills", type=int, default=3, help="daemon SIGKILLs (first 60 %% of the run)")
    ap.add_argument("--fault-mean-s", type=float, default=8.0, help="mean time between faults")
    ap.add_argument("--shared-pcscd", action="store_true",
                    help="use the machine's pcscd, the card on vpcd slot 1 (port 35964)")
    args = ap.parse_args()
    private = not args.shared_pcscd and os.geteuid() == 0 and shutil.which("unshare") is not None
    if private and os.environ.get(NS_FLAG) != "1":
        # again, in a private mount namespace (what we mount there is invisible outside)
        os.execvpe("unshare", ["unshare", "-m", "--propagation", "private", sys.executable, *sys.argv],
                   {**os.environ, NS_FLAG: "1"})
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hal-soak-pcscd-", dir="/tmp"))
    pcscd: subprocess.Popen[bytes] | None = None
    try:
        if private:
            pcscd = private_pcscd(tmp)
            card = {"vpcd_port": PRIVATE_VPCD_PORT}
            daemon = {"devices": {"idcard0": {"reader": "Virtual PCD 00 00"}}}  # slot 0 of *our* pcscd
            log(f"soak: private pcscd (pid {pcscd.pid}) on vpcd port {PRIVATE_VPCD_PORT}")
        else:
            card, daemon = {"vpcd_port": 35964}, {}
        cfg = SoakConfig(seed=args.seed, duration_s=args.minutes * 60, clients=args.clients, kills=args.kills,
                         fault_mean_s=args.fault_mean_s, part_options={"cccd_card": card},
                         daemon_config=daemon, log=log)
        result = asyncio.run(Soak(cfg).run())
    finally:
        if pcscd is not None:
            pcscd.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                pcscd.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(result.table())
    emit("soak", result.figures())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
