"""Every BLE fault of issue 6 through the daemon: refused connects, a link dropped mid-measurement
(link_lost, then reconnected for the next resident), NotAuthorized until paired with our
NoInputNoOutput agent, malformed values, NaN/NRes readings, implausible values, a cuff error and
no finger. After each the daemon keeps serving, and no reading reaches the log or other clients."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import run
from harness import Station, online
from test_ble_daemon import CUFF, OXIMETER, SCALE, STATION, device_event, failure, measure

from halsvc.client import AsyncClient


@pytest.fixture(scope="module")
def ble() -> Iterator[Station]:
    with online("health0", **STATION) as st:
        yield st


def session(st: Station, body: Any) -> None:
    async def go() -> None:
        async with st.client() as hal, st.client() as spy:
            await spy.subscribe("*")
            await asyncio.wait_for(body(hal), 120)  # a ceiling against hangs, not a measurement
            # Another client sees device events, never a reading.
            await hal.call("health.devices")
            seen = []
            with pytest.raises(TimeoutError):
                while True:
                    seen.append(await spy.next_event(timeout_s=0.2))
            for ev in seen:
                reading = {"systolic_mmhg", "spo2_percent", "weight_kg", "pressure_mmhg"}
                assert not reading & set(ev["data"]), ev

    run(go())


def test_refused_connects_past_the_retries_then_the_device_comes_back(ble: Station) -> None:
    async def body(hal: AsyncClient) -> None:
        ble.control("ble_station", "refuse_connects", device="oximeter", count=10)
        err = await failure(hal, "spo2", address=OXIMETER)
        assert err.reason == "device_offline" and err.data["attempts"] == 4
        assert (await hal.call("device.status", {"device": "health0"}))["state"] == "online"
        ble.control("ble_station", "refuse_connects", device="oximeter", count=0)
        assert (await measure(hal, "spo2", address=OXIMETER))["spo2_percent"] == 97.0

    session(ble, body)


def test_link_dropped_mid_measurement_is_link_lost_and_reconnected(ble: Station) -> None:
    async def body(hal: AsyncClient) -> None:
        await measure(hal, "blood_pressure")
        await hal.subscribe("health.device")
        ble.control("ble_station", "drop_link", device="cuff", at="inflating")
        err = await failure(hal, "blood_pressure")
        assert err.reason == "link_lost" and err.data["address"] == CUFF
        # Reconnected on its own, so the next resident's measurement starts connected.
        await device_event(hal, CUFF, connected=True)
        events: list[dict[str, Any]] = []
        assert (await measure(hal, "blood_pressure", events))["systolic_mmhg"] == 120.0
        assert "connecting" not in [e["data"].get("stage") for e in events]
        assert ble.control("ble_station", "stats", device="cuff")["stats"]["drops"] == 1

    session(ble, body)


def test_not_authorized_until_paired_with_the_headless_agent_then_forgotten(ble: Station) -> None:
    async def body(hal: AsyncClient) -> None:
        ble.control("ble_station", "require_pairing", device="scale")
        err = await failure(hal, "weight")
        assert err.reason == "not_paired" and err.data["address"] == SCALE
        paired = await hal.call("health.pair", {"address": SCALE})
        assert paired == {"address": SCALE, "name": "HAL Body Scale", "paired": True}
        status = ble.control("ble_station", "status")
        assert status["agents"] == ["NoInputNoOutput"]
        assert next(d for d in status["devices"] if d["device"] == "scale")["stats"]["pairings"] == 1
        assert (await measure(hal, "weight"))["weight_kg"] == 72.35
        devices = {d["address"]: d for d in (await hal.call("health.devices"))["devices"]}
        assert devices[SCALE]["paired"]
        assert await hal.call("health.forget", {"address": SCALE}) == {"address": SCALE, "forgotten": True}
        devices = {d["address"]: d for d in (await hal.call("health.devices"))["devices"]}
        assert not devices[SCALE]["paired"] and not devices[SCALE]["connected"]
        assert (await failure(hal, "weight")).reason == "not_paired"  # the bond is gone on both sides
        ble.control("ble_station", "require_pairing", device="scale", on=False)
        assert (await measure(hal, "weight"))["weight_kg"] == 72.35

    session(ble, body)


def test_malformed_special_and_implausible_readings_are_errors_with_a_reason(ble: Station) -> None:
    async def body(hal: AsyncClient) -> None:
        ble.control("ble_station", "malformed", device="cuff", hex="1e7800")
        err = await failure(hal, "blood_pressure")
        assert (err.reason, err.data["detail"]) == ("invalid_reading", "malformed")
        for special in ("NaN", "NRes"):
            ble.control("ble_station", "special", device="cuff", value=special)
            err = await failure(hal, "blood_pressure")
            assert (err.reason, err.data["special"]) == ("invalid_reading", special)
            assert err.data["field"] == "systolic"
        ble.control("ble_station", "next_reading", device="cuff", systolic=320, diastolic=80,
                    mean_arterial=160)
        err = await failure(hal, "blood_pressure")
        assert (err.reason, err.data["field"]) == ("invalid_reading", "systolic_mmhg")
        ble.control("ble_station", "special", device="oximeter", value="NaN")
        err = await failure(hal, "spo2", address=OXIMETER)
        assert (err.reason, err.data["special"]) == ("invalid_reading", "NaN")
        ble.control("ble_station", "special", device="scale", value="NaN")  # weight 0xFFFF: unsuccessful
        assert (await failure(hal, "weight")).reason == "unstable_weight"
        assert (await measure(hal, "blood_pressure"))["systolic_mmhg"] == 120.0  # and it serves on

    session(ble, body)


def test_cuff_error_and_no_finger(ble: Station) -> None:
    async def body(hal: AsyncClient) -> None:
        ble.control("ble_station", "cuff_error", device="cuff")
        err = await failure(hal, "blood_pressure")
        assert (err.reason, err.data["status"]) == ("cuff_error", ["cuff_too_loose"])
        ble.control("ble_station", "no_finger", device="oximeter")
        assert (await failure(hal, "spo2", address=OXIMETER)).reason == "no_finger"
        ble.control("ble_station", "no_finger", device="oximeter", on=False)
        ble.control("ble_station", "no_finger", device="berrymed")
        assert (await failure(hal, "spo2", address="BerryMed")).reason == "no_finger"
        ble.control("ble_station", "no_finger", device="berrymed", on=False)
        assert (await measure(hal, "spo2", address="BerryMed"))["spo2_percent"] == 98.0

    session(ble, body)


def test_a_cuff_nobody_starts_times_out_then_measures_when_started(ble: Station) -> None:
    async def body(hal: AsyncClient) -> None:
        ble.control("ble_station", "auto_start", device="cuff", on=False)
        try:
            err = await failure(hal, "blood_pressure", timeout_ms=300)
            assert err.reason == "timeout"
            # The resident presses start once the kiosk says "measuring".
            measuring = asyncio.Event()

            def progress(ev: dict[str, Any]) -> None:
                if ev["data"].get("stage") == "measuring":
                    measuring.set()

            call = asyncio.ensure_future(hal.call("health.measure", {"kind": "blood_pressure"},
                                                  on_progress=progress))
            await measuring.wait()
            ble.control("ble_station", "press_start", device="cuff")
            assert (await call)["systolic_mmhg"] == 120.0
        finally:
            ble.control("ble_station", "auto_start", device="cuff", on=True)
        check = await hal.call("device.selftest", {"device": "health0", "level": "internal"})
        assert check["passed"]

    session(ble, body)


def test_no_reading_reaches_the_daemon_log(ble: Station) -> None:
    ble.control("ble_station", "next_reading", device="cuff", systolic=173, diastolic=109, mean_arterial=130,
                pulse_rate=97)

    async def body(hal: AsyncClient) -> None:
        assert (await measure(hal, "blood_pressure"))["systolic_mmhg"] == 173.0

    session(ble, body)
    log = ble.log()
    assert not re.search(r"\b(173|109)\b", log)


def test_two_devices_measure_at_once_but_one_device_serves_one_request(ble: Station) -> None:
    async def body(hal: AsyncClient) -> None:
        bp, spo2 = await asyncio.gather(measure(hal, "blood_pressure"),
                                        measure(hal, "spo2", address=OXIMETER))
        assert bp["systolic_mmhg"] == 120.0 and spo2["spo2_percent"] == 97.0
        measuring = asyncio.Event()
        first = asyncio.ensure_future(hal.call(
            "health.measure", {"kind": "blood_pressure"},
            on_progress=lambda ev: ev["data"].get("stage") == "measuring" and measuring.set()))
        await measuring.wait()
        assert (await failure(hal, "blood_pressure")).reason == "device_busy"
        assert (await first)["systolic_mmhg"] == 120.0

    session(ble, body)


def test_a_bond_outlives_a_daemon_restart(ble: Station) -> None:
    ble.control("ble_station", "require_pairing", device="cuff")
    try:
        async def pair(hal: AsyncClient) -> None:
            await hal.call("health.pair", {"address": CUFF})

        session(ble, pair)
        ble.restart_daemon()

        async def body(hal: AsyncClient) -> None:
            await ble.until_online(hal, "health0")
            devices = {d["address"]: d for d in (await hal.call("health.devices"))["devices"]}
            assert devices[CUFF]["paired"]
            assert (await measure(hal, "blood_pressure"))["systolic_mmhg"] == 120.0
            await hal.call("health.forget", {"address": CUFF})

        session(ble, body)
    finally:
        ble.control("ble_station", "require_pairing", device="cuff", on=False)


def test_bluetoothd_restart_takes_the_adapter_down_and_back(ble: Station) -> None:
    async def body(hal: AsyncClient) -> None:
        await measure(hal, "blood_pressure")
        await hal.subscribe("health.status")
        ble.control("ble_station", "restart_bluez")
        await hal.next_event(lambda e: e["topic"] == "health.status" and e["data"]["state"] != "online",
                             timeout_s=60)
        await ble.until_online(hal, "health0")
        assert ble.control("ble_station", "status")["agents"] == ["NoInputNoOutput"]  # registered anew
        assert (await measure(hal, "blood_pressure"))["systolic_mmhg"] == 120.0

    session(ble, body)
