"""The thermal printer end to end (issue 5): the daemon as a process, the simulated ESC/POS
printer on a pty (or on TCP 9100: part option transport=tcp), and `printer.print` /
`printer.status` over the RPC. The simulator interprets what the driver sends and renders every
job to a PNG, so "printed" here means paper came out."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import pathlib
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from conftest import run
from harness import Station
from PIL import Image

from drivers.printer.render import render_image
from halsvc.client import AsyncClient, RpcError
from protocols import vietqr

PART = "escpos_printer"
DEV = "printer0"
WAIT = 60.0  # a ceiling against hangs, not a measurement
VIETNAMESE = "Trạm Công dân số — Đ ộ ự ỹ Ầ Ẫ Ậ ă â đ ê ô ơ ư"
# Short timeouts, so a silent printer is found out quickly (values of the config, not asserted).
# Not stall_timeout_s: a pty wakes its writer only once the reader has drained most of the
# kernel queue, which at 115200 baud takes seconds with no visible progress.
FAST = {"devices": {DEV: {"finish_timeout_s": 2.0, "status_timeout_s": 0.5, "status_interval_s": 0.5}}}


def png_b64(size: tuple[int, int] = (40, 20)) -> str:
    img = Image.new("RGBA", size, (255, 255, 255, 0))
    for x in range(size[0]):
        img.putpixel((x, x % size[1]), (0, 0, 0, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


EVERY_BLOCK: list[dict[str, Any]] = [
    {"type": "text", "text": "BIÊN NHẬN", "align": "center", "bold": True, "size": 2},
    {"type": "text", "text": VIETNAMESE, "align": "right"},
    {"type": "rule"},
    {"type": "rule", "style": "dashed"},
    {"type": "columns", "label": "Lệ phí cấp đổi", "value": "150.000 ₫", "bold": True},
    {"type": "qr", "data": "HALSVC-QR-1", "size": 4},
    {"type": "barcode", "data": "TX0001", "symbology": "CODE128", "height": 40},
    {"type": "image", "png": png_b64(), "align": "center"},
    {"type": "feed", "lines": 2},
    {"type": "cut", "partial": True},
]
VIETQR = vietqr.build("970436", "0011004321", amount=150000, bill_number="HS123")
RECEIPT_DATA = {"amount": 150000, "items": [{"label": "Lệ phí cấp đổi CCCD", "amount": 150000}],
                "transaction_id": "TX20261203091500", "method": "VietQR", "time": "03/12/2026 09:15",
                "vietqr": VIETQR}
SLIP_DATA = {"blood_pressure": {"systolic": 128, "diastolic": 82, "pulse": 76}, "spo2": 97,
             "weight_kg": 62.5, "height_cm": 165, "time": "03/12/2026 09:20"}


def doc(*blocks: Mapping[str, Any]) -> dict[str, Any]:
    return {"blocks": [dict(b) for b in blocks]}


def jobs(st: Station) -> list[dict[str, Any]]:
    return list(st.control(PART, "jobs")["jobs"])


def printed(st: Station) -> list[dict[str, Any]]:
    return [j for j in jobs(st) if j["status"] == "complete"]


async def status_event(hal: AsyncClient, what: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The next printer.status event whose data satisfies `what` (subscribe first)."""
    ev = await hal.next_event(lambda e: e["topic"] == "printer.status" and e["device"] == DEV
                              and what(e["data"]), timeout_s=WAIT)
    return dict(ev["data"])


async def print_job(hal: AsyncClient, job_id: str, **params: Any) -> dict[str, Any]:
    return await hal.call("printer.print", {"job_id": job_id, **params})


async def control(st: Station, action: str, **args: Any) -> dict[str, Any]:
    return await asyncio.to_thread(st.control, PART, action, **args)


# --- printing --------------------------------------------------------------------------------

