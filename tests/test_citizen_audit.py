"""DESIGN §4 after a whole simulated day: several residents (the card simulator's `set_citizen`)
read their cards, weigh, measure (when health.measure exists), pay and print a receipt with their
name, ID number and address on it — plus the mistakes kiosks make (a wrong CAN, the ID number
where the CAN goes, a receipt the printer refuses). Then the daemon's log (at DEBUG), every file
of its state directory (SQLite included), the usage metrics file, the support bundle of
`halctl report` and everything two other connections received are searched for every field of
every resident in every spelling: as on the card, NFD, ASCII-folded (the MRZ's way), upper and
lower case, JSON-escaped, dates as ISO / dd/mm/yyyy / yymmdd / yyyymmdd, the CAN. None may be
there."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

from conftest import run
from harness import ROOT, Station
from soaklib import CITIZENS, can_of

from halsvc.client import AsyncClient, RpcError

HALCTL = [sys.executable, "-m", "halsvc.cli"]
MEASURED: set[str] = set()  # weights the day measured (two decimals), searched for as well
SHORT_FIELDS = {"sex"}  # "Nam", "Nữ": words any Vietnamese text has
# Digits that look like dates or CANs also occur in timestamps and floats: those are taken out
# of the text before digit-only needles are searched (with digit boundaries).
NUMBERISH = re.compile(r"\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?|\d+\.\d+(?:[eE][-+]?\d+)?")


def fold(text: str) -> str:
    """ASCII-folded as an MRZ or a careless system writes it: diacritics off, đ -> d."""
    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def spellings(value: str) -> set[str]:
    out = set()
    nfc, nfd = unicodedata.normalize("NFC", value), unicodedata.normalize("NFD", value)
    for form in (value, nfc, nfd, fold(value)):
        for cased in (form, form.upper(), form.lower()):
            out.add(cased)
            out.add(json.dumps(cased)[1:-1])  # \\u escapes, as ensure_ascii JSON writes it
    return out


def needles() -> tuple[dict[str, str], dict[str, str]]:
    """(text needles, digit needles) -> what they are."""
    text: dict[str, str] = {}
    digits: dict[str, str] = {}
    for c in CITIZENS:
        who = c["id_number"]
        for key, value in c.items():
            if key in SHORT_FIELDS or not value:
                continue
            if key.endswith("_date"):
                y, m, d = value.split("-")
                for form in (value, f"{d}/{m}/{y}", f"{d}-{m}-{y}", f"{y}{m}{d}", f"{y[2:]}{m}{d}"):
                    (digits if form.isdigit() else text)[form] = f"{who} {key}"
                continue
            if key == "id_number":
                digits[value] = f"{who} id_number"
                digits[can_of(c)] = f"{who} CAN"
                continue
            for s in spellings(value):
                text[s] = f"{who} {key}"
            parts = [p.strip() for p in value.split(",")]
            if len(parts) > 1 and len(parts[0]) >= 8:  # the street line alone
                for s in spellings(parts[0]):
                    text[s] = f"{who} {key} (street)"
        names = fold(c["full_name"]).upper().split()
        text[f"{names[0]}<<{names[1]}"] = f"{who} MRZ name"
    return text, digits


def find_leaks(where: str, data: str | bytes) -> list[str]:
    if isinstance(data, bytes):
        texts = [data.decode("utf-8", "replace"), data.decode("utf-16-le", "replace")]
    else:
        texts = [data]
    text_needles, digit_needles = needles()
    found = []
    for t in texts:
        for needle, what in text_needles.items():
            if needle in t:
                found.append(f"{where}: {what} ({needle!r})")
        for value in MEASURED:
            if re.search(rf"(?<![\d.]){re.escape(value)}0*(?![\d])", t):
                found.append(f"{where}: a measured weight ({value!r})")
        stripped = NUMBERISH.sub(" ", t)
        for needle, what in digit_needles.items():
            if re.search(rf"(?<!\d){needle}(?!\d)", stripped):
                found.append(f"{where}: {what} ({needle!r})")
    return sorted(set(found))


def files_under(root: pathlib.Path) -> Iterator[pathlib.Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path


class Spy:
    """Another connection, subscribed to every topic, keeping what it receives."""

    def __init__(self, hal: AsyncClient) -> None:
        self.hal = hal
        self.events: list[dict[str, Any]] = []

    async def drain(self) -> None:
        await self.hal.call("hal.ping", {})  # everything before this answer has reached us
        while not self.hal._events.empty():
            ev = self.hal._events.get_nowait()
            if ev is not None:
                self.events.append(ev)


async def change_card(st: Station, kiosk: AsyncClient, citizen: dict[str, str]) -> None:
    """The next resident's card: the reader must see the last one go before the next arrives."""
    await kiosk.subscribe("idcard.card_*")
    await asyncio.to_thread(st.control, "cccd_card", "remove")
    status = await kiosk.call("idcard.status", {})
    if status["card_present"]:
        await kiosk.next_event(lambda e: e["topic"] == "idcard.card_removed", timeout_s=60)
    await asyncio.to_thread(st.control, "cccd_card", "set_citizen", **citizen)
    await asyncio.to_thread(st.control, "cccd_card", "insert")
    if not (await kiosk.call("idcard.status", {}))["card_present"]:
        await kiosk.next_event(lambda e: e["topic"] == "idcard.card_present", timeout_s=60)
    await kiosk.call("events.unsubscribe", {"topics": ["idcard.card_*"]})


