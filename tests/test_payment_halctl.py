"""`halctl pay` and `halctl payment status|journal|reconcile|reverse|vietqr`, run as processes
against the daemon on the simulated station's payment terminal."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

from conftest import run
from harness import ROOT, Station
from PIL import Image

PART, DEV = "payment_terminal", "payment0"


def halctl(st: Station, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "halsvc.cli", *args, "--socket", str(st.socket)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


def ready(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
    run(go())


def test_halctl_pay_shows_the_prompts_and_its_key_repeats_without_charging(
        station: Callable[..., Station], tmp_path: pathlib.Path) -> None:
    st = station(only={PART})
    ready(st)
    out = halctl(st, "pay", "150.000", "--reference", "HD-1")
    assert out.returncode == 0, out.stderr
    key = out.stderr.splitlines()[0].split()[1]
    assert key.startswith("halctl-")
    assert "terminal: PRESENT CARD" in out.stderr and "terminal: ENTER PIN" in out.stderr
    assert out.stdout.startswith(f"key {key}: approved 150.000 ₫, terminal transaction P")
    again = halctl(st, "pay", "150000", "--reference", "HD-1", "--key", key, "--json")
    assert again.returncode == 0, again.stderr
    r = json.loads(again.stdout)
    assert r["status"] == "approved" and r["repeated"] is True and r["idempotency_key"] == key
    charges = [c for c in st.control(PART, "ledger")["records"] if c["kind"] == "payment"]
    assert len(charges) == 1

    st.control(PART, "scenario", name="decline")
    declined = halctl(st, "pay", "20000", "--reference", "HD-2", "--key", "k-decline")
    assert declined.returncode == 1 and "declined 0 ₫" in declined.stdout and "Refusal" in declined.stdout
    bad = halctl(st, "pay", "-5", "--reference", "HD-3")
    assert bad.returncode == 2 and "whole number of VND" in bad.stderr

    journal = halctl(st, "payment", "journal")
    assert journal.returncode == 0, journal.stderr
    assert key in journal.stdout and "pending→approved" in journal.stdout and "k-decline" in journal.stdout
    assert "0 unsettled" in journal.stdout
    status = halctl(st, "payment", "status")
    assert status.returncode == 0 and "link" in status.stdout and "up" in status.stdout
    one = halctl(st, "payment", "status", "--key", key)
    assert one.returncode == 0 and "approved 150.000 ₫" in one.stdout

    rec = halctl(st, "payment", "reconcile")
    assert rec.returncode == 0, rec.stderr
    assert "Debit" in rec.stdout and "totals match" in rec.stdout
    rev = halctl(st, "payment", "reverse", "--key", key)
    assert rev.returncode == 0 and "reversed" in rev.stdout

    png = tmp_path / "qr.png"
    qr = halctl(st, "payment", "vietqr", "--bin", "970436", "--account", "0011004321", "--amount", "150000",
                "--bill-number", "HD-1", "--png", str(png))
    assert qr.returncode == 0, qr.stderr
    assert qr.stdout.startswith("000201010212") and "5406150000" in qr.stdout
    with Image.open(png) as img:
        assert img.format == "PNG"
    unknown = halctl(st, "payment", "status", "--key", "nobody")
    assert unknown.returncode == 1 and "not_found" in unknown.stderr
