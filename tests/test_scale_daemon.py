"""The serial scales end to end: the simulated station's scales on ptys, the daemon as a real
process, and the RPC. scale0 is a polled Mettler Toledo 8217 (7E1 carried in bit 7 on the pty),
hws0 a Tanita WB-3000 height-weight station that sends one record per person.

Every wait is on an event (a status change, a progress event, an answer); the scale's own
timings come from the config below, not from sleeps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import run
from harness import NEEDS_SETPRIV, Station

from halsvc.client import AsyncClient, RpcError

# Quicker link checks than a kiosk needs, so a silent scale is noticed within a test's patience.
FAST = {"devices": {"scale0": {"answer_timeout_ms": 300, "idle_poll_ms": 300, "progress_ms": 600}}}


def _start(station: Callable[..., Station], **config: Any) -> Station:
    return station(only={"serial_scale"}, config={**FAST, **config})


async def _state(hal: AsyncClient, device: str, *states: str) -> dict[str, Any]:
    ev = await hal.next_event(lambda e: e["topic"] == "scale.status" and e["device"] == device
                              and e["data"]["state"] in states, timeout_s=60)
    return dict(ev["data"])


async def _busy(hal: AsyncClient, device: str) -> None:
    await _state(hal, device, "busy")


def test_scale_read_on_the_8217_and_the_station(station: Callable[..., Station]) -> None:
    st = _start(station)

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, "scale0", "hws0")
            status = await hal.call("device.status", {"device": "scale0"})
            assert (status["protocol"], status["mode"], status["tare"]) == ("mettler_8217", "polled", True)
            st.control("serial_scale", "step_on", device="scale0", kg=72.4, settle_s=0.3)
            assert await hal.call("scale.read", {"device": "scale0"}) == {
                "weight_kg": 72.4, "stable": True, "net": False}
            # BMI from the height the caller gives, when the scale measures none.
            got = await hal.call("scale.read", {"device": "scale0", "height_m": 1.8})
            assert got["height_m"] == 1.8 and got["bmi"] == round(72.4 / 1.8 ** 2, 1)

            # The station speaks once the person is measured: the read waits for that record.
            await hal.subscribe("scale.status")
            read = asyncio.ensure_future(hal.call("scale.read", {"device": "hws0"}))
            await _busy(hal, "hws0")
            st.control("serial_scale", "step_on", device="hws0", kg=65.3, height_m=1.705, settle_s=0.3)
            assert await read == {"weight_kg": 65.3, "stable": True, "net": False, "height_m": 1.705,
                                  "bmi": 22.5}
            # The station's own height wins over a height the caller guessed.
            read = asyncio.ensure_future(hal.call("scale.read", {"device": "hws0", "height_m": 1.5}))
            await _busy(hal, "hws0")
            st.control("serial_scale", "step_off", device="hws0", settle_s=0)
            st.control("serial_scale", "step_on", device="hws0", kg=80.0, height_m=1.8, settle_s=0.3)
            got = await read
            assert got["height_m"] == 1.8 and got["bmi"] == 24.7
            # The station has no zero or tare: the driver says so rather than sending something.
            with pytest.raises(RpcError) as info:
                await hal.call("scale.zero", {"device": "hws0"})
            assert info.value.reason == "not_supported"

    run(go())


def test_zero_and_tare_change_later_reads(station: Callable[..., Station]) -> None:
    st = _start(station)

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, "scale0")
            # Something left on the empty platform, zeroed away.
            st.control("serial_scale", "step_on", device="scale0", kg=0.8, settle_s=0)
            # The 8217 answers Z and T with nothing: done, but not confirmed by the scale.
            assert await hal.call("scale.zero", {"device": "scale0"}) == {"done": True, "confirmed": False}
            assert st.control("serial_scale", "status", device="scale0")["zero_offset_kg"] == 0.8
            st.control("serial_scale", "step_on", device="scale0", kg=70.8, settle_s=0.2)
            assert (await hal.call("scale.read", {"device": "scale0"}))["weight_kg"] == 70.0
            # A tare (a technician's operation) makes later readings net.
            st.control("serial_scale", "step_on", device="scale0", kg=10.8, settle_s=0)
            assert (await hal.call("scale.tare", {"device": "scale0"}))["done"] is True
            st.control("serial_scale", "step_on", device="scale0", kg=80.8, settle_s=0.2)
            got = await hal.call("scale.read", {"device": "scale0"})
            assert got["weight_kg"] == 70.0 and got["net"] is True
            methods = {m["name"]: m for m in (await hal.call("rpc.discover"))["methods"]}
            assert methods["scale.tare"]["x-role"] == "technician"
            assert methods["scale.zero"]["x-role"] in ("public", "kiosk")

    run(go())


@pytest.mark.skipif(NEEDS_SETPRIV, reason="needs root and setpriv")
def test_a_kiosk_may_zero_but_not_tare(station: Callable[..., Station]) -> None:
    st = _start(station, daemon={"socket_mode": "0666"})
    with st.sync_client() as hal:
        hal.call("events.subscribe", {"topics": ["scale.status"]})
        if hal.call("device.status", {"device": "scale0"})["state"] != "online":
            next(e for e in hal.events() if e["device"] == "scale0" and e["data"]["state"] == "online")
    status, zero, tare = st.call_as_nobody(("hal.status", {}), ("scale.zero", {"device": "scale0"}),
                                           ("scale.tare", {"device": "scale0"}))
    assert status["result"]["role"] == "kiosk"
    assert zero == {"result": {"done": True, "confirmed": False}}
    assert tare == {"error": [-32001, "permission_denied"]}


def test_live_weight_progress_goes_to_the_caller_only_and_is_throttled(
        station: Callable[..., Station]) -> None:
    st = _start(station)

    async def go() -> None:
        async with st.client() as hal, st.client() as spy:
            await st.until_online(hal, "scale0")
            await spy.subscribe("*")
            await hal.subscribe("scale.status")
            polls_before = st.control("serial_scale", "status", device="scale0")["commands_seen"]
            progress: list[dict[str, Any]] = []
            read = asyncio.ensure_future(hal.call("scale.read", {"device": "scale0"},
                                                  on_progress=progress.append))
            await _busy(hal, "scale0")
            st.control("serial_scale", "step_on", device="scale0", kg=68.2, settle_s=2.0)
            assert (await read)["weight_kg"] == 68.2
            polls = st.control("serial_scale", "status", device="scale0")["commands_seen"] - polls_before
            weights = [e["data"] for e in progress if e["topic"] == "scale.weight"]
            # While the weight moves the 8217 gives no number, only "moving": then the still weight.
            assert {"stable": False} in weights and weights[-1] == {"weight_kg": 68.2, "stable": True}
            assert all(e["device"] == "scale0" and e["request_id"] is not None for e in progress)
            # progress_ms 600 against a poll every 200 ms: fewer events than polls.
            assert len(weights) < polls
            # The other connection, subscribed to everything, saw the device busy and back online,
            # but never a weight.
            seen = [await spy.next_event(timeout_s=30)]
            while not (seen[-1]["topic"] == "scale.status" and seen[-1]["data"]["state"] == "online"):
                seen.append(await spy.next_event(timeout_s=30))
            assert "busy" in [e["data"].get("state") for e in seen]
            assert all(e["topic"] != "scale.weight" and "request_id" not in e for e in seen)
            assert "68.2" not in json.dumps(seen)

    run(go())


def test_unplug_fails_the_read_in_flight_and_plug_brings_the_scale_back(
        station: Callable[..., Station]) -> None:
    st = _start(station)

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, "scale0")
            await hal.subscribe("scale.status")
            st.control("serial_scale", "step_on", device="scale0", kg=70.0, settle_s=600)
            read = asyncio.ensure_future(hal.call("scale.read", {"device": "scale0", "timeout_ms": 60000}))
            await _busy(hal, "scale0")
            st.control("serial_scale", "unplug", device="scale0")
            with pytest.raises(RpcError) as info:
                await read
            assert info.value.reason == "link_lost" and info.value.code == -32004
            await _state(hal, "scale0", "no_device", "starting")
            with pytest.raises(RpcError) as info:
                await hal.call("scale.read", {"device": "scale0"})
            assert info.value.reason in ("device_offline", "link_lost")
            st.control("serial_scale", "plug", device="scale0")
            await _state(hal, "scale0", "online")
            st.control("serial_scale", "step_on", device="scale0", kg=58.0, settle_s=0.2)
            assert (await hal.call("scale.read", {"device": "scale0"}))["weight_kg"] == 58.0

    run(go())


def test_a_silent_scale_goes_offline_and_comes_back(station: Callable[..., Station]) -> None:
    st = _start(station)

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, "scale0")
            await hal.subscribe("scale.status")
            st.control("serial_scale", "silence", device="scale0", on=True)
            gone = await _state(hal, "scale0", "no_device")
            assert gone["state"] == "no_device"
            with pytest.raises(RpcError) as info:
                await hal.call("scale.read", {"device": "scale0"})
            assert info.value.reason == "device_offline"
            st.control("serial_scale", "silence", device="scale0", on=False)
            await _state(hal, "scale0", "online")
            st.control("serial_scale", "step_on", device="scale0", kg=49.9, settle_s=0.2)
            assert (await hal.call("scale.read", {"device": "scale0"}))["weight_kg"] == 49.9

    run(go())
