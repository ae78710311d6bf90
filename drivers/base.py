"""The driver contract: what every device driver gives the daemon, and what it gets back.

A driver is one class per device kind. The daemon makes one instance per configured device and
calls `run()`, which keeps the device connected for the daemon's whole life: connect, serve until
the link is lost, back off, connect again. RPC methods are declared on the class with `@rpc_method`;
the daemon builds its dispatch table and the OpenRPC document from those declarations, so what is
documented is what dispatches.

A driver never imports `halsvc`: it reports through the `EventSink` it is given and raises
`HalError` with one of the reasons of DESIGN §2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

log = logging.getLogger("halsvc.driver")


class DeviceState(StrEnum):
    """XFS4IoT device states (DESIGN §3)."""

    ONLINE = "online"
    OFFLINE = "offline"
    BUSY = "busy"
    STARTING = "starting"
    NO_DEVICE = "no_device"
    HARDWARE_ERROR = "hardware_error"
    USER_ERROR = "user_error"


# JSON-RPC error code per reason family (DESIGN §2). Clients switch on `reason`, not on text.
PERMISSION, DEVICE, OPERATION, HARDWARE, USER, PAYMENT = -32001, -32002, -32003, -32004, -32005, -32006
REASON_CODES: dict[str, int] = {
    "permission_denied": PERMISSION,
    "device_not_found": DEVICE,
    "device_offline": DEVICE,
    "device_busy": DEVICE,
    "not_claimed": DEVICE,
    "no_device": DEVICE,
    "timeout": OPERATION,
    "cancelled": OPERATION,
    "overloaded": OPERATION,
    "shutting_down": OPERATION,
    "not_supported": OPERATION,
    "hardware_error": HARDWARE,
    "paper_out": HARDWARE,
    "paper_near_end": HARDWARE,
    "cover_open": HARDWARE,
    "cutter_error": HARDWARE,
    "printer_offline": HARDWARE,
    "link_lost": HARDWARE,
    "overload": HARDWARE,
    "card_removed": USER,
    "no_card": USER,
    "wrong_access_key": USER,
    "no_finger": USER,
    "cuff_error": USER,
    "unstable_weight": USER,
    "invalid_reading": USER,
    "not_paired": USER,
    "terminal_busy": PAYMENT,
    "not_found": PAYMENT,
    "state_conflict": PAYMENT,
    "terminal_unreachable": PAYMENT,
}


class HalError(Exception):
    """An error with a stable `reason` that reaches the client as a JSON-RPC error.

    `data` must never hold citizen data: it goes to the caller, but error texts also reach logs.
    """

    def __init__(self, reason: str, message: str | None = None, *, code: int | None = None,
                 **data: Any) -> None:
        super().__init__(message or reason.replace("_", " "))
        self.reason = reason
        self.message = message or reason.replace("_", " ")
        self.code = code if code is not None else REASON_CODES.get(reason, HARDWARE)
        self.data = data

    def to_error(self) -> dict[str, Any]:
        """The JSON-RPC `error` object."""
        return {"code": self.code, "message": self.message, "data": {"reason": self.reason, **self.data}}


EventSink = Callable[[str, str, Mapping[str, Any]], None]
"""`sink(topic, device_id, data)`: publish a broadcast event (status, presence…), never citizen data."""


class OperationContext:
    """What a long operation gets from the daemon: its request id, a deadline and a private
    progress channel back to the caller (the only place citizen-data progress may go)."""

    def __init__(self, request_id: Any = None, deadline: float | None = None,
                 progress: Callable[[str, Mapping[str, Any]], None] | None = None,
                 conn_id: int | None = None) -> None:
        self.request_id = request_id
        self.deadline = deadline  # loop.time() by which the operation must end, or None
        self.conn_id = conn_id  # the calling connection, for per-client state such as idempotency
        self._progress = progress

    def progress(self, topic: str, data: Mapping[str, Any]) -> None:
        """Send a progress event to the calling connection only, tagged with its request id."""
        if self._progress is not None:
            self._progress(topic, data)

    def remaining(self, default: float | None = None) -> float | None:
        """Seconds left before the deadline (at least 0), or `default` when there is none."""
        if self.deadline is None:
            return default
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


Handler = Callable[..., Awaitable[Mapping[str, Any]]]
F = TypeVar("F", bound=Handler)


@dataclass(frozen=True)
class RpcMethod:
    """One RPC method a driver offers. `params`/`result` are JSON Schemas of objects.

    The daemon adds an optional `device` property to `params` (the device id; default: the only
    or first device of the kind) and checks roles, claims and the schema before the handler runs.
    """

    name: str
    summary: str
    params: Mapping[str, Any]
    result: Mapping[str, Any]
    attr: str = ""
    role: str = "kiosk"  # least role allowed: kiosk < technician < admin
    exclusive: bool = True  # the device shows `busy` while it runs
    readonly: bool = False  # only looks (status, journal): allowed while another client holds a claim
    citizen_data: bool = False  # result/progress carry citizen data: never logged or broadcast
    long: bool = False  # may emit progress events
    errors: tuple[str, ...] = ()  # reasons it may answer with (documented in rpc.discover)
    events: tuple[str, ...] = ()  # progress topics it sends its caller (documented in rpc.discover)
    examples: tuple[Mapping[str, Any], ...] = field(default=())


def rpc_method(name: str, summary: str, *, params: Mapping[str, Any] | None = None,
               result: Mapping[str, Any] | None = None, role: str = "kiosk",
               exclusive: bool = True, citizen_data: bool = False, long: bool = False,
               readonly: bool = False, errors: tuple[str, ...] = (),
               events: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Declare a driver coroutine `async def m(self, params, ctx) -> dict` as an RPC method."""

    def mark(fn: F) -> F:
        fn.__rpc__ = RpcMethod(  # type: ignore[attr-defined]
            name=name, summary=summary, attr=fn.__name__,
            params=params or {"type": "object", "properties": {}, "additionalProperties": False},
            result=result or {"type": "object"}, role=role, exclusive=exclusive, readonly=readonly,
            citizen_data=citizen_data, long=long, errors=errors, events=events)
        return fn

    return mark