async def a_day(st: Station, methods: set[str], log: Callable[[str], None]) -> dict[str, Any]:
    seen: dict[str, Any] = {"reads": 0, "prints": 0, "payments": 0, "measures": 0, "weights": 0}
    async with st.client() as watcher, st.client() as other_kiosk, st.client() as kiosk:
        spy, other = Spy(watcher), Spy(other_kiosk)
        await watcher.subscribe("*")
        await other_kiosk.subscribe("idcard.*", "printer.*", "payment.*", "scale.*", "health.*")
        await st.until_online(kiosk, "idcard0")
        for n, citizen in enumerate(CITIZENS):
            await change_card(st, kiosk, citizen)
            r = await kiosk.call("idcard.read", {"can": can_of(citizen)})
            assert r["full_name"] == citizen["full_name"] and r["id_number"] == citizen["id_number"]
            seen["reads"] += 1
            # the mistakes: a wrong CAN, the ID number where the CAN goes, the CAN as a number
            for bad in ({"can": "999999"}, {"can": citizen["id_number"]}, {"can": int(can_of(citizen))}):
                try:
                    await kiosk.call("idcard.read", bad)
                except RpcError as exc:
                    assert exc.reason in ("wrong_access_key", "invalid_params"), exc
            if "id_number" in json.dumps(await kiosk.call("rpc.discover", {})):
                r = await kiosk.call("idcard.read", {"id_number": citizen["id_number"]})
                assert r["id_number"] == citizen["id_number"]
            if "scale.read" in methods:
                # weights with decimals no other number has: a measurement is the resident's too
                await asyncio.to_thread(st.control, "serial_scale", "step_on", kg=61.37 + 7 * n, settle_s=0.3)
                w = await kiosk.call("scale.read", {"stable": True, "height_m": 1.6 + n / 50})
                assert w["weight_kg"] > 40
                MEASURED.add(f"{w['weight_kg']:.2f}")
                seen["weights"] += 1
            if "health.measure" in methods:
                with contextlib.suppress(RuntimeError):
                    await asyncio.to_thread(st.control, "ble_station", "step_on", device="scale",
                                            kg=83.45 + n)
                for kind in ("blood_pressure", "spo2", "weight", "body_composition"):
                    try:
                        m = await kiosk.call("health.measure",
                                             {"kind": kind, "height_m": 1.62, "timeout_ms": 30000})
                        seen["measures"] += 1
                        if kind == "weight" and isinstance(m.get("weight_kg"), float):
                            MEASURED.add(f"{m['weight_kg']:.2f}")
                    except RpcError as exc:
                        log(f"health.measure {kind}: {exc}")
            key = f"audit-{n}"
            if "payment.pay" in methods:
                p = await kiosk.call("payment.pay", {"idempotency_key": key, "amount": 150_000 + 1000 * n,
                                                     "reference": f"HS-{n:04d}"})
                assert p["status"] == "approved", p
                seen["payments"] += 1
            if "printer.print" in methods:
                receipt = {"blocks": [
                    {"type": "text", "text": citizen["full_name"], "bold": True},
                    {"type": "columns", "label": "Số CCCD", "value": citizen["id_number"]},
                    {"type": "text", "text": citizen["place_of_residence"]},
                    {"type": "columns", "label": "Ngày sinh", "value": citizen["birth_date"]},
                    {"type": "qr", "data": f"{citizen['id_number']}|{citizen['full_name']}"}]}
                out = await kiosk.call("printer.print", {"job_id": key, "document": receipt})
                assert out["status"] == "printed", out
                seen["prints"] += 1
                # a receipt the printer refuses: the error names the field, and nothing else leaks
                bad_doc = {"blocks": [{"type": "text", "text": citizen["full_name"], "size": 99}]}
                try:
                    await kiosk.call("printer.print", {"job_id": key + "-bad", "document": bad_doc})
                except RpcError as exc:
                    assert exc.reason == "invalid_params"
        await spy.drain()
        await other.drain()
        seen["spy"], seen["other"] = spy.events, other.events
    return seen