def test_document_and_both_templates_print_and_come_out_as_pngs(station: Callable[..., Station]) -> None:
    st = station(only={PART})

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV, paper="ok", cover="closed")
            progress: list[dict[str, Any]] = []
            r = await hal.call("printer.print", {"job_id": "doc-1", "document": doc(*EVERY_BLOCK)},
                               on_progress=progress.append)
            assert r == {"job_id": "doc-1", "status": "printed", "reason": None, "repeated": False}
            phases = [p["data"]["phase"] for p in progress if p["topic"] == "printer.progress"]
            assert phases[0] == "checking" and phases[-1] == "done" and "sending" in phases
            r = await print_job(hal, "receipt-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)
            r = await print_job(hal, "slip-1", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)

    run(go())
    done = jobs(st)
    assert [j["status"] for j in done] == ["complete"] * 3
    for job in done:
        png = pathlib.Path(job["png"])
        assert png.is_file()
        with Image.open(png) as img:
            assert img.width == 576 and img.height > 100
        assert job["overruns"] == 0 and job["protocol_errors"] == 0
        assert job["text"] == []  # raster mode: every letter went as an image, none as text
        assert job["raster_slices"] >= 1
    document, receipt, slip = done
    assert {"type": "qr", "data": "HALSVC-QR-1"} in document["symbols"]
    assert any(s["type"] == "barcode" and s["data"] == "TX0001" for s in document["symbols"])
    assert {"type": "qr", "data": VIETQR} in receipt["symbols"]  # the VietQR code, natively
    assert any(s["type"] == "barcode" and s["data"] == RECEIPT_DATA["transaction_id"]
               for s in receipt["symbols"])
    assert slip["symbols"] == [] and slip["lines"] > 5


def test_vietnamese_text_arrives_on_paper_exactly_as_the_driver_drew_it(
        station: Callable[..., Station]) -> None:
    """Raster mode: the PNG the printer made of a text-only receipt is, dot for dot, the
    driver's own drawing of it (which has every tone mark: it differs from the bare letters)."""
    st = station(only={PART})
    blocks: list[dict[str, Any]] = [{"type": "text", "text": VIETNAMESE},
              {"type": "text", "text": unicodedata.normalize("NFD", "Nguyễn Thị Hồng Nhung"), "bold": True},
              {"type": "columns", "label": "Tổng cộng", "value": "150.000 ₫"}]

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            assert (await print_job(hal, "vi-1", document=doc(*blocks)))["status"] == "printed"

    run(go())
    (job,) = jobs(st)
    with Image.open(job["png"]) as img:
        paper = img.convert("1")
    # The decomposed name was NFC-normalised: same drawing as the precomposed one.
    expected = render_image([{**blocks[0]}, {**blocks[1], "text": "Nguyễn Thị Hồng Nhung"}, blocks[2]])
    assert paper.width == expected.width and paper.height >= expected.height
    assert paper.crop((0, 0, expected.width, expected.height)).tobytes() == expected.tobytes()
    # Below it only the feed before the cut: blank paper.
    assert paper.crop((0, expected.height, paper.width, paper.height)).getbbox() is None or \
        paper.crop((0, expected.height, paper.width, paper.height)).point(lambda v: 255 - v).getbbox() is None
    bare = render_image([{"type": "text", "text": "Tram Cong dan so - D o u y A A A a a d e o o u"}])
    assert bare.tobytes() != expected.crop((0, 0, bare.width, bare.height)).tobytes()


def test_codepage_mode_sends_cp1258_text_with_tone_marks_split_off(station: Callable[..., Station]) -> None:
    st = station(only={PART}, config={"devices": {DEV: {"text_mode": "codepage"}}})

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            r = await print_job(hal, "cp-1", document=doc(
                {"type": "text", "text": "Xin chào Việt Nam", "bold": True},
                {"type": "columns", "label": "Tổng cộng", "value": "150000 d"},
                {"type": "rule"}))
            assert r["status"] == "printed"
            assert (await print_job(hal, "cp-2", template="payment_receipt",
                                    data=RECEIPT_DATA))["status"] == "printed"

    run(go())
    first, receipt = jobs(st)
    assert first["raster_slices"] == 0  # text as text
    lines = [unicodedata.normalize("NFC", t) for t in first["text"]]
    assert lines[0] == "Xin chào Việt Nam"
    assert lines[1].startswith("Tổng cộng") and lines[1].endswith("150000 d")
    assert lines[2] == "-" * 48
    assert "?" not in "".join(lines)  # ESC t was sent after ESC @: no fallback to CP437
    assert any(unicodedata.normalize("NFC", t).startswith("Mã giao dịch") for t in receipt["text"])


# --- idempotency -------------------------------------------------------------------------------

def test_a_repeated_job_id_prints_once_across_connections_and_daemon_restarts(
        station: Callable[..., Station]) -> None:
    st = station(only={PART})
    first: dict[str, Any] = {}

    async def before_restart() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            # Two callers with the same job id at once: one print, the same answer.
            a, b = await asyncio.gather(
                print_job(hal, "pay-42", template="payment_receipt", data=RECEIPT_DATA),
                print_job(hal, "pay-42", template="payment_receipt", data=RECEIPT_DATA))
            assert {a["status"], b["status"]} == {"printed"}
            assert sorted([a["repeated"], b["repeated"]]) == [False, True]
            first.update(a if not a["repeated"] else b)
            again = await print_job(hal, "pay-42", template="payment_receipt", data=RECEIPT_DATA)
            assert again == {**first, "repeated": True}
        async with st.client() as other:  # a new connection: still the first outcome
            again = await print_job(other, "pay-42", document=doc({"type": "text", "text": "khác"}))
            assert again == {**first, "repeated": True}

    run(before_restart())
    assert len(jobs(st)) == 1
    st.restart_daemon()

    async def after_restart() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            again = await print_job(hal, "pay-42", template="payment_receipt", data=RECEIPT_DATA)
            assert again == {**first, "repeated": True}
            fresh = await print_job(hal, "pay-43", template="payment_receipt", data=RECEIPT_DATA)
            assert (fresh["status"], fresh["repeated"]) == ("printed", False)

    run(after_restart())
    assert len(printed(st)) == 2


def test_two_jobs_at_once_print_one_after_the_other(station: Callable[..., Station]) -> None:
    st = station(only={PART})

    async def go() -> None:
        async with st.client() as a, st.client() as b:
            await st.until_online(a, DEV)
            ra, rb = await asyncio.gather(
                print_job(a, "both-a", template="payment_receipt", data=RECEIPT_DATA),
                print_job(b, "both-b", template="health_slip", data=SLIP_DATA))
            assert (ra["status"], rb["status"]) == ("printed", "printed")

    run(go())
    done = printed(st)
    assert len(done) == 2 and done[0]["protocol_errors"] == done[1]["protocol_errors"] == 0
    # Not interleaved: one receipt with its codes, one slip without any.
    assert sorted(len(j["symbols"]) for j in done) == [0, 2]


# --- faults ----------------------------------------------------------------------------------

def test_paper_out_mid_job_fails_it_with_paper_out_and_a_refill_prints_again(
        station: Callable[..., Station]) -> None:
    st = station(only={PART})

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            await hal.subscribe("printer.status")
            await control(st, "paper_out", after_lines=6)
            r = await print_job(hal, "out-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"]) == ("failed", "paper_out")
            ev = await status_event(hal, lambda d: d.get("paper") == "out")
            assert ev["state"] == "user_error" and ev["error"] == "paper_out"
            s = await hal.call("printer.status", {})
            assert (s["paper"], s["error"], s["state"]) == ("out", "paper_out", "user_error")
            # The first outcome stands: the half-printed receipt is not printed again.
            assert (await print_job(hal, "out-1", template="payment_receipt",
                                    data=RECEIPT_DATA))["reason"] == "paper_out"
            await control(st, "paper_refill")
            ev = await status_event(hal, lambda d: d.get("paper") == "ok" and d["state"] == "online")
            assert ev["error"] is None
            r = await print_job(hal, "out-2", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)

    run(go())
    statuses = [(j["status"], j["reason"]) for j in jobs(st)]
    assert statuses == [("aborted", "paper_end"), ("complete", None)]


