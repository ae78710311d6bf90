"""Run the simulated printer alone: prints its pty path and TCP port, serves until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib

from simulators.base import serve_until_signalled
from simulators.escpos_printer import PrinterSimulator


async def _main(workdir: pathlib.Path, paper_mm: int, baudrate: int) -> None:
    sim = await PrinterSimulator(workdir, paper_mm, baudrate).start()
    print(f"pty {sim.pty.path} tcp 127.0.0.1:{sim.tcp.port} jobs {sim.printer.jobs_dir}", flush=True)
    await serve_until_signalled(sim.stop)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m simulators.escpos_printer")
    ap.add_argument("--dir", default="run/printer")
    ap.add_argument("--paper-mm", type=int, default=80, choices=(58, 80))
    ap.add_argument("--baudrate", type=int, default=115200)
    ns = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(pathlib.Path(ns.dir).resolve(), ns.paper_mm, ns.baudrate))


if __name__ == "__main__":
    main()
