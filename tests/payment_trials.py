"""Randomised crash trials of payments: kill -9 the daemon at chosen points of a payment, restart
it, retry with the same idempotency key, and hold the terminal's ledger against the journal.

Used by tests/test_payment_crash.py (a few dozen seeded trials that cover every kill point) and
bench/payment.py (many more). A kill point is either a place inside the driver, reached through
its `HALSVC_PAYMENT_KILL_AT` hook (the journal commit of a state, a message sent, an answer
received), or the client's n-th progress event (a kill from outside at a random moment of the
cardholder's flow).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import random
import signal
import sqlite3
from typing import Any

from harness import Station

from drivers.payment.driver import KILL_ENV
from halsvc.client import RpcError

PART = "payment_terminal"
DEV = "payment0"

# point -> scenarios that reach it
POINTS: dict[str, tuple[str, ...]] = {
    "commit:payment:pending": ("approve", "decline", "cancel", "partial"),  # journalled, not yet sent
    "sent:Payment": ("approve", "decline", "partial", "drop"),  # sent, no answer yet
    "answer:Payment": ("approve", "decline", "cancel", "partial"),  # the terminal answered; not journalled
    "commit:payment:approved": ("approve", "partial", "crash", "drop"),  # journalled; client not answered
    "commit:payment:unknown": ("drop", "crash"),  # the link went; not yet settled
    "recovery": ("approve", "partial", "drop"),  # killed again while start-up recovery asks the terminal
    "progress": ("approve", "decline", "partial", "drop", "crash", "cancel"),  # from outside, mid-flow
    "none": ("approve", "decline", "cancel", "partial", "drop", "crash"),
    # reversals of an approved payment, killed while `reversing` is journalled but not sent, sent,
    # and answered but not journalled
    "reverse:journalled": ("approve", "partial"),
    "reverse:sent": ("approve", "partial"),
    "reverse:answered": ("approve", "partial"),
}
REVERSAL_KILLS = {"reverse:journalled": "commit:payment:reversing", "reverse:sent": "sent:Reversal",
                  "reverse:answered": "answer:Reversal"}
FINAL = ("approved", "declined", "aborted")


@dataclasses.dataclass
class Trial:
    key: str
    point: str
    scenario: str
    amount: int
    kill_progress: int = 0  # for "progress": kill at this progress event
    killed: list[str] = dataclasses.field(default_factory=list)  # points where the daemon died
    outcome: dict[str, Any] | None = None
    reversal: dict[str, Any] | None = None
    retries: int = 0
    state_at_kill: list[str] = dataclasses.field(default_factory=list)


def plan(seed: int, count: int) -> list[Trial]:
    """`count` trials, every kill point at least once when count allows, in a seeded order."""
    rng = random.Random(seed)
    names = list(POINTS)
    points = (names * (count // len(names) + 1))[:count]
    rng.shuffle(points)
    trials = []
    for i, point in enumerate(points):
        scen = rng.choice(POINTS[point])
        amount = rng.randrange(10, 5000) * 1000  # the scenario comes from the queue, not the amount
        trials.append(Trial(f"s{seed}-t{i}", point, scen, amount, kill_progress=rng.randint(1, 4)))
    return trials


def _start(st: Station, kill_at: str | None) -> None:
    if kill_at:
        st.env[KILL_ENV] = kill_at
    else:
        st.env.pop(KILL_ENV, None)
    st.start_daemon()


def _died(st: Station) -> bool:
    """Wait for the daemon to end (it is killing itself); True if it died of SIGKILL."""
    proc, st.daemon = st.daemon, None
    assert proc is not None
    return proc.wait(60) == -signal.SIGKILL


async def _pay(st: Station, t: Trial, kill_on_progress: int = 0) -> dict[str, Any] | None:
    """One payment call; None when the daemon died under it."""
    seen = 0
    pid = st.daemon.pid if st.daemon is not None else 0

    def progress(event: dict[str, Any]) -> None:
        nonlocal seen
        seen += 1
        if kill_on_progress and seen == kill_on_progress:
            os.kill(pid, signal.SIGKILL)

    async with st.client() as hal:
        await st.until_online(hal, DEV)
        try:
            return await hal.call("payment.pay", {"amount": t.amount, "idempotency_key": t.key,
                                                  "reference": t.key}, on_progress=progress)
        except ConnectionError:
            return None
        except RpcError as exc:
            if exc.reason in ("terminal_busy", "terminal_unreachable", "timeout"):
                return {"status": "error", "reason": exc.reason}
            raise


def _journal_state(st: Station, key: str) -> list[str]:
    """The key's attempts as the dead daemon left them on disk (read before any restart)."""
    path = st.workdir / "state" / DEV / "payment-journal.sqlite"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT state FROM payments WHERE idempotency_key=? ORDER BY id",
                                         (key,))]
    finally:
        db.close()


async def _reverse(st: Station, t: Trial) -> dict[str, Any] | None:
    async with st.client() as hal:
        await st.until_online(hal, DEV)
        try:
            return await hal.call("payment.reverse", {"idempotency_key": t.key})
        except ConnectionError:
            return None
        except RpcError as exc:
            if exc.reason in ("timeout", "device_offline"):
                return {"status": "error", "reason": exc.reason}
            raise