def test_a_simulated_day_leaves_no_citizen_data_anywhere(station: Callable[..., Station],
                                                       tmp_path: pathlib.Path) -> None:
    metrics = tmp_path / "halsvc.prom"
    st = station(config={"daemon": {"log_level": "debug"},
                         "usage": {"metrics_file": str(metrics), "flush_s": 1, "beneficiaries": True}})

    async def methods() -> set[str]:
        async with st.client() as hal:
            return {m["name"] for m in (await hal.call("rpc.discover", {}))["methods"]}

    available = run(methods())
    notes: list[str] = []
    seen = run(a_day(st, available, notes.append))
    assert seen["reads"] == len(CITIZENS)
    assert "health.measure" not in available or seen["measures"] >= len(CITIZENS), notes
    assert any(e["topic"] == "idcard.status" for e in seen["spy"])  # it watched the day ...
    assert all("request_id" not in e for e in seen["spy"] + seen["other"])  # ... but no progress

    bundle = tmp_path / "report.tar.gz"
    if "diag.logs" in available:
        out = subprocess.run([*HALCTL, "report", "--socket", str(st.socket), "-o", str(bundle)],
                             capture_output=True, text=True, timeout=180, cwd=ROOT, env={**os.environ})
        assert out.returncode in (0, 1), out.stderr  # 1: the doctor found something to warn about
        assert bundle.exists(), out.stderr
    st.restart_daemon()  # usage figures and journals are saved at shutdown too

    assert st.log().count("card read") >= len(CITIZENS), st.log()  # DEBUG logging saw the day
    leaks: list[str] = []
    leaks += find_leaks("daemon log", st.log())
    leaks += find_leaks("watcher's events", json.dumps(seen["spy"], ensure_ascii=False))
    leaks += find_leaks("other kiosk's events", json.dumps(seen["other"], ensure_ascii=False))
    for path in files_under(st.workdir / "state"):
        leaks += find_leaks(f"state {path.relative_to(st.workdir)}", path.read_bytes())
    if metrics.exists():
        leaks += find_leaks("metrics file", metrics.read_bytes())
    if bundle.exists():
        with tarfile.open(bundle) as tar:
            for member in tar.getmembers():
                f = tar.extractfile(member)
                if f is not None:
                    data = f.read()
                    if member.name.endswith(".gz"):
                        import gzip
                        data = gzip.decompress(data)
                    leaks += find_leaks(f"bundle {member.name}", data)
    for line in notes:
        print(line)
    day = {k: v for k, v in seen.items() if isinstance(v, int)}
    print(f"weights searched for: {sorted(MEASURED)}")
    print(f"searched: log {len(st.log())} chars, {len(list(files_under(st.workdir / 'state')))} state files, "
          f"metrics {'yes' if metrics.exists() else 'no'}, bundle {'yes' if bundle.exists() else 'no'}, "
          f"{len(seen['spy'])} + {len(seen['other'])} events; day: {day}")
    assert leaks == [], "\n".join(leaks)


def test_the_audit_finds_what_it_looks_for() -> None:
    """The search itself: each spelling of a planted field is found, timestamps are not CANs."""
    c = CITIZENS[1]
    nfd = unicodedata.normalize("NFD", c["full_name"])
    for planted in (c["full_name"], nfd, fold(c["full_name"]).upper(), json.dumps(c["place_of_residence"]),
                    "born 23/11/1985", f"id={c['id_number']}",
                    f"can {can_of(c)} ok", "TRAN<<DUC<MANH", "851123"):
        assert find_leaks("x", planted), planted
    assert find_leaks("x", io.BytesIO(c["mother_name"].encode("utf-16-le")).getvalue())
    assert find_leaks("x", f"at 07:50:05.{can_of(c)} and 1764834605.{can_of(c)}") == []
