"""Every simulated fault: overload, negative, noise, silence, unplug, wrong protocol, bad records."""

from __future__ import annotations

import asyncio

import pytest

from tests.scale_fixtures import run, scale_rig


@pytest.mark.parametrize("protocol", ["mettler_8217", "mt_sics", "and", "cas"])
def test_overload_fails_the_read_with_overload(tmp_path, protocol):
    async def go():
        async with scale_rig(tmp_path, protocol) as rig:
            await rig.online()
            await rig.station.control("overload", {})
            assert (await rig.error("read")).reason == "overload"
    run(go())


def test_nobody_on_the_scale_times_out(tmp_path):
    async def go():
        async with scale_rig(tmp_path, "and") as rig:
            await rig.online()
            err = await rig.error("read", {"timeout_ms": 400})
            assert err.reason == "timeout" and err.code == -32003
    run(go())


@pytest.mark.parametrize("protocol", ["mettler_8217", "mt_sics", "cas"])
def test_a_weight_that_never_settles_is_unstable_weight(tmp_path, protocol):
    async def go():
        async with scale_rig(tmp_path, protocol) as rig:
            await rig.online()
            rig.sim.step_on(70.0, settle_s=60)
            err = await rig.error("read", {"timeout_ms": 600})
            assert err.reason == "unstable_weight" and err.code == -32005
    run(go())


def test_unstable_read_returns_the_moving_weight_at_once(tmp_path):
    async def go():
        async with scale_rig(tmp_path, "mt_sics") as rig:
            await rig.online()
            rig.sim.step_on(70.0, settle_s=60)
            result = await rig.read(stable=False)
            assert result["stable"] is False and 0 < result["weight_kg"] < 200
    run(go())


@pytest.mark.parametrize("protocol", ["mettler_8217", "mt_sics", "and"])
def test_below_zero_is_invalid_reading(tmp_path, protocol):
    async def go():
        async with scale_rig(tmp_path, protocol) as rig:
            await rig.online()
            rig.sim.step_on(10.0, settle_s=0)
            await rig.call("tare", {})
            rig.sim.step_off(settle_s=0)
            err = await rig.error("read", {"timeout_ms": 500})
            assert err.reason == "invalid_reading"
    run(go())


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("protocol", ["and", "cas", "mettler_8217", "mt_sics"])
def test_noise_bytes_on_the_line_do_not_spoil_reads(tmp_path, protocol, seed):
    """A burst of random bytes, then random bytes before every frame (seeded: a failure replays)."""
    async def go():
        async with scale_rig(tmp_path, protocol) as rig:
            await rig.online()
            await rig.station.control("noise", {"seed": seed, "size": 300})
            await rig.station.control("noise", {"per_frame": 5})
            rig.sim.step_on(55.5, settle_s=0.3)
            assert (await rig.read())["weight_kg"] == 55.5
            assert rig.driver.link is not None and rig.driver.link.noise_bytes > 0
            assert str(rig.driver.state) == "online"
    run(go())


@pytest.mark.parametrize("protocol", ["mt_sics", "cas"])
def test_a_silent_scale_goes_offline_and_comes_back(tmp_path, protocol):
    async def go():
        async with scale_rig(tmp_path, protocol) as rig:
            await rig.online()
            await rig.station.control("silence", {"on": True})
            await rig.state("no_device", "starting")
            err = await rig.error("read")
            assert err.reason == "device_offline"
            await rig.station.control("silence", {"on": False})
            await rig.online()
            rig.sim.step_on(42.0, settle_s=0.1)
            assert (await rig.read())["weight_kg"] == 42.0
    run(go())


def test_silence_during_a_read_is_link_lost(tmp_path):
    async def go():
        async with scale_rig(tmp_path, "and") as rig:
            await rig.online()
            rig.sim.step_on(70.0, settle_s=60)
            reading = asyncio.ensure_future(rig.call("read", {}))
            await rig.until(lambda: str(rig.driver.state) == "busy", "busy")
            await rig.station.control("silence", {"on": True})
            with pytest.raises(Exception) as info:
                await reading
            assert getattr(info.value, "reason", None) == "link_lost"
    run(go())


@pytest.mark.parametrize("protocol", ["mettler_8217", "cas", "tanita_wb3000"])
def test_unplug_fails_the_read_in_flight_and_replug_recovers(tmp_path, protocol):
    async def go():
        async with scale_rig(tmp_path, protocol) as rig:
            await rig.online()
            rig.sim.step_on(70.0, settle_s=60)
            reading = asyncio.ensure_future(rig.call("read", {}))
            await rig.until(lambda: str(rig.driver.state) == "busy", "busy")
            await rig.station.control("unplug", {})
            with pytest.raises(Exception) as info:
                await reading
            assert getattr(info.value, "reason", None) == "link_lost"
            await rig.state("no_device", "hardware_error", "starting")
            await rig.station.control("plug", {})
            await rig.online()
            rig.sim.step_on(71.0, height_m=1.7, settle_s=0.1)
            assert (await rig.read())["weight_kg"] == 71.0
    run(go())


def test_wrong_protocol_configured_never_comes_online(tmp_path):
    async def go():
        async with scale_rig(tmp_path, "mettler_8217", driver_protocol="mt_sics") as rig:
            await rig.until(lambda: rig.driver.details.get("error") == "timeout", "connect failure")
            assert str(rig.driver.state) != "online"
    run(go())


def test_station_record_with_a_bad_checksum_is_not_a_weight(tmp_path):
    async def go():
        async with scale_rig(tmp_path, "tanita_wb3000") as rig:
            await rig.online()
            await rig.station.control("corrupt_checksum", {"on": True})
            reading = asyncio.ensure_future(rig.call("read", {"timeout_ms": 1500}))
            await rig.until(lambda: str(rig.driver.state) == "busy", "busy")
            rig.sim.step_on(65.3, height_m=1.705, settle_s=0.1)
            with pytest.raises(Exception) as info:
                await reading
            assert getattr(info.value, "reason", None) == "timeout"
            assert rig.driver.link is not None and rig.driver.link.noise_bytes > 0
    run(go())


def test_station_checksum_check_can_be_relaxed(tmp_path):
    async def go():
        async with scale_rig(tmp_path, "tanita_wb3000", verify_checksum=False) as rig:
            await rig.online()
            await rig.station.control("corrupt_checksum", {"on": True})
            reading = asyncio.ensure_future(rig.call("read", {}))
            await rig.until(lambda: str(rig.driver.state) == "busy", "busy")
            rig.sim.step_on(65.3, height_m=1.705, settle_s=0.1)
            assert (await reading)["weight_kg"] == 65.3
    run(go())


def test_cancelled_read_stops_polling_and_frees_the_scale(tmp_path):
    async def go():
        async with scale_rig(tmp_path, "mt_sics", idle_poll_ms=60000) as rig:
            await rig.online()
            rig.sim.step_on(70.0, settle_s=60)
            reading = asyncio.ensure_future(rig.call("read", {}))
            await rig.until(lambda: str(rig.driver.state) == "busy", "busy")
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            await rig.online()
            seen = rig.sim.commands_seen
            # the next read is served: nothing holds the link
            rig.sim.step_on(70.0, settle_s=0)
            assert (await rig.read())["weight_kg"] == 70.0
            assert rig.sim.commands_seen > seen
    run(go())
