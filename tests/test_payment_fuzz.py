"""Arbitrary params for every payment.* method against the live daemon and simulated terminal:
each call gets a result or a JSON-RPC error with a documented reason, the daemon keeps serving,
and whatever was charged is in the journal exactly as on the terminal."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest
from fuzzing import examples
from harness import Station
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import REASON_CODES
from halsvc.client import Client, RpcError

PART = "payment_terminal"
METHODS = ("payment.pay", "payment.abort", "payment.status", "payment.reverse", "payment.reconcile",
           "payment.journal", "payment.vietqr")
KEYS = ("amount", "currency", "reference", "idempotency_key", "bin", "account", "bill_number", "purpose",
        "to_card", "png", "box_size", "limit", "before_id", "device", "timeout_ms")
JSON_RPC = {-32700, -32600, -32601, -32602, -32603}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from(["VND", "970436", "0011004321", "fz-1", "Tiền"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=6)
garbage = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), values, max_size=6)
# Valid params of each method, then one field replaced or added: the calls that get past the schema.
VALID: dict[str, dict[str, Any]] = {
    "payment.pay": {"amount": 150000, "idempotency_key": "fz-pay", "reference": "FZ-1"},
    "payment.abort": {"idempotency_key": "fz-pay"},
    "payment.status": {"idempotency_key": "fz-pay"},
    "payment.reverse": {"idempotency_key": "fz-pay"},
    "payment.reconcile": {},
    "payment.journal": {"limit": 5},
    "payment.vietqr": {"bin": "970436", "account": "0011004321", "amount": 150000, "png": False},
}


@st.composite
def nearly_valid(draw: st.DrawFn, method: str) -> dict[str, Any]:
    out = dict(VALID[method])
    key = draw(st.sampled_from([*sorted(out), "amount", "idempotency_key", "purpose", "extra"]))
    out[key] = draw(st.one_of(values, st.integers(1, 10**13), st.text(min_size=1, max_size=130)))
    return out


calls = st.sampled_from(METHODS).flatmap(
    lambda m: st.tuples(st.just(m), st.one_of(garbage, nearly_valid(m), st.just(VALID[m]))))


@pytest.fixture(scope="module")
def fz() -> Iterator[tuple[Station, Client]]:
    station = Station(only={PART}).start()
    try:
        with station.sync_client(timeout=60) as hal:
            # Every payment the fuzz makes approves at once (no slow or silent amounts).
            station.control(PART, "scenario", name="approve", count=10000)
            yield station, hal
    finally:
        station.stop()


@settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
@given(calls)
def test_every_payment_method_answers_arbitrary_params(fz: tuple[Station, Client],
                                                       call: tuple[str, dict[str, Any]]) -> None:
    _, hal = fz
    method, args = call
    args.pop("device", None)  # only payment0 exists; another name is device_not_found, fine too
    try:
        result = hal.call(method, args)
    except RpcError as exc:
        assert exc.code in JSON_RPC or REASON_CODES.get(exc.reason) == exc.code, (method, args, exc)
        return
    assert isinstance(result, dict)


def test_the_daemon_served_on_and_the_journal_matches_the_terminal(fz: tuple[Station, Client]) -> None:
    station, hal = fz
    assert station.daemon is not None and station.daemon.poll() is None
    assert hal.call("payment.status", {})["link"] == "up"
    entries = hal.call("payment.journal", {"limit": 10000})["entries"]
    ledger = station.control(PART, "ledger")["records"]
    records = {r["service_id"]: r for r in ledger if r["kind"] == "payment"}
    for e in entries:
        if e["state"] in ("approved", "reversed"):
            assert records[e["service_id"]]["authorized_amount"] == e["authorized_amount"]
    per_key = collections.Counter(e["idempotency_key"] for e in entries
                                  if e["state"] in ("approved", "reversed"))
    assert per_key, "the fuzz never got a payment through"
    assert all(n == 1 for n in per_key.values()), per_key
    assert "Traceback" not in station.log()
