"""The short, seeded soak of `make test` (bench/soak.py runs the same for minutes): the whole
station, 16 residents' visits and bad requests, faults from every simulator and one daemon
SIGKILL; nothing unanswered without a stated reason, no receipt twice, no payment lost or
doubled, the daemon's fds back to their count after warm-up (tests/soaklib.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from soaklib import Soak, SoakConfig, check_ledger, check_receipts


@pytest.mark.timeout(300)
def test_short_soak_loses_nothing_and_answers_everything() -> None:
    cfg = SoakConfig(seed=10, duration_s=20.0, clients=16, kills=1, fault_mean_s=2.0, think_s=(0.5, 3.0),
                     citizen_every_s=10.0, log=lambda s: None)
    result = asyncio.run(Soak(cfg).run())
    print(result.table())
    assert result.requests > 50, result.table()
    assert result.kills == 1 and sum(result.faults.values()) > 0, result.table()
    assert result.ok, result.table()


def _job(*qr: str) -> dict[str, Any]:
    return {"symbols": [{"type": "qr", "data": d} for d in qr], "status": "printed"}


def test_the_receipt_check_sees_a_double_and_a_missing_receipt() -> None:
    failures: list[str] = []
    jobs = [_job("rcpt-a"), _job("rcpt-b"), _job("rcpt-b"), _job("not-ours")]
    answers = {"rcpt-a": ["printed"], "rcpt-b": ["printed", "repeated:printed"], "rcpt-c": ["printed"],
               "rcpt-d": ["failed"]}
    got = check_receipts(jobs, answers, failures)
    assert (got["twice"], got["lost"], got["jobs_on_paper"], got["repeated"]) == (1, 1, 3, 1)
    assert any("rcpt-b on paper 2 times" in f for f in failures)
    assert any("rcpt-c answered printed but not on paper" in f for f in failures)


def _charge(service: str, state: str = "approved", amount: int = 5000, **kw: Any) -> dict[str, Any]:
    return {"kind": "payment", "key": f"KIOSK/{service}", "service_id": service, "state": state,
            "authorized_amount": amount, **kw}


def _row(key: str, service: str, state: str = "approved", amount: int | None = 5000) -> dict[str, Any]:
    return {"idempotency_key": key, "service_id": service, "state": state, "authorized_amount": amount}


def test_the_payment_check_sees_doubles_losses_and_disagreements() -> None:
    ok: list[str] = []
    fine = check_ledger([_charge("1"), _charge("2", "declined", 0), {"kind": "reversal", "service_id": "9"}],
                        [_row("k1", "1"), _row("k2", "2", "declined", 0)],
                        {"k1": ["terminal_busy", "approved"], "k2": ["declined"]}, ok)
    assert ok == []
    assert (fine["doubled"], fine["lost"], fine["mismatched"], fine["ledger_charges"]) == (0, 0, 0, 1)

    bad: list[str] = []
    ledger = [_charge("1"), _charge("2"),            # k1 charged twice (two attempts approved)
              _charge("3", amount=4000),             # k3: the journal has another amount
              _charge("4"),                          # charged with no journal row at all
              _charge("6", reversed=True)]           # reversed on the terminal, approved in the journal
    rows = [_row("k1", "1"), _row("k1", "2"), _row("k3", "3"), _row("k5", "5"), _row("k6", "6")]
    got = check_ledger(ledger, rows, {"k1": ["approved"], "k7": ["approved"]}, bad)
    assert got["doubled"] == 1 and got["lost"] == 1  # k1 twice; k7 told approved, never charged
    assert got["mismatched"] == 4, bad  # k3 amount, service 4 unjournalled, k5 not on the terminal, k6