@pytest.mark.parametrize("clear", [True, False], ids=["cleared", "not-cleared"])
def test_after_a_fault_mid_job_the_printer_buffer_is_cleared_so_no_remnant_prints_later(
        station: Callable[..., Station], clear: bool) -> None:
    """A printer that keeps its buffer through a paper-out (simulator stop_mode resume, as
    Epson's do) prints the rest of the failed receipt once refilled, ahead of the next one,
    unless the driver clears it (DLE DC4 8). The not-cleared run shows the test can see it."""
    st = station(only={PART}, options={PART: {"stop_mode": "resume"}},
                 config={"devices": {DEV: {"clear_after_fault": clear}}})

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            await hal.subscribe("printer.status")
            await control(st, "paper_out", after_lines=6)
            r = await print_job(hal, "held-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"]) == ("failed", "paper_out")
            sim = await control(st, "status")
            assert sim["stop_mode"] == "resume"
            assert sim["buffer_clears"] == (1 if clear else 0)
            assert (sim["queued_commands"] == 0) is clear  # not cleared: the rest is held
            await control(st, "paper_refill")
            await status_event(hal, lambda d: d.get("paper") == "ok" and d["state"] == "online")
            r = await print_job(hal, "held-2", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)

    run(go())
    outcomes = [(j["status"], j["reason"], j["resumed_after"]) for j in jobs(st)]
    if clear:
        assert outcomes == [("aborted", "paper_end", None), ("complete", None, None)]
    else:  # the half receipt came out after the refill, then the slip
        assert outcomes == [("complete", None, "paper_end"), ("complete", None, None)]
        assert {"type": "qr", "data": VIETQR} in jobs(st)[0]["symbols"]
    assert jobs(st)[-1]["symbols"] == []  # the slip: nothing of the receipt on it


