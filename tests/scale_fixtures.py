"""A scale driver wired to a simulated scale over a real pty, both on the test's event loop.

    async with scale_rig(tmp_path, "and") as rig:
        await rig.online()
        rig.sim.step_on(72.5, settle_s=0.3)
        result = await rig.read()
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from drivers.base import HalError, OperationContext
from drivers.scale import ScaleDriver
from simulators.serial_scale import SerialScaleStation, start_scales
from simulators.serial_scale.device import SimulatedScale

WAIT = 15.0  # a generous ceiling for conditions: tests wait on events, this only stops a hang


class Rig:
    def __init__(self, station: SerialScaleStation, driver: ScaleDriver, device_id: str) -> None:
        self.station = station
        self.driver = driver
        self.device_id = device_id
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.progress: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    @property
    def sim(self) -> SimulatedScale:
        return self.station.scales[self.device_id]

    def sink(self, topic: str, device: str, data: Mapping[str, Any]) -> None:
        self.events.append((topic, device, dict(data)))
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], what: str = "condition") -> None:
        """Wait until `predicate()` holds, re-checking on every driver event."""
        async def wait() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(wait(), WAIT)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; state {self.driver.state}") from None

    async def state(self, *states: str) -> None:
        await self.until(lambda: str(self.driver.state) in states, f"state in {states}")

    async def online(self) -> None:
        await self.state("online")

    def ctx(self, timeout_s: float | None = None) -> OperationContext:
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        return OperationContext(request_id=1, deadline=deadline,
                                progress=lambda topic, data: self.progress.append((topic, dict(data))))

    async def call(self, method: str, params: Mapping[str, Any] | None = None,
                   timeout_s: float | None = None) -> dict[str, Any]:
        """Run an RPC handler as its own task, as the daemon does."""
        handler = getattr(self.driver, method)
        task = asyncio.create_task(handler(dict(params or {}), self.ctx(timeout_s)))
        return await asyncio.wait_for(task, WAIT)

    async def read(self, **params: Any) -> dict[str, Any]:
        return await self.call("read", params)

    async def error(self, method: str, params: Mapping[str, Any] | None = None) -> HalError:
        try:
            await self.call(method, params)
        except HalError as exc:
            return exc
        raise AssertionError(f"{method} did not fail")


@contextlib.asynccontextmanager
async def scale_rig(tmp_path: pathlib.Path, protocol: str, *, sim: Mapping[str, Any] | None = None,
                    driver_protocol: str | None = None, **options: Any) -> AsyncIterator[Rig]:
    """Start one simulated scale speaking `protocol` and a driver on it configured for
    `driver_protocol` (default the same; "auto" to detect). `options` are device options."""
    station = await start_scales(tmp_path, {"devices": {"scale0": {"protocol": protocol, **(sim or {})}}})
    s = station.scales["scale0"]
    opts = {"port": s.path, "protocol": driver_protocol or protocol, "software_parity": True, "poll_ms": 50,
            "answer_timeout_ms": 300, "idle_poll_ms": 300, "silence_ms": 800,
            "read_timeout_ms": 8000, "progress_ms": 0, **options}
    rig = Rig(station, None, "scale0")  # type: ignore[arg-type]
    rig.driver = ScaleDriver("scale0", opts, rig.sink)
    task = asyncio.create_task(rig.driver.run())
    try:
        yield rig
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await station.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)
