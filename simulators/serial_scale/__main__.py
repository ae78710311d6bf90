"""Run the simulated scales alone:

    python -m simulators.serial_scale [--dir run/scale] [--protocol and] [--detect]

prints each device's pty path, then reads control lines on stdin: `ACTION {"json": "args"}`
(e.g. `step_on {"kg": 72.5}`), answering each with the simulator's status as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys

from simulators.serial_scale import ACTIONS, start_scales


async def serve(workdir: pathlib.Path, options: dict) -> None:
    station = await start_scales(workdir, options)
    for device_id, s in station.scales.items():
        print(f"{device_id} {s.protocol} {s.path}", flush=True)
    print(f"actions: {', '.join(ACTIONS)}", flush=True)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            action, _, rest = line.strip().partition(" ")
            if not action:
                continue
            try:
                reply = await station.control(action, json.loads(rest or "{}"))
                print(json.dumps(dict(reply)), flush=True)
            except Exception as exc:  # a bad line must not stop the simulator
                print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    finally:
        await station.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.serial_scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="run/scale")
    ap.add_argument("--protocol", help="one scale0 speaking this protocol (default: 8217 + Tanita)")
    args = ap.parse_args(argv)
    options: dict = {}
    if args.protocol:
        options["devices"] = {"scale0": {"protocol": args.protocol}}
    try:
        asyncio.run(serve(pathlib.Path(args.dir).resolve(), options))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
