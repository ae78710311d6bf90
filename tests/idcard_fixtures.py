"""Fixtures for the ID card tests: the virtual CCCD on the real PC/SC stack (pcscd + vpcd),
and the driver run against it.

The card runs in its own thread and event loop (as it would in the station process), so a test's
own loop only runs the driver. pcscd is one per machine: the card part starts `pcscd -f -a` only
if none runs, and stops only the one it started.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import pytest

from drivers.base import DeviceState, OperationContext
from drivers.idcard import IdCardDriver
from simulators.cccd_card.card import start_part, wait_until_reader_empty


class CardRig:
    """The simulated card in a background loop; `control()` injects faults."""

    def __init__(self, workdir: pathlib.Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cccd-sim", daemon=True)
        self.thread.start()
        self.part = self._run(start_part(workdir, {}))
        self.device = dict(self.part.devices["idcard0"])

    def _run(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def control(self, action: str, **args: Any) -> dict[str, Any]:
        return dict(self._run(self.part.control(action, args)))

    async def control_async(self, action: str, **args: Any) -> dict[str, Any]:
        """`control()` from a test's loop, which keeps running the driver meanwhile."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.part.control(action, args),
                                                                          self.loop))

    def stop(self) -> None:
        try:
            # Take the card off and let pcscd see it go before the part (and maybe pcscd) stops: a
            # next rig's card arriving within pcscd's poll interval would look like this card still
            # there, and the first read on it would fail with card_removed.
            try:
                self.control("remove")
                wait_until_reader_empty(self.device["reader"])
            finally:
                self._run(self.part.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


# Module scope: a card left connected to vpcd would fight the next simulated card (another module
# or `make run`) for the same reader slot.
@pytest.fixture(scope="module")
def card_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardRig]:
    rig = CardRig(tmp_path_factory.mktemp("cccd"))
    try:
        yield rig
    finally:
        rig.stop()


@pytest.fixture
def card(card_rig: CardRig) -> Iterator[CardRig]:
    """The card with every fault off and the default citizen, on the reader."""
    card_rig.control("reset")
    yield card_rig
    card_rig.control("reset")


class DriverHarness:
    """The real driver with a list-appending event sink, running in the test's loop. Progress of
    every read also lands in `progress`, so a test can wait on a step while the read runs."""

    def __init__(self, rig: CardRig, **options: Any) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.progress: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.driver = IdCardDriver("idcard0", {**rig.device, **options}, self._sink)
        self.task: asyncio.Task[None] | None = None

    def _sink(self, topic: str, device: str, data: Any) -> None:
        self.events.append((topic, dict(data)))
        self.changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async def waiter() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(waiter(), timeout_s)

    async def __aenter__(self) -> DriverHarness:
        self.task = asyncio.create_task(self.driver.run())
        await self.wait_for(lambda: self.driver.state == DeviceState.ONLINE)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass

    async def read(self, **params: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        progress: list[dict[str, Any]] = []

        def on_progress(topic: str, data: Mapping[str, Any]) -> None:
            progress.append(dict(data))
            self.progress.append(dict(data))
            self.changed.set()

        ctx = OperationContext(request_id=1, progress=on_progress)
        result = await self.driver.read(params, ctx)
        return result, progress

    def topics(self) -> list[str]:
        return [t for t, _ in self.events]


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]
