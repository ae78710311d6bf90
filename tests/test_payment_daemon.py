"""Payments end to end: halsvc's payment driver talks nexo over TCP to the simulated terminal,
and every terminal scenario is checked through the RPC against the terminal's own ledger and the
daemon's journal."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROOT, run
from harness import Station
from PIL import Image

from halsvc.client import AsyncClient, RpcError

PART = "payment_terminal"
DEV = "payment0"


@pytest.fixture(scope="module")
def st() -> Iterator[Station]:
    station = Station(only={PART, "escpos_printer"}).start()
    try:
        yield station
    finally:
        station.stop()


def ledger(st: Station) -> list[dict[str, Any]]:
    return list(st.control(PART, "ledger")["records"])


def charges_for(st: Station, reference: str) -> list[dict[str, Any]]:
    """The terminal's payment records for a bill reference (each test uses its own)."""
    return [r for r in ledger(st) if r["kind"] == "payment" and r.get("reference") == reference]


def stats(st: Station) -> dict[str, int]:
    return dict(st.control(PART, "stats")["stats"])


def scenario(st: Station, name: str) -> None:
    st.control(PART, "scenario", name=name)


async def attempts(hal: AsyncClient, key: str) -> list[dict[str, Any]]:
    return list((await hal.call("payment.journal", {"idempotency_key": key}))["entries"])


