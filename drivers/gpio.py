"""Station I/O through gpiozero: indicator lights, a buzzer, a presence sensor and a door switch.

On a board gpiozero drives the real pins (its default pin factory). On the simulated station
the pins are gpiozero's mock pins, and a Unix-socket "wire" (`protocols.gpio_wire`) connects
them to the simulated panel: the panel's sensors drive our input pins, our lamps and buzzer
levels go to the panel. Everything between — LED, PWMLED, Buzzer, DigitalInputDevice, their
threads and callbacks — is unmodified gpiozero.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar

from gpiozero import PWMLED, Buzzer, DigitalInputDevice
from gpiozero.pins.mock import MockFactory, MockPWMPin

from drivers.base import Driver, HalError, OperationContext, rpc_method
from protocols import gpio_wire

PIN = {"type": "integer", "minimum": 0, "maximum": 63}
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "pin_factory": {"enum": ["default", "mock"],
                        "description": "default: gpiozero's own choice for the board; mock: the simulator"},
        "wire": {"type": "string", "description": "mock only: the simulated panel's socket"},
        "lights": {"type": "object", "additionalProperties": PIN,
                   "description": "indicator name -> BCM pin, e.g. { status = 17, card = 27 }"},
        "buzzer": PIN,
        "presence": PIN,
        "door": PIN,
        "door_open_level": {"enum": [0, 1], "description": "input level meaning the door is open (1)"},
    },
}
PATTERNS = ("on", "off", "blink", "pulse")


class WiredPin(MockPWMPin):
    """A mock pin whose output changes are reported to a listener (the wire to the panel)."""

    listener: Any = None  # set per factory: callable(pin_number, level), called from any thread

    def _change_state(self, value: Any) -> bool:
        changed = bool(super()._change_state(value))
        listener = type(self).listener
        if changed and self._function == "output" and listener is not None:
            listener(int(self.info.name.removeprefix("GPIO")), float(value))
        return changed


class GpioDriver(Driver):
    kind: ClassVar[str] = "gpio"
    broadcasts: ClassVar[tuple[str, ...]] = ("presence.changed", "door.changed")
    options_schema: ClassVar[Mapping[str, Any]] = OPTIONS_SCHEMA
    backoff_cap: ClassVar[float] = 5.0

    def __init__(self, device_id: str, options: Mapping[str, Any], events: Any) -> None:
        super().__init__(device_id, options, events)
        self.lights: dict[str, PWMLED] = {}
        self.patterns: dict[str, str] = {}
        self.buzzer: Buzzer | None = None
        self.inputs: dict[str, DigitalInputDevice] = {}
        self._factory: Any = None
        self._pins: dict[int, Any] = {}
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle --------------------------------------------------------------------------
    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        mock = self.options.get("pin_factory") == "mock"
        reader = None
        if mock:
            wire = self.options.get("wire")
            if not wire:
                raise HalError("hardware_error", "pin_factory = mock needs `wire`, the panel's socket")
            try:
                reader, self._writer = await asyncio.open_unix_connection(wire)
            except OSError as exc:
                raise HalError("no_device", f"panel wire {wire}: {exc.strerror}") from None
            # A pin class per connection, so a stale listener never writes to a new wire.
            pin_class = type("Pin", (WiredPin,), {"listener": staticmethod(self._output_changed)})
            self._factory = MockFactory(pin_class=pin_class)
        try:
            self._make_devices()
        except Exception as exc:  # a pin in use, a pin the board lacks
            raise HalError("hardware_error", f"GPIO setup failed: {type(exc).__name__}: {exc}") from None
        if reader is not None:
            self._reader = asyncio.create_task(self._read_wire(reader))
        self._details.update(self._input_details())
        self._details["lights"] = dict(self.patterns)

    def _make_devices(self) -> None:
        f = self._factory
        for name, pin in dict(self.options.get("lights", {})).items():
            self.lights[name] = PWMLED(pin, pin_factory=f)
            self.patterns[name] = "off"
        if "buzzer" in self.options:
            self.buzzer = Buzzer(self.options["buzzer"], pin_factory=f)
        for name in ("presence", "door"):
            if name in self.options:
                dev = DigitalInputDevice(self.options[name], pull_up=None, active_state=True, pin_factory=f)
                dev.when_activated = lambda d, n=name: self._input_changed(n)
                dev.when_deactivated = lambda d, n=name: self._input_changed(n)
                self.inputs[name] = dev
        if f is not None:
            for dev in [*self.lights.values(), self.buzzer, *self.inputs.values()]:
                if dev is not None:
                    self._pins[int(dev.pin.info.name.removeprefix("GPIO"))] = dev.pin

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        for dev in [*self.lights.values(), self.buzzer, *self.inputs.values()]:
            if dev is not None:
                with contextlib.suppress(Exception):
                    dev.close()
        self.lights.clear()
        self.patterns.clear()
        self.inputs.clear()
        self.buzzer = None
        self._pins.clear()
        if self._factory is not None:
            with contextlib.suppress(Exception):
                self._factory.close()
            self._factory = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # --- the wire (simulated station only) --------------------------------------------------
    async def _read_wire(self, reader: asyncio.StreamReader) -> None:
        decoder = gpio_wire.Decoder()
        try:
            while data := await reader.read(4096):
                for pin_no, level in decoder.feed(data):
                    pin = self._pins.get(pin_no)
                    if pin is not None and pin.function == "input":
                        pin.drive_high() if level >= 0.5 else pin.drive_low()
        except (ConnectionError, OSError):
            pass
        self.link_lost("panel wire closed")

    def _output_changed(self, pin: int, level: float) -> None:
        """From gpiozero (its blink/pulse threads too): send the level down the wire."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._write_level, pin, level)

    def _write_level(self, pin: int, level: float) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(gpio_wire.encode(pin, level if 0 < level < 1 else int(level)))

    # --- inputs -------------------------------------------------------------------------------
    def _input_details(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "presence" in self.inputs:
            out["presence"] = bool(self.inputs["presence"].value)
        if "door" in self.inputs:
            out["door"] = "open" if self._door_open() else "closed"
        return out

    def _door_open(self) -> bool:
        level = int(self.inputs["door"].value)
        return level == int(self.options.get("door_open_level", 1))

    def _input_changed(self, name: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._report_input, name)

    def _report_input(self, name: str) -> None:
        if name not in self.inputs:
            return
        if name == "presence":
            present = bool(self.inputs["presence"].value)
            if self._details.get("presence") == present:
                return
            self.emit("presence.changed", {"present": present})
        else:
            state = "open" if self._door_open() else "closed"
            if self._details.get("door") == state:
                return
            self.emit("door.changed", {"open": state == "open", "door": state})
        self.set_state(**self._input_details())

    # --- RPC ----------------------------------------------------------------------------------
    @rpc_method("indicator.set", "Set an indicator light: on, off, blink or pulse.", exclusive=False,
                params={"type": "object", "required": ["name", "pattern"], "additionalProperties": False,
                        "properties": {"name": {"type": "string", "minLength": 1},
                                       "pattern": {"enum": list(PATTERNS)},
                                       "on_ms": {"type": "integer", "minimum": 20, "maximum": 10_000},
                                       "off_ms": {"type": "integer", "minimum": 20, "maximum": 10_000},
                                       "brightness": {"type": "number", "minimum": 0, "maximum": 1}}},
                result={"type": "object", "required": ["name", "pattern"],
                        "properties": {"name": {"type": "string"}, "pattern": {"enum": list(PATTERNS)}}},
                errors=("device_offline", "device_not_found", "device_busy"))
    async def indicator_set(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        self.require_online()
        name, pattern = params["name"], params["pattern"]
        led = self.lights.get(name)
        if led is None:
            raise HalError("device_not_found", f"no light {name!r}; lights: {', '.join(sorted(self.lights))}",
                           code=-32002)
        on_s = params.get("on_ms", 500) / 1000
        off_s = params.get("off_ms", 500) / 1000
        async with self.operation(exclusive=False):
            if pattern == "on":
                led.value = float(params.get("brightness", 1.0))
            elif pattern == "off":
                led.off()
            elif pattern == "blink":
                led.blink(on_time=on_s, off_time=off_s, background=True)
            else:
                led.pulse(fade_in_time=on_s, fade_out_time=off_s, background=True)
            self.patterns[name] = pattern
            self.set_state(lights=dict(self.patterns))
        return {"name": name, "pattern": pattern}

    @rpc_method("buzzer.beep", "Beep the buzzer `count` times; cancelling stops it at once.", long=True,
                params={"type": "object", "additionalProperties": False, "properties": {
                    "count": {"type": "integer", "minimum": 1, "maximum": 100},
                    "on_ms": {"type": "integer", "minimum": 10, "maximum": 5000},
                    "off_ms": {"type": "integer", "minimum": 10, "maximum": 5000}}},
                result={"type": "object", "required": ["beeps"],
                        "properties": {"beeps": {"type": "integer"}}},
                errors=("device_offline", "not_supported", "device_busy", "cancelled", "timeout",
                        "link_lost"),
                events=("buzzer.beep",))
    async def beep(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        self.require_online()
        if self.buzzer is None:
            raise HalError("not_supported", f"{self.device_id} has no buzzer")
        count = params.get("count", 1)
        on_s, off_s = params.get("on_ms", 120) / 1000, params.get("off_ms", 120) / 1000
        buzzer = self.buzzer
        done = 0
        async with self.operation():
            try:
                for i in range(count):
                    buzzer.on()
                    await asyncio.sleep(on_s)
                    buzzer.off()
                    done = i + 1
                    ctx.progress("buzzer.beep", {"beep": done, "count": count})
                    if done < count:
                        await asyncio.sleep(off_s)
            finally:
                buzzer.off()  # cancelled mid-beep: silence first, then answer
        return {"beeps": done}

    async def selftest(self, level: str) -> dict[str, Any]:
        self.require_online()
        checks = []
        for name, dev in self.inputs.items():
            checks.append({"name": f"{name} input", "passed": not dev.closed, "value": int(dev.value)})
        for name, led in self.lights.items():
            checks.append({"name": f"light {name}", "passed": not led.closed})
        if self.buzzer is not None:
            checks.append({"name": "buzzer", "passed": not self.buzzer.closed})
        if level == "external":
            for led in self.lights.values():
                led.on()
            if self.buzzer is not None:
                self.buzzer.on()
            await asyncio.sleep(0.2)
            if self.buzzer is not None:
                self.buzzer.off()
            for name, led in self.lights.items():
                led.off()
                self.patterns[name] = "off"
            checks.append({"name": "lamps and buzzer pulsed", "passed": True})
        return {"passed": all(c["passed"] for c in checks), "checks": checks}


DRIVER = GpioDriver
