"""BLE health devices end to end: the simulated station's BlueZ stand-in on a private dbus-daemon,
the daemon as a real process running real bleak, and the RPC. One station for the module (the
devices keep their links between tests, as on a kiosk); each test sets up the faults it needs.

Every wait is on an answer or an event; the devices' own pace comes from the simulator
(step_ms), not from sleeps here.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import run
from harness import Station, online

from halsvc.client import AsyncClient, RpcError

CUFF, OXIMETER, SCALE, BERRYMED = ("AA:10:00:00:00:01", "AA:10:00:00:00:02", "AA:10:00:00:00:03",
                                   "AA:10:00:00:00:04")
CONFIG = {"devices": {"health0": {"scan_timeout_ms": 8000, "no_finger_ms": 150, "steady_frames": 6}}}
STATION: dict[str, Any] = {"only": {"ble_station"}, "options": {"ble_station": {"step_ms": 5}},
                           "config": CONFIG}


@pytest.fixture(scope="module")
def ble() -> Iterator[Station]:
    with online("health0", **STATION) as st:
        yield st


def session(st: Station, body: Any) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await asyncio.wait_for(body(hal), 120)  # a ceiling against hangs, not a measurement

    run(go())


async def measure(hal: AsyncClient, kind: str, events: list[dict[str, Any]] | None = None,
                  **params: Any) -> dict[str, Any]:
    def keep(ev: dict[str, Any]) -> None:
        if events is not None:
            events.append(ev)

    return dict(await hal.call("health.measure", {"kind": kind, **params}, on_progress=keep))


async def failure(hal: AsyncClient, kind: str, **params: Any) -> RpcError:
    with pytest.raises(RpcError) as info:
        await measure(hal, kind, **params)
    return info.value


async def device_event(hal: AsyncClient, address: str, **want: Any) -> dict[str, Any]:
    ev = await hal.next_event(lambda e: e["topic"] == "health.device" and e["data"]["address"] == address
                              and all(e["data"].get(k) == v for k, v in want.items()), timeout_s=60)
    return dict(ev["data"])


def test_blood_pressure_with_live_cuff_pressure_on_the_device_clock(ble: Station) -> None:
    async def body(hal: AsyncClient) -> None:
        events: list[dict[str, Any]] = []
        r = await measure(hal, "blood_pressure", events)
        assert (r["systolic_mmhg"], r["diastolic_mmhg"], r["mean_arterial_mmhg"], r["pulse_bpm"]) == (
            120.0, 80.0, 93.0, 72.0)
        assert r["unit"] == "mmHg" and r["status"] == [] and r["user_id"] == 1
        assert r["device"] == {"address": CUFF, "name": "HAL BP Cuff", "battery_percent": 90}
        # The driver set the cuff's clock on connect, so the reading carries today's date.
        assert r["timestamp"][:10] == datetime.date.today().isoformat()
        stages = [e["data"]["stage"] for e in events if e["topic"] == "health.progress"]
        assert stages == ["scanning", "connecting", "connected", "measuring"]
        pressures = [e["data"]["pressure_mmhg"] for e in events if e["topic"] == "health.cuff_pressure"]
        assert max(pressures) == 180.0 and pressures[0] < pressures[5]
        assert all(e["request_id"] is not None for e in events)
        # Connected now: the next resident's measurement needs no scan.
        events.clear()
        ble.control("ble_station", "next_reading", device="cuff", systolic=134, diastolic=86,
                    mean_arterial=102, status_bits=0x0005)
        r = await measure(hal, "blood_pressure", events)
        assert (r["systolic_mmhg"], r["status"]) == (134.0, ["body_movement", "irregular_pulse"])
        assert [e["data"]["stage"] for e in events if e["topic"] == "health.progress"] == [
            "connected", "measuring"]

    session(ble, body)


def test_stored_records_are_read_over_racp_then_deleted(ble: Station) -> None:
    ble.control("ble_station", "stored", device="cuff", readings=[
        {"systolic": 141, "diastolic": 92, "mean_arterial": 108, "timestamp": [2026, 12, 3, 18, 2, 0]},
        {"systolic": 138, "diastolic": 90, "mean_arterial": 106, "timestamp": [2026, 12, 4, 7, 15, 0]}])

    async def body(hal: AsyncClient) -> None:
        r = await measure(hal, "blood_pressure")
        assert [(s["systolic_mmhg"], s["timestamp"]) for s in r["stored"]] == [
            (141.0, "2026-12-03T18:02:00"), (138.0, "2026-12-04T07:15:00")]
        assert r["systolic_mmhg"] == 120.0
        assert "stored" not in await measure(hal, "blood_pressure")

    session(ble, body)


def test_spo2_on_the_plx_oximeter_and_the_berrymed(ble: Station) -> None:
    async def body(hal: AsyncClient) -> None:
        events: list[dict[str, Any]] = []
        r = await measure(hal, "spo2", events, address=OXIMETER)
        assert (r["spo2_percent"], r["pulse_bpm"], r["perfusion_index_percent"]) == (97.0, 72.0, 2.5)
        assert r["status"] == ["validated_data"] and r["timestamp"][:10] == datetime.date.today().isoformat()
        live = [e["data"] for e in events if e["topic"] == "health.live"]
        assert live and all(90 <= v["spo2_percent"] <= 100 for v in live)
        # The proprietary one, chosen by name; its frames give live pleth and a steady reading.
        events.clear()
        r = await measure(hal, "spo2", events, address="Berry*")
        assert (r["spo2_percent"], r["pulse_bpm"], r["device"]["address"]) == (98.0, 68.0, BERRYMED)
        pleth = [p for e in events if e["topic"] == "health.live" for p in e["data"]["pleth"]]
        assert len(set(pleth)) > 3 and all(0 <= p <= 100 for p in pleth)

    session(ble, body)


def test_weight_and_body_composition_on_one_scale(ble: Station) -> None:
    async def body(hal: AsyncClient) -> None:
        ble.control("ble_station", "refuse_connects", device="scale", count=2)
        r = await measure(hal, "weight")  # two refused connects, then the retry gets through
        assert (r["weight_kg"], r["height_m"], r["bmi"], r["stable"]) == (72.35, 1.722, 24.4, True)
        assert ble.control("ble_station", "stats", device="scale")["stats"]["refused"] == 2
        ble.control("ble_station", "step_on", device="scale", kg=64.2, height_m=1.6, body_fat_percent=27.1)
        r = await measure(hal, "body_composition")
        assert (r["body_fat_percent"], r["weight_kg"], r["height_m"], r["bmi"]) == (27.1, 64.2, 1.6, 25.1)
        assert r["muscle_percent"] == 38.2 and r["impedance_ohm"] == 480.5

    session(ble, body)


def test_devices_lists_known_and_discovered_with_battery(ble: Station) -> None:
    ble.control("ble_station", "battery", device="cuff", percent=41)

    async def body(hal: AsyncClient) -> None:
        await measure(hal, "blood_pressure")
        devices = {d["address"]: d for d in (await hal.call("health.devices"))["devices"]}
        cuff = devices[CUFF]
        assert cuff["known"] and cuff["connected"] and cuff["battery_percent"] == 41
        assert devices[CUFF]["kinds"] == ["blood_pressure"] and devices[CUFF]["last_seen"]
        assert devices[SCALE]["known"] and devices[SCALE]["kinds"] == ["weight", "body_composition"]
        assert not devices[OXIMETER]["known"] and devices[OXIMETER]["kinds"] == ["spo2"]

    session(ble, body)


def test_a_configured_device_wins_over_a_discovered_one_after_a_restart(ble: Station) -> None:
    known = [{"address": CUFF, "kinds": ["blood_pressure"]},
             {"name": "HAL Body Scale*", "kinds": ["weight", "body_composition"]},
             {"name": "BerryMed", "kinds": ["spo2"]}]
    ble.write_config(devices={"health0": {"known": known}})
    ble.restart_daemon()

    async def body(hal: AsyncClient) -> None:
        await ble.until_online(hal, "health0")
        # Both oximeters advertise; the configured one is taken even if the other is seen first.
        r = await measure(hal, "spo2")
        assert r["device"]["address"] == BERRYMED
        devices = {d["address"]: d for d in (await hal.call("health.devices"))["devices"]}
        assert devices[BERRYMED]["known"] and not devices[OXIMETER]["known"]

    try:
        session(ble, body)
    finally:
        ble.write_config()
        ble.restart_daemon()