def run_reversal_trial(st: Station, t: Trial) -> Trial:
    kill = REVERSAL_KILLS[t.point]
    _start(st, kill)
    st.control(PART, "scenario", name=t.scenario)
    t.outcome = asyncio.run(_pay(st, t))
    assert t.outcome is not None and t.outcome["status"] == "approved", t.outcome
    result = asyncio.run(_reverse(st, t))
    if result is None:
        if _died(st):
            t.killed.append(kill)
        t.state_at_kill = _journal_state(st, t.key)
    while result is None or result.get("status") != "reversed":
        t.retries += 1
        if t.retries > 20:
            raise AssertionError(f"{t}: not reversed after 20 retries: {result}")
        if st.daemon is None:
            _start(st, None)
        result = asyncio.run(_reverse(st, t))
    t.reversal = result
    st.control(PART, "clear_scenarios")
    st.stop_daemon()
    return t


def run_trial(st: Station, t: Trial) -> Trial:
    if t.point in REVERSAL_KILLS:
        return run_reversal_trial(st, t)
    first_kill = {"recovery": "sent:Payment", "progress": None, "none": None}.get(t.point, t.point)
    _start(st, first_kill)
    st.control(PART, "scenario", name=t.scenario)
    result = asyncio.run(_pay(st, t, t.kill_progress if t.point == "progress" else 0))
    if result is None:
        if _died(st):
            t.killed.append(t.point if t.point != "recovery" else "sent:Payment")
        t.state_at_kill = _journal_state(st, t.key)
        if t.point == "recovery":
            _start(st, "sent:TransactionStatus")  # recovery starts on its own at connect
            if _died(st):
                t.killed.append("sent:TransactionStatus")
                t.state_at_kill += _journal_state(st, t.key)
    # The client retries with its key until it has a final outcome.
    while result is None or result.get("status") not in FINAL:
        t.retries += 1
        if t.retries > 20:
            raise AssertionError(f"{t}: no final outcome after 20 retries: {result}")
        if st.daemon is None:
            _start(st, None)
        result = asyncio.run(_pay(st, t))
        if result is None:  # a kill point the first call did not reach, reached by the retry
            if _died(st):
                t.killed.append(t.point)
            t.state_at_kill += _journal_state(st, t.key)
    t.outcome = result
    st.control(PART, "clear_scenarios")
    st.stop_daemon()
    return t


def check(st: Station, trials: list[Trial]) -> dict[str, Any]:
    """Every charge exactly once, as the journal says, and the client's outcome is the terminal's."""
    _start(st, None)
    try:
        async def journal() -> list[dict[str, Any]]:
            async with st.client() as hal:
                return list((await hal.call("payment.journal", {"limit": 10000}))["entries"])

        entries = asyncio.run(journal())
    finally:
        st.stop_daemon()
    records = [r for r in st.control(PART, "ledger")["records"] if r["kind"] == "payment"]
    by_service = {r["service_id"]: r for r in records}
    unfinished = [e for e in entries if e["state"] not in ("approved", "declined", "aborted", "not_charged",
                                                           "reversed")]
    assert not unfinished, f"unsettled journal entries: {unfinished}"
    for e in entries:  # the journal agrees with the terminal on every attempt
        rec = by_service.get(e["service_id"])
        if e["state"] == "not_charged":
            assert rec is None or rec["state"] not in ("approved", "in_progress"), (e, rec)
        else:
            assert rec is not None, e
            want = "approved" if e["state"] == "reversed" else e["state"]
            assert rec["state"] == want and bool(rec.get("reversed")) == (e["state"] == "reversed"), (e, rec)
            assert rec["poi_transaction_id"] == e["poi_transaction_id"]
            if want == "approved":
                assert rec["authorized_amount"] == e["authorized_amount"]
    for r in records:  # and every terminal record is in the journal
        assert r["state"] != "in_progress", r
        assert any(e["service_id"] == r["service_id"] for e in entries), f"charge not in the journal: {r}"
    for t in trials:
        assert t.outcome is not None
        approved = [r for r in records if r["reference"] == t.key and r["state"] == "approved"]
        assert len(approved) <= 1, f"{t.key} charged {len(approved)} times"
        if t.outcome["status"] == "approved":
            (charge,) = approved
            assert charge["poi_transaction_id"] == t.outcome["terminal_transaction_id"]
            assert charge["authorized_amount"] == t.outcome["authorized_amount"]
        else:
            assert approved == [], (t, approved)
            assert t.outcome["authorized_amount"] == 0
    reversals = collections.Counter(r["poi_transaction_id"] for r in st.control(PART, "ledger")["records"]
                                    if r["kind"] == "reversal" and r["state"] == "reversed")
    assert all(n == 1 for n in reversals.values()), f"reversed more than once: {reversals}"
    for t in trials:
        if t.reversal is not None:
            assert t.reversal["status"] == "reversed"
            assert reversals[t.reversal["terminal_transaction_id"]] == 1, t
    terminal_stats = st.control(PART, "stats")["stats"]
    assert terminal_stats["service_id_reuse"] == 0, terminal_stats  # not even across kill -9
    killed = collections.Counter(p for t in trials for p in t.killed)
    states = collections.Counter(s for t in trials for s in t.state_at_kill)
    outcomes = collections.Counter(t.outcome["status"] for t in trials if t.outcome)
    return {"trials": len(trials), "killed_at": dict(killed), "journal_after_kill": dict(states),
            "outcomes": dict(outcomes), "charges": sum(1 for r in records if r["state"] == "approved"),
            "attempts": len(entries)}
