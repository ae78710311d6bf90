"""`halctl print test | FILE.json` and `halctl printer status`, run as a process against the
daemon on the simulated station (the printer on its pty); what came out is read back from the
simulator's rendered jobs."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from conftest import run
from harness import ROOT, Station

PART, DEV = "escpos_printer", "printer0"


def halctl(st: Station, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "halsvc.cli", *args, "--socket", str(st.socket)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, input=stdin)


def sim_jobs(st: Station) -> list[dict[str, Any]]:
    return list(st.control(PART, "jobs")["jobs"])


def ready(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
    run(go())


def test_print_test_prints_the_test_receipt_and_its_job_id_repeats_without_printing(
        station: Callable[..., Station]) -> None:
    st = station(only={PART})
    ready(st)
    out = halctl(st, "print", "test")
    assert out.returncode == 0, out.stderr
    (job_line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("job ")]
    job_id = job_line.split()[1].rstrip(":")
    assert job_id.startswith("halctl-") and job_line.endswith("printed")
    assert f"job {job_id}" in out.stderr and "sending" in out.stderr  # the id before it prints
    (job,) = sim_jobs(st)
    assert job["status"] == "complete" and {"type": "qr", "data": "HALSVC-TEST"} in job["symbols"]
    assert job["raster_slices"] >= 1 and job["text"] == []  # Vietnamese as a raster
    assert pathlib.Path(job["png"]).is_file()

    again = halctl(st, "print", "test", "--job-id", job_id, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"job_id": job_id, "status": "printed", "reason": None,
                                        "repeated": True}
    assert len(sim_jobs(st)) == 1  # the same job id did not print twice

    fresh = halctl(st, "print", "test")
    assert fresh.returncode == 0 and job_id not in fresh.stdout  # a new id each time
    assert len(sim_jobs(st)) == 2


def test_print_file_takes_a_document_a_template_or_stdin(station: Callable[..., Station],
                                                         tmp_path: pathlib.Path) -> None:
    st = station(only={PART})
    ready(st)
    document = tmp_path / "receipt.json"
    document.write_text(json.dumps({"blocks": [
        {"type": "text", "text": "Biên nhận", "bold": True},
        {"type": "columns", "label": "Tổng cộng", "value": "150.000 ₫"},
        {"type": "qr", "data": "FILE-QR"}]}, ensure_ascii=False), encoding="utf-8")
    template = tmp_path / "slip.json"
    template.write_text(json.dumps({"template": "health_slip", "data": {"spo2": 97, "weight_kg": 62.5,
                                                                        "height_cm": 165}}))
    out = halctl(st, "print", str(document), "--job-id", "file-1", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "printed"
    out = halctl(st, "print", str(template), "--job-id", "file-2")
    assert out.returncode == 0 and "job file-2: printed" in out.stdout, out.stderr
    out = halctl(st, "print", "-", "--job-id", "file-3", stdin=json.dumps([{"type": "text", "text": "ạ"}]))
    assert out.returncode == 0, out.stderr
    first, slip, bare = sim_jobs(st)
    assert {"type": "qr", "data": "FILE-QR"} in first["symbols"]
    assert slip["symbols"] == [] and slip["lines"] > 3
    assert bare["status"] == "complete"

    # Bad input: a clear message and the right exit code, nothing printed.
    missing = halctl(st, "print", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    notjson = tmp_path / "bad.json"
    notjson.write_text("{blocks")
    out = halctl(st, "print", str(notjson))
    assert out.returncode == 2 and "not JSON" in out.stderr
    badblock = tmp_path / "badblock.json"
    badblock.write_text(json.dumps({"blocks": [{"type": "text", "text": "x", "size": 9}]}))
    out = halctl(st, "print", str(badblock), "--json")
    assert out.returncode == 1
    err = json.loads(out.stdout.splitlines()[0])["error"]
    assert err["data"]["reason"] == "invalid_params"
    assert err["data"]["field"] == "params.document.blocks[0].size", err
    assert len(sim_jobs(st)) == 3


def test_printer_status_shows_paper_cover_cutter_and_the_last_job(station: Callable[..., Station]) -> None:
    st = station(only={PART})
    ready(st)
    out = halctl(st, "printer", "status", "--json")
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert (s["device"], s["state"], s["online"], s["paper"], s["cover"], s["cutter"]) == \
        (DEV, "online", True, "ok", "closed", "ok")
    assert s["error"] is None and s["last_job"] is None and s["paper_mm"] == 80
    assert halctl(st, "print", "test", "--job-id", "st-1").returncode == 0
    text = halctl(st, "printer", "status")
    assert text.returncode == 0, text.stderr
    assert "st-1 printed" in text.stdout and "closed" in text.stdout and "80 mm" in text.stdout

    st.control(PART, "cover_open")
    out = halctl(st, "printer", "status", "--json")  # asked afresh: the cover is open now
    assert out.returncode == 1
    s = json.loads(out.stdout)
    assert (s["cover"], s["error"], s["state"]) == ("open", "cover_open", "user_error")
    failed = halctl(st, "print", "test", "--job-id", "st-2")
    assert failed.returncode == 1 and "failed (cover_open)" in failed.stdout
    st.control(PART, "cover_close")
    st.control(PART, "cutter_error")
    s = json.loads(halctl(st, "printer", "status", "--json").stdout)
    assert (s["cutter"], s["error"]) == ("error", "cutter_error")
    assert s["last_job"]["job_id"] == "st-1"  # st-2 never reached the printer: not a job
    st.control(PART, "clear_error")
    s = json.loads(halctl(st, "printer", "status", "--json").stdout)
    assert (s["cutter"], s["error"], s["state"]) == ("ok", None, "online")
