"""The device side of a BLE peripheral as the stand-in serves it: GATT services and
characteristics with their behaviour, and the faults every peripheral can show. No D-Bus here:
`simulators.ble_station.bluez` exports these objects the way BlueZ would."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from protocols.gatt_health import current_time, uuid16


class Link(Protocol):
    """What the stand-in gives a connected peripheral."""

    def notify(self, char: Characteristic, value: bytes) -> None: ...

    def drop(self) -> None: ...


class LinkDropped(Exception):
    """Raised inside a peripheral's task when a fault drops the link at a checkpoint."""


def full_uuid(u: int | str) -> str:
    return uuid16(u) if isinstance(u, int) else u.lower()


class Characteristic:
    def __init__(self, uuid: int | str, flags: tuple[str, ...], value: bytes = b"",
                 secure: bool = True) -> None:
        self.uuid = full_uuid(uuid)
        self.flags = flags
        self.value = value
        self.secure = secure  # needs pairing when the peripheral demands it
        self.notifying = False
        self.on_read: Callable[[], bytes] | None = None
        self.on_write: Callable[[bytes], None] | None = None
        self.on_subscribe: Callable[[bool], None] | None = None

    @property
    def notifiable(self) -> bool:
        return "notify" in self.flags or "indicate" in self.flags


class Service:
    def __init__(self, uuid: int | str, characteristics: list[Characteristic]) -> None:
        self.uuid = full_uuid(uuid)
        self.characteristics = characteristics


class Peripheral:
    """One simulated BLE device. Subclasses build `services` and their behaviour."""

    kinds: tuple[str, ...] = ()
    actions: tuple[str, ...] = ("refuse_connects", "drop_link", "require_pairing", "advertise",
                                "battery", "malformed", "special", "stats")

    def __init__(self, device_id: str, address: str, name: str, options: Mapping[str, Any]) -> None:
        self.id = device_id
        self.address = address.upper()
        self.name = name
        self.options = dict(options)
        self.services: list[Service] = []
        self.advertised: list[str] = []
        self.advertising = bool(self.options.get("advertising", True))
        self.connected = False
        self.paired = False
        self.require_pairing = bool(self.options.get("require_pairing", False))
        self.refuse = 0  # connects still to refuse
        self.drop_at: str | None = None  # a checkpoint at which the link drops
        self.malformed: bytes | None = None  # the next reading's bytes, as sent
        self.special: str | None = None  # "NaN" / "NRes" in the next reading
        self.battery = int(self.options.get("battery", 90))
        self.step_s = float(self.options.get("step_ms", 20)) / 1000.0  # the device's own pace
        self.link: Link | None = None
        self.stats: dict[str, Any] = {"connects": 0, "refused": 0, "pairings": 0, "drops": 0,
                                      "measurements": 0, "indication_at": None}
        self.clock: tuple[datetime.datetime, float] | None = None  # (time set, monotonic then)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.battery_char = Characteristic(0x2A19, ("read", "notify"), secure=False)
        self.battery_char.on_read = lambda: bytes((self.battery,))
        self.time = Characteristic(0x2A2B, ("read", "write", "notify"))
        self.time.on_write = lambda data: self.set_clock(current_time.decode(data)["date_time"])
        self.time.on_read = lambda: current_time.encode(self.device_time(), 1)

    # --- helpers for subclasses ----------------------------------------------------------
    def battery_service(self) -> Service:
        return Service(0x180F, [self.battery_char])

    def time_service(self) -> Service:
        return Service(0x1805, [self.time])

    def device_time(self) -> tuple[int, int, int, int, int, int]:
        """The device clock: as the central set it (plus time since), or its power-on default."""
        if self.clock is None:
            base, at = datetime.datetime(2000, 1, 1), 0.0
        else:
            base, at = self.clock
        now = base + datetime.timedelta(seconds=time.monotonic() - at if at else 0)
        return (now.year, now.month, now.day, now.hour, now.minute, now.second)

    def set_clock(self, dt: tuple[int, ...]) -> None:
        year, month, day, hour, minute, second = dt[:6]
        self.clock = (datetime.datetime(year, month, day, hour, minute, second), time.monotonic())

    def notify(self, char: Characteristic, value: bytes, final: bool = False) -> None:
        if final:
            self.stats["indication_at"] = time.monotonic()
            self.stats["measurements"] += 1
        if self.link is not None and char.notifying:
            self.link.notify(char, value)

    def checkpoint(self, stage: str) -> None:
        """Drop the link here if a fault asks for it at this stage."""
        if self.drop_at == stage and self.link is not None:
            self.drop_at = None
            self.stats["drops"] += 1
            self.link.drop()
            raise LinkDropped(stage)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None \
                and not isinstance(task.exception(), LinkDropped):
            raise task.exception()  # type: ignore[misc]

    def take_reading_bytes(self, encode: Callable[[], bytes]) -> bytes:
        """A fault's bytes for the next reading, or the encoder's."""
        if self.malformed is not None:
            raw, self.malformed = self.malformed, None
            return raw
        return encode()

    # --- what the stand-in calls ---------------------------------------------------------
    def connecting(self) -> str | None:
        """None to accept a connection, else the BlueZ error text to refuse it with."""
        if not self.advertising:
            return "Host is down"
        if self.refuse > 0:
            self.refuse -= 1
            self.stats["refused"] += 1
            return "le-connection-abort-by-remote"
        return None

    def connected_by(self, link: Link) -> None:
        self.link = link
        self.connected = True
        self.stats["connects"] += 1
        if self.drop_at == "connect":
            self.drop_at = None
            self.stats["drops"] += 1
            asyncio.get_running_loop().call_soon(link.drop)

    def disconnected(self) -> None:
        self.link = None
        self.connected = False
        for task in list(self._tasks):
            task.cancel()
        for svc in self.services:
            for char in svc.characteristics:
                char.notifying = False

    # --- control -------------------------------------------------------------------------
    async def control(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action == "refuse_connects":
            self.refuse = int(args.get("count", 1))
        elif action == "drop_link":
            stage = str(args.get("at", "now"))
            if stage == "now":
                if self.link is not None:
                    self.stats["drops"] += 1
                    self.link.drop()
            else:
                self.drop_at = stage
        elif action == "require_pairing":
            self.require_pairing = bool(args.get("on", True))
        elif action == "advertise":
            self.advertising = bool(args.get("on", True))
        elif action == "battery":
            self.battery = int(args["percent"])
        elif action == "malformed":
            self.malformed = bytes.fromhex(str(args.get("hex", "00")))
        elif action == "special":
            self.special = str(args.get("value", "NaN"))
        elif action == "stats":
            pass
        else:
            return await self.device_control(action, args)
        return self.describe()

    async def device_control(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        from simulators.base import UnknownAction
        raise UnknownAction(action)

    def describe(self) -> dict[str, Any]:
        return {"device": self.id, "address": self.address, "name": self.name, "connected": self.connected,
                "paired": self.paired, "advertising": self.advertising, "stats": dict(self.stats),
                "clock": "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format(*self.device_time())}

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
