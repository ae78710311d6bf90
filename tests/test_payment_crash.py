"""Crash safety: kill -9 the daemon at seeded random points of payments (journalled but not
sent, sent, answered but not journalled, journalled but not answered, link gone, during start-up
recovery, and from outside at the n-th terminal prompt), restart it, retry with the same key, and
hold the terminal's ledger against the journal: every charge exactly once, and the retrying
client gets that outcome. bench/payment.py runs many more trials."""

from __future__ import annotations

import os

import payment_trials as pt
from harness import Station

SEED = int(os.environ.get("PAYMENT_CRASH_SEED", "20261204"))
TRIALS = 33  # three rounds of every kill point, about 20 s


def test_kill_minus_nine_at_random_points_never_loses_or_doubles_a_charge() -> None:
    st = Station(only={pt.PART}).start(daemon=False)
    try:
        trials = [pt.run_trial(st, t) for t in pt.plan(SEED, TRIALS)]
        summary = pt.check(st, trials)
    finally:
        st.stop()
    print(summary)
    # Every kill point was reached at least once (seeded: the same points on every run).
    hit = set(summary["killed_at"])
    assert {"commit:payment:pending", "sent:Payment", "answer:Payment", "commit:payment:approved",
            "commit:payment:unknown", "sent:TransactionStatus", "commit:payment:reversing",
            "sent:Reversal", "answer:Reversal"} <= hit, summary
    assert "progress" in hit, summary
    assert {"pending", "unknown", "approved", "reversing"} <= set(summary["journal_after_kill"]), summary
    assert summary["outcomes"].get("approved", 0) >= 1 and summary["charges"] >= 1


def test_the_same_over_http() -> None:
    st = Station(only={pt.PART}, options={pt.PART: {"transport": "http"}}).start(daemon=False)
    try:
        trials = [pt.run_trial(st, t) for t in pt.plan(SEED + 1, 11)]
        summary = pt.check(st, trials)
    finally:
        st.stop()
    print(summary)
    assert len(summary["killed_at"]) >= 6, summary
