"""python -m simulators.ble_station [--dir DIR]: the BLE station on its own; prints the bus
address to export as DBUS_SYSTEM_BUS_ADDRESS."""

from __future__ import annotations

import argparse
import asyncio
import pathlib

from simulators.base import serve_until_signalled
from simulators.ble_station import start_station


async def main(workdir: pathlib.Path) -> None:
    station = await start_station(workdir, {})
    print(f"DBUS_SYSTEM_BUS_ADDRESS={station.bus.address}", flush=True)
    for p in station.peripherals.values():
        print(f"  {p.id:9} {p.address}  {p.name}", flush=True)
    await serve_until_signalled(station.stop)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m simulators.ble_station")
    ap.add_argument("--dir", default="run/sim")
    asyncio.run(main(pathlib.Path(ap.parse_args().dir).resolve()))
