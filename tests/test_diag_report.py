"""`halctl report` after real use: a full card read (and a wrong CAN), receipts naming the
citizen and a payment whose bill reference carries the ID number, all through the simulated
station. The bundle must hold its sections and not one citizen value, in any spelling: as
read (NFC), decomposed (NFD), ASCII-folded, upper/lower case, JSON-escaped, dates in every
usual format. Beneficiary figures, on in this station's config, are there only as suppressed
aggregates."""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import run
from harness import ROOT, Station

from halsvc.client import RpcError
from simulators.cccd_card.document import DEFAULT_CITIZEN

CAN = DEFAULT_CITIZEN["id_number"][-6:]
HALCTL = [sys.executable, "-m", "halsvc.cli"]


def fold(text: str) -> str:
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def date_forms(iso: str) -> list[str]:
    y, m, d = iso.split("-")
    return [iso, f"{d}/{m}/{y}", f"{d}-{m}-{y}", f"{d}.{m}.{y}", f"{y}{m}{d}", f"{y[2:]}{m}{d}",
            f"{d}{m}{y}"]


def needles() -> list[str]:
    """Every citizen value worth searching for; the bundle is searched both as written and
    ASCII-folded, so one folded needle covers NFC, NFD, upper case and the MRZ spelling."""
    out: set[str] = set()
    for key, value in DEFAULT_CITIZEN.items():
        if not isinstance(value, str):
            continue
        if key.endswith("_date"):
            out.update(date_forms(value))
            continue
        for form in (value, unicodedata.normalize("NFD", value), json.dumps(value)[1:-1]):
            out.add(form)
        out.add(fold(value))
        words = value.replace(",", " ").split()
        out.update(fold(w) for w in words if len(fold(w)) >= 5)  # each longer word of a name or address
        out.update(fold(f"{a} {b}") for a, b in itertools.pairwise(words))  # and each pair
    out.update({CAN, DEFAULT_CITIZEN["id_number"][:9], "nguyen<<thi", "999999"})
    return sorted(s for s in out if len(fold(s)) >= 4)


def leaks(text: str) -> list[str]:
    folded = fold(text)
    return [n for n in needles() if n in text or fold(n) in folded]


@pytest.fixture(scope="module")
def used_station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Station, pathlib.Path]]:
    metrics = tmp_path_factory.mktemp("metrics") / "halsvc.prom"
    st = Station(only={"cccd_card", "escpos_printer", "payment_terminal"},
                 config={"daemon": {"log_level": "debug"},
                         "usage": {"beneficiaries": True, "metrics_file": str(metrics),
                                   "flush_s": 1}}).start()
    try:
        yield st, metrics
    finally:
        st.stop()


def plant(st: Station) -> dict[str, Any]:
    c = DEFAULT_CITIZEN

    async def go() -> dict[str, Any]:
        async with st.client() as hal:
            devices = [d["device"] for d in (await hal.call("device.list"))["devices"]]
            await st.until_online(hal, *(d for d in devices if d != "idcard0"))
            await st.until_online(hal, "idcard0", card_present=True)
            result = await hal.call("idcard.read", {"can": CAN})
            assert result["full_name"] == c["full_name"] and result["face"]["data"]
            with pytest.raises(RpcError):
                await hal.call("idcard.read", {"can": "999999"})
            blocks = [{"type": "text", "text": t} for t in (
                c["full_name"], f"CCCD {c['id_number']}", f"Ngày sinh {c['birth_date']}",
                c["place_of_residence"], unicodedata.normalize("NFD", c["full_name"]))]
            blocks.append({"type": "qr", "data": c["id_number"]})
            printed = await hal.call("printer.print", {"job_id": "cert-1", "document": {"blocks": blocks}})
            paid = await hal.call("payment.pay", {"amount": 30000, "idempotency_key": "fee-1",
                                                  "reference": f"LPHI-{c['id_number']}"})
            assert paid["status"] == "approved"
            return {"face": result["face"]["data"][:64], "printed": printed}

    return run(go())


