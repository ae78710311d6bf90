"""What the soak found in other parts, as small reproductions (xfail until fixed; they pass once
the behaviour is right, and then the xfail mark should go)."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Callable

from conftest import run
from harness import Station
from soaklib import fd_kinds

from halsvc.client import RpcError


def bus_fds(st: Station) -> int:
    assert st.daemon is not None
    return sum(n for kind, n in fd_kinds(st.daemon.pid).items() if "system_bus_socket" in kind)


async def measure(st: Station, kind: str) -> str:
    async with st.client() as hal:
        await st.until_online(hal, "health0")
        try:
            await hal.call("health.measure", {"kind": kind, "timeout_ms": 20000})
            return "ok"
        except RpcError as exc:
            return exc.reason


def test_ble_link_drops_leave_no_dbus_connections_behind(station: Callable[..., Station]) -> None:
    st = station(only={"ble_station"})
    rng = random.Random(3)
    assert run(measure(st, "spo2")) == "ok"
    start = bus_fds(st)
    for i in range(24):
        kind = rng.choice(["blood_pressure", "spo2", "weight"])
        if i % 3 == 1:
            dev = {"blood_pressure": "cuff", "spo2": "oximeter", "weight": "scale"}[kind]
            st.control("ble_station", rng.choice(["drop_link", "refuse_connects"]), device=dev, count=2)
        run(measure(st, kind))
    # at most one connection per device the daemon may keep connected (cuff, oximeter, scale)
    assert bus_fds(st) <= start + 2, (start, bus_fds(st))


def test_ble_device_left_connected_by_a_killed_daemon_is_found_again(station: Callable[..., Station]) -> None:
    st = station(only={"ble_station"})
    assert run(measure(st, "weight")) == "ok"  # the scale stays connected after the measure
    st.stop_daemon(signal.SIGKILL)
    st.start_daemon()
    assert run(measure(st, "weight")) == "ok"


def test_ble_measures_of_other_kinds_at_once_do_not_fail_the_scan(station: Callable[..., Station]) -> None:
    st = station(only={"ble_station"})

    async def at_once() -> list[str]:
        async with st.client() as hal:
            await st.until_online(hal, "health0")

        async def one(kind: str) -> str:
            async with st.client() as hal:
                try:
                    await hal.call("health.measure", {"kind": kind, "timeout_ms": 20000})
                    return "ok"
                except RpcError as exc:
                    return exc.reason
        return list(await asyncio.gather(*(one(k) for k in ("spo2", "blood_pressure", "weight"))))

    got = run(at_once())
    assert "hardware_error" not in got, got
