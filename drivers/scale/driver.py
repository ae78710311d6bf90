"""Serial scales and height-weight stations (kind `scale`, driver `scale`).

A weight read while a person stands on the scale is citizen data: it goes only into the RPC
result and the caller's own `scale.weight` progress events, never into `scale.status`, logs or
error texts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from drivers.base import DeviceState, Driver, HalError, OperationContext, rpc_method
from drivers.scale.detect import detect
from drivers.scale.link import ScaleLink
from protocols import scale
from protocols.errors import ProtocolError
from protocols.scale import NEGATIVE, OVERLOAD, Reading, Reply, ScaleCodec

log = logging.getLogger("halsvc.driver.scale")

PROTOCOL_NAMES = list(scale.DETECT_ORDER)

OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["port"],
    "additionalProperties": False,
    "properties": {
        "driver": {"type": "string", "description": "always \"scale\""},
        "port": {"type": "string", "minLength": 1,
                 "description": "serial port path (e.g. /dev/halsvc/scale0) or pyserial URL"},
        "protocol": {"type": "string", "enum": ["auto", *PROTOCOL_NAMES],
                     "description": "scale protocol, or \"auto\" to detect it with safe probes"},
        "candidates": {"type": "array", "items": {"type": "string", "enum": PROTOCOL_NAMES},
                       "description": "protocols auto-detection may pick, in order (default: all)"},
        "mode": {"type": "string", "enum": ["polled", "continuous", "records"],
                 "description": "polled (we ask), continuous (the scale streams) or records "
                                "(one record per measurement); default: the protocol's"},
        "baudrate": {"type": "integer", "minimum": 300,
                     "description": "overrides the protocol's usual baud rate"},
        "software_parity": {"type": "boolean",
                            "description": "open 7E1 lines as 8N1 and carry parity in bit 7 "
                                           "(ptys, some USB adapters)"},
        "unit": {"type": "string", "enum": sorted(scale.UNIT_KG),
                 "description": "unit of scales whose frames carry none (Mettler Toledo 8217)"},
        "verify_checksum": {"type": "boolean",
                            "description": "refuse station records whose checksum does not match"},
        "poll_ms": {"type": "integer", "minimum": 20, "description": "interval between weight polls"},
        "answer_timeout_ms": {"type": "integer", "minimum": 50,
                              "description": "how long a polled scale may take to answer"},
        "missed_answers": {"type": "integer", "minimum": 1,
                           "description": "unanswered polls in a row that count as a lost link"},
        "idle_poll_ms": {"type": "integer", "minimum": 100,
                         "description": "link check interval for a polled scale when idle"},
        "silence_ms": {"type": "integer", "minimum": 100,
                       "description": "a continuous scale silent this long counts as a lost link"},
        "min_weight_kg": {"type": "number", "minimum": 0,
                          "description": "load that counts as a person on the scale"},
        "read_timeout_ms": {"type": "integer", "minimum": 100,
                            "description": "default wait for a stable weight"},
        "progress_ms": {"type": "integer", "minimum": 0,
                        "description": "minimum interval between scale.weight progress events"},
        "detect_listen_ms": {"type": "integer", "minimum": 50,
                             "description": "auto-detection: listening time per line setting"},
        "detect_probe_ms": {"type": "integer", "minimum": 50,
                            "description": "auto-detection: wait for a probe's answer"},
    },
}

READ_PARAMS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stable": {"type": "boolean",
                   "description": "wait for a still weight of a person (default true); false "
                                  "answers with the first weight of min_weight_kg or more, "
                                  "moving or not"},
        "timeout_ms": {"type": "integer", "minimum": 1,
                       "description": "give up after this long (default: the device's read_timeout_ms)"},
        "height_m": {"type": "number", "exclusiveMinimum": 0.3, "maximum": 2.8,
                     "description": "the person's height, for BMI when the scale measures none"},
        "min_weight_kg": {"type": "number", "minimum": 0,
                          "description": "load that counts as a person (default: device option)"},
    },
}

READ_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["weight_kg", "stable"],
    "properties": {
        "weight_kg": {"type": "number", "description": "weight in kilograms"},
        "stable": {"type": "boolean", "description": "the scale reported the weight as still"},
        "net": {"type": "boolean", "description": "a tare was subtracted"},
        "height_m": {"type": "number", "description": "height from the station, or as given"},
        "bmi": {"type": "number", "description": "body-mass index, from the station or computed"},
    },
}

COMMAND_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["done"],
    "properties": {
        "done": {"type": "boolean", "description": "the scale accepted the command"},
        "confirmed": {"type": "boolean",
                      "description": "the scale acknowledged it (false: its protocol sends no answer)"},
    },
}

OUTCOME_ERRORS = {
    "busy": ("unstable_weight", "the scale refused: the load is moving"),
    "overload": ("overload", "the scale is over capacity or out of its zero range"),
    "negative": ("invalid_reading", "the scale is below zero or out of its zero range"),
    "error": ("hardware_error", "the scale rejected the command"),
}


class ScaleDriver(Driver):
    kind: ClassVar[str] = "scale"
    options_schema: ClassVar[Mapping[str, Any]] = OPTIONS_SCHEMA
    backoff_cap: ClassVar[float] = 10.0

    def __init__(self, device_id: str, options: Mapping[str, Any], events: Any) -> None:
        super().__init__(device_id, options, events)
        self.link: ScaleLink | None = None
        self.codec: ScaleCodec | None = None
        self.mode = "polled"
        self._monitor: asyncio.Task[None] | None = None
        self._missed = 0

    # --- options --------------------------------------------------------------------------
    def _ms(self, key: str, default: int) -> float:
        return float(self.options.get(key, default)) / 1000.0

    @property
    def software_parity(self) -> bool:
        return bool(self.options.get("software_parity", False))

    def _spec(self, name: str) -> dict[str, Any]:
        try:
            spec = dict(scale.get(name))
        except ProtocolError as exc:
            raise HalError("not_supported", str(exc)) from None
        line = dict(spec["line"])
        if "baudrate" in self.options:
            line["baudrate"] = int(self.options["baudrate"])
        spec["line"] = line
        if "unit" in self.options:
            spec["unit"] = self.options["unit"]
        return spec

    # --- lifecycle ------------------------------------------------------------------------
    async def connect(self) -> None:
        port = str(self.options["port"])
        wanted = str(self.options.get("protocol", "auto"))
        first = PROTOCOL_NAMES[0] if wanted == "auto" else wanted
        self.link = await ScaleLink.open(port, self._spec(first)["line"], self.software_parity,
                                         self.link_lost)
        detected = False
        if wanted == "auto":
            found = await detect(self.link, self.options.get("candidates") or PROTOCOL_NAMES,
                                 software_parity=self.software_parity,
                                 verify_checksum=bool(self.options.get("verify_checksum", True)),
                                 listen_s=self._ms("detect_listen_ms", 600),
                                 probe_s=self._ms("detect_probe_ms", 400))
            name, mode = found.protocol, found.mode
            detected = True
            log.info("%s: detected %s (%s)", self.device_id, name, mode,
                     extra={"device": self.device_id, "reason": "protocol_detected"})
        else:
            name = wanted
            mode = str(self.options.get("mode", scale.get(name)["mode"]))
        spec = self._spec(name)
        self.link.reconfigure(spec["line"], self.software_parity)
        self.codec = ScaleCodec(spec, self.software_parity, bool(self.options.get("verify_checksum", True)))
        self.link.codec = self.codec
        self.mode = mode
        self._missed = 0
        await self._check_alive()
        self._details.update(protocol=name, mode=mode, detected=detected,
                             zero=self.codec.has_command("zero"), tare=self.codec.has_command("tare"))
        self._monitor = asyncio.create_task(self._watch(), name=f"scale-watch:{self.device_id}")

    async def _check_alive(self) -> None:
        """A connect succeeds only when the scale shows signs of life (stations stay quiet)."""
        assert self.link is not None
        if self.mode == "polled":
            await self.link.transact("weigh", self._ms("answer_timeout_ms", 1000))
        elif self.mode == "continuous":
            loop = asyncio.get_running_loop()
            start = loop.time()
            got = await self.link.wait_reading(self.link.latest_seq, self._ms("silence_ms", 3000))
            if got is None and self.link.latest_at < start:
                raise HalError("no_device", "the scale sends nothing", code=-32002)

    async def disconnect(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None and monitor is not asyncio.current_task():
            monitor.cancel()
            # asyncio.wait, not `await monitor` under suppress(CancelledError): that would also
            # swallow a cancellation of run() itself (daemon shutdown), which then never ends.
            # Bounded, so a monitor that ignores its cancel cannot hang the reconnect either.
            await asyncio.wait({monitor}, timeout=2.0)
            if monitor.done() and not monitor.cancelled():
                monitor.exception()  # retrieved: no "exception never retrieved" at exit
        if self.link is not None:
            self.link.close()
            self.link = None
        self.codec = None

    async def _watch(self) -> None:
        """Notice a dead scale while nobody is reading: polls a polled scale, times a streaming one."""
        assert self.link is not None
        link = self.link
        loop = asyncio.get_running_loop()
        while True:
            if self.mode == "polled":
                await asyncio.sleep(self._ms("idle_poll_ms", 2000))
                if link._io.locked():
                    continue  # a read is polling already
                with contextlib.suppress(HalError):
                    await self._poll(link)
            elif self.mode == "continuous":
                silence = self._ms("silence_ms", 3000)
                await asyncio.sleep(silence / 4)
                if loop.time() - link.latest_at > silence:
                    self.link_lost("the scale stopped sending")
                    return
            else:
                return  # a station speaks only after a measurement: nothing to watch but the port

    async def _poll(self, link: ScaleLink) -> Reading | Reply | None:
        """One weight query, counting unanswered ones: too many in a row is a lost link."""
        try:
            answer = await link.transact("weigh", self._ms("answer_timeout_ms", 1000))
        except HalError as exc:
            if exc.reason != "timeout":
                raise
            self._missed += 1
            if self._missed >= int(self.options.get("missed_answers", 3)):
                self.link_lost("the scale stopped answering")
                raise HalError("link_lost", "the scale stopped answering") from None
            return None
        self._missed = 0
        return answer

    # --- operations -----------------------------------------------------------------------
    def _deadline(self, params: Mapping[str, Any], ctx: OperationContext) -> float:
        loop = asyncio.get_running_loop()
        budget = float(params.get("timeout_ms", self.options.get("read_timeout_ms", 30000))) / 1000.0
        remaining = ctx.remaining()
        if remaining is not None:
            # End a little before the daemon's own deadline so the caller hears why.
            budget = min(budget, max(0.0, remaining - 0.1))
        return loop.time() + budget

    @rpc_method("scale.read", "Weigh the person on the scale (and height/BMI on a station).",
                params=READ_PARAMS, result=READ_RESULT, long=True, citizen_data=True,
                errors=("device_offline", "timeout", "unstable_weight", "overload", "invalid_reading",
                        "link_lost", "cancelled"),
                events=("scale.weight",))
    async def read(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        self.require_online()
        async with self.operation():
            want_stable = bool(params.get("stable", True))
            min_kg = float(params.get("min_weight_kg", self.options.get("min_weight_kg", 2.0)))
            deadline = self._deadline(params, ctx)
            reading = await self._await_weight(want_stable, min_kg, deadline, ctx)
            return self._result(reading, params.get("height_m"))

    async def _await_weight(self, want_stable: bool, min_kg: float, deadline: float,
                            ctx: OperationContext) -> Reading:
        loop = asyncio.get_running_loop()
        link = self.link
        if link is None:
            raise HalError("device_offline", f"{self.device_id} is not connected")
        last: Reading | None = None
        seen_load = False
        seq = link.latest_seq
        progress = _Throttle(self._ms("progress_ms", 250))
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            reading: Reading | None
            if self.mode == "polled":
                started = loop.time()
                answer = await self._poll(link)
                reading = answer if isinstance(answer, Reading) else None
                if isinstance(answer, Reply) and answer.outcome == "busy":
                    seen_load = True  # MT-SICS `S I`: the scale is settling
            else:
                reading = await link.wait_reading(seq, left)
                seq = link.latest_seq
            if reading is not None:
                last = reading
                kg = reading.weight_kg
                if reading.state == OVERLOAD:
                    raise HalError("overload", "the load is over the scale's capacity")
                if (kg is not None and kg >= min_kg) or "motion" in reading.flags:
                    seen_load = True
                # A scale that shows no number while the load moves (8217) still tells the
                # caller someone is on it and moving: {"stable": false} without a weight.
                moving = "motion" in reading.flags
                if (kg is not None or moving) and progress.due(loop.time(), reading.stable):
                    data: dict[str, Any] = {"stable": reading.stable}
                    if kg is not None:
                        data["weight_kg"] = kg
                    ctx.progress("scale.weight", data)
                if self._acceptable(reading, want_stable, min_kg):
                    return reading
            if self.mode == "polled":
                pause = self._ms("poll_ms", 200) - (loop.time() - started)
                if pause > 0:
                    await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
        if last is not None and last.state == NEGATIVE:
            raise HalError("invalid_reading", "the scale reads below zero: zero it with nobody on it")
        if seen_load:
            raise HalError("unstable_weight", "the weight did not settle; please stand still")
        raise HalError("timeout", "nobody stepped on the scale in time")

    def _acceptable(self, reading: Reading, want_stable: bool, min_kg: float) -> bool:
        kg = reading.weight_kg
        if kg is None or reading.state == NEGATIVE:
            return False
        if self.mode == "records":
            return kg >= min_kg
        if kg < min_kg:
            return False  # nobody on the scale yet (min_weight_kg 0 takes any load at once)
        return reading.stable or not want_stable

    def _result(self, reading: Reading, given_height: Any) -> dict[str, Any]:
        kg = reading.weight_kg
        assert kg is not None
        out: dict[str, Any] = {"weight_kg": kg, "stable": reading.stable, "net": reading.net}
        height = reading.height_m if reading.height_m is not None else given_height
        if height is not None:
            out["height_m"] = float(height)
            out["bmi"] = reading.bmi if reading.bmi is not None else scale.bmi(kg, float(height))
        return out

    async def _command(self, name: str) -> dict[str, Any]:
        self.require_online()
        async with self.operation():
            if self.link is None or self.codec is None:
                raise HalError("device_offline", f"{self.device_id} is not connected")
            if not self.codec.has_command(name):
                raise HalError("not_supported", f"{self.codec.name} scales have no {name} command")
            answer = await self.link.transact(name, self._ms("answer_timeout_ms", 1000))
            if isinstance(answer, Reply):
                if answer.outcome != "ok":
                    reason, message = OUTCOME_ERRORS.get(answer.outcome, OUTCOME_ERRORS["error"])
                    raise HalError(reason, message)
                return {"done": True, "confirmed": True}
            return {"done": True, "confirmed": False}

    @rpc_method("scale.zero", "Set the empty scale's reading to zero.", result=COMMAND_RESULT,
                errors=("device_offline", "not_supported", "unstable_weight", "overload",
                        "hardware_error", "timeout", "link_lost"))
    async def zero(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        return await self._command("zero")

    @rpc_method("scale.tare", "Subtract the load now on the scale from later readings.",
                result=COMMAND_RESULT, role="technician",
                errors=("device_offline", "not_supported", "unstable_weight", "overload",
                        "hardware_error", "timeout", "link_lost"))
    async def tare(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        return await self._command("tare")

    async def selftest(self, level: str) -> dict[str, Any]:
        self.require_online()
        checks: list[dict[str, Any]] = []
        if self.link is not None and self.mode == "polled":
            try:
                await self.link.transact("weigh", self._ms("answer_timeout_ms", 1000))
                checks.append({"name": "answers", "passed": True})
            except HalError as exc:
                checks.append({"name": "answers", "passed": False, "reason": exc.reason})
        elif self.link is not None and self.mode == "continuous":
            age = asyncio.get_running_loop().time() - self.link.latest_at
            checks.append({"name": "streaming", "passed": age < self._ms("silence_ms", 3000)})
        else:
            checks.append({"name": "port_open", "passed": self.link is not None})
        if self.state == DeviceState.HARDWARE_ERROR:
            checks.append({"name": "state", "passed": False})
        return {"passed": all(c["passed"] for c in checks), "level": level, "checks": checks}


class _Throttle:
    """Progress at most every `interval` seconds, but always when stability changes."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = -1e9
        self.stable: bool | None = None

    def due(self, now: float, stable: bool) -> bool:
        if stable != self.stable or now - self.last >= self.interval:
            self.last, self.stable = now, stable
            return True
        return False
