"""Shared fixtures. `station(only={...}, config={...})` starts simulators and the daemon as real
processes (tests/harness.py) and stops them after the test."""

from __future__ import annotations

import asyncio
import pathlib
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from harness import Station  # noqa: E402

T = TypeVar("T")


@pytest.fixture
def station() -> Iterator[Callable[..., Station]]:
    started: list[Station] = []

    def start(only: set[str] | None = None, config: dict[str, Any] | None = None) -> Station:
        st = Station(only=only, config=config)
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
