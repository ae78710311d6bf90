"""The same payments over the other wire: Adyen-style `POST /nexo` (one request per connection,
the answer in the response body, an empty body for an AbortRequest, no display prompts), with
the driver and simulator both on `transport = "http"`, then the same over TLS."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import run
from harness import Station

from halsvc.client import AsyncClient, RpcError

PART, DEV = "payment_terminal", "payment0"


@pytest.fixture(scope="module", params=["http", "https"])
def st(request: pytest.FixtureRequest) -> Iterator[Station]:
    # https: the simulator's throwaway certificate, which the driver is told to trust and name.
    station = Station(only={PART}, options={PART: {"transport": request.param}}).start()
    try:
        yield station
    finally:
        station.stop()


def charges_for(st: Station, reference: str) -> list[dict[str, Any]]:
    return [r for r in st.control(PART, "ledger")["records"]
            if r["kind"] == "payment" and r.get("reference") == reference]


async def pay(hal: AsyncClient, key: str, progress: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return await hal.call("payment.pay", {"amount": 150000, "idempotency_key": key, "reference": key},
                          on_progress=progress.append if progress is not None else None)


def test_every_scenario_over_http(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            assert (await hal.call("device.status", {"device": DEV}))["link"] == "up"
            progress: list[dict[str, Any]] = []
            r = await pay(hal, "h-approve", progress)
            assert r["status"] == "approved" and r["authorized_amount"] == 150000
            assert [p["data"]["phase"] for p in progress] == ["sent", "done"]  # no prompts over HTTP
            assert (await pay(hal, "h-approve"))["repeated"] is True
            for name, want in (("decline", "declined"), ("cancel", "aborted"), ("drop", "approved"),
                               ("crash", "approved"), ("slow", "approved"), ("garbled", "approved")):
                st.control(PART, "scenario", name=name)
                assert (await pay(hal, f"h-{name}"))["status"] == want, name
            st.control(PART, "scenario", name="busy")
            with pytest.raises(RpcError) as err:
                await pay(hal, "h-busy")
            assert err.value.reason == "terminal_busy"
            st.control(PART, "scenario", name="silent")
            with pytest.raises(RpcError) as err:
                await pay(hal, "h-silent")
            assert err.value.reason == "terminal_unreachable" and err.value.data["charged"] is False
            for key in ("h-approve", "h-drop", "h-crash", "h-slow", "h-garbled"):
                assert [c["state"] for c in charges_for(st, key)] == ["approved"], key
            assert charges_for(st, "h-silent") == [] and charges_for(st, "h-busy") == []

    run(go())


def test_abort_reverse_and_reconcile_over_http(st: Station) -> None:
    async def go() -> None:
        async with st.client() as hal, st.client() as other:
            await st.until_online(hal, DEV)
            st.control(PART, "scenario", name="slow")
            sent = asyncio.Event()
            paying = asyncio.ensure_future(hal.call(
                "payment.pay", {"amount": 150000, "idempotency_key": "h-abort", "reference": "h-abort"},
                on_progress=lambda e: sent.set()))
            await asyncio.wait_for(sent.wait(), 60)
            assert (await other.call("payment.abort", {"idempotency_key": "h-abort"}))["requested"] is True
            r = await paying
            assert (r["status"], r["error_condition"]) == ("aborted", "Aborted")
            await pay(hal, "h-reverse")
            rev = await hal.call("payment.reverse", {"idempotency_key": "h-reverse"})
            assert rev["status"] == "reversed"
            rec = await hal.call("payment.reconcile", {})
            assert rec["matches"] is True, rec

    run(go())


def test_a_key_survives_a_daemon_kill_over_http(st: Station) -> None:
    async def first() -> dict[str, Any]:
        async with st.client() as hal:
            await st.until_online(hal, DEV)
            return await pay(hal, "h-restart")

    r = run(first())
    st.restart_daemon(sig=9)
    again = run(first())
    assert again == {**r, "repeated": True}
    assert len(charges_for(st, "h-restart")) == 1
