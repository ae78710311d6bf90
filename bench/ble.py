"""BLE health through the daemon: how much the daemon adds between a device's indication and the
RPC result, and how long health.measure takes to connect, each against a baseline measured in
the same run on the same private bus and BlueZ stand-in.

    python bench/ble.py [--runs 30] [--connects 10]

- indication -> RPC result: the cuff (connected, warm) stamps the moment it sends its final
  indication (CLOCK_MONOTONIC, shared by the processes); the client stamps the result's arrival.
  Baselines: a D-Bus round trip (Peer.Ping to org.bluez through the dbus-daemon) and the same
  indication seen by a bare bleak client in this process (the scale, subscribed directly). The
  daemon's own share is the first minus the bare-bleak one (target < 20 ms).
- health.measure -> connected: the cuff forgotten (health.forget) before each run, so every
  measure scans, connects, sets the clock and reads the battery; the client stamps the
  `connected` progress event. Baseline: bare bleak scanning for and connecting to the scale.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import statistics
import sys
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests", ROOT / "bench"):
    sys.path.insert(0, str(p))

from benchjson import emit, figure  # noqa: E402
from bleak import BleakClient, BleakScanner  # noqa: E402
from bleak.backends.bluezdbus.manager import get_global_bluez_manager  # noqa: E402
from dbus_fast import Message, MessageType  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402
from harness import Station  # noqa: E402

from protocols.gatt_health import uuid16  # noqa: E402

CUFF, SCALE = "AA:10:00:00:00:01", "AA:10:00:00:00:03"


def ms(seconds: float) -> float:
    return seconds * 1000.0


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


async def dbus_round_trips(address: str, n: int) -> list[float]:
    bus = await MessageBus(bus_address=address).connect()
    out = []
    try:
        for _ in range(n):
            t = time.monotonic()
            reply = await bus.call(Message(destination="org.bluez", path="/",
                                           interface="org.freedesktop.DBus.Peer", member="Ping"))
            out.append(time.monotonic() - t)
            assert reply is not None and reply.message_type == MessageType.METHOD_RETURN
    finally:
        bus.disconnect()
    return out


async def daemon_indication_to_result(st: Station, runs: int) -> list[float]:
    out = []
    async with st.client() as hal:
        await hal.call("health.measure", {"kind": "blood_pressure"})  # connect and warm up
        for _ in range(runs):
            await hal.call("health.measure", {"kind": "blood_pressure"})
            got = time.monotonic()
            sent = st.control("ble_station", "stats", device="cuff")["stats"]["indication_at"]
            out.append(got - sent)
    return out


async def bare_bleak_indication(st: Station, runs: int) -> list[float]:
    dev = await BleakScanner.find_device_by_filter(lambda d, a: d.address == SCALE, timeout=20)
    assert dev is not None
    out = []
    async with BleakClient(dev) as client:
        for _ in range(runs):
            arrived: asyncio.Future[float] = asyncio.get_running_loop().create_future()

            def seen(_c: Any, _d: Any, arrived: asyncio.Future[float] = arrived) -> None:
                if not arrived.done():
                    arrived.set_result(time.monotonic())

            await client.start_notify(uuid16(0x2A9D), seen)
            got = await asyncio.wait_for(arrived, 30)
            sent = st.control("ble_station", "stats", device="scale")["stats"]["indication_at"]
            out.append(got - sent)
            await client.stop_notify(uuid16(0x2A9D))
    return out


async def daemon_measure_to_connected(st: Station, runs: int) -> list[float]:
    out = []
    async with st.client() as hal:
        for _ in range(runs):
            await hal.call("health.forget", {"address": CUFF})
            start = time.monotonic()
            connected: list[float] = []

            def progress(ev: dict[str, Any], connected: list[float] = connected) -> None:
                if ev["topic"] == "health.progress" and ev["data"].get("stage") == "connected":
                    connected.append(time.monotonic())

            await hal.call("health.measure", {"kind": "blood_pressure"}, on_progress=progress)
            out.append(connected[0] - start)
    return out


async def bare_bleak_connect(address: str, runs: int) -> list[float]:
    bus = await MessageBus(bus_address=address).connect()
    out = []
    try:
        for _ in range(runs):
            start = time.monotonic()
            dev = await BleakScanner.find_device_by_filter(lambda d, a: d.address == SCALE, timeout=20,
                                                           service_uuids=[uuid16(0x181D)])
            assert dev is not None
            client = BleakClient(dev)
            await client.connect()
            out.append(time.monotonic() - start)
            await client.disconnect()
            await bus.call(Message(destination="org.bluez", path="/org/bluez/hci0",
                                   interface="org.bluez.Adapter1", member="RemoveDevice", signature="o",
                                   body=["/org/bluez/hci0/dev_" + SCALE.replace(":", "_")]))
    finally:
        bus.disconnect()
    return out


async def main(args: argparse.Namespace) -> None:
    st = Station(only={"ble_station"}, options={"ble_station": {"step_ms": 2}},
                 config={"devices": {"health0": {"scan_timeout_ms": 20000}}}).start()
    try:
        address = st.env["DBUS_SYSTEM_BUS_ADDRESS"]
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = address
        rtt = await dbus_round_trips(address, 200)
        daemon = await daemon_indication_to_result(st, args.runs)
        bare = await bare_bleak_indication(st, args.runs)
        connect = await daemon_measure_to_connected(st, args.connects)
        bare_connect = await bare_bleak_connect(address, args.connects)
        # bleak's shared bus goes before the private bus does, so it sees no EOF.
        manager = await get_global_bluez_manager()
        if manager._bus is not None:
            manager._bus.disconnect()
    finally:
        st.stop()
    samples = {"rtt": rtt, "daemon": daemon, "bare": bare, "connect": connect, "bare_connect": bare_connect}
    med = {k: ms(statistics.median(v)) for k, v in samples.items()}
    own = med["daemon"] - med["bare"]
    print(f"D-Bus round trip (Peer.Ping to org.bluez)      p50 {med['rtt']:7.2f} ms")
    print(f"indication -> bare bleak callback              p50 {med['bare']:7.2f} ms"
          f"  p95 {ms(p95(bare)):.2f}")
    print(f"indication -> halsvc RPC result                p50 {med['daemon']:7.2f} ms"
          f"  p95 {ms(p95(daemon)):.2f}")
    print(f"  the daemon's own share                       p50 {own:7.2f} ms  (target < 20 ms)")
    print(f"  as D-Bus round trips                         {med['daemon'] / med['rtt']:7.1f} x")
    print(f"health.measure -> connected (scan + connect)   p50 {med['connect']:7.2f} ms"
          f"  p95 {ms(p95(connect)):.2f}")
    print(f"bare bleak scan + connect                      p50 {med['bare_connect']:7.2f} ms")
    print(f"  ratio                                        {med['connect'] / med['bare_connect']:7.2f} x")
    emit("ble", [
        figure("indication -> RPC result, daemon's share over bare bleak (p50)", own, "ms", "< 20"),
        figure("indication -> RPC result / D-Bus round trip (p50)", med["daemon"] / med["rtt"], "x"),
        figure("indication -> RPC result (p50)", med["daemon"], "ms"),
        figure("D-Bus round trip to org.bluez (p50)", med["rtt"], "ms"),
        figure("health.measure -> connected / bare bleak scan+connect (p50)",
               med["connect"] / med["bare_connect"], "x"),
        figure("health.measure -> connected on the simulator (p50)", med["connect"], "ms"),
    ])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--connects", type=int, default=10)
    asyncio.run(main(ap.parse_args()))
