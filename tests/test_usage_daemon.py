"""Usage figures through the real daemon: a scripted day of simulated use on the station (the
clock moved by a test-only clock file), `diag.usage` and `halctl usage`, the OpenMetrics file,
and the figures surviving a daemon restart."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from conftest import run
from harness import ROOT, Station
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from halsvc.client import AsyncClient, RpcError
from halsvc.usage import TEST_CLOCK_ENV

HALCTL = [sys.executable, "-m", "halsvc.cli"]


@pytest.fixture
def day_station(tmp_path: pathlib.Path) -> Station:
    st = Station(only={"gpio_panel"}, config={"usage": {
        "metrics_file": str(tmp_path / "textfile" / "halsvc.prom"), "flush_s": 3600,
        "timezone": "Asia/Ho_Chi_Minh"}})
    st.start(daemon=False)
    st.env[TEST_CLOCK_ENV] = str(tmp_path / "clock")
    try:
        yield st
    finally:
        st.stop()


def set_clock(st: Station, when: str) -> None:
    pathlib.Path(st.env[TEST_CLOCK_ENV]).write_text(when)


async def scripted_day(st: Station, hal: AsyncClient) -> None:
    set_clock(st, "2026-12-03T08:05:00+07:00")  # opening: three visitors get a beep, a light
    for _ in range(3):
        await hal.call("buzzer.beep", {"count": 1, "on_ms": 10})
    await hal.call("indicator.set", {"name": "card", "pattern": "on"})
    await hal.call("hal.ping")  # not a device operation: not counted
    set_clock(st, "2026-12-03T12:40:00+07:00")  # noon: a front-end bug and a bad light name
    with pytest.raises(RpcError):
        await hal.call("indicator.set", {"name": "nope", "pattern": "on"})
    with pytest.raises(RpcError):
        await hal.call("buzzer.beep", {"count": 0})
    set_clock(st, "2026-12-03T17:55:00+07:00")
    await hal.call("buzzer.beep", {"count": 1, "on_ms": 10})
    set_clock(st, "2026-12-04T09:10:00+07:00")  # the next morning
    await hal.call("buzzer.beep", {"count": 1, "on_ms": 10})


def halctl(st: Station, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HALCTL, *args, "--socket", str(st.socket)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_scripted_day_is_counted_by_hour_day_and_kind_and_survives_a_restart(
        day_station: Station, tmp_path: pathlib.Path) -> None:
    st = day_station
    set_clock(st, "2026-12-03T07:00:00+07:00")
    st.start_daemon()

    async def day() -> None:
        async with st.client() as hal:
            await st.until_online(hal, "panel0")
            await scripted_day(st, hal)

    run(day())

    async def usage(**params: str) -> dict[str, object]:
        async with st.client() as hal:
            return await hal.call("diag.usage", params)

    def check(by_hour: dict[str, object], by_day: dict[str, object], by_kind: dict[str, object]) -> None:
        hours = {(r["key"], r["method"]): r for r in by_hour["rows"]}  # type: ignore[attr-defined,index]
        assert hours[("08", "buzzer.beep")]["uses"] == 3 and hours[("08", "buzzer.beep")]["ok"] == 3
        assert hours[("08", "indicator.set")]["uses"] == 1
        assert hours[("12", "indicator.set")]["failures"] == {"device_not_found": 1}
        assert hours[("12", "buzzer.beep")]["failures"] == {"invalid_params": 1}
        assert hours[("17", "buzzer.beep")]["uses"] == 1 and hours[("09", "buzzer.beep")]["uses"] == 1
        assert not any(r["method"].startswith(("hal.", "device.", "events.", "diag."))  # type: ignore[index]
                       for r in by_hour["rows"])  # type: ignore[attr-defined]
        days = {(r["key"], r["method"]): r["uses"] for r in by_day["rows"]}  # type: ignore[attr-defined,index]
        assert days == {("2026-12-03", "buzzer.beep"): 5, ("2026-12-03", "indicator.set"): 2,
                        ("2026-12-04", "buzzer.beep"): 1}
        (gpio,) = by_kind["rows"]  # type: ignore[misc]
        assert (gpio["kind"], gpio["uses"], gpio["ok"], gpio["failed"]) == ("gpio", 8, 6, 2)
        assert gpio["median_ms"] is not None and gpio["p90_ms"] >= gpio["median_ms"]

    check(run(usage(by="hour")), run(usage(by="day")), run(usage(by="kind")))
    since = run(usage(by="day", since="2026-12-04"))
    assert [(r["key"], r["uses"]) for r in since["rows"]] == [("2026-12-04", 1)]  # type: ignore[index]

    out = halctl(st, "usage", "--by", "hour", "--since", "2026-12-03")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split()[:3] == ["08", "gpio", "buzzer.beep"] and line.split()[3] == "3" for line in lines)
    chart = {line.split()[0]: line for line in lines[lines.index("uses by hour") + 1:]}
    assert sorted(chart) == [f"{h:02d}" for h in range(24)]
    assert chart["08"].count("█") > chart["17"].count("█") > 0 and chart["08"].endswith(" 4")
    assert chart["03"].endswith(" 0") and "█" not in chart["03"]
    assert "beneficiaries" not in out.stdout  # off by default

    st.restart_daemon()  # SIGTERM: saved at shutdown, loaded at start
    check(run(usage(by="hour")), run(usage(by="day")), run(usage(by="kind")))
    st.stop_daemon()

    text = (tmp_path / "textfile" / "halsvc.prom").read_text()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ops = {(s.labels["method"], s.labels["result"]): s.value for s in families["halsvc_operations"].samples}
    assert ops[("buzzer.beep", "ok")] == 5 and ops[("buzzer.beep", "error")] == 1
    assert ops[("indicator.set", "error")] == 1
    assert "halsvc_beneficiary_reads" not in families
    assert not list((tmp_path / "textfile").glob(".*"))  # atomic: no temporary left
    assert "usage_save" not in st.log()
