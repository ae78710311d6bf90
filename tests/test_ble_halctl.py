"""halctl for BLE health devices against the simulated station: `measure bp|spo2|body|weight`
(weight falls back to the BLE scale when no serial scale is configured) with live progress on
stderr, `--json`, and `health devices|pair`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from harness import ROOT, Station, online
from test_ble_daemon import SCALE, STATION


@pytest.fixture(scope="module")
def ble() -> Iterator[Station]:
    with online("health0", **STATION) as st:
        yield st


def halctl(st: Station, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "halsvc.cli", *args, "--socket", str(st.socket)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_measure_bp_shows_the_cuff_inflating_then_the_reading(ble: Station) -> None:
    out = halctl(ble, "measure", "bp")
    assert out.returncode == 0, out.stderr
    assert "blood pressure 120/80 mmHg (mean 93), pulse 72 bpm" in out.stdout
    assert "on HAL BP Cuff (battery 90 %)" in out.stdout
    assert "cuff 180 mmHg" in out.stderr and "connected to HAL BP Cuff" in out.stderr
    out = halctl(ble, "measure", "bp", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["systolic_mmhg"] == 120.0 and not out.stderr


def test_measure_spo2_body_and_weight_on_the_ble_scale(ble: Station) -> None:
    out = halctl(ble, "measure", "spo2", "--address", "BerryMed")
    assert out.returncode == 0 and "SpO2 98 %, pulse 68 bpm" in out.stdout and "SpO2 98 %" in out.stderr
    out = halctl(ble, "measure", "body", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["body_fat_percent"] == 22.5
    out = halctl(ble, "measure", "weight")
    assert out.returncode == 0, out.stderr
    assert "weight 72.35 kg, height 1.72 m, BMI 24.4" in out.stdout


def test_a_failed_measurement_exits_1_with_the_reason(ble: Station) -> None:
    ble.control("ble_station", "cuff_error", device="cuff")
    out = halctl(ble, "measure", "bp", "--json")
    assert out.returncode == 1 and json.loads(out.stdout)["error"]["data"]["reason"] == "cuff_error"
    assert "(cuff_error)" in out.stderr


def test_health_devices_and_pair(ble: Station) -> None:
    out = halctl(ble, "health", "pair", SCALE)
    assert out.returncode == 0 and f"paired with HAL Body Scale ({SCALE})" in out.stdout
    out = halctl(ble, "health", "devices")
    assert out.returncode == 0
    row = next(line for line in out.stdout.splitlines() if line.startswith(SCALE))
    assert "weight,body_composition" in row and "yes" in row