def test_support_bundle_has_its_sections_and_no_citizen_data(
        used_station: tuple[Station, pathlib.Path], tmp_path: pathlib.Path) -> None:
    st, metrics = used_station
    planted = plant(st)
    bundle = tmp_path / "bundle.tar.gz"
    out = subprocess.run([*HALCTL, "report", "-o", str(bundle), "--socket", str(st.socket)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, **st.env, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(bundle) and oct(bundle.stat().st_mode & 0o777) == "0o600"
    files: dict[str, str] = {}
    with tarfile.open(bundle, "r:gz") as tar:
        for member in tar.getmembers():
            assert member.isfile() and not member.name.startswith("/") and ".." not in member.name
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            files[member.name.split("/", 1)[1]] = data.decode("utf-8", errors="replace")
    for name in ("versions.json", "doctor.json", "daemon/status.json", "daemon/info.json", "daemon/logs.json",
                 "daemon/usage-by-kind.json", "daemon/usage-by-hour.json", "daemon/journals.json",
                 "hardware/pcsc.json", "hardware/dev.txt", "errors.json", "README.txt"):
        assert name in files, (name, sorted(files))
    found = {name: leaks(text) + [planted["face"]] * (planted["face"] in text)
             for name, text in files.items()}
    assert not {k: v for k, v in found.items() if v}, found

    # what is there is what a technician needs
    logs = json.loads(files["daemon/logs.json"])["records"]
    assert logs and all({"time", "priority", "logger", "message"} <= set(r) for r in logs)
    info = json.loads(files["daemon/info.json"])
    assert info["config"]["devices"] and info["versions"]["halsvc"]
    usage = json.loads(files["daemon/usage-by-kind.json"])
    methods = {r["method"]: r for r in usage["rows"]}
    assert methods["idcard.read"]["ok"] >= 1 and methods["idcard.read"]["failures"].get("wrong_access_key")
    assert methods["printer.print"]["ok"] >= 1 and methods["payment.pay"]["ok"] >= 1
    ben = usage["beneficiaries"]
    assert ben["enabled"] and ben["cells"] == [] and ben["suppressed_cells"] >= 1  # 1 read < 5
    journals = json.loads(files["daemon/journals.json"])["journals"]
    assert any(j.get("table") == "payments" and sum(j["by_state"].values()) >= 1 for j in journals)
    assert any("Virtual PCD" in r for r in json.loads(files["hardware/pcsc.json"])["readers"])
    doctor = {c["name"]: c["status"] for c in json.loads(files["doctor.json"])}
    assert doctor["daemon"] == "pass"

    # and nowhere else either: the daemon's log, its state directory, the metrics file
    st.stop_daemon()
    assert not leaks(st.log())
    for path in (st.workdir / "state").rglob("*"):
        if path.is_file() and path.suffix not in (".sqlite", ".db") and "journal" not in path.name:
            assert not leaks(path.read_bytes().decode("utf-8", errors="replace")), path
    text = metrics.read_text()
    assert "halsvc_beneficiary_reads{" not in text and not leaks(text)
    st.start_daemon()


def test_usage_records_beneficiaries_only_as_aggregates(used_station: tuple[Station, pathlib.Path]) -> None:
    st, _metrics = used_station

    async def go() -> dict[str, Any]:
        async with st.client() as hal:
            await st.until_online(hal, "idcard0", card_present=True)
            for _ in range(5):
                await hal.call("idcard.read", {"can": CAN, "datagroups": ["DG13"], "verify": False})
            return await hal.call("diag.usage", {"by": "kind"})

    usage = run(go())
    cells = usage["beneficiaries"]["cells"]
    assert {"age_band": "30-39", "sex": "female"}.items() <= cells[0].items() and cells[0]["count"] >= 5
    state = json.loads((st.workdir / "state" / "usage.json").read_text()) if (
        st.workdir / "state" / "usage.json").exists() else {}
    assert not leaks(json.dumps(state, ensure_ascii=False))


def test_the_scan_finds_every_spelling() -> None:
    name, address = DEFAULT_CITIZEN["full_name"], DEFAULT_CITIZEN["place_of_residence"]
    for text in (name, unicodedata.normalize("NFD", name), fold(name).upper(), json.dumps({"n": name}),
                 "born 05/01/1993", "id 079203001234", "LE LOI street", fold(address)[:30],
                 "NGUYEN<<THI<THU<HA"):
        assert leaks(f"x {text} y"), text
    assert not leaks('{"kind": "idcard", "method": "idcard.read", "sex": "female", "age_band": "30-39"}')