def test_paper_near_end_and_out_show_in_printer_status_and_near_end_still_prints(
        station: Callable[..., Station]) -> None:
    st = station(only={PART})

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            assert (await hal.call("printer.status", {}))["paper"] == "ok"
            await hal.subscribe("printer.status")
            await control(st, "paper_near_end")
            ev = await status_event(hal, lambda d: d.get("paper") == "near_end")
            assert ev["state"] == "online"
            s = await hal.call("printer.status", {"device": DEV})
            assert (s["paper"], s["error"], s["online"]) == ("near_end", None, True)
            r = await print_job(hal, "near-1", template="health_slip", data=SLIP_DATA)
            assert r["status"] == "printed"
            await control(st, "paper_out")
            await status_event(hal, lambda d: d.get("paper") == "out")
            assert (await hal.call("printer.status", {}))["paper"] == "out"
            # Out before the job: nothing reaches the printer.
            r = await print_job(hal, "out-before", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("failed", "paper_out")
            await control(st, "paper_refill")
            await status_event(hal, lambda d: d.get("paper") == "ok")
            assert (await hal.call("printer.status", {}))["paper"] == "ok"
            # Nothing of it reached the printer, so that job id may print now.
            r = await print_job(hal, "out-before", template="health_slip", data=SLIP_DATA)
            assert r["status"] == "printed"

    run(go())
    assert len(printed(st)) == 2 and len(jobs(st)) == 2


@pytest.mark.parametrize("fault, clear, reason, state", [
    ("cover_open", "cover_close", "cover_open", "user_error"),
    ("offline", "online", "printer_offline", "hardware_error"),
    ("cutter_error", "clear_error", "cutter_error", "hardware_error"),
])
def test_a_printer_fault_before_a_job_fails_it_with_its_reason(
        station: Callable[..., Station], fault: str, clear: str, reason: str, state: str) -> None:
    st = station(only={PART})

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            await hal.subscribe("printer.status")
            await control(st, fault)
            ev = await status_event(hal, lambda d: d.get("error") == reason)
            assert ev["state"] == state
            s = await hal.call("printer.status", {})
            assert (s["error"], s["state"]) == (reason, state)
            if fault == "cover_open":
                assert s["cover"] == "open"
            r = await print_job(hal, f"{fault}-1", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("failed", reason)
            await control(st, clear)
            await status_event(hal, lambda d: d.get("error") is None and d["state"] == "online")
            r = await print_job(hal, f"{fault}-2", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)

    run(go())
    assert [j["status"] for j in jobs(st)] == ["complete"]


def test_cover_opened_mid_job_fails_it_with_cover_open(station: Callable[..., Station]) -> None:
    st = station(only={PART})

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            await hal.subscribe("printer.status")
            # A slow print engine, so the job is still going when the cover opens.
            await control(st, "small_buffer", size=24576, print_rate=4000)
            sending = asyncio.Event()

            def on_progress(p: dict[str, Any]) -> None:
                if p["data"].get("phase") == "sending":
                    sending.set()

            job = asyncio.create_task(hal.call(
                "printer.print", {"job_id": "cover-1", "template": "payment_receipt", "data": RECEIPT_DATA},
                on_progress=on_progress))
            await asyncio.wait_for(sending.wait(), WAIT)
            await control(st, "cover_open")
            r = await asyncio.wait_for(job, WAIT)
            assert (r["status"], r["reason"]) == ("failed", "cover_open")
            await status_event(hal, lambda d: d.get("cover") == "open")
            await control(st, "cover_close")
            await control(st, "small_buffer", size=65536, print_rate=0)
            await status_event(hal, lambda d: d.get("cover") == "closed" and d["state"] == "online")
            r = await print_job(hal, "cover-2", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)

    run(go())
    # The receipt never comes out whole (whether any of it was on paper yet depends on how far
    # the engine had got); the slip comes out alone, with no remnant of the receipt.
    outcomes = [(j["status"], j["reason"]) for j in jobs(st)]
    assert outcomes in ([("aborted", "cover_open"), ("complete", None)], [("complete", None)])
    assert jobs(st)[-1]["symbols"] == []


def test_a_small_printer_buffer_is_never_overrun_thanks_to_flow_control(
        station: Callable[..., Station]) -> None:
    st = station(only={PART})

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            # Bigger than one raster band (the simulator takes a command whole), smaller than the
            # receipt, and slower to print than the line: without XON/XOFF it would overrun.
            await control(st, "small_buffer", size=24576, print_rate=6000)
            r = await print_job(hal, "flow-1", template="payment_receipt", data=RECEIPT_DATA)
            assert r["status"] == "printed"

    run(go())
    (job,) = jobs(st)
    assert job["status"] == "complete" and job["overruns"] == 0 and job["protocol_errors"] == 0


def test_a_printer_that_goes_silent_mid_job_gives_link_lost_and_it_comes_back(
        station: Callable[..., Station]) -> None:
    st = station(only={PART}, config=FAST)

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            await hal.subscribe("printer.status")
            await control(st, "link_drop", after_bytes=3000)
            r = await print_job(hal, "drop-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"]) == ("failed", "link_lost")
            await status_event(hal, lambda d: d["state"] in ("starting", "no_device"))
            # Once lost, the outcome is recorded: the same id does not print after the link is back.
            await control(st, "link_restore")
            await st.until_online(hal, DEV)
            again = await print_job(hal, "drop-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (again["reason"], again["repeated"]) == ("link_lost", True)
            r = await print_job(hal, "drop-2", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)

    run(go())
    complete = printed(st)
    assert len(complete) == 1 and complete[0]["symbols"] == []  # the slip; no half receipt


def test_a_link_back_to_a_printer_still_inside_the_cut_off_band_is_recovered(
        station: Callable[..., Station]) -> None:
    """The cable comes back to a printer that stayed on (link_restore reset=false): its parser
    is still inside the raster band the drop cut off, and takes DLE EOT for image data. The
    driver finishes the band with NULs, clears the buffer (DLE DC4 8) and asks again."""
    st = station(only={PART}, config=FAST)

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            await hal.subscribe("printer.status")
            await control(st, "link_drop", after_bytes=3000)  # inside the first raster band
            r = await print_job(hal, "band-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"]) == ("failed", "link_lost")
            await status_event(hal, lambda d: d["state"] in ("starting", "no_device"))
            sim = await control(st, "link_restore", reset=False)
            assert sim["buffered"] > 0  # the half band is still in the parser
            await st.until_online(hal, DEV)
            r = await print_job(hal, "band-2", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)

    run(go())
    outcomes = [(j["status"], j["reason"]) for j in jobs(st)]
    assert outcomes == [("aborted", "buffer_cleared"), ("complete", None)]
    assert jobs(st)[-1]["symbols"] == [] and jobs(st)[-1]["raster_slices"] >= 1
    assert "finishing its raster band" in st.log()


# --- invalid documents -------------------------------------------------------------------------

B0 = "params.document.blocks[0]"


@pytest.mark.parametrize("params, field", [
    # The daemon's schema check: a block of a known kind is named down to its bad field.
    ({"document": {"blocks": [{"type": "text"}]}}, f"{B0}.text"),
    ({"document": {"blocks": [{"type": "text", "text": "x", "size": 9}]}}, f"{B0}.size"),
    ({"document": {"blocks": [{"type": "qr", "data": ""}]}}, f"{B0}.data"),
    ({"document": {"blocks": [{"type": "txet", "text": "x"}]}}, f"{B0}.type"),
    ({"document": {"blocks": [{"text": "x"}]}}, f"{B0}.type"),
    ({"document": {"blocks": []}}, "params.document.blocks"),
    ({"document": "garbage"}, "params.document"),
    ({"template": "menu", "data": {}}, "params.template"),
    ({}, "params"),
    ({"job_id": "", "document": {"blocks": [{"type": "cut"}]}}, "params.job_id"),
    ({"job_id": "x", "document": {"blocks": [{"type": "cut"}]}, "colour": "red"}, "params.colour"),
    # The driver's own checks, where only rendering finds the fault.
    ({"document": {"blocks": [{"type": "image", "png": "bm90IGEgcG5n"}]}}, f"{B0}.png"),
    ({"document": {"blocks": [{"type": "cut"}, {"type": "image", "png": "@@"}]}},
     "params.document.blocks[1].png"),
    ({"document": {"blocks": [{"type": "barcode", "data": "ABC", "symbology": "EAN13"}]}}, f"{B0}.data"),
    ({"template": "payment_receipt", "data": {"items": []}}, "params.data.amount"),
    ({"template": "payment_receipt", "data": {"amount": "nhiều"}}, "params.data.amount"),
    ({"template": "payment_receipt", "data": {"amount": 1, "items": [{"amount": "x"}]}},
     "params.data.items[0].amount"),
])
def test_an_invalid_document_gives_invalid_params_naming_the_field(
        station: Callable[..., Station], params: dict[str, Any], field: str) -> None:
    st = station(only={PART})

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            with pytest.raises(RpcError) as info:
                await hal.call("printer.print", {"job_id": "bad-1", **params})
            err = info.value
            assert (err.code, err.reason) == (-32602, "invalid_params")
            assert err.data.get("field") == field, err
            # Nothing was recorded under the job id: it prints once the document is right.
            r = await print_job(hal, "bad-1", document=doc({"type": "text", "text": "đúng"}))
            assert (r["status"], r["repeated"]) == ("printed", False)

    run(go())
    assert len(jobs(st)) == 1


# --- TCP 9100 through the daemon -----------------------------------------------------------------

TCP = {PART: {"transport": "tcp"}}


def test_tcp_9100_printer_prints_once_and_reports_faults_through_the_daemon(
        station: Callable[..., Station]) -> None:
    st = station(only={PART}, options=TCP)

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            r = await print_job(hal, "tcp-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"], r["repeated"]) == ("printed", None, False)
            again = await print_job(hal, "tcp-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (again["status"], again["repeated"]) == ("printed", True)
            await hal.subscribe("printer.status")
            # A status fault before the job: reported as an event, and the job fails with it.
            await control(st, "cover_open")
            ev = await status_event(hal, lambda d: d.get("cover") == "open")
            assert (ev["state"], ev["error"]) == ("user_error", "cover_open")
            r = await print_job(hal, "tcp-2", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("failed", "cover_open")
            await control(st, "cover_close")
            await status_event(hal, lambda d: d.get("cover") == "closed" and d["state"] == "online")
            # Paper out mid-job.
            await control(st, "paper_out", after_lines=5)
            r = await print_job(hal, "tcp-3", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"]) == ("failed", "paper_out")
            assert (await hal.call("printer.status", {}))["paper"] == "out"
            await control(st, "paper_refill")
            await status_event(hal, lambda d: d.get("paper") == "ok" and d["state"] == "online")
            r = await print_job(hal, "tcp-4", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)

    run(go())
    outcomes = [(j["status"], j["reason"]) for j in jobs(st)]
    assert outcomes == [("complete", None), ("aborted", "paper_end"), ("complete", None)]
    assert all(pathlib.Path(j["png"]).is_file() for j in jobs(st))
    assert all(j["overruns"] == 0 and j["protocol_errors"] == 0 for j in jobs(st))


def test_tcp_9100_link_dropped_mid_job_gives_link_lost_and_the_daemon_reconnects(
        station: Callable[..., Station]) -> None:
    st = station(only={PART}, options=TCP, config=FAST)

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            await hal.subscribe("printer.status")
            await control(st, "link_drop", after_bytes=2000)
            r = await print_job(hal, "tcpdrop-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"]) == ("failed", "link_lost")
            await status_event(hal, lambda d: d["state"] in ("starting", "no_device", "offline"))
            await control(st, "link_restore")
            await st.until_online(hal, DEV)
            again = await print_job(hal, "tcpdrop-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (again["reason"], again["repeated"]) == ("link_lost", True)
            r = await print_job(hal, "tcpdrop-2", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)
            with pytest.raises(RpcError) as info:
                await print_job(hal, "tcpdrop-3", document=doc({"type": "image", "png": "!!"}))
            assert info.value.reason == "invalid_params"
            assert (await hal.call("printer.status", {}))["last_job"]["job_id"] == "tcpdrop-2"

    run(go())
    complete = printed(st)
    assert len(complete) == 1 and complete[0]["symbols"] == []  # the slip; no half receipt


# --- USB printer class (/dev/usb/lp*) ---------------------------------------------------------

def test_usb_printer_class_node_prints_reads_status_back_and_survives_a_drop(
        station: Callable[..., Station]) -> None:
    """transport usb: the driver opens `<sim>/dev/usb/lp0` (a link to the simulator's pty) as a
    character device, writes the job and reads DLE EOT / ASB replies back on the same fd, as
    it does a bidirectional usblp node. What a pty cannot show of real usblp: see
    simulators/escpos_printer PrinterSimulator.usb_node."""
    st = station(only={PART}, options={PART: {"transport": "usb"}}, config=FAST)

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV, paper="ok")
            devices = (await hal.call("device.list"))["devices"]
            assert any(d["device"] == DEV for d in devices)
            r = await print_job(hal, "usb-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)
            assert (await print_job(hal, "usb-1", template="payment_receipt",
                                    data=RECEIPT_DATA))["repeated"] is True
            await hal.subscribe("printer.status")
            await control(st, "paper_out", after_lines=6)
            r = await print_job(hal, "usb-2", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"]) == ("failed", "paper_out")
            s = await hal.call("printer.status", {})  # DLE EOT 1-4 answered through the node
            assert (s["paper"], s["error"], s["online"]) == ("out", "paper_out", False)
            await control(st, "paper_refill")
            await status_event(hal, lambda d: d.get("paper") == "ok" and d["state"] == "online")
            await control(st, "link_drop", after_bytes=3000)
            r = await print_job(hal, "usb-3", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"]) == ("failed", "link_lost")
            await status_event(hal, lambda d: d["state"] in ("starting", "no_device"))
            await control(st, "link_restore")
            await st.until_online(hal, DEV)
            r = await print_job(hal, "usb-4", template="health_slip", data=SLIP_DATA)
            assert (r["status"], r["reason"]) == ("printed", None)

    run(go())
    outcomes = [(j["status"], j["reason"]) for j in jobs(st)]
    assert outcomes == [("complete", None), ("aborted", "paper_end"), ("complete", None)]
    assert jobs(st)[-1]["symbols"] == []
    node = st.simdir / PART / "dev" / "usb" / "lp0"
    assert node.is_symlink() and pathlib.Path(os.path.realpath(node)).is_char_device()


def test_a_one_way_usb_printer_prints_unconfirmed_and_a_two_way_driver_names_the_option(
        station: Callable[..., Station]) -> None:
    """Many USB printer class interfaces send nothing back. With status_replies = false the
    driver asks nothing and a job is printed once the printer took all of it (confirmed false);
    with the default it finds no printer, and says which option to set."""
    st = station(only={PART}, options={PART: {"transport": "usb", "one_way": True}},
                 config={"devices": {DEV: {"status_replies": False}}})

    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            s = await hal.call("printer.status", {})
            assert (s["paper"], s["cover"], s["cutter"], s["online"], s["error"]) == \
                ("unknown", "unknown", "unknown", True, None)
            r = await print_job(hal, "oneway-1", template="payment_receipt", data=RECEIPT_DATA)
            assert (r["status"], r["reason"], r["confirmed"]) == ("printed", None, False)
            again = await print_job(hal, "oneway-1", template="payment_receipt", data=RECEIPT_DATA)
            assert again["repeated"] is True
            check = await hal.call("device.selftest", {"device": DEV, "level": "internal"})
            assert check["passed"] is True and check["checks"][0]["name"] == "link"

    run(go())
    st.stop_daemon()
    sim = st.control(PART, "status")
    assert sim["one_way"] is True and sim["overruns"] == 0
    st.write_config(devices={DEV: {"status_replies": True, "status_timeout_s": 0.3}})
    st.start_daemon()

    async def two_way() -> None:
        async with st.client() as hal:
            await hal.subscribe("printer.status")
            ev = await hal.next_event(lambda e: e["topic"] == "printer.status" and e["data"]["state"]
                                      in ("no_device", "offline"), timeout_s=WAIT)
            assert ev["data"]["state"] in ("no_device", "offline")
            assert "status_replies = false" in st.log()
            # Once it answers (and so has read everything before the questions), it is online.
            await control(st, "one_way", on=False)
            await st.until_online(hal, DEV)
            assert (await hal.call("printer.status", {}))["paper"] == "ok"

    run(two_way())
    (job,) = jobs(st)
    assert job["status"] == "complete" and job["symbols"]
