"""The device registry: one driver instance per configured device, their tasks, and claims."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from drivers.base import Driver, HalError, RpcMethod
from halsvc.config import Config

log = logging.getLogger("halsvc.registry")

Publish = Callable[[str, str, Mapping[str, Any]], None]


@dataclass
class Claim:
    conn_id: int
    lease_ms: int
    timer: asyncio.TimerHandle


class Registry:
    def __init__(self, config: Config, publish: Publish) -> None:
        self.config = config
        self.devices: dict[str, Driver] = {}
        self.claims: dict[str, Claim] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._publish = publish
        for dev in config.devices:
            driver = dev.cls(dev.id, dev.options, publish)
            driver.state_dir = config.state_dir / dev.id
            if dev.match is not None:
                driver.present = False  # waits for hot-plug to find it
            self.devices[dev.id] = driver

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        for dev_id, driver in self.devices.items():
            if driver.state_dir is not None:
                driver.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            self._tasks[dev_id] = asyncio.create_task(driver.run(), name=f"device:{dev_id}")

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for dev_id, task in self._tasks.items():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            log.debug("%s stopped", dev_id)
        for claim in self.claims.values():
            claim.timer.cancel()
        self.claims.clear()

    # --- lookup ---------------------------------------------------------------------------
    def methods(self) -> dict[str, tuple[type[Driver], RpcMethod]]:
        """Every driver method of the configured device kinds, by name."""
        out: dict[str, tuple[type[Driver], RpcMethod]] = {}
        for driver in self.devices.values():
            for spec in type(driver).rpc_methods():
                out.setdefault(spec.name, (type(driver), spec))
        return out

    def get(self, device_id: str) -> Driver:
        try:
            return self.devices[device_id]
        except KeyError:
            raise HalError("device_not_found", f"no device {device_id!r}; devices: "
                           + ", ".join(sorted(self.devices))) from None

    def resolve(self, spec: RpcMethod, device_id: str | None) -> Driver:
        """The device a method call is for: the one named, else the first that offers it."""
        if device_id is not None:
            driver = self.get(device_id)
            if spec not in type(driver).rpc_methods():
                raise HalError("device_not_found", f"{device_id} is a {driver.kind}; it has no {spec.name}")
            return driver
        candidates = [d for d in self.devices.values() if spec in type(d).rpc_methods()]
        if not candidates:
            raise HalError("device_not_found", f"no configured device offers {spec.name}")
        for driver in candidates:  # prefer one that can serve now
            if driver.state in ("online", "busy"):
                return driver
        return candidates[0]

    # --- claims ---------------------------------------------------------------------------
    def check_claim(self, device_id: str, conn_id: int) -> None:
        claim = self.claims.get(device_id)
        if claim is not None and claim.conn_id != conn_id:
            raise HalError("device_busy", f"{device_id} is claimed by another client")

    def claim(self, device_id: str, conn_id: int, lease_ms: int) -> None:
        self.get(device_id)
        self.check_claim(device_id, conn_id)
        old = self.claims.pop(device_id, None)
        if old is not None:
            old.timer.cancel()
        timer = asyncio.get_running_loop().call_later(lease_ms / 1000, self._expire, device_id, conn_id)
        self.claims[device_id] = Claim(conn_id, lease_ms, timer)
        self._publish("device.claimed", device_id, {"claimed": True, "lease_ms": lease_ms})

    def release(self, device_id: str, conn_id: int) -> None:
        self.get(device_id)
        claim = self.claims.get(device_id)
        if claim is None or claim.conn_id != conn_id:
            raise HalError("not_claimed", f"{device_id} is not claimed by this client")
        self._drop(device_id)

    def release_all(self, conn_id: int) -> None:
        for device_id in [d for d, c in self.claims.items() if c.conn_id == conn_id]:
            self._drop(device_id)

    def _expire(self, device_id: str, conn_id: int) -> None:
        claim = self.claims.get(device_id)
        if claim is not None and claim.conn_id == conn_id:
            log.info("claim on %s expired", device_id, extra={"device": device_id, "reason": "lease_expired"})
            self._drop(device_id)

    def _drop(self, device_id: str) -> None:
        claim = self.claims.pop(device_id)
        claim.timer.cancel()
        self._publish("device.claimed", device_id, {"claimed": False})