class Backoff:
    """Capped exponential backoff with jitter, reset after a good connection."""

    def __init__(self, initial: float = 0.2, cap: float = 30.0, factor: float = 2.0) -> None:
        self.initial, self.cap, self.factor = initial, cap, factor
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * self.factor ** self.attempt)
        self.attempt += 1
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self.attempt = 0


class Driver:
    """Base class of every device driver.

    Subclasses set `kind`, optionally `options_schema` (JSON Schema of the device's config
    table, checked at start), and implement `connect()`, `disconnect()` and optionally
    `selftest()`. When the transport dies, call `self.link_lost("why")`; `run()` reconnects.
    """

    kind: ClassVar[str] = "device"
    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object"}
    selftest_levels: ClassVar[tuple[str, ...]] = ("internal", "external")
    backoff_initial: ClassVar[float] = 0.2
    backoff_cap: ClassVar[float] = 30.0
    # The option hot-plug sets to the device node it found (e.g. /dev/ttyUSB0).
    hotplug_option: ClassVar[str] = "port"
    # Broadcast topics it emits besides `<kind>.status` (documented in rpc.discover).
    broadcasts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, device_id: str, options: Mapping[str, Any], events: EventSink) -> None:
        self.device_id = device_id
        self.options = dict(options)
        self._events = events
        self._state = DeviceState.STARTING
        self._details: dict[str, Any] = {}
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._backoff = Backoff(self.backoff_initial, self.backoff_cap)
        self._busy = 0
        self._ops: set[asyncio.Task[Any]] = set()
        self.present = True  # False while hot-plug says the hardware is unplugged
        # Where the driver may keep durable state (journals, job ids); set by the daemon before
        # run(). Never citizen data.
        self.state_dir: pathlib.Path | None = None

    # --- state ---------------------------------------------------------------------------
    @property
    def state(self) -> DeviceState:
        return self._state

    @property
    def details(self) -> Mapping[str, Any]:
        return dict(self._details)

    def set_state(self, state: DeviceState | None = None, **details: Any) -> None:
        """Change state and/or kind-specific details; emits `<kind>.status` on any change."""
        new_state = self._state if state is None else DeviceState(state)
        new_details = {**self._details, **details}
        if new_state == self._state and new_details == self._details:
            return
        self._state, self._details = new_state, new_details
        self.emit(f"{self.kind}.status", self.status())

    def status(self) -> dict[str, Any]:
        return {"device": self.device_id, "kind": self.kind, "state": str(self._state), **self._details}

    def emit(self, topic: str, data: Mapping[str, Any]) -> None:
        """Broadcast an event to subscribers. Never put citizen data here."""
        self._events(topic, self.device_id, data)

    def require_online(self) -> None:
        if self._state == DeviceState.NO_DEVICE:
            raise HalError("device_offline", f"{self.device_id} is not connected", state=str(self._state))
        if self._state in (DeviceState.STARTING, DeviceState.OFFLINE):
            raise HalError("device_offline", f"{self.device_id} is {self._state}", state=str(self._state))

    # --- lifecycle -----------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the transport and check the device answers. Raise on failure."""
        raise NotImplementedError

    async def disconnect(self) -> None:
        """Close the transport. Must not raise."""

    async def selftest(self, level: str) -> dict[str, Any]:
        """Run a health check (`internal`: no moving parts; `external`: prints/measures)."""
        self.require_online()
        return {"passed": True, "level": level, "checks": []}

    def link_lost(self, reason: str = "link lost") -> None:
        """Called by the driver (from any callback on the loop) when the transport died."""
        self._lost_reason = reason
        self._lost.set()

    def cancel_operations(self, error: HalError) -> None:
        """Fail every operation in flight on this device (link lost, unplugged, shutdown)."""
        for task in list(self._ops):
            if not task.done():
                task.cancel(msg=f"hal:{error.reason}")

    def unplugged(self) -> None:
        """Hot-plug: the hardware went away."""
        self.present = False
        self.link_lost("unplugged")

    def plugged(self, options: Mapping[str, Any] | None = None) -> None:
        """Hot-plug: the hardware (re)appeared, possibly at a new path."""
        if options:
            self.options.update(options)
        self.present = True
        if not hasattr(self, "_wake"):  # before run() started: run() will see `present`
            return
        self._backoff.reset()
        self._wake.set()

    async def run(self) -> None:
        """Keep the device connected until cancelled. Never raises except CancelledError."""
        self._wake = asyncio.Event()
        while True:
            if not self.present:
                self.set_state(DeviceState.NO_DEVICE)
                self._wake.clear()
                await self._wake.wait()
            self._lost.clear()
            self.set_state(DeviceState.STARTING)
            try:
                await self.connect()
            except asyncio.CancelledError:
                await self.disconnect()
                raise
            except Exception as exc:  # any failure to connect is retried, never fatal
                await self.disconnect()
                delay = self._backoff.next_delay()
                state = exc.reason if isinstance(exc, HalError) else type(exc).__name__
                log.info("%s: connect failed (%s); retry in %.1fs", self.device_id, state, delay,
                         extra={"device": self.device_id, "reason": "connect_failed"})
                failed = isinstance(exc, HalError) and exc.code == HARDWARE
                self.set_state(DeviceState.HARDWARE_ERROR if failed else DeviceState.NO_DEVICE,
                               error=state)
                self._wake.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands
                # as the wait ends, and run() would then never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            self._backoff.reset()
            self._details.pop("error", None)
            if self._state in (DeviceState.STARTING, DeviceState.NO_DEVICE):
                self.set_state(DeviceState.ONLINE)
            try:
                await self._lost.wait()
            finally:
                # Reached by a lost link, or by run() being cancelled (the daemon stopping).
                lost = self._lost.is_set()
                log.info("%s: %s", self.device_id, (self._lost_reason or "link lost") if lost else "stopping",
                         extra={"device": self.device_id, "reason": "link_lost" if lost else "stopping"})
                self.cancel_operations(HalError("link_lost"))
                await self.disconnect()
            self.set_state(DeviceState.NO_DEVICE if not self.present else DeviceState.STARTING)

    # --- operations ----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def operation(self, exclusive: bool = True) -> AsyncIterator[None]:
        """Wrap one RPC operation: tracks the task so link loss can fail it with `link_lost`,
        and shows `busy` while an exclusive one runs."""
        task = asyncio.current_task()
        assert task is not None
        self._ops.add(task)
        if exclusive:
            self._busy += 1
            if self._busy == 1 and self._state == DeviceState.ONLINE:
                self.set_state(DeviceState.BUSY)
        try:
            yield
        except asyncio.CancelledError as exc:
            msg = exc.args[0] if exc.args else ""
            if isinstance(msg, str) and msg.startswith("hal:"):
                # Cancelled by us because the link died: uncancel so the caller gets the reason.
                task.uncancel()
                raise HalError(msg[4:], "the device link was lost during the operation") from None
            raise
        finally:
            self._ops.discard(task)
            if exclusive:
                self._busy -= 1
                if self._busy == 0 and self._state == DeviceState.BUSY:
                    self.set_state(DeviceState.ONLINE)

    @classmethod
    def rpc_methods(cls) -> list[RpcMethod]:
        """Every `@rpc_method` of the class, in definition order."""
        seen: dict[str, RpcMethod] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                spec = getattr(value, "__rpc__", None)
                if isinstance(spec, RpcMethod):
                    seen[spec.name] = spec
        return list(seen.values())
