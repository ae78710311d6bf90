"""Shared fixtures. `station(only={...}, config={...})` starts simulators and the daemon as real
processes (tests/harness.py) and stops them after the test."""

from __future__ import annotations

import asyncio
import pathlib
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

ROOT = pathlib.Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from fuzzing import EXAMPLES_DIR, LONG, LONG_EXAMPLES, KeepingDatabase  # noqa: E402
from harness import Station  # noqa: E402

# Crashing inputs are kept in tests/fuzz-examples/ (tests/fuzzing.py); HALSVC_FUZZ_LONG=1 runs
# every hypothesis test for minutes.
settings.register_profile("halsvc", database=KeepingDatabase(EXAMPLES_DIR))
settings.register_profile("fuzz-long", parent=settings.get_profile("halsvc"), max_examples=LONG_EXAMPLES,
                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fuzz-long" if LONG else "halsvc")

T = TypeVar("T")


@pytest.fixture
def station() -> Iterator[Callable[..., Station]]:
    started: list[Station] = []

    def start(only: set[str] | None = None, config: dict[str, Any] | None = None,
              options: dict[str, dict[str, Any]] | None = None) -> Station:
        st = Station(only=only, config=config, options=options)
        started.append(st)
        return st.start()

    yield start
    for st in started:
        st.stop()


@pytest.fixture(scope="module")
def panel_station() -> Iterator[Station]:
    """One station with only the GPIO panel, shared by a module's tests."""
    st = Station(only={"gpio_panel"}, config={"daemon": {"send_buffer_bytes": 65536}}).start()
    try:
        yield st
    finally:
        st.stop()


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]