async def pay(hal: AsyncClient, key: str, amount: int = 150000, reference: str | None = None,
              progress: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    params = {"amount": amount, "idempotency_key": key, "reference": reference or key}
    return await hal.call("payment.pay", params,
                          on_progress=progress.append if progress is not None else None)


async def online(st: Station, hal: AsyncClient) -> None:
    await st.until_online(hal, DEV)


def test_approved_payment_shows_prompts_and_is_journalled_before_it_is_sent(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            progress: list[dict[str, Any]] = []
            r = await pay(hal, "approve-1", 150000, "BILL-EVN-1", progress)
            assert r["status"] == "approved" and r["authorized_amount"] == 150000
            assert r["repeated"] is False and r["reference"] == "BILL-EVN-1"
            prompts = [p["data"]["text"] for p in progress
                       if p["topic"] == "payment.progress" and p["data"]["phase"] == "prompt"]
            assert prompts == ["PRESENT CARD", "ENTER PIN", "PROCESSING", "APPROVED"]
            assert all(p["device"] == DEV for p in progress)
            (entry,) = await attempts(hal, "approve-1")
            assert [h["state"] for h in entry["history"]] == ["pending", "approved"]
            assert entry["poi_transaction_id"] == r["terminal_transaction_id"]
            (charge,) = charges_for(st, "BILL-EVN-1")
            assert charge["state"] == "approved" and charge["service_id"] == r["service_id"]
            assert charge["poi_transaction_id"] == r["terminal_transaction_id"]
            before = stats(st)["Payment"]
            again = await pay(hal, "approve-1", 150000, "BILL-EVN-1")
            assert again == {**r, "repeated": True}
            assert stats(st)["Payment"] == before  # nothing went to the terminal
            assert len(charges_for(st, "BILL-EVN-1")) == 1

    run(go())


def test_decline_and_cardholder_cancel_are_outcomes_not_errors(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            scenario(st, "decline")
            r = await pay(hal, "decline-1")
            assert (r["status"], r["authorized_amount"], r["error_condition"]) == ("declined", 0, "Refusal")
            scenario(st, "cancel")
            r = await pay(hal, "cancel-1")
            assert (r["status"], r["authorized_amount"], r["error_condition"]) == ("aborted", 0, "Cancel")
            # The same key again is the first outcome: a declined bill is not charged on a retry.
            assert (await pay(hal, "decline-1"))["status"] == "declined"
            assert [c["state"] for c in charges_for(st, "decline-1")] == ["declined"]
            assert [c["state"] for c in charges_for(st, "cancel-1")] == ["aborted"]

    run(go())


def test_busy_terminal_charges_nothing_and_the_same_key_pays_later(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            scenario(st, "busy")
            with pytest.raises(RpcError) as err:
                await pay(hal, "busy-1")
            assert err.value.reason == "terminal_busy" and err.value.code == -32006
            assert err.value.data["charged"] is False
            r = await pay(hal, "busy-1")
            assert r["status"] == "approved" and r["repeated"] is False
            assert [a["state"] for a in await attempts(hal, "busy-1")] == ["not_charged", "approved"]
            assert [c["state"] for c in charges_for(st, "busy-1")] == ["approved"]

    run(go())


def test_slow_terminal_keeps_the_payment_open_while_it_prompts(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            asked = stats(st).get("TransactionStatus", 0)
            # 1.8 s per prompt, 5.4 s in all: longer than the station's 4 s silence limit, but
            # every prompt is a sign of life, so the payment stays open without a question.
            st.control(PART, "set", slow_ms=1800)
            scenario(st, "slow")
            try:
                r = await pay(hal, "slow-1")
            finally:
                st.control(PART, "set", slow_ms=1500)
            assert r["status"] == "approved"
            assert stats(st).get("TransactionStatus", 0) == asked

    run(go())


def test_silent_terminal_is_settled_as_never_charged(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            scenario(st, "silent")
            with pytest.raises(RpcError) as err:
                await pay(hal, "silent-1")
            assert err.value.reason == "terminal_unreachable" and err.value.data["charged"] is False
            (entry,) = await attempts(hal, "silent-1")
            assert [h["state"] for h in entry["history"]] == ["pending", "unknown", "not_charged"]
            assert entry["error_condition"] == "NotFound"
            assert charges_for(st, "silent-1") == []
            assert (await pay(hal, "silent-1"))["status"] == "approved"  # a new attempt, charged once
            assert len(charges_for(st, "silent-1")) == 1

    run(go())


def test_link_dropped_mid_payment_is_settled_by_transaction_status(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            asked = stats(st).get("TransactionStatus", 0)
            scenario(st, "drop")  # the link goes after the first prompt; the card is approved anyway
            r = await pay(hal, "drop-1")
            assert r["status"] == "approved" and r["authorized_amount"] == 150000
            assert stats(st)["TransactionStatus"] > asked
            (charge,) = charges_for(st, "drop-1")
            assert charge["poi_transaction_id"] == r["terminal_transaction_id"]
            (entry,) = await attempts(hal, "drop-1")
            assert [h["state"] for h in entry["history"]][:2] == ["pending", "unknown"]

    run(go())


def test_terminal_crash_after_approval_is_found_again(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            crashes = stats(st)["crashes"]
            scenario(st, "crash")
            r = await pay(hal, "crash-1")
            assert r["status"] == "approved"
            assert stats(st)["crashes"] == crashes + 1
            (charge,) = charges_for(st, "crash-1")
            assert charge["state"] == "approved"
            assert charge["poi_transaction_id"] == r["terminal_transaction_id"]
            assert (await pay(hal, "crash-1"))["repeated"] is True
            assert len(charges_for(st, "crash-1")) == 1

    run(go())


def test_abort_stops_a_running_payment(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal, st.client() as other:
            await online(st, hal)
            scenario(st, "slow")
            prompted = asyncio.Event()

            def seen(event: dict[str, Any]) -> None:
                if event["data"].get("phase") == "prompt":
                    prompted.set()

            paying = asyncio.ensure_future(hal.call(
                "payment.pay", {"amount": 150000, "idempotency_key": "abort-1", "reference": "abort-1"},
                on_progress=seen))
            await asyncio.wait_for(prompted.wait(), 60)
            a = await other.call("payment.abort", {"idempotency_key": "abort-1"})
            assert a == {"status": "aborting", "requested": True}
            r = await paying
            assert (r["status"], r["error_condition"], r["authorized_amount"]) == ("aborted", "Aborted", 0)
            assert await other.call("payment.abort", {"idempotency_key": "abort-1"}) == \
                {"status": "aborted", "requested": False}
            with pytest.raises(RpcError) as err:
                await other.call("payment.abort", {"idempotency_key": "nobody"})
            assert err.value.reason == "not_found"
            (entry,) = await attempts(hal, "abort-1")
            assert [h["state"] for h in entry["history"]] == ["pending", "aborting", "aborted"]
            assert [c["state"] for c in charges_for(st, "abort-1")] == ["aborted"]

    run(go())


def test_reverse_refunds_an_approved_payment_once(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            r = await pay(hal, "reverse-1")
            with pytest.raises(RpcError) as err:
                await hal.call("payment.abort", {"idempotency_key": "reverse-1"})
            assert err.value.reason == "state_conflict"
            rev = await hal.call("payment.reverse", {"idempotency_key": "reverse-1"})
            assert rev["status"] == "reversed"
            assert rev["terminal_transaction_id"] == r["terminal_transaction_id"]
            again = await hal.call("payment.reverse", {"idempotency_key": "reverse-1"})
            assert again["status"] == "reversed" and again["repeated"] is True
            reversals = [x for x in ledger(st) if x["kind"] == "reversal"
                         and x["poi_transaction_id"] == r["terminal_transaction_id"]]
            assert [x["state"] for x in reversals] == ["reversed"]
            (charge,) = charges_for(st, "reverse-1")
            assert charge["reversed"] is True
            # A declined payment has nothing to reverse.
            scenario(st, "decline")
            await pay(hal, "reverse-2")
            with pytest.raises(RpcError) as err:
                await hal.call("payment.reverse", {"idempotency_key": "reverse-2"})
            assert err.value.reason == "state_conflict"
            status = await hal.call("payment.status", {"idempotency_key": "reverse-1"})
            assert status["status"] == "reversed"

    run(go())


def test_same_key_twice_at_once_charges_once(st: Station) -> None:
    async def go() -> None:
        async with st.client() as a, st.client() as b:
            await online(st, a)
            one, two = await asyncio.gather(pay(a, "twice-1"), pay(b, "twice-1"))
            assert one["status"] == two["status"] == "approved"
            assert one["terminal_transaction_id"] == two["terminal_transaction_id"]
            assert sorted([one["repeated"], two["repeated"]]) == [False, True]
            assert len(charges_for(st, "twice-1")) == 1
            # A different key while the terminal is free is a second, separate payment.
            assert (await pay(a, "twice-2", reference="twice-1"))["status"] == "approved"
            assert len(charges_for(st, "twice-1")) == 2

    run(go())


def test_a_client_that_reconnects_gets_the_outcome_of_its_payment(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
        scenario(st, "slow")
        prompted = asyncio.Event()
        first = st.client()
        await first.__aenter__()
        paying = asyncio.ensure_future(first.call(
            "payment.pay", {"amount": 150000, "idempotency_key": "reconnect-1", "reference": "reconnect-1"},
            on_progress=lambda e: prompted.set()))
        await asyncio.wait_for(prompted.wait(), 60)
        await first.close()  # the kiosk front-end goes away mid-payment
        with pytest.raises((ConnectionError, RpcError, asyncio.CancelledError)):
            await paying
        async with st.client() as again:
            r = await pay(again, "reconnect-1")
            assert r["status"] == "approved" and r["repeated"] is True
        assert [c["state"] for c in charges_for(st, "reconnect-1")] == ["approved"]

    run(go())


def test_a_key_survives_a_daemon_restart(st: Station) -> None:
    async def go_pay() -> dict[str, Any]:
        async with st.client() as hal:
            await online(st, hal)
            return await pay(hal, "restart-1")

    first = run(go_pay())
    st.restart_daemon()
    again = run(go_pay())
    assert again == {**first, "repeated": True}
    assert len(charges_for(st, "restart-1")) == 1


def test_bad_requests_get_clear_errors_and_the_daemon_serves_on(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            for params, field in (({"amount": 0, "idempotency_key": "bad"}, "amount"),
                                  ({"amount": 1000}, "idempotency_key"),
                                  ({"amount": 1000, "idempotency_key": "bad", "currency": "USD"}, "currency"),
                                  ({"amount": 1.5, "idempotency_key": "bad"}, "amount"),
                                  ({"amount": 1000, "idempotency_key": "bad", "card": "4111"}, None)):
                with pytest.raises(RpcError) as err:
                    await hal.call("payment.pay", params)
                assert err.value.reason == "invalid_params", params
                if field:
                    assert field in json.dumps(err.value.data) or field in err.value.message
            await pay(hal, "conflict-1", 150000)
            with pytest.raises(RpcError) as err:
                await pay(hal, "conflict-1", 99000)
            assert err.value.reason == "state_conflict"
            with pytest.raises(RpcError) as err:
                await hal.call("payment.vietqr", {"bin": "97043", "account": "1"})
            assert err.value.reason == "invalid_params"
            with pytest.raises(RpcError) as err:
                await hal.call("payment.vietqr", {"bin": "970436", "account": "1", "purpose": "Tiền điện"})
            assert err.value.reason == "invalid_params"
            assert (await hal.call("payment.status", {}))["link"] == "up"

    run(go())


def test_reconciliation_totals_match_the_journal(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            await pay(hal, "reconcile-1", 250000)
            rec = await hal.call("payment.reconcile", {})
            debit = next(t for t in rec["terminal"] if t["type"] == "Debit")
            assert debit["count"] >= 1 and debit["amount"] >= 250000
            assert rec["matches"] is True, rec
            assert rec["journal"]["approved_amount"] == debit["amount"]
            # The batch is closed: the next reconciliation counts only what came after.
            nxt = await hal.call("payment.reconcile", {})
            assert nxt["reconciliation_id"] != rec["reconciliation_id"] and nxt["matches"] is True

    run(go())


def test_broadcasts_and_logs_carry_no_payment_data(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal, st.client() as spy:
            await online(st, hal)
            await spy.subscribe("*")
            r = await pay(hal, "privacy-1", 123000, "HOADON-PRIVATE-77")
            assert r["status"] == "approved"
            await spy.call("hal.status")  # events sent to the spy before this answer have arrived
            seen = []
            while not spy._events.empty():
                seen.append(spy._events.get_nowait())
            assert any(e and e["topic"] == "payment.status" for e in seen)  # it did hear the device
            text = json.dumps(seen)
            assert "HOADON-PRIVATE-77" not in text and "123000" not in text and "PRESENT CARD" not in text
        assert "HOADON-PRIVATE-77" not in st.log() and "123000" not in st.log()

    run(go())


def test_vietqr_payload_png_and_receipt(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            await st.until_online(hal, "printer0")
            q = await hal.call("payment.vietqr", {"amount": 150000, "bin": "970436", "account": "0011004321",
                                                  "bill_number": "HD2026120301", "purpose": "Tien dien T12"})
            payload = q["payload"]
            assert payload[:-4] == ("000201" "010212" "3854" "0010A000000727" "0124" "0006970436"
                                    "01100011004321" "0208QRIBFTTA" "5303704" "5406150000" "5802VN"
                                    "6233" "0112HD2026120301" "0813Tien dien T12" "6304")
            assert q["crc"] == payload[-4:] == f"{_crc(payload[:-4]):04X}"
            with Image.open(io.BytesIO(base64.b64decode(q["png"]))) as img:
                assert img.format == "PNG" and img.width == img.height and img.width > 100
            r = await hal.call("printer.print", {"job_id": "vietqr-receipt-1", "template": "payment_receipt",
                                                 "data": {"amount": 150000, "method": "VietQR",
                                                          "vietqr": payload}})
            assert r["status"] == "printed"
        (job,) = [j for j in st.control("escpos_printer", "jobs")["jobs"] if j["status"] == "complete"][-1:]
        assert {"type": "qr", "data": payload} in job["symbols"]

    run(go())


def _crc(text: str) -> int:
    """CRC-16/CCITT-FALSE, bit by bit, independent of protocols.vietqr."""
    crc = 0xFFFF
    for byte in text.encode():
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def test_independent_crc_check_value() -> None:
    assert _crc("123456789") == 0x29B1


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_journal_and_reconcile_need_the_technician_role(st: Station) -> None:
    nobody = pwd.getpwnam("nobody")
    probe = (
        "import json\n"
        "from halsvc.client import Client, RpcError\n"
        f"c = Client({str(st.socket)!r})\n"
        "out = {}\n"
        "for m in ('payment.journal', 'payment.reconcile'):\n"
        "    try:\n"
        "        c.call(m, {})\n"
        "    except RpcError as e:\n"
        "        out[m] = e.reason\n"
        "out['status'] = c.call('payment.status', {})['link']\n"
        "print(json.dumps(out))\n")
    mode = st.socket.stat().st_mode
    st.socket.chmod(0o666)
    st.workdir.chmod(0o755)
    try:
        out = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                              "--clear-groups", sys.executable, "-c", probe], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd="/")
    finally:
        st.socket.chmod(mode & 0o7777)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"payment.journal": "permission_denied",
                                      "payment.reconcile": "permission_denied", "status": "up"}


def test_a_garbled_answer_settles_nothing_until_the_terminal_is_asked(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            scenario(st, "garbled")  # approved on the terminal; its answer lacks the POIData
            r = await pay(hal, "garbled-1")
            assert r["status"] == "approved" and r["terminal_transaction_id"]
            (charge,) = charges_for(st, "garbled-1")
            assert charge["poi_transaction_id"] == r["terminal_transaction_id"]
            (entry,) = await attempts(hal, "garbled-1")
            assert [h["state"] for h in entry["history"]] == ["pending", "unknown", "approved"]

    run(go())


def test_garbage_from_the_terminal_is_ignored_and_a_broken_stream_reconnects(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            await hal.subscribe("payment.status")
            for kind in ("bytes", "json", "stray_answer"):
                assert st.control(PART, "garbage", kind=kind)["sent"] >= 1
            assert (await pay(hal, "garbage-1"))["status"] == "approved"  # same link, still in step
            scenario(st, "slow")
            prompted = asyncio.Event()
            paying = asyncio.ensure_future(hal.call(
                "payment.pay", {"amount": 150000, "idempotency_key": "garbage-2", "reference": "garbage-2"},
                on_progress=lambda e: prompted.set()))
            await asyncio.wait_for(prompted.wait(), 60)
            st.control(PART, "garbage", kind="oversize")  # mid-payment: the stream is out of step
            await hal.next_event(lambda e: e["data"].get("link") == "down", timeout_s=60)
            r = await paying
            assert r["status"] == "approved"  # settled over the new link
            assert len(charges_for(st, "garbage-2")) == 1
            assert (await hal.call("payment.status", {}))["link"] == "up"

    run(go())


def test_a_caller_that_stops_waiting_gets_the_outcome_with_the_same_key(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await online(st, hal)
            scenario(st, "slow")
            with pytest.raises(RpcError) as err:  # the cardholder is still at the terminal
                await hal.call("payment.pay", {"amount": 150000, "idempotency_key": "patience-1",
                                               "reference": "patience-1", "timeout_ms": 1000})
            assert err.value.reason == "timeout" and err.value.data["status"] == "pending"
            assert (await hal.call("payment.status", {"idempotency_key": "patience-1"}))["settling"] is True
            r = await pay(hal, "patience-1")  # waits for the same attempt: no second charge
            assert r["status"] == "approved" and r["repeated"] is True
            assert len(charges_for(st, "patience-1")) == 1
            (entry,) = await attempts(hal, "patience-1")
            assert [h["state"] for h in entry["history"]] == ["pending", "approved"]

    run(go())
