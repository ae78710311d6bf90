"""halctl selftest (progress, summary table, exit code with a printer fault injected) and
halctl watch (the device table and the event stream, live) on the simulated station."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from harness import ROOT, Station, online

HALCTL = [sys.executable, "-m", "halsvc.cli"]


@pytest.fixture(scope="module")
def station() -> Iterator[Station]:
    with online(only={"gpio_panel", "escpos_printer", "payment_terminal"}) as st:
        yield st


def halctl(st: Station, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HALCTL, *args, "--socket", str(st.socket)], capture_output=True, text=True,
                          timeout=180, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    return {line.split()[0]: line.split() for line in lines[2:] if line.strip()}


def test_selftest_every_device_with_progress_and_a_summary(station: Station) -> None:
    out = halctl(station, "selftest")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0].split() == ["DEVICE", "KIND", "LEVEL", "RESULT", "DETAILS"]
    table = rows(out.stdout)
    assert {"panel0", "printer0", "payment0"} <= set(table)
    assert all(r[3] == "passed" and r[2] == "internal" for r in table.values())
    assert "[1/" in out.stderr and "started" in out.stderr

    external = halctl(station, "selftest", "--level", "external", "--json")
    results = {r["device"]: r for r in json.loads(external.stdout)}
    assert results["payment0"]["outcome"] == "skipped"  # the terminal has no external test
    assert results["printer0"]["outcome"] == "passed"
    assert any(c["name"] == "test_page" for c in results["printer0"]["checks"])
    assert external.returncode == 0


def test_selftest_fails_with_the_printer_cover_open(station: Station) -> None:
    station.control("escpos_printer", "cover_open")
    try:
        out = halctl(station, "selftest", "printer0")
    finally:
        station.control("escpos_printer", "cover_close")
    assert out.returncode == 1
    (row,) = rows(out.stdout).values()
    assert row[0] == "printer0" and row[3] in ("FAILED", "ERROR")
    missing = halctl(station, "selftest", "nosuch0")
    assert missing.returncode == 1 and "device_not_found" in missing.stderr


def test_watch_once_shows_every_device(station: Station) -> None:
    out = halctl(station, "watch", "--once")
    assert out.returncode == 0, out.stderr
    assert "\x1b[" not in out.stdout  # not a terminal: no redraw codes
    for dev in ("panel0", "printer0", "payment0"):
        assert dev in out.stdout
    assert "no events yet" in out.stdout


def test_watch_follows_state_and_events(station: Station) -> None:
    proc = subprocess.Popen([*HALCTL, "watch", "--count", "2", "--plain", "--socket", str(station.socket)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        first = []
        for line in proc.stdout:  # the first frame is drawn once subscribed
            if line.startswith("-" * 40):
                break
            first.append(line)
        assert any("panel0" in line for line in first)
        with station.sync_client() as hal:  # each light change is a gpio.status event
            hal.call("indicator.set", {"name": "card", "pattern": "on"})
            hal.call("indicator.set", {"name": "card", "pattern": "off"})
        try:
            rest, _err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"watch did not see 2 events: {proc.communicate()}; first frame {first}; "
                                 f"{station.log()[-2000:]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    last = rest.split("-" * 40)[-2]
    assert "last 2 event(s)" in last and last.count("gpio.status panel0") == 2
    assert "card=off" in last  # the device table follows the status events
