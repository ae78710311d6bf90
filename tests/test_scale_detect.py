"""Auto-detection picks the right protocol for each simulated scale, using only safe probes."""

from __future__ import annotations

import pytest

from tests.scale_fixtures import run, scale_rig


@pytest.mark.parametrize(("protocol", "mode"), [
    ("mettler_8217", "polled"),
    ("mt_sics", "polled"),
    ("and", "polled"),
    ("cas", "continuous"),
])
def test_auto_detection_picks_the_simulated_protocol(tmp_path, protocol, mode):
    async def go():
        async with scale_rig(tmp_path, protocol, driver_protocol="auto") as rig:
            await rig.online()
            assert rig.driver.details["protocol"] == protocol
            assert rig.driver.details["mode"] == mode and rig.driver.details["detected"] is True
            # Probes are queries only: nothing was zeroed or tared while finding out.
            assert rig.sim.zero_offset == 0.0 and rig.sim.tare_kg == 0.0
            rig.sim.step_on(70.0, settle_s=0.2)
            assert (await rig.read())["weight_kg"] == 70.0
    run(go())


def test_auto_detection_of_a_streaming_and_scale(tmp_path):
    async def go():
        async with scale_rig(tmp_path, "and", sim={"mode": "continuous"}, driver_protocol="auto") as rig:
            await rig.online()
            assert (rig.driver.details["protocol"], rig.driver.details["mode"]) == ("and", "continuous")
    run(go())


def test_auto_detection_hears_a_station_record(tmp_path):
    async def go():
        # A station says nothing until someone is measured: detection listens long enough to hear
        # the record of the person stepping on as the port opens.
        async with scale_rig(tmp_path, "tanita_wb3000", driver_protocol="auto", detect_listen_ms=4000) as rig:
            await rig.state("starting")
            rig.sim.step_on(65.3, height_m=1.705, settle_s=0.5)
            await rig.online()
            assert rig.driver.details["protocol"] == "tanita_wb3000"
            assert rig.driver.details["mode"] == "records"
    run(go())


def test_nothing_recognised_leaves_the_device_offline_and_retrying(tmp_path):
    async def go():
        async with scale_rig(tmp_path, "tanita_wb3000", driver_protocol="auto", detect_listen_ms=100,
                             detect_probe_ms=100) as rig:
            await rig.until(lambda: rig.driver.details.get("error") == "no_device", "no_device error")
            assert str(rig.driver.state) in ("no_device", "starting")
    run(go())


def test_candidates_limit_what_detection_tries(tmp_path):
    async def go():
        async with scale_rig(tmp_path, "mt_sics", driver_protocol="auto",
                             candidates=["and", "mt_sics"]) as rig:
            await rig.online()
            assert rig.driver.details["protocol"] == "mt_sics"
            # the 8217 echo probe was never sent: the MT-SICS scale saw no stray `Ehello` line
    run(go())
