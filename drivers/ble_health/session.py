"""One BLE health device as the driver keeps it: its bleak client, connect with retry and
backoff, the clock set on every connect, battery, notifications into a queue that a link loss
ends, and reconnection after a loss so the device is ready for the next resident."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDBusError, BleakError, BleakGATTProtocolError, BleakGATTProtocolErrorCode

from drivers.base import Backoff, HalError
from protocols.gatt_health import BATTERY_LEVEL, CURRENT_TIME, current_time, uuid16

log = logging.getLogger("halsvc.driver.ble_health")

LOST = object()  # put into a measurement's queue when the link goes


def is_not_authorized(exc: BaseException) -> bool:
    if isinstance(exc, BleakGATTProtocolError):
        return exc.code in (BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHORIZATION,
                            BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION,
                            BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION)
    return isinstance(exc, BleakDBusError) and exc.dbus_error in (
        "org.bluez.Error.NotAuthorized", "org.bluez.Error.NotPermitted")


def local_now() -> tuple[tuple[int, int, int, int, int, int], int]:
    now = datetime.datetime.now()
    return (now.year, now.month, now.day, now.hour, now.minute, now.second), now.isoweekday()


class Session:
    def __init__(self, device: BLEDevice, kinds: list[str], known: bool, adapter: str,
                 on_change: Callable[[Session], None]) -> None:
        self.device = device
        self.address = device.address.upper()
        self.name = device.name or self.address
        self.kinds = kinds
        self.known = known
        self.adapter = adapter
        self.battery: int | None = None
        self.last_seen: float | None = time.time()
        self.paired = False
        self.client: BleakClient | None = None
        self.measuring = asyncio.Lock()
        self._connect_lock = asyncio.Lock()
        self._queues: set[asyncio.Queue[Any]] = set()
        self._closing = False
        self._want_connected = False
        self._reconnect: asyncio.Task[None] | None = None
        self._closers: dict[int, asyncio.Task[None]] = {}
        self._on_change = on_change
        self.connected_at: float | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    def describe(self) -> dict[str, Any]:
        seen = None
        if self.last_seen is not None:
            seen = datetime.datetime.fromtimestamp(self.last_seen).astimezone().isoformat(timespec="seconds")
        return {"address": self.address, "name": self.name, "kinds": list(self.kinds), "known": self.known,
                "paired": self.paired, "connected": self.connected, "last_seen": seen,
                "battery_percent": self.battery}

    def seen(self, device: BLEDevice) -> None:
        self.device = device
        self.last_seen = time.time()
        if device.name:
            self.name = device.name

    # --- connection ----------------------------------------------------------------------
    def _disconnected(self, client: BleakClient) -> None:
        # bleak keeps each client's own D-Bus connection open after the device drops the link
        # until disconnect() is awaited: close it, or every drop leaks a connection.
        if client is not self.client:
            return
        if not self._closing:
            self._dispose(client)
        for q in list(self._queues):
            q.put_nowait(LOST)
        log.info("%s: link lost", self.address, extra={"reason": "link_lost"})
        self._on_change(self)
        if self._want_connected and not self._closing and self._reconnect is None:
            self._reconnect = asyncio.ensure_future(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        backoff = Backoff(0.2, 30.0)
        try:
            while not self._closing and not self.connected:
                await asyncio.sleep(backoff.next_delay())
                with contextlib.suppress(HalError):
                    await self.connect(attempts=1)
        finally:
            self._reconnect = None

    async def connect(self, attempts: int = 4, deadline: float | None = None,
                      pair: bool = False) -> None:
        """Connect (retrying with backoff), then set the device's clock and read its battery."""
        async with self._connect_lock:
            if self.connected:
                return
            backoff = Backoff(0.2, 5.0)
            last: BaseException | None = None
            loop = asyncio.get_running_loop()
            if self.client is not None:  # the client of a lost link: its bus must not stay open
                await self._dispose(self.client)
                self.client = None
            for attempt in range(attempts):
                client = BleakClient(self.device, disconnected_callback=self._disconnected, pair=pair,
                                     timeout=20.0, bluez={"adapter": self.adapter})
                self.client = client
                try:
                    await client.connect()
                    break
                except BaseException as exc:
                    # A refused, timed-out or cancelled connect: close its D-Bus connection too.
                    self.client = None
                    await asyncio.shield(self._dispose(client))
                    if not isinstance(exc, (BleakError, TimeoutError, EOFError)):
                        raise
                    last = exc
                    log.info("%s: connect attempt %d failed (%s)", self.address, attempt + 1,
                             type(exc).__name__, extra={"reason": "connect_failed"})
                    delay = backoff.next_delay()
                    if attempt + 1 == attempts or (deadline is not None and loop.time() + delay > deadline):
                        break
                    await asyncio.sleep(delay)
            if self.client is None:
                raise HalError("device_offline", f"could not connect to {self.name} ({type(last).__name__})",
                               address=self.address, attempts=attempt + 1)
            self._want_connected = True
            self.connected_at = loop.time()
            self.last_seen = time.time()
        await self.after_connect()
        self._on_change(self)

    def _dispose(self, client: BleakClient) -> asyncio.Task[None]:
        """Close a client once (its link is gone or going), in the background."""
        task = self._closers.get(id(client))
        if task is None:
            task = asyncio.ensure_future(self._close_client(client))
            self._closers[id(client)] = task
            task.add_done_callback(lambda _t: self._closers.pop(id(client), None))
        return task

    @staticmethod
    async def _close_client(client: BleakClient) -> None:
        # disconnect() is what closes the client's own D-Bus connection, connected or not.
        with contextlib.suppress(Exception):
            await client.disconnect()

    async def after_connect(self) -> None:
        """Set the device clock and read the battery (again after pairing: a bonded-only
        device refuses both before)."""
        client = self.client
        if client is None:
            return
        chars = {c.uuid for s in client.services for c in s.characteristics}
        # Readings are stamped by the device's clock: set it on every connect.
        if uuid16(CURRENT_TIME) in chars:
            stamp, weekday = local_now()
            try:
                await client.write_gatt_char(uuid16(CURRENT_TIME), current_time.encode(stamp, weekday),
                                             response=True)
            except BleakError as exc:
                log.info("%s: could not set the clock (%s)", self.address, type(exc).__name__)
        await self.read_battery()

    async def read_battery(self) -> None:
        client = self.client
        if client is not None and self.has(uuid16(BATTERY_LEVEL)):
            with contextlib.suppress(BleakError, EOFError):
                raw = await client.read_gatt_char(uuid16(BATTERY_LEVEL))
                self.battery = raw[0] if raw else None

    def has(self, uuid: str) -> bool:
        if self.client is None:
            return False
        try:
            services = self.client.services
        except BleakError:  # the link went and bleak dropped its services: nothing is there now
            return False
        return any(c.uuid == uuid for s in services for c in s.characteristics)

    async def close(self) -> None:
        self._closing = True
        self._want_connected = False
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        client, self.client = self.client, None
        if client is not None:
            await self._dispose(client)
        for task in list(self._closers.values()):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task

    async def forget_link(self) -> None:
        """Disconnect and do not come back on our own (health.forget)."""
        self._want_connected = False
        await self.close()
        self._closing = False

    # --- notifications -------------------------------------------------------------------
    def queue(self) -> asyncio.Queue[Any]:
        q: asyncio.Queue[Any] = asyncio.Queue()
        self._queues.add(q)
        if not self.connected:
            q.put_nowait(LOST)
        return q

    def release(self, q: asyncio.Queue[Any]) -> None:
        self._queues.discard(q)

    async def subscribe(self, uuid: str, q: asyncio.Queue[Any], tag: str) -> None:
        client = self.client
        if client is None or not client.is_connected:
            raise HalError("link_lost", f"{self.name} disconnected")
        try:
            await client.start_notify(uuid, lambda _c, data: q.put_nowait((tag, bytes(data))))
        except (BleakError, EOFError) as exc:
            if is_not_authorized(exc):
                raise HalError("not_paired", f"{self.name} needs to be paired first (health.pair)",
                               address=self.address) from None
            if not self.connected:
                raise HalError("link_lost", f"{self.name} disconnected") from None
            raise HalError("hardware_error",
                           f"{self.name} refused notifications ({type(exc).__name__})") from None

    async def unsubscribe(self, uuid: str) -> None:
        client = self.client
        if client is not None and client.is_connected:
            with contextlib.suppress(Exception):
                await client.stop_notify(uuid)

    async def write(self, uuid: str, data: bytes) -> None:
        client = self.client
        if client is None or not client.is_connected:
            raise HalError("link_lost", f"{self.name} disconnected")
        try:
            await client.write_gatt_char(uuid, data, response=True)
        except (BleakError, EOFError) as exc:
            if is_not_authorized(exc):
                raise HalError("not_paired", f"{self.name} needs to be paired first (health.pair)",
                               address=self.address) from None
            if not self.connected:
                raise HalError("link_lost", f"{self.name} disconnected") from None
            raise HalError("hardware_error", f"{self.name} refused a write ({type(exc).__name__})") from None
