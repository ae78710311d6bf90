"""`halctl measure weight` uses the station's serial scale when one is configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from conftest import run
from harness import ROOT, Station


def test_measure_weight_on_the_serial_scale_with_bmi(station: Callable[..., Station]) -> None:
    st = station(only={"serial_scale"})

    async def ready() -> None:
        async with st.client() as hal:
            await st.until_online(hal, "scale0", "hws0")

    run(ready())
    st.control("serial_scale", "step_on", device="scale0", kg=64.0, settle_s=0.2)
    cmd = [sys.executable, "-m", "halsvc.cli", "measure", "weight", "--socket", str(st.socket)]
    out = subprocess.run([*cmd, "--height", "1.60", "--json"], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env={**os.environ})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["weight_kg"] == 64.0 and result["bmi"] == 25.0
    out = subprocess.run([*cmd, "--device", "scale0"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and "weight 64.00 kg" in out.stdout
