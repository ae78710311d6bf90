"""The short, seeded soak of `make test` (bench/soak.py runs the same for minutes): the whole
station, 16 residents' visits and bad requests, faults from every simulator and one daemon
SIGKILL; nothing unanswered without a stated reason, no receipt twice, no payment lost or
doubled, the daemon's fds back to their count after warm-up (tests/soaklib.py)."""

from __future__ import annotations

import asyncio

import pytest
from soaklib import Soak, SoakConfig


@pytest.mark.timeout(300)
def test_short_soak_loses_nothing_and_answers_everything() -> None:
    cfg = SoakConfig(seed=10, duration_s=20.0, clients=16, kills=1, fault_mean_s=2.0, think_s=(0.5, 3.0),
                     citizen_every_s=10.0, log=lambda s: None)
    result = asyncio.run(Soak(cfg).run())
    print(result.table())
    assert result.requests > 50, result.table()
    assert result.kills == 1 and sum(result.faults.values()) > 0, result.table()
    failed = [what for what, _, _, ok in result.checks if ok is False]
    only_fds = bool(failed) and all(f.startswith("daemon fds") for f in failed)
    if only_fds and result.fds.get("end_warm_up_lacked") == ["health.measure"] and result.kills:
        # Known (issue 6): a BLE device left connected by a SIGKILLed daemon is never found again
        # by the next one ("no ... device in range"), so the end visit lacks its BLE link's fd.
        pytest.xfail("BLE device left connected by the killed daemon not found again:\n" + result.table())
    assert result.ok, result.table()
